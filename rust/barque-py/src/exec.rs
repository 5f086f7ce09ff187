//! `exec_process`: one more process in a running container (barque-container's `runtime::exec`).
//! Runs detached from the interpreter; the caller waits for the pid with `wait`.

use std::os::fd::IntoRawFd;
use std::path::PathBuf;

use barque_container::exec::{self, ExecOptions};
use pyo3::prelude::*;

use crate::errors::NativeError;

/// Starts the process described by the OCI `process` object in the file `process_json` inside
/// the container whose process (its init) is `container_pid`; returns its host pid once it has
/// exec'd. See `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (container_pid, process_json, *, seccomp_json = None, stdin_fd = 0, stdout_fd = 1, stderr_fd = 2, cgroup_procs = Vec::new(), terminal = false, seccomp_cache_dir = None))]
#[allow(clippy::too_many_arguments)]
pub fn exec_process(
    py: Python<'_>,
    container_pid: i32,
    process_json: PathBuf,
    seccomp_json: Option<PathBuf>,
    stdin_fd: i32,
    stdout_fd: i32,
    stderr_fd: i32,
    cgroup_procs: Vec<PathBuf>,
    terminal: bool,
    seccomp_cache_dir: Option<PathBuf>,
) -> PyResult<i32> {
    let opts = ExecOptions {
        container_pid,
        process: process_json,
        seccomp: seccomp_json,
        seccomp_cache: seccomp_cache_dir,
        stdio: [stdin_fd, stdout_fd, stderr_fd],
        cgroup_procs,
        terminal,
    };
    Ok(py
        .detach(|| exec::spawn_exec(&opts))
        .map_err(NativeError::from)?)
}

/// As `exec_process`, on a new pty of the container's own devpts (what `exec -t` needs:
/// `tty` inside names it); returns `(pid, master_fd)`. See `_native.pyi`.
#[pyfunction]
#[pyo3(signature = (container_pid, process_json, *, seccomp_json = None, cgroup_procs = Vec::new(), size = None, seccomp_cache_dir = None))]
#[allow(clippy::too_many_arguments)]
pub fn exec_process_pty(
    py: Python<'_>,
    container_pid: i32,
    process_json: PathBuf,
    seccomp_json: Option<PathBuf>,
    cgroup_procs: Vec<PathBuf>,
    size: Option<(u16, u16)>,
    seccomp_cache_dir: Option<PathBuf>,
) -> PyResult<(i32, i32)> {
    let opts = ExecOptions {
        container_pid,
        process: process_json,
        seccomp: seccomp_json,
        seccomp_cache: seccomp_cache_dir,
        // Unused: the pty's slave is the process's stdio.
        stdio: [0, 1, 2],
        cgroup_procs,
        terminal: false,
    };
    let (pid, master) = py
        .detach(|| exec::spawn_exec_pty(&opts, size))
        .map_err(NativeError::from)?;
    Ok((pid, master.into_raw_fd()))
}
