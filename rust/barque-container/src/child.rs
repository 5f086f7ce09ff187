//! Starting a child that reports back before it execs: what a container start
//! ([`container`](crate::container)) and an exec ([`exec`](crate::exec)) share.
//!
//! The parent blocks every signal across a fork-like clone, hands the child the write end of
//! a close-on-exec status pipe and reads a [`Report`] from the other end: end of file once the
//! child has exec'd, or a [`Fail`] it wrote before giving up; then it reaps what it started.
//! The child side ends in [`exit_failed`]. Nothing here allocates in the child.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::failure::{Fail, FAIL_LEN, READY};
use crate::sys::{Linux, Sys};

pub fn zeroed_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

/// The empty signal set a child restores right before exec.
pub fn empty_sigset() -> libc::sigset_t {
    let mut set = zeroed_sigset();
    // SAFETY: a valid sigset_t out-pointer.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// Every signal blocked on this thread until dropped, so that no handler of the caller
/// (Python's) runs in a child cloned meanwhile before the child resets them.
pub struct SignalsBlocked {
    previous: libc::sigset_t,
}

impl SignalsBlocked {
    pub fn new() -> SignalsBlocked {
        let mut all = zeroed_sigset();
        let mut previous = zeroed_sigset();
        // SAFETY: valid sigset pointers.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        }
        SignalsBlocked { previous }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// fork-like clone (into the new namespaces of `flags`): `Ok(0)` in the child, the child's
/// pid (in the caller's pid namespace) in the parent, else the errno. With `CLONE_PARENT` the
/// kernel wants no exit signal (the child takes the caller's).
pub fn fork_like(flags: u64) -> Result<libc::pid_t, i32> {
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of the address
    // space and returns here with 0, then only makes raw syscalls and exits or execs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r >= 0 {
        return Ok(r as libc::pid_t);
    }
    let e = errno();
    if e != libc::ENOSYS {
        return Err(e);
    }
    // SAFETY: as above, with the legacy clone (no new stack: fork semantics).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | exit_signal,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as libc::pid_t)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A close-on-exec pipe: (read end, write end).
pub fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads up to `buf.len()` bytes, stopping early only at EOF; returns how many arrived.
pub fn read_full(fd: OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = File::from(fd);
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What a child said on its status pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Nothing before end of file: the child exec'd (or every writer is gone).
    Execed,
    /// [`READY`]: set up and blocked until the start command.
    Ready,
    Failed(Fail),
    /// A partial or unknown record.
    Malformed,
}

impl Report {
    pub fn from_bytes(bytes: &[u8]) -> Report {
        match bytes {
            [] => Report::Execed,
            _ if bytes == READY => Report::Ready,
            _ => match <&[u8; FAIL_LEN]>::try_from(bytes)
                .ok()
                .and_then(Fail::decode)
            {
                Some(fail) => Report::Failed(fail),
                None => Report::Malformed,
            },
        }
    }
}

/// Reads the child's report: the first record on `status_read`, or end of file.
pub fn read_report(status_read: OwnedFd) -> std::io::Result<Report> {
    let mut buf = [0u8; FAIL_LEN];
    let got = read_full(status_read, &mut buf)?;
    Ok(Report::from_bytes(&buf[..got]))
}

/// Waits for our child `pid` to exit: its raw wait status.
pub fn wait_status(pid: libc::pid_t) -> std::io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Collects our child `pid`, which exits by itself.
pub fn reap(pid: libc::pid_t) {
    // Only ECHILD can fail it: nothing left to collect.
    let _ = wait_status(pid);
}

/// Stops our child `pid` that must not go on (it failed, or its parent gave up on it) and
/// collects it.
pub fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: plain kill(2) of our own child, SIGKILL in case it still runs.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid);
}

/// Runs a child's steps; a panic (which must not unwind into the parent's copied stack
/// frames) counts as `on_panic`.
pub fn catch_panic<T>(steps: impl FnOnce() -> Result<T, Fail>, on_panic: Fail) -> Result<T, Fail> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(steps)).unwrap_or(Err(on_panic))
}

/// The end of a child that failed before exec: `fail` to the parent on `status_pipe`, and an
/// exit status of `code` for whoever waits for it, without running atexit handlers or
/// destructors of the parent's state.
pub fn exit_failed(status_pipe: RawFd, fail: Fail, code: i32) -> ! {
    // Once the parent stopped listening (after `create` returned) the report goes nowhere: no
    // SIGPIPE, so the exit status still says what failed.
    let mut pipe_only = zeroed_sigset();
    // SAFETY: a valid sigset on this stack; sigemptyset, sigaddset and sigprocmask are
    // async-signal-safe.
    unsafe {
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::sigprocmask(libc::SIG_BLOCK, &pipe_only, std::ptr::null_mut());
    }
    let _ = Linux.write_all(status_pipe, &fail.encode());
    // SAFETY: leaving the child; see above.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Step;

    #[test]
    fn reports_from_bytes() {
        let fail = Fail::at(Step::Mount, 3, libc::ENOENT);
        assert_eq!(Report::from_bytes(&[]), Report::Execed);
        assert_eq!(Report::from_bytes(&READY), Report::Ready);
        assert_eq!(Report::from_bytes(&fail.encode()), Report::Failed(fail));
        assert_eq!(Report::from_bytes(&fail.encode()[..5]), Report::Malformed);
        assert_eq!(Report::from_bytes(&[0; FAIL_LEN]), Report::Malformed);
    }

    /// Starts a real child running `child` (raw syscalls only: the test binary has threads).
    fn start(child: impl FnOnce(RawFd)) -> (libc::pid_t, Report) {
        let (read, write) = cloexec_pipe().unwrap();
        let blocked = SignalsBlocked::new();
        let pid = fork_like(0).unwrap();
        if pid == 0 {
            child(std::os::fd::AsRawFd::as_raw_fd(&write));
            // SAFETY: a child that returned leaves as one that failed, never into the test.
            unsafe { libc::_exit(1) }
        }
        drop(blocked);
        drop(write);
        (pid, read_report(read).unwrap())
    }

    #[test]
    fn a_failure_reaches_the_parent_with_its_exit_status() {
        let fail = Fail::at(Step::Device, 2, libc::EPERM);
        let (pid, report) = start(|pipe| exit_failed(pipe, fail, 125));
        assert_eq!(report, Report::Failed(fail));
        let status = wait_status(pid).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 125);
    }

    #[test]
    fn end_of_file_means_execed_and_a_killed_child_is_collected() {
        // SAFETY: the child only exits.
        let (pid, report) = start(|_| unsafe { libc::_exit(0) });
        assert_eq!(report, Report::Execed);
        reap(pid);
        // A child that would block forever: killed and collected, nothing left to wait for.
        let (pid, report) = start(|pipe| {
            let _ = Linux.write_all(pipe, &READY);
            // SAFETY: pause(2) blocks until the SIGKILL.
            loop {
                unsafe { libc::pause() };
            }
        });
        assert_eq!(report, Report::Ready);
        kill_and_reap(pid);
        assert_eq!(
            wait_status(pid).unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
    }

    #[test]
    fn a_panic_in_the_steps_is_a_failure() {
        let on_panic = Fail::new(Step::Exec, libc::EIO);
        let steps = || -> Result<(), Fail> { panic!("a bug") };
        assert_eq!(catch_panic(steps, on_panic), Err(on_panic));
        assert_eq!(catch_panic(|| Ok(7), on_panic), Ok(7));
    }
}
