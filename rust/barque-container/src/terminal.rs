//! `process.terminal`: the container's pseudo-terminal, made inside its own devpts.
//!
//! As runc with a console socket, but in-process: the init opens the container's `ptmx`
//! (a `newinstance` devpts, so the pty belongs to the container and not to the host), binds
//! the slave onto `/dev/console`, hands the master to the parent over a socketpair
//! (`SCM_RIGHTS`), then becomes a session leader with the slave as its controlling terminal
//! and as its 0, 1 and 2. The parent keeps the master; the init never allocates.
//!
//! An exec'd process with a terminal (`exec -t`) gets one the same way, from the same devpts,
//! so that `tty` inside names its `/dev/pts/N`; only `/dev/console` stays the init's.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::failure::{Fail, Step};
use crate::inroot::{Create, InRootError, InRootPath};
use crate::sys::{Fd, Sys};

/// The container's ptmx, inside the rootfs (not the `/dev/ptmx` symlink: one lookup less).
const PTMX: &CStr = c"dev/pts/ptmx";

/// What a [`Step::Terminal`] failure's index means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TerminalStep {
    OpenPtmx = 0,
    Unlock,
    Peer,
    Console,
    Send,
    Chown,
    Session,
    ControllingTty,
    Stdio,
    WindowSize,
}

const TERMINAL_STEPS: [TerminalStep; 10] = [
    TerminalStep::OpenPtmx,
    TerminalStep::Unlock,
    TerminalStep::Peer,
    TerminalStep::Console,
    TerminalStep::Send,
    TerminalStep::Chown,
    TerminalStep::Session,
    TerminalStep::ControllingTty,
    TerminalStep::Stdio,
    TerminalStep::WindowSize,
];

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cannot create the console socketpair: {source}")]
    Socket {
        #[source]
        source: std::io::Error,
    },
    #[error("the container init did not send its terminal ({})", path.display())]
    NoMaster { path: PathBuf },
    #[error("cannot receive the terminal of {}: {source}", path.display())]
    Receive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] InRootError),
}

