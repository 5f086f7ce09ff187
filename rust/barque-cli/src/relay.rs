//! While the forkserver's child runs the command: forward this process's signals to it, and
//! leave with its exit status.
//!
//! The forwarded signals are blocked from the first instruction of `main`, so none is lost or
//! acts on this process before the command runs; they are read from a signalfd and sent to the
//! child's pidfd (no pid reuse race). A job-control stop (^Z) stops the child and then this
//! process, and continuing this process continues the child: as when the Python CLI itself
//! was the job. The synchronous faults are left alone.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::Error;

/// What the server said first.
pub enum Start {
    /// The command runs in the process behind this pidfd.
    Running(OwnedFd),
    /// Nothing ran; the reason why.
    Declined(String),
}

/// How the command ended.
pub enum Status {
    Exited(i32),
    Killed(i32),
    /// The server died before reporting the status.
    Lost,
}

const NOT_FORWARDED: [libc::c_int; 9] = [
    libc::SIGCHLD,
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
];
/// Stop signals: the child is stopped with SIGSTOP, then this process stops itself.
const JOB_STOPS: [libc::c_int; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// The signals forwarded to the command.
pub fn forwarded() -> libc::sigset_t {
    // SAFETY: sigset operations on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in (1..32).chain(libc::SIGRTMIN()..=libc::SIGRTMAX()) {
            if !NOT_FORWARDED.contains(&sig) {
                libc::sigaddset(&mut set, sig);
            }
        }
        set
    }
}

/// Block `set`; returns the mask to restore before exec.
pub fn block(set: &libc::sigset_t) -> libc::sigset_t {
    // SAFETY: sigprocmask with valid sets.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, set, &mut old);
        old
    }
}

/// How long the server may take to answer before the user is told what is being waited for
/// (`BARQUE_FORKSERVER_PATIENCE`, in seconds, changes it).
const PATIENCE_MS: libc::c_int = 10_000;

fn patience_ms() -> libc::c_int {
    std::env::var("BARQUE_FORKSERVER_PATIENCE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(PATIENCE_MS, |s| {
            (s * 1000.0).min(f64::from(i32::MAX)) as libc::c_int
        })
}

/// The server's first message: the child's pidfd, or why it declined. Signals that come
/// meanwhile stay pending, for the command. A server that does not answer (stopped, wedged)
/// is named on stderr after 10 s (`BARQUE_FORKSERVER_PATIENCE`), and from then on an interrupt (SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT) gives up, exiting 128 + the signal: the command has not run, and once this
/// process is gone it cannot, since the child must tell it so before running anything.
pub fn await_start(conn: &OwnedFd) -> Start {
    let mut waiting = input(conn.as_raw_fd());
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut waiting, 1, patience_ms()) } == 0 {
        eprintln!(
            "barque: waiting for the forkserver (BARQUE_FORKSERVER=off runs without it; \
             ctrl-c gives up)"
        );
        if let Some(sig) = interrupted_before_answer(conn) {
            std::process::exit(128 + sig);
        }
    }
    let mut buf = [0u8; 4096];
    let (len, fd) = match receive(conn, &mut buf) {
        Ok(got) => got,
        Err(e) => return Start::Declined(format!("reading its answer: {e}")),
    };
    match (buf.first(), fd) {
        (Some(b'S'), Some(pidfd)) => Start::Running(pidfd),
        (Some(b'F'), _) => Start::Declined(String::from_utf8_lossy(&buf[1..len]).into_owned()),
        (None, _) => Start::Declined("it closed the connection".into()),
        // X or K before S: the child died before it ran the command.
        _ => Start::Declined("its child failed before running the command".into()),
    }
}

/// Wait for `conn` to be readable or for an interrupt; the interrupt's number if it came first.
fn interrupted_before_answer(conn: &OwnedFd) -> Option<libc::c_int> {
    // SAFETY: sigset operations on a local set; signalfd over signals that are blocked.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, sig);
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return None;
        }
        OwnedFd::from_raw_fd(fd)
    };
    loop {
        let mut polls = [input(conn.as_raw_fd()), input(sigfd.as_raw_fd())];
        // SAFETY: polls is a valid array of two pollfds.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), 2, -1) };
        if ready < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
        if polls[0].revents != 0 {
            return None;
        }
        if polls[1].revents != 0 {
            if let Some(sig) = read_signal(&sigfd) {
                return Some(sig);
            }
        }
    }
}

