//! Signals: all blocked and taken synchronously with `sigwaitinfo`, so there are no handlers
//! and no races between a SIGCHLD and the wait for it.

use std::ffi::c_int;

use crate::child::errno;

/// Signals the kernel raises for a fault of this process itself: left unblocked so a bug in
/// the init kills it instead of hanging the container.
const SYNCHRONOUS: [c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
];

pub struct Masks {
    /// The mask the init started with, restored in the command.
    pub original: libc::sigset_t,
    /// Everything the init waits for: all but the synchronous signals.
    pub forwarded: libc::sigset_t,
}

/// Blocks every signal but the synchronous ones.
pub fn block() -> Result<Masks, c_int> {
    // SAFETY: sigset_t is plain data; both are initialised by the calls below.
    let mut masks: Masks = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe {
        libc::sigfillset(&mut masks.forwarded);
        for sig in SYNCHRONOUS {
            libc::sigdelset(&mut masks.forwarded, sig);
        }
        if libc::sigprocmask(libc::SIG_SETMASK, &masks.forwarded, &mut masks.original) != 0 {
            return Err(errno());
        }
    }
    Ok(masks)
}

/// Outside a new pid namespace (not PID 1) orphans would go to the host's init: claim them.
pub fn become_subreaper() {
    // SAFETY: getpid and prctl with integer arguments.
    unsafe {
        if libc::getpid() != 1 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }
}

/// Forwards signals to `child` and reaps zombies until `child` exits; its shell-style status.
pub fn supervise(child: libc::pid_t, set: &libc::sigset_t) -> Result<c_int, c_int> {
    loop {
        // SAFETY: a valid set; a NULL siginfo pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if sig < 0 {
            match errno() {
                // A stop/continue of the init interrupts the wait.
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        if sig == libc::SIGCHLD {
            if let Some(status) = reap(child) {
                return Ok(status);
            }
            continue;
        }
        // SAFETY: plain kill. ESRCH means the child is gone and its SIGCHLD is pending.
        unsafe { libc::kill(child, sig) };
    }
}

/// Reaps every exited child (SIGCHLDs coalesce: one may stand for many); `child`'s status if
/// it was among them.
fn reap(child: libc::pid_t) -> Option<c_int> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: the others still run; -1 (ECHILD): none left.
            return result;
        }
        if pid == child {
            result = Some(if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            });
        }
    }
}