impl TerminalError {
    pub fn path(&self) -> Option<&Path> {
        match self {
            TerminalError::NoMaster { path } | TerminalError::Receive { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Everything the init needs for its terminal, computed before clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalPlan {
    /// Where the slave is bound for the init; an exec'd process leaves the console alone.
    console: Option<InRootPath>,
    /// The init's end of the console socketpair (set by `spawn_with` once it exists).
    pub socket: RawFd,
    /// The slave is handed to this user so a non-root process can use its terminal.
    uid: u32,
    /// `process.consoleSize` as (rows, cols): set before exec, so the program's first look
    /// at its window already sees the caller's size.
    size: Option<(u16, u16)>,
}

pub fn plan(uid: u32, size: Option<(u16, u16)>) -> Result<TerminalPlan, TerminalError> {
    Ok(TerminalPlan {
        console: Some(InRootPath::new(Path::new("/dev/console"))?),
        socket: -1,
        uid,
        size,
    })
}

/// The terminal of a process exec'd into a running container: a new pty of the container's
/// devpts, without the `/dev/console` bind (that is the init's terminal).
pub fn plan_exec(uid: u32, size: Option<(u16, u16)>) -> TerminalPlan {
    TerminalPlan {
        console: None,
        socket: -1,
        uid,
        size,
    }
}

/// Parent side: `(parent end, init end)` of the console socket, both close-on-exec.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), TerminalError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid out-array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(TerminalError::Socket {
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Parent side, after the init has exec'd: the master it sent (close-on-exec here).
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd, TerminalError> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from("/dev/pts/ptmx");
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one descriptor, aligned as a cmsghdr.
    let mut control = [0u64; 8];
    loop {
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: a valid msghdr for a socket we own.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(TerminalError::Receive { path, source: e });
        }
        // SAFETY: walking the control buffer the kernel filled, with the libc macros.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if n == 0
                || cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(TerminalError::NoMaster { path });
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            return Ok(OwnedFd::from_raw_fd(fd));
        }
    }
}

impl TerminalPlan {
    /// Child side, once `/dev` and `/dev/pts` are mounted and before `pivot_root` (the console
    /// bind needs CAP_SYS_ADMIN): the pty, `/dev/console`, the master to the parent, then
    /// session, controlling terminal and stdio.
    pub fn setup<S: Sys>(&self, sys: &S, root: RawFd) -> Result<(), Fail> {
        use TerminalStep as T;
        let at = |t: T| move |e| Fail::at(Step::Terminal, t as usize, e);
        let master = Fd::new(
            sys,
            sys.open_in_root(root, PTMX, libc::O_RDWR | libc::O_NOCTTY)
                .map_err(at(T::OpenPtmx))?,
        );
        sys.unlock_pty(master.raw()).map_err(at(T::Unlock))?;
        if let Some((rows, cols)) = self.size {
            sys.set_window_size(master.raw(), rows, cols)
                .map_err(at(T::WindowSize))?;
        }
        let slave = Fd::new(sys, sys.pty_peer(master.raw()).map_err(at(T::Peer))?);
        if let Some(console) = &self.console {
            // A bind of the slave: programs that write to /dev/console reach the terminal.
            let console = console
                .open(sys, root, Create::File)
                .map_err(at(T::Console))?;
            let mnt = Fd::new(
                sys,
                sys.open_tree(slave.raw(), c"", false)
                    .map_err(at(T::Console))?,
            );
            sys.move_mount(mnt.raw(), console.raw())
                .map_err(at(T::Console))?;
            drop(mnt);
            drop(console);
        }
        sys.send_fd(self.socket, master.raw())
            .map_err(at(T::Send))?;
        drop(master);
        sys.close(self.socket);
        if self.uid != 0 {
            // The group stays devpts' `tty` (gid=5), as a login would leave it.
            sys.fchown(slave.raw(), self.uid, u32::MAX)
                .map_err(at(T::Chown))?;
        }
        sys.setsid().map_err(at(T::Session))?;
        sys.set_controlling_tty(slave.raw())
            .map_err(at(T::ControllingTty))?;
        for i in 0..3 {
            sys.dup2(slave.raw(), i).map_err(at(T::Stdio))?;
        }
        Ok(())
    }

