//! `spawn`, `wait` and `kill`: containers from OCI bundles. Each call runs detached from the
//! interpreter; nothing of Python runs in the container init (it is all barque-core).

use std::path::PathBuf;

use barque_core::runtime::container::{self, SpawnOptions};
use pyo3::prelude::*;

use crate::errors::NativeError;

/// Starts the container of the OCI bundle `bundle_dir`; returns the init's host pid once it has
/// exec'd `process.args`. See `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (bundle_dir, *, stdin_fd = 0, stdout_fd = 1, stderr_fd = 2, pid_file = None, cgroup_procs = Vec::new(), seccomp_cache_dir = None))]
pub fn spawn(
    py: Python<'_>,
    bundle_dir: PathBuf,
    stdin_fd: i32,
    stdout_fd: i32,
    stderr_fd: i32,
    pid_file: Option<PathBuf>,
    cgroup_procs: Vec<PathBuf>,
    seccomp_cache_dir: Option<PathBuf>,
) -> PyResult<i32> {
    let opts = SpawnOptions {
        bundle: bundle_dir,
        stdio: [stdin_fd, stdout_fd, stderr_fd],
        pid_file,
        cgroup_procs,
        seccomp_cache: seccomp_cache_dir,
    };
    Ok(py
        .detach(|| container::spawn(&opts))
        .map_err(NativeError::from)?)
}

/// Waits for `pid` (a container init started by `spawn`); returns its exit code, or 128 + the
/// signal that killed it.
#[pyfunction]
pub fn wait(py: Python<'_>, pid: i32) -> PyResult<i32> {
    Ok(py
        .detach(|| container::wait(pid))
        .map_err(NativeError::from)?)
}

/// Sends signal `sig` to `pid`.
#[pyfunction]
pub fn kill(pid: i32, sig: i32) -> PyResult<()> {
    Ok(container::kill(pid, sig).map_err(NativeError::from)?)
}
