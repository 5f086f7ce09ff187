//! Running the command without the forkserver: exec `barque-py`, the Python CLI installed next
//! to this program, with this process's arguments and its original signal mask, and why
//! (`BARQUE_FORKSERVER_STATUS`: `barque info` reports it).

use std::ffi::{CString, OsString};
use std::path::PathBuf;

use crate::error::Error;
use crate::server::cstring;

/// `barque-py` in this program's directory.
pub fn python_cli() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(Error::at("/proc/self/exe"))?;
    Ok(exe.with_file_name("barque-py"))
}

/// The variable that tells the Python CLI why the forkserver did not run the command.
pub const STATUS_VARIABLE: &str = "BARQUE_FORKSERVER_STATUS";

/// Replace this process with the Python CLI, telling it `why` the forkserver did not run the
/// command; returns only if that fails.
pub fn exec(args: &[OsString], original_mask: &libc::sigset_t, why: &str) -> Error {
    let program = match python_cli() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv: Vec<CString> = Vec::with_capacity(args.len() + 1);
    // argv[0] "barque": usage and error messages name the command the user typed.
    argv.push(c"barque".to_owned());
    for arg in args {
        match cstring(arg) {
            Ok(a) => argv.push(a),
            Err(e) => return e,
        }
    }
    let path = match cstring(program.as_os_str()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let pointers: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // This process is single-threaded: nothing reads the environment meanwhile.
    std::env::set_var(STATUS_VARIABLE, why);
    // SAFETY: path and pointers are valid, NUL-terminated, and outlive the call.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, original_mask, std::ptr::null_mut());
        libc::execv(path.as_ptr(), pointers.as_ptr());
    }
    Error::Path {
        path: program,
        source: std::io::Error::last_os_error(),
    }
}
