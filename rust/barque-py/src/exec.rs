//! `exec_process`: one more process in a running container (barque-core's `runtime::exec`).
//! Runs detached from the interpreter; the caller waits for the pid with `wait`.

use std::path::PathBuf;

use barque_core::runtime::exec::{self, ExecOptions};
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