    /// The parent's words and path for a terminal failure at `index`.
    pub fn describe(index: u32) -> (&'static str, Option<PathBuf>) {
        let step = TERMINAL_STEPS.iter().copied().find(|s| *s as u32 == index);
        let (what, path) = match step {
            Some(TerminalStep::OpenPtmx) => ("open", Some("/dev/pts/ptmx")),
            Some(TerminalStep::Unlock) => ("unlock", Some("/dev/pts/ptmx")),
            Some(TerminalStep::Peer) => ("open the peer of", Some("/dev/pts/ptmx")),
            Some(TerminalStep::Console) => ("bind the pty onto", Some("/dev/console")),
            Some(TerminalStep::Send) => ("send the pty master over the console socket", None),
            Some(TerminalStep::Chown) => ("hand the pty to the process user", None),
            Some(TerminalStep::Session) => ("start a new session (setsid)", None),
            Some(TerminalStep::ControllingTty) => ("make the pty the controlling terminal", None),
            Some(TerminalStep::Stdio) => ("make the pty stdin, stdout and stderr", None),
            Some(TerminalStep::WindowSize) => ("set the window size of", Some("/dev/pts/ptmx")),
            None => ("set up the terminal", None),
        };
        (what, path.map(PathBuf::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    fn terminal(uid: u32) -> TerminalPlan {
        let mut t = plan(uid, None).unwrap();
        t.socket = 9;
        t
    }

    #[test]
    fn pty_then_console_then_session() {
        let sys = FakeSys::with_paths(&["dev", "dev/pts", "dev/pts/ptmx*"]);
        terminal(1000).setup(&sys, 3).unwrap();
        let calls = sys.calls();
        let ops: Vec<&str> = calls
            .iter()
            .map(|c| c.split('(').next().unwrap_or(c))
            .collect();
        assert_eq!(
            ops,
            [
                "unlock_pty",
                "pty_peer",
                "openat",
                "open_tree",
                "move_mount",
                "send_fd",
                "fchown",
                "setsid",
                "set_controlling_tty",
                "dup2",
                "dup2",
                "dup2",
            ],
            "{calls:?}"
        );
        // The console file is created in the container's /dev, the slave bound onto it, and
        // the master (not the slave) goes to the parent.
        assert!(calls[2].starts_with("openat(dev/console"), "{calls:?}");
        assert_eq!(
            calls[4],
            "move_mount(tree:pts:dev/pts/ptmx -> /dev/console)"
        );
        assert_eq!(calls[5], "send_fd(9, dev/pts/ptmx)");
        assert_eq!(calls[6], "fchown(pts:dev/pts/ptmx, 1000, 4294967295)");
        assert_eq!(calls[9], "dup2(pts:dev/pts/ptmx, 0)");
    }

    #[test]
    fn an_exec_gets_a_pty_of_the_containers_devpts_and_leaves_the_console() {
        let sys = FakeSys::with_paths(&["dev", "dev/pts", "dev/pts/ptmx*", "dev/console*"]);
        let mut t = plan_exec(1000, Some((21, 77)));
        t.socket = 9;
        t.setup(&sys, 3).unwrap();
        let calls = sys.calls();
        assert!(calls[0].starts_with("unlock_pty(dev/pts/ptmx"), "{calls:?}");
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("console") || c.starts_with("open_tree")),
            "{calls:?}"
        );
        let at = |prefix: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {calls:?}"))
        };
        assert!(at("set_window_size") < at("send_fd(9, dev/pts/ptmx)"));
        assert!(at("fchown(pts:dev/pts/ptmx, 1000") < at("setsid"));
        assert!(at("setsid") < at("set_controlling_tty("));
        assert_eq!(calls.last().unwrap(), "dup2(pts:dev/pts/ptmx, 2)");
    }

    #[test]
    fn console_size_is_set_on_the_master_before_anything_runs() {
        let sys = FakeSys::with_paths(&["dev", "dev/pts", "dev/pts/ptmx*"]);
        let mut t = plan(0, Some((33, 101))).unwrap();
        t.socket = 9;
        t.setup(&sys, 3).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[1], "set_window_size(101, 33x101)", "{calls:?}"); // fd of the master
        assert!(calls[0].starts_with("unlock_pty"), "{calls:?}");
    }

    #[test]
    fn root_keeps_the_pty_and_failures_name_the_sub_step() {
        let sys = FakeSys::with_paths(&["dev", "dev/pts", "dev/pts/ptmx*", "dev/console*"]);
        terminal(0).setup(&sys, 3).unwrap();
        assert!(!sys.calls().iter().any(|c| c.starts_with("fchown")));

        let sys = FakeSys::with_paths(&["dev", "dev/pts", "dev/pts/ptmx*"]);
        sys.fail("setsid", libc::EPERM);
        let fail = terminal(0).setup(&sys, 3).unwrap_err();
        assert_eq!(
            fail,
            Fail::at(Step::Terminal, TerminalStep::Session as usize, libc::EPERM)
        );
        assert_eq!(
            TerminalPlan::describe(fail.index).0,
            "start a new session (setsid)"
        );

        // No devpts in the container: the ptmx is missing and nothing else is tried.
        let sys = FakeSys::with_paths(&["dev"]);
        let fail = terminal(0).setup(&sys, 3).unwrap_err();
        assert_eq!(fail.errno, libc::ENOENT);
        assert_eq!(
            TerminalPlan::describe(fail.index).1,
            Some(PathBuf::from("/dev/pts/ptmx"))
        );
        assert!(sys.calls().is_empty(), "{:?}", sys.calls());
    }
}
