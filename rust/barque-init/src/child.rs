//! The command, as the init's only direct child.

use std::ffi::{c_char, c_int, CStr};

use crate::message::Message;

/// Docker's statuses for a command that is not found, or found but not executable.
const EXIT_NOT_FOUND: c_int = 127;
const EXIT_CANNOT_EXECUTE: c_int = 126;

/// Forks and execs `argv` (NULL-terminated, `argv[0]` searched in `$PATH`); the child's pid.
pub fn spawn(argv: &[*const c_char], original_mask: &libc::sigset_t) -> Result<libc::pid_t, c_int> {
    // SAFETY: this process has one thread; the child only makes async-signal-safe calls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // With a terminal, the command gets its own process group in the foreground, so the
    // terminal's ^C/^Z go to it alone and not a second time through the init's forwarding.
    // Without one there is nothing to separate from and the command stays in the init's group.
    // SAFETY: plain calls on fd 0 and this process.
    unsafe {
        if libc::isatty(libc::STDIN_FILENO) == 1 {
            libc::setpgid(0, 0);
            // Allowed from what was a background group because SIGTTOU is still blocked;
            // fails harmlessly when the terminal is not the controlling one.
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
        }
        libc::sigprocmask(libc::SIG_SETMASK, original_mask, std::ptr::null_mut());
        libc::execvp(argv[0], argv.as_ptr());
    }
    let e = errno();
    // SAFETY: argv[0] is a C string (checked non-NULL by the caller's argc).
    let name = unsafe { CStr::from_ptr(argv[0]) };
    Message::new()
        .text("exec ")
        .cstr(name)
        .text(": ")
        .errno(e)
        .print();
    let status = match e {
        libc::ENOENT | libc::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    };
    // SAFETY: leave the forked child without running anything of the parent's.
    unsafe { libc::_exit(status) }
}

pub fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
