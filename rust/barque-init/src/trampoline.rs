//! barque-trampoline: the last exec before a container's command (see barque-container's
//! `runtime::trampoline` for why and for the protocol).
//!
//! barque runs it from a sealed memfd copy, so while it runs `/proc/self/exe` is that copy and
//! never a host binary. It is static (an image's `LD_PRELOAD` does nothing to it) and its `main`
//! is glibc's (no_main): Rust's runtime would set SIGPIPE to ignored, which the command would
//! inherit. It does nothing but exec: started with any argv but barque's (a command that is a
//! link to `/proc/self/exe` reruns it), it says so and exits 127.

#![cfg_attr(not(test), no_main)]

use std::ffi::{c_char, c_int, CStr};

/// argv[0] barque passes (barque-container's `trampoline::MAGIC`).
const MAGIC: &CStr = c"barque-trampoline/1";
/// barque-container's `Step::Exec`, as its failure record encodes it (a test there pins it).
const EXEC_STEP: u32 = 25;
/// The record's index when no candidate was found: the parent then names the bare command.
const NOT_FOUND: u32 = u32::MAX;
const EXIT_CANNOT_EXECUTE: c_int = 126;
const EXIT_NOT_FOUND: c_int = 127;

/// What barque asked for.
#[derive(Debug, PartialEq)]
struct Request<'a> {
    report_fd: c_int,
    /// Paths to try, in order (the parent's `PATH` search).
    candidates: &'a [*const c_char],
    /// The command's argv, NULL-terminated.
    argv: &'a [*const c_char],
}

fn number(arg: *const c_char) -> Option<usize> {
    // SAFETY: callers pass entries of a NULL-terminated argv, checked non-NULL here.
    let text = (!arg.is_null()).then(|| unsafe { CStr::from_ptr(arg) })?;
    let text = text.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `args`: argv including its terminating NULL. `None` for anything but barque's protocol.
fn parse(args: &[*const c_char]) -> Option<Request<'_>> {
    let first = *args.first()?;
    // SAFETY: a non-NULL argv entry is a C string.
    if first.is_null() || unsafe { CStr::from_ptr(first) } != MAGIC {
        return None;
    }
    let report_fd = c_int::try_from(number(*args.get(1)?)?).ok()?;
    let count = number(*args.get(2)?)?;
    let rest = args.get(3..)?;
    // The candidates, then at least the NULL that ends the command's argv.
    if count == 0 || rest.len() <= count || rest[..count].iter().any(|p| p.is_null()) {
        return None;
    }
    let (candidates, argv) = rest.split_at(count);
    Some(Request {
        report_fd,
        candidates,
        argv,
    })
}

/// Tries each candidate like `execvp`: a missing file moves on, a permission error is
/// remembered, anything else stops. `execve` returns the errno of a failed exec. The result
/// is what to report: the candidate's index (or [`NOT_FOUND`]) and the errno.
fn exec_first(
    candidates: &[*const c_char],
    mut execve: impl FnMut(*const c_char) -> c_int,
) -> (u32, c_int) {
    let mut denied = None;
    for (i, path) in candidates.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(NOT_FOUND);
        match execve(*path) {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENAMETOOLONG => {}
            libc::EACCES => denied = denied.or(Some((index, libc::EACCES))),
            e => return (index, e),
        }
    }
    denied.unwrap_or((NOT_FOUND, libc::ENOENT))
}

/// The 12-byte failure record barque-container's `Fail::decode` reads.
fn record(index: u32, errno: c_int) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&EXEC_STEP.to_ne_bytes());
    out[4..8].copy_from_slice(&errno.to_ne_bytes());
    out[8..].copy_from_slice(&index.to_ne_bytes());
    out
}

#[cfg_attr(test, allow(dead_code))]
fn errno() -> c_int {
    // SAFETY: glibc's thread-local errno.
    unsafe { *libc::__errno_location() }
}

#[cfg_attr(test, allow(dead_code))]
fn refuse() -> c_int {
    let text = b"barque-trampoline: not started by barque; refusing to run \
                 (is the command a link to /proc/self/exe?)\n";
    // SAFETY: a static buffer and its length. Nothing to do if stderr is gone.
    unsafe { libc::write(libc::STDERR_FILENO, text.as_ptr().cast(), text.len()) };
    EXIT_NOT_FOUND
}

