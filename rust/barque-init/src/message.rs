//! One line to stderr, built in a fixed buffer: no allocation, one `write`, so lines of the
//! init and of the child (after fork) never interleave mid-line.

use std::ffi::{c_int, CStr};

const CAPACITY: usize = 512;
const PREFIX: &str = "barque-init: ";

pub struct Message {
    buf: [u8; CAPACITY],
    len: usize,
}

impl Message {
    pub fn new() -> Self {
        Message {
            buf: [0; CAPACITY],
            len: 0,
        }
        .text(PREFIX)
    }

    /// Appends as much of `bytes` as fits, keeping room for the newline.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        let room = CAPACITY - 1 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    pub fn text(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    pub fn cstr(self, s: &CStr) -> Self {
        self.bytes(s.to_bytes())
    }

    /// The C library's description of `errno`.
    pub fn errno(self, errno: c_int) -> Self {
        // SAFETY: strerror returns a NUL-terminated string valid until the next call; this
        // process has one thread.
        let text = unsafe { CStr::from_ptr(libc::strerror(errno)) };
        self.cstr(text)
    }

    pub fn print(mut self) {
        self.buf[self.len] = b'\n';
        self.len += 1;
        // SAFETY: a live buffer and its length. Nothing to do if stderr is gone.
        unsafe { libc::write(libc::STDERR_FILENO, self.buf.as_ptr().cast(), self.len) };
    }
}
