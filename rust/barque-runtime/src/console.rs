//! `--console-socket`: the pty master goes to the caller's unix socket as SCM_RIGHTS, as runc
//! sends it (the caller — containerd's shim, or a test — then owns the terminal).

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use barque_container::sys::{Linux, Sys};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot connect to the console socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send the pty master to {}: {source}", path.display())]
    Send {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("process.terminal is set but no --console-socket was given")]
    NoSocket,
    #[error("--console-socket was given but process.terminal is not set")]
    NoTerminal,
}

/// Connects to `path` now (before the container is made, so a bad path fails early).
pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
        path: path.to_owned(),
        source,
    })
}

pub fn send(socket: &UnixStream, path: &Path, master: RawFd) -> Result<(), ConsoleError> {
    Linux
        .send_fd(socket.as_raw_fd(), master)
        .map_err(|e| ConsoleError::Send {
            path: path.to_owned(),
            source: std::io::Error::from_raw_os_error(e),
        })
}