/// The C entry point: glibc passes `argc` arguments followed by a NULL, then the environment.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let argc = usize::try_from(argc).unwrap_or(0);
    // SAFETY: the C runtime guarantees argv[0..argc] are C strings and argv[argc] is NULL.
    let args = unsafe { std::slice::from_raw_parts(argv, argc + 1) };
    run(args, envp)
}

/// Execs the request in `args` or exits with what to report; returns only the exit status.
#[cfg_attr(test, allow(dead_code))]
fn run(args: &[*const c_char], envp: *const *const c_char) -> c_int {
    let Some(request) = parse(args) else {
        return refuse();
    };
    // Only until the command runs: its exec closes the report fd, and the parent sees EOF.
    // SAFETY: integer arguments; a bad fd only fails.
    unsafe { libc::fcntl(request.report_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let (index, error) = exec_first(request.candidates, |path| {
        // SAFETY: NULL-terminated arrays of C strings from the kernel.
        unsafe { libc::execve(path, request.argv.as_ptr(), envp) };
        errno()
    });
    // Nobody may read the report any more (`create` returned long ago): no SIGPIPE, and the
    // exit status says what failed.
    // SAFETY: a sigset on this stack; sigprocmask with valid pointers.
    unsafe {
        let mut pipe_only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::sigprocmask(libc::SIG_BLOCK, &pipe_only, std::ptr::null_mut());
    }
    let report = record(index, error);
    // SAFETY: a buffer on this stack and its length; a gone reader is no error here.
    unsafe { libc::write(request.report_fd, report.as_ptr().cast(), report.len()) };
    match error {
        libc::ENOENT | libc::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&CStr]) -> Vec<*const c_char> {
        words
            .iter()
            .map(|w| w.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }

    fn text(p: *const c_char) -> String {
        // SAFETY: pointers into the CStr literals of the test.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn parses_barques_protocol() {
        let args = argv(&[MAGIC, c"7", c"2", c"/a/sh", c"/b/sh", c"sh", c"-c", c"true"]);
        let r = parse(&args).unwrap();
        assert_eq!(r.report_fd, 7);
        let cands: Vec<String> = r.candidates.iter().map(|p| text(*p)).collect();
        assert_eq!(cands, ["/a/sh", "/b/sh"]);
        assert_eq!(r.argv.len(), 4);
        assert!(r.argv[3].is_null());
        assert_eq!(text(r.argv[0]), "sh");
    }

    #[test]
    fn refuses_anything_else() {
        // What a command that is a link to /proc/self/exe passes: the image's own argv.
        assert_eq!(parse(&argv(&[c"/proc/self/exe", c"sh"])), None);
        assert_eq!(parse(&argv(&[])), None);
        assert_eq!(parse(&argv(&[MAGIC])), None);
        assert_eq!(parse(&argv(&[MAGIC, c"x", c"1", c"/a", c"a"])), None);
        assert_eq!(parse(&argv(&[MAGIC, c"3", c"0", c"a"])), None);
        assert_eq!(parse(&argv(&[MAGIC, c"3", c"-1", c"/a"])), None);
        // More candidates than arguments.
        assert_eq!(parse(&argv(&[MAGIC, c"3", c"2", c"/a"])), None);
    }

    #[test]
    fn execs_like_execvp() {
        let args = argv(&[c"/a/x", c"/b/x", c"/c/x"]);
        let cands = &args[..3];
        let mut tried = Vec::new();
        let r = exec_first(cands, |p| {
            tried.push(text(p));
            libc::ENOENT
        });
        assert_eq!(r, (NOT_FOUND, libc::ENOENT));
        assert_eq!(tried, ["/a/x", "/b/x", "/c/x"]);
        // A non-executable match is reported even if a later entry is missing.
        let r = exec_first(cands, |p| {
            if text(p) == "/b/x" {
                libc::EACCES
            } else {
                libc::ENOENT
            }
        });
        assert_eq!(r, (1, libc::EACCES));
        // Anything else stops the search.
        let mut n = 0;
        let r = exec_first(cands, |_| {
            n += 1;
            libc::ENOEXEC
        });
        assert_eq!((r, n), ((0, libc::ENOEXEC), 1));
    }

    #[test]
    fn the_record_is_barques_failure_encoding() {
        let r = record(NOT_FOUND, libc::ENOENT);
        assert_eq!(&r[..4], &25u32.to_ne_bytes());
        assert_eq!(&r[4..8], &libc::ENOENT.to_ne_bytes());
        assert_eq!(&r[8..], &u32::MAX.to_ne_bytes());
    }
}
