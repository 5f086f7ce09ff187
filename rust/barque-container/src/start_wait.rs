//! Waiting for the start command (the OCI `create`/`start` split): an init given a "start" fd
//! finishes its setup, reports [`READY`] on its status pipe, and blocks reading one byte from
//! that fd right before its last steps and `execve`; the runtime's `start` writes the byte.
//!
//! End of file instead of a byte (every writer gone) means nobody will ever start the
//! container: the init fails at [`Step::StartWait`] rather than running unasked.

use std::os::fd::RawFd;

use crate::failure::{Fail, FailAt, Step, READY};
use crate::sys::Sys;

#[derive(Debug, Clone, Copy)]
pub struct StartWait {
    /// Read by the init (inherited from the caller; close-on-exec).
    pub fd: RawFd,
    /// The init's status pipe, set by the parent just before clone.
    pub report: RawFd,
}

impl StartWait {
    /// Tells the parent the container is created, then blocks until started.
    pub fn wait<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        sys.write_all(self.report, &READY).on(Step::StartWait)?;
        let mut byte = [0u8; 1];
        match sys.read(self.fd, &mut byte).on(Step::StartWait)? {
            0 => Err(Fail::new(Step::StartWait, libc::EPIPE)),
            _ => {
                sys.close(self.fd);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::FakeSys;

    #[test]
    fn reports_ready_then_reads_one_byte() {
        let sys = FakeSys::default();
        StartWait { fd: 7, report: 9 }.wait(&sys).unwrap();
        let calls = sys.calls();
        assert!(calls[0].starts_with("write(9, "), "{calls:?}");
        assert_eq!(calls[1..], ["read(7, 1)", "close(7)"]);
    }

    #[test]
    fn a_failed_read_is_a_start_wait_failure() {
        let sys = FakeSys::default();
        sys.fail("read(", libc::EBADF);
        assert_eq!(
            StartWait { fd: 7, report: 9 }.wait(&sys),
            Err(Fail::new(Step::StartWait, libc::EBADF))
        );
    }
}
