//! Where the forkserver listens, connecting to it, and starting one when none runs.
//!
//! The directory is `BARQUE_FORKSERVER_DIR`, else one per installation (named by a hash of
//! the Python CLI's path, so two checkouts never run each other's code) under
//! `/run/barque/forkserver` for root or `$XDG_RUNTIME_DIR/barque/forkserver` for others. A
//! directory of its own: `/run/barque` also holds container state, and may be root's 0755.
//! Whoever can put a socket there can run commands as the caller, so the way to it is checked
//! first (see trust.rs).

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::trust;

pub const SOCKET_NAME: &str = "forkserver.sock";
/// Held by the serving server; free means none serves, or one is about to.
pub const LOCK_NAME: &str = "forkserver.lock";
pub const LOG_NAME: &str = "forkserver.log";

/// The forkserver's directory for the installation whose Python CLI is `python_cli`, created
/// (mode 0700, with the parents barque owns) if missing, and checked.
pub fn directory(python_cli: &Path) -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("BARQUE_FORKSERVER_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            // SAFETY: geteuid cannot fail.
            let barque = if unsafe { libc::geteuid() } == 0 {
                PathBuf::from("/run/barque")
            } else {
                match std::env::var_os("XDG_RUNTIME_DIR") {
                    Some(d) if !d.is_empty() => Path::new(&d).join("barque"),
                    _ => return Err(Error::NoDirectory),
                }
            };
            let servers = barque.join("forkserver");
            make_dir(&barque)?;
            make_dir(&servers)?;
            servers.join(format!("{:016x}", fnv1a(python_cli.as_os_str().as_bytes())))
        }
    };
    make_dir(&dir)?;
    // Only a relative directory needs it (and a removed working directory has no path).
    let cwd = if dir.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().map_err(Error::at("."))?
    };
    // SAFETY: geteuid cannot fail.
    trust::check(&trust::Host, &dir, &cwd, unsafe { libc::geteuid() })?;
    Ok(dir)
}

/// 64-bit FNV-1a: a stable name for an installation's path (not a security boundary: the
/// directories' owner and mode are).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Create `dir` with mode 0700 if missing (one that exists is left as it is: the check says
/// whether it will do).
fn make_dir(dir: &Path) -> Result<(), Error> {
    let path = cstring(dir.as_os_str())?;
    // SAFETY: path is a valid C string.
    if unsafe { libc::mkdir(path.as_ptr(), 0o700) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(Error::at(dir)(err));
        }
    }
    Ok(())
}

/// Whether a connection failed because no server listens (as opposed to one that refused us).
pub fn not_running(err: &Error) -> bool {
    matches!(err, Error::Path { source, .. }
        if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ECONNREFUSED)))
}

/// A connection to the forkserver in `dir`.
pub fn connect(dir: &Path) -> Result<OwnedFd, Error> {
    let path = dir.join(SOCKET_NAME);
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last("socket"));
    }
    // SAFETY: fd was just opened and is ours.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid (AF_UNSPEC, empty path).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(Error::Path {
            path,
            source: std::io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        });
    }
    for (slot, byte) in addr.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: addr is a valid sockaddr_un of at least len bytes.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::at(path)(std::io::Error::last_os_error()));
    }
    Ok(sock)
}

/// Start a forkserver in `dir` in the background, unless one holds the lock (serving, or
/// starting). It runs `barque-py __forkserver__ DIR` in a session of its own, detached from
/// this process; this process does not wait for it to be ready.
pub fn spawn(dir: &Path, python_cli: &Path, original_mask: &libc::sigset_t) -> Result<(), Error> {
    if held(&dir.join(LOCK_NAME))? {
        return Ok(());
    }
    let program = cstring(python_cli.as_os_str())?;
    let args = [
        CString::new("barque-py").map_err(|_| Error::last("CString"))?,
        CString::new("__forkserver__").map_err(|_| Error::last("CString"))?,
        cstring(dir.as_os_str())?,
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let devnull = CString::new("/dev/null").map_err(|_| Error::last("CString"))?;
    let log = cstring(dir.join(LOG_NAME).as_os_str())?;
    // SAFETY: this program is single-threaded; between fork and exec the children call only
    // async-signal-safe functions on data prepared above.
    unsafe {
        let child = libc::fork();
        if child < 0 {
            return Err(Error::last("fork"));
        }
        if child == 0 {
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
            let err = libc::open(
                log.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
                0o600,
            );
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(if err >= 0 { err } else { null }, 2);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            libc::sigprocmask(libc::SIG_SETMASK, original_mask, std::ptr::null_mut());
            libc::execv(program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
    }
    Ok(())
}

/// Whether someone holds the lock file at `path` (created if missing).
fn held(path: &Path) -> Result<bool, Error> {
    let name = cstring(path.as_os_str())?;
    // SAFETY: name is a valid C string.
    let fd = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(Error::at(path)(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and is ours; closing it drops a lock we may take.
    let lock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: flock on our own descriptor.
    Ok(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0)
}

pub fn cstring(s: &OsStr) -> Result<CString, Error> {
    CString::new(s.as_bytes()).map_err(|_| Error::Path {
        path: PathBuf::from(OsString::from(s)),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_names_are_stable_and_distinct() {
        // FNV-1a's published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(
            fnv1a(b"/opt/a/bin/barque-py"),
            fnv1a(b"/opt/b/bin/barque-py")
        );
    }
}
