//! `Cgroup`: a container's cgroup for the Python service, over barque-container's cgroup
//! manager; detached from the interpreter around every call that touches the cgroup files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use barque_container::cgroups::{self, Cgroup, KernelFs, Layout, Limits, Setup};
use barque_container::device_filter::DeviceRule;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::NativeError;

/// The v1 controllers of a service container: freezer for pause, cpuacct for the CPU time
/// `stats` reports (the same directory as cpu where the host mounts them together).
const V1_CONTROLLERS: [&str; 6] = ["memory", "pids", "cpu", "cpuacct", "freezer", "devices"];

/// The host's layout, read once per process: it does not change under a running barque,
/// and a container's start and stop each need it.
fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| Layout::detect(&KernelFs))
}

fn dirs(path: &Path) -> Result<Vec<cgroups::Dir>, NativeError> {
    Ok(layout().dirs(&KernelFs, path, &V1_CONTROLLERS)?)
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn seconds(timeout: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout)
        .map_err(|_| PyValueError::new_err(format!("invalid timeout: {timeout}")))
}

/// Whether the host is a pure cgroup v2 one (the unified hierarchy at /sys/fs/cgroup).
#[pyfunction]
pub fn cgroup_v2() -> bool {
    layout().v2
}

/// One container's cgroup, by its cgroupsPath (the service's ``/barque/<id>``): one
/// directory per v1 hierarchy barque manages, or one in the unified tree.
#[pyclass(module = "barque._native", name = "Cgroup", frozen)]
pub struct PyCgroup {
    inner: Cgroup,
}

#[pymethods]
impl PyCgroup {
    /// The cgroup at ``path`` as it exists now (possibly none of its directories).
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| -> Result<Cgroup, NativeError> {
            Ok(Cgroup::existing(&KernelFs, layout(), dirs(&path)?))
        })?;
        Ok(PyCgroup { inner })
    }

    /// Creates the cgroup with these limits and device rules.
    #[staticmethod]
    #[pyo3(signature = (path, *, memory = None, memory_swap = None, swap_where_accounted = false,
                        pids = None, cpu_quota = None, cpu_period = None, devices = Vec::new(),
                        replace = false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        memory: Option<i64>,
        memory_swap: Option<i64>,
        swap_where_accounted: bool,
        pids: Option<i64>,
        cpu_quota: Option<i64>,
        cpu_period: Option<u64>,
        devices: Vec<(bool, String)>,
        replace: bool,
    ) -> PyResult<Self> {
        let limits = Limits {
            memory,
            memory_swap,
            swap_where_accounted,
            pids,
            cpu_quota,
            cpu_period,
            ..Limits::default()
        };
        let inner = py.detach(|| -> Result<Cgroup, NativeError> {
            let devices = devices
                .iter()
                .map(|(allow, text)| DeviceRule::parse(*allow, text))
                .collect::<Result<Vec<_>, _>>()?;
            let setup = Setup {
                limits: &limits,
                devices: &devices,
                replace,
            };
            Ok(Cgroup::create(&KernelFs, layout(), dirs(&path)?, setup)?)
        })?;
        Ok(PyCgroup { inner })
    }

    /// A cgroup v2 one (a single directory, ``"unified"``).
    #[getter]
    fn v2(&self) -> bool {
        self.inner.v2
    }

    /// ``(controllers, directory)`` of each directory (``"cpu,cpuacct"`` where the host
    /// mounts them together).
    #[getter]
    fn dirs(&self) -> Vec<(String, String)> {
        let dirs = &self.inner.dirs;
        dirs.iter()
            .map(|d| (d.controllers.clone(), text(&d.path)))
            .collect()
    }

    /// The ``cgroup.procs`` files a container's init joins it by.
    #[getter]
    fn procs(&self) -> Vec<String> {
        self.inner.procs().iter().map(|p| text(p)).collect()
    }

    /// The host pids of every process in the cgroup, in order.
    fn pids(&self, py: Python<'_>) -> Vec<i32> {
        py.detach(|| self.inner.pids(&KernelFs))
    }

    /// Whether the kernel's OOM killer killed a process of the cgroup.
    fn oom_killed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.oom_killed(&KernelFs))
    }

    /// Freezes (``docker pause``) or thaws every process, waiting up to ``timeout`` seconds
    /// until the kernel reports the new state.
    #[pyo3(signature = (frozen, timeout = 5.0))]
    fn freeze(&self, py: Python<'_>, frozen: bool, timeout: f64) -> PyResult<()> {
        let timeout = seconds(timeout)?;
        py.detach(|| self.inner.freeze(&KernelFs, frozen, timeout))
            .map_err(NativeError::from)?;
        Ok(())
    }

    /// Removes the directories, waiting up to ``timeout`` seconds for processes still
    /// exiting.
    #[pyo3(signature = (timeout = 2.0))]
    fn remove(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = seconds(timeout)?;
        py.detach(|| self.inner.remove(&KernelFs, timeout))
            .map_err(NativeError::from)?;
        Ok(())
    }

    /// Usage for ``docker stats``: ``memory_usage``, ``memory_limit`` (bytes; the limit None
    /// when unlimited), ``cpu_usage_ns``, ``pids_current``, ``pids_limit``; None where the
    /// host has no such counter.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py.detach(|| self.inner.stats(&KernelFs));
        let d = PyDict::new(py);
        d.set_item("memory_usage", s.memory_usage)?;
        d.set_item("memory_limit", s.memory_limit)?;
        d.set_item("cpu_usage_ns", s.cpu_usage_ns)?;
        d.set_item("pids_current", s.pids_current)?;
        d.set_item("pids_limit", s.pids_limit)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let names: Vec<&str> = self
            .inner
            .dirs
            .iter()
            .map(|d| d.controllers.as_str())
            .collect();
        format!("<Cgroup {}>", names.join(" "))
    }
}
