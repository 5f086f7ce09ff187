//! `spawn`, `wait` and `kill`: containers from OCI bundles. Each call runs detached from the
//! interpreter; nothing of Python runs in the container init (it is all barque-container).

use std::path::PathBuf;

use barque_container::container::{self, ContainerError, SpawnOptions};
use barque_container::trampoline;
use pyo3::prelude::*;

use crate::errors::NativeError;

/// Starts the container of the OCI bundle `bundle_dir`; returns the init's host pid once it has
/// exec'd `process.args`. See `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (bundle_dir, *, stdin_fd = 0, stdout_fd = 1, stderr_fd = 2, pid_file = None, cgroup_procs = Vec::new(), seccomp_cache_dir = None))]
// One argument per Python keyword: the signature is the Python API's.
#[allow(clippy::too_many_arguments)]
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
        ..Default::default()
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

/// Starts the container of a bundle whose spec has `process.terminal`; returns its init's pid
/// and the master of its pty, which the caller then owns. See `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (bundle_dir, *, pid_file = None, cgroup_procs = Vec::new()))]
pub fn spawn_terminal(
    py: Python<'_>,
    bundle_dir: PathBuf,
    pid_file: Option<PathBuf>,
    cgroup_procs: Vec<PathBuf>,
) -> PyResult<(i32, i32)> {
    use std::os::fd::IntoRawFd;
    let opts = SpawnOptions {
        bundle: bundle_dir,
        pid_file,
        cgroup_procs,
        ..Default::default()
    };
    let spawned = py
        .detach(|| -> Result<_, container::ContainerError> {
            // Checked first: a container started without a pty would have nobody to hold it.
            let spec = barque_container::spec::load(&opts.bundle)?;
            let terminal = spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            if !terminal {
                return Err(container::ContainerError::Unsupported {
                    what: "spawn_terminal for a spec without process.terminal",
                });
            }
            container::spawn_with(&opts)
        })
        .map_err(NativeError::from)?;
    let master = spawned.pty_master.map_or(-1, IntoRawFd::into_raw_fd);
    Ok((spawned.pid, master))
}

/// Makes this process's sealed copy of barque-trampoline, the last exec before every
/// container command, now rather than at the first spawn: a forkserver's children then
/// inherit it instead of each copying it. See `_native.pyi`.
#[pyfunction]
pub fn prepare_exec_trampoline() -> PyResult<()> {
    trampoline::sealed_fd()
        .map(|_| ())
        .map_err(|e| NativeError::from(ContainerError::from(e)))?;
    Ok(())
}
