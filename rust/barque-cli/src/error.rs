//! Why the front end could not hand a command to the forkserver. None of these is fatal: the
//! command then runs in the Python CLI, unless `BARQUE_FORKSERVER=require` asked otherwise.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Path { path: PathBuf, source: io::Error },
    #[error("{call}: {source}")]
    Call {
        call: &'static str,
        source: io::Error,
    },
    /// The forkserver's directory is not safe to connect in: a misconfiguration (or an
    /// attack) that the user must hear of.
    #[error(transparent)]
    Untrusted(#[from] crate::trust::TrustError),
    #[error("no forkserver was running in {dir}; one was started for the next commands")]
    NotRunning { dir: PathBuf },
    #[error("no forkserver directory: set BARQUE_FORKSERVER_DIR or XDG_RUNTIME_DIR")]
    NoDirectory,
    #[error("standard stream {fd} is closed")]
    ClosedStream { fd: i32 },
    #[error("the command line and environment are {size} bytes, above the forkserver's limit")]
    TooLarge { size: usize },
    #[error("the forkserver declined: {reason}")]
    Declined { reason: String },
}

impl Error {
    /// The error of the libc call `call` that just failed.
    pub fn last(call: &'static str) -> Self {
        Error::Call {
            call,
            source: io::Error::last_os_error(),
        }
    }

    pub fn at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Path { path, source }
    }
}
