//! Starting the container from a short-lived forked helper.
//!
//! Planning a container touches a lot (the spec parser, libseccomp, the plan's allocations);
//! done in the long-lived shim, all of it would stay in its RSS. So the shim forks a helper
//! that spawns the container, sends back the pid and the shim's ends of the container's stdio
//! (`SCM_RIGHTS`) and exits; the container's init is then reparented to the shim, which is a
//! child subreaper, and the shim's memory never held any of it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use barque_container::container::{self, ContainerError, SpawnOptions};

use crate::args::Options;
use crate::os;
use crate::report;

/// The shim's side of the container's stdio.
pub enum ContainerIo {
    Tty {
        master: OwnedFd,
    },
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

pub struct Started {
    pub pid: libc::pid_t,
    pub io: ContainerIo,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The container could not start; the helper's JSON report line, ready to print.
    #[error("{line}")]
    Container { line: String },
    #[error("cannot {op}: {source}")]
    Helper {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the spawn helper sent a malformed reply")]
    Protocol,
}

const MAX_REPLY: usize = 64 * 1024;

pub fn start(opts: &Options) -> Result<Started, SpawnError> {
    let helper_err = |op| move |source| SpawnError::Helper { op, source };
    let (ours, theirs) =
        os::socketpair(libc::SOCK_SEQPACKET).map_err(helper_err("create the spawn socket"))?;
    // SAFETY: the shim is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(helper_err("fork the spawn helper")(
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        drop(ours);
        helper(opts, theirs.as_raw_fd());
    }
    drop(theirs);
    let mut buf = vec![0u8; MAX_REPLY];
    let reply = os::recv_with_fds(&ours, &mut buf);
    let mut status = 0;
    // SAFETY: our own child; it exits right after replying.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
    let (n, mut fds) = reply.map_err(helper_err("read the spawn helper's reply"))?;
    decode(&buf[..n], &mut fds)
}

fn decode(msg: &[u8], fds: &mut Vec<OwnedFd>) -> Result<Started, SpawnError> {
    match msg {
        [b'E', line @ ..] => Err(SpawnError::Container {
            line: String::from_utf8_lossy(line).into_owned(),
        }),
        [kind @ (b'T' | b'S' | b'N'), a, b, c, d] => {
            let pid = i32::from_le_bytes([*a, *b, *c, *d]);
            let io = match (kind, fds.len()) {
                (b'T', 1) => ContainerIo::Tty {
                    master: fds.remove(0),
                },
                (b'N', 2) => ContainerIo::Pipes {
                    stderr: fds.remove(1),
                    stdout: fds.remove(0),
                    stdin: None,
                },
                (b'S', 3) => ContainerIo::Pipes {
                    stdin: Some(fds.remove(2)),
                    stderr: fds.remove(1),
                    stdout: fds.remove(0),
                },
                _ => return Err(SpawnError::Protocol),
            };
            Ok(Started { pid, io })
        }
        _ => Err(SpawnError::Protocol),
    }
}

/// The helper: spawn, reply, exit. Never returns.
fn helper(opts: &Options, socket: RawFd) -> ! {
    let reply = match spawn_container(opts) {
        Ok((pid, kind, fds)) => {
            let mut msg = vec![kind];
            msg.extend_from_slice(&pid.to_le_bytes());
            let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            os::send_with_fds(socket, &msg, &raw)
        }
        Err(e) => {
            let mut msg = b"E".to_vec();
            msg.extend_from_slice(report::container_error(&e).as_bytes());
            msg.truncate(MAX_REPLY);
            os::send_with_fds(socket, &msg, &[])
        }
    };
    // SAFETY: leave without running destructors of state shared with the shim.
    unsafe { libc::_exit(if reply.is_ok() { 0 } else { 1 }) }
}

fn spawn_container(opts: &Options) -> Result<(libc::pid_t, u8, Vec<OwnedFd>), ContainerError> {
    let io = |op| {
        move |source| ContainerError::Io {
            op,
            path: None,
            source,
        }
    };
    let (stdout_r, stdout_w) = os::pipe().map_err(io("create the stdout pipe"))?;
    let (stderr_r, stderr_w) = os::pipe().map_err(io("create the stderr pipe"))?;
    let (stdin_r, stdin_w) = if opts.stdin {
        let (r, w) = os::pipe().map_err(io("create the stdin pipe"))?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null").map_err(io("open /dev/null"))?;
        (OwnedFd::from(null), None)
    };
    let spawn_opts = SpawnOptions {
        bundle: opts.bundle.clone(),
        stdio: [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ],
        cgroup_procs: opts.cgroup_procs.clone(),
        seccomp_cache: opts.seccomp_cache.clone(),
        ..Default::default()
    };
    let spawned = container::spawn_with(&spawn_opts)?;
    Ok(match (spawned.pty_master, stdin_w) {
        (Some(master), _) => (spawned.pid, b'T', vec![master]),
        (None, Some(w)) => (spawned.pid, b'S', vec![stdout_r, stderr_r, w]),
        (None, None) => (spawned.pid, b'N', vec![stdout_r, stderr_r]),
    })
}
