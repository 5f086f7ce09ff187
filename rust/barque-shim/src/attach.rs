//! The attach socket `STATE_DIR/attach` and its clients.
//!
//! The socket is bound by a name relative to the state directory (the shim enters it for the
//! `bind`), so a deep state directory does not hit the 108-byte `sun_path` limit.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::frame::Decoder;
use crate::os;

pub const SOCKET_NAME: &str = "attach";
/// A client with more than this queued is not reading: output waits for it (as a stuck
/// `docker attach` client holds the container's output back).
pub const CLIENT_BACKLOG: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot {op} the attach socket {}: {source}", path.display())]
    Listen {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AttachError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            AttachError::Listen { source, .. } => source.raw_os_error(),
        }
    }
    pub fn path(&self) -> &Path {
        match self {
            AttachError::Listen { path, .. } => path,
        }
    }
}

/// A listening, non-blocking socket at `state_dir/attach` (a stale one is replaced).
pub fn listen(state_dir: &Path) -> Result<OwnedFd, AttachError> {
    let path = state_dir.join(SOCKET_NAME);
    let fail = |op: &'static str| {
        let path = path.clone();
        move |source| AttachError::Listen { op, path, source }
    };
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(fail("create")(std::io::Error::last_os_error()));
    }
    // SAFETY: just created, owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let dir = CString::new(state_dir.as_os_str().as_bytes())
        .map_err(|_| fail("name")(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(SOCKET_NAME.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: NUL-terminated paths; the shim is single-threaded, so the working directory is
    // ours to change around the bind.
    unsafe {
        if libc::chdir(dir.as_ptr()) != 0 {
            return Err(fail("enter the directory of")(
                std::io::Error::last_os_error(),
            ));
        }
        let name = c"attach";
        libc::unlink(name.as_ptr());
        let r = libc::bind(
            sock.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        );
        let err = std::io::Error::last_os_error();
        libc::chdir(c"/".as_ptr());
        if r != 0 {
            return Err(fail("bind")(err));
        }
        if libc::listen(sock.as_raw_fd(), 64) != 0 {
            return Err(fail("listen on")(std::io::Error::last_os_error()));
        }
    }
    Ok(sock)
}

/// A new client, if one is waiting.
pub fn accept(listener: &OwnedFd) -> Option<Client> {
    loop {
        // SAFETY: NULL address out-pointers are allowed.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: just accepted, owned here.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            return Some(Client {
                fd,
                decoder: Decoder::default(),
                out: Vec::new(),
                sent: 0,
            });
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // EAGAIN, or the client already went away: nothing to do.
            return None;
        }
    }
}

pub struct Client {
    pub fd: OwnedFd,
    pub decoder: Decoder,
    out: Vec<u8>,
    sent: usize,
}

impl Client {
    pub fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Writes what the socket takes now; `Err` means the client is gone.
    pub fn flush(&mut self) -> std::io::Result<()> {
        while self.sent < self.out.len() {
            match os::write(self.fd.as_raw_fd(), &self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out = Vec::new();
            self.sent = 0;
        }
        Ok(())
    }
}
