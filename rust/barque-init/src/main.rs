//! barque-init: PID 1 of a container run with `--init`, started as `/dev/init [--] CMD ARG...`.
//!
//! PID 1 of a pid namespace has two duties most programs do not expect: signals it has no
//! handler for are ignored (a `stop`'s SIGTERM would do nothing), and every orphan of the
//! namespace becomes its child (its zombie stays until PID 1 reaps it). This init runs CMD as
//! its one child, forwards it every signal it receives, reaps every zombie, and exits with
//! CMD's status (128 + the signal if CMD was killed) as soon as CMD exits; the kernel then kills
//! what is left of the namespace.
//!
//! It is linked statically (images need not have a libc) and allocates nothing: argv is handed
//! from the C `main` to `execvp` untouched, messages are built on the stack.

#![no_main]

mod child;
mod message;
mod signals;

use std::ffi::{c_char, c_int, CStr};

use crate::message::Message;

/// Exit status of barque-init's own failures (signals, fork), as tini uses.
const EXIT_INIT_FAILED: c_int = 1;

/// The C entry point: glibc passes `argc` arguments followed by a NULL.
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let argc = usize::try_from(argc).unwrap_or(0);
    // SAFETY: the C runtime guarantees argv[0..argc] are C strings and argv[argc] is NULL.
    let args = unsafe { std::slice::from_raw_parts(argv, argc + 1) };
    let mut first = 1;
    // SAFETY: indices below argc are valid C strings (see above).
    if argc > 1 && unsafe { CStr::from_ptr(args[1]) } == c"--" {
        first = 2;
    }
    if first >= argc {
        Message::new()
            .text("usage: barque-init [--] COMMAND [ARG]...")
            .print();
        // Like any command-line tool for a usage error.
        return 2;
    }
    let command = &args[first..];

    let masks = match signals::block() {
        Ok(m) => m,
        Err(errno) => {
            Message::new().text("block signals: ").errno(errno).print();
            return EXIT_INIT_FAILED;
        }
    };
    signals::become_subreaper();
    let pid = match child::spawn(command, &masks.original) {
        Ok(pid) => pid,
        Err(errno) => {
            Message::new().text("fork: ").errno(errno).print();
            return EXIT_INIT_FAILED;
        }
    };
    match signals::supervise(pid, &masks.forwarded) {
        Ok(status) => status,
        Err(errno) => {
            Message::new()
                .text("wait for signals: ")
                .errno(errno)
                .print();
            EXIT_INIT_FAILED
        }
    }
}