/// Forward signals to the command until the server reports how it ended.
pub fn wait(conn: &OwnedFd, pidfd: &OwnedFd, set: &libc::sigset_t) -> Result<Status, Error> {
    // SAFETY: signalfd over a set that is blocked.
    let sfd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        return Err(Error::last("signalfd"));
    }
    // SAFETY: sfd was just created and is ours.
    let sigfd = unsafe { OwnedFd::from_raw_fd(sfd) };
    // Once the server is gone, wait for the child itself before giving up on its status.
    let mut watched: RawFd = conn.as_raw_fd();
    loop {
        let mut polls = [input(watched), input(sigfd.as_raw_fd())];
        // SAFETY: polls is a valid array of two pollfds.
        if unsafe { libc::poll(polls.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::last("poll"));
        }
        if polls[1].revents & libc::POLLIN != 0 {
            forward_pending(&sigfd, pidfd);
        }
        if polls[0].revents == 0 {
            continue;
        }
        if watched == pidfd.as_raw_fd() {
            return Ok(Status::Lost);
        }
        let mut buf = [0u8; 64];
        let len = match receive(conn, &mut buf) {
            Ok((len, _)) => len,
            Err(_) => 0,
        };
        if len >= 5 {
            let value = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
            match buf[0] {
                b'X' => return Ok(Status::Exited(value)),
                b'K' => return Ok(Status::Killed(value)),
                _ => {}
            }
        }
        watched = pidfd.as_raw_fd();
    }
}

fn forward_pending(sigfd: &OwnedFd, pidfd: &OwnedFd) {
    // Read once per readiness (the signalfd blocks), until nothing more is pending.
    loop {
        let Some(signo) = read_signal(sigfd) else {
            return;
        };
        if JOB_STOPS.contains(&signo) {
            send(pidfd, libc::SIGSTOP);
            // SAFETY: stopping this process; it resumes on SIGCONT (from the shell's `fg`).
            unsafe { libc::raise(libc::SIGSTOP) };
            send(pidfd, libc::SIGCONT);
        } else {
            send(pidfd, signo);
        }
        let mut probe = input(sigfd.as_raw_fd());
        // SAFETY: one valid pollfd, no wait.
        if unsafe { libc::poll(&mut probe, 1, 0) } <= 0 {
            return;
        }
    }
}

/// A pollfd waiting for input on `fd`.
fn input(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// One signal from `sigfd`, which poll said is readable; None on a short read.
fn read_signal(sigfd: &OwnedFd) -> Option<libc::c_int> {
    // SAFETY: an all-zero signalfd_siginfo is a valid buffer.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is writable for size bytes.
    let got = unsafe {
        libc::read(
            sigfd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    (got == size as isize).then_some(info.ssi_signo as libc::c_int)
}

fn send(pidfd: &OwnedFd, signo: libc::c_int) {
    // SAFETY: pidfd_send_signal on a pidfd we hold; a child that already exited is ESRCH,
    // which is fine.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signo,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

/// One datagram, and the descriptor that came with it (if any).
fn receive(conn: &OwnedFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), Error> {
    let fd_size = std::mem::size_of::<RawFd>() as u32;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_size) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let len = loop {
        // SAFETY: msg describes live buffers; received descriptors are close-on-exec.
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(Error::last("recvmsg"));
        }
    };
    let mut fd = None;
    // SAFETY: walking the control headers recvmsg filled in.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    Ok((len, fd))
}

/// Leave as the command did: with its exit code, or killed by its signal.
pub fn finish(status: Status) -> ! {
    match status {
        Status::Exited(code) => std::process::exit(code),
        Status::Killed(sig) => {
            // SAFETY: restoring a default disposition and unblocking one signal to die by it.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                let mut only: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut only);
                libc::sigaddset(&mut only, sig);
                libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
                libc::raise(sig);
            }
            std::process::exit(128 + sig)
        }
        Status::Lost => {
            eprintln!("barque: the forkserver stopped before reporting the command's exit status");
            std::process::exit(125)
        }
    }
}
