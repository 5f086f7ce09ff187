//! `exec`: a new process in a running container through barque-container's `spawn_exec`, with the
//! container's seccomp filter and cgroups. Without `--process`, the process is the bundle's
//! `process` with the given args (and `--cwd`, `--env`, `--user`, `--tty` applied), as runc
//! builds it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use barque_container::container;
use barque_container::exec::{self, ExecOptions};
use oci_spec::runtime::Process;

use crate::args::{ExecArgs, Global};
use crate::console;
use crate::error::{io, RuntimeError};
use crate::lifecycle::load_spec;
use crate::state::{Dir, Status};

fn process(
    a: &ExecArgs,
    bundle: &Path,
) -> Result<(Process, Option<serde_json::Value>), RuntimeError> {
    let spec = load_spec(bundle)?;
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| serde_json::to_value(s).map_err(|e| io("encode seccomp of", bundle)(e.into())))
        .transpose()?;
    if let Some(path) = &a.process {
        let data = std::fs::read(path).map_err(io("read", path))?;
        let p: Process = serde_json::from_slice(&data).map_err(|e| io("parse", path)(e.into()))?;
        return Ok((p, seccomp));
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some((uid, gid)) = a.user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        if let Some(gid) = gid {
            u.set_gid(gid);
        }
        p.set_user(u);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok((p, seccomp))
}

/// A host pty: (master, slave).
fn openpty() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    let ptmx = Path::new("/dev/ptmx");
    // SAFETY: plain libc calls on descriptors checked before use.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(io("open", ptmx)(std::io::Error::last_os_error()));
        }
        let master = OwnedFd::from_raw_fd(m);
        if libc::grantpt(m) != 0 || libc::unlockpt(m) != 0 {
            return Err(io("unlock a pty from", ptmx)(
                std::io::Error::last_os_error(),
            ));
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(io("name the pty of", ptmx)(std::io::Error::last_os_error()));
        }
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(io("open the pty slave of", ptmx)(
                std::io::Error::last_os_error(),
            ));
        }
        Ok((master, OwnedFd::from_raw_fd(s)))
    }
}

struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn exec(g: &Global, a: &ExecArgs) -> Result<i32, RuntimeError> {
    let dir = Dir::of(&g.root, &a.id)?;
    let (record, status) = dir.current()?;
    if status == Status::Stopped {
        return Err(RuntimeError::WrongStatus {
            id: a.id.clone(),
            status,
            wanted: "cannot exec in a stopped container",
        });
    }
    let (p, seccomp) = process(a, &record.bundle)?;
    let tty = p.terminal().unwrap_or(false);
    let mut temps = TempFiles(Vec::new());
    let stamp = format!("{}-{}", std::process::id(), crate::state::now_rfc3339());
    let process_path = dir.path.join(format!("exec-{stamp}.json"));
    let data = serde_json::to_vec(&p).map_err(|e| io("encode", &process_path)(e.into()))?;
    std::fs::write(&process_path, data).map_err(io("write", &process_path))?;
    temps.0.push(process_path.clone());
    let seccomp_path = match seccomp {
        Some(s) => {
            let path = dir.path.join(format!("exec-{stamp}.seccomp.json"));
            std::fs::write(&path, s.to_string()).map_err(io("write", &path))?;
            temps.0.push(path.clone());
            Some(path)
        }
        None => None,
    };
    let mut pty = None;
    let stdio = match (tty, &a.console_socket) {
        (true, Some(sock)) => {
            let conn = console::connect(sock)?;
            let (master, slave) = openpty()?;
            if let Some(size) = p.console_size() {
                let ws = libc::winsize {
                    ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
                    ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: a valid winsize on a pty master we own.
                if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
                    return Err(io("set the window size of", "/dev/ptmx")(
                        std::io::Error::last_os_error(),
                    ));
                }
            }
            console::send(&conn, sock, master.as_raw_fd())?;
            let fd = slave.as_raw_fd();
            pty = Some(slave);
            [fd, fd, fd]
        }
        (false, Some(_)) => return Err(console::ConsoleError::NoTerminal.into()),
        // -t without a socket: our own stdio must be the terminal.
        _ => [0, 1, 2],
    };
    let opts = ExecOptions {
        container_pid: record.pid,
        process: process_path,
        seccomp: seccomp_path,
        seccomp_cache: Some(g.root.join("seccomp-cache")),
        stdio,
        cgroup_procs: record
            .cgroups
            .iter()
            .map(|d| d.join("cgroup.procs"))
            .collect(),
        terminal: tty,
    };
    let pid = exec::spawn_exec(&opts)?;
    drop(pty);
    drop(temps);
    if let Some(path) = &a.pid_file {
        std::fs::write(path, pid.to_string()).map_err(io("write", path))?;
    }
    if a.detach {
        return Ok(0);
    }
    Ok(container::wait(pid)?)
}
