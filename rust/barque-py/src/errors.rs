//! Python exceptions, and the one place core errors become them.

use barque_core::compression::CompressionError;
use barque_core::digest::DigestError as CoreDigestError;
use barque_core::error::ErrorClass;
use barque_core::ingest::IngestError;
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::PyErr;

create_exception!(
    barque._native,
    LayerError,
    PyValueError,
    "A layer is malformed or hostile (path escape, forged xattr, corrupt stream, bomb...).\n\nThe message names the offending tar entry where there is one."
);
create_exception!(
    barque._native,
    DigestError,
    PyValueError,
    "Content did not match its expected sha256 digest or size."
);

/// A core error on its way to Python (newtype: the orphan rule forbids `From<IngestError>`).
pub struct NativeError(IngestError);

impl From<IngestError> for NativeError {
    fn from(e: IngestError) -> Self {
        NativeError(e)
    }
}

impl From<CoreDigestError> for NativeError {
    fn from(e: CoreDigestError) -> Self {
        NativeError(e.into())
    }
}

impl From<CompressionError> for NativeError {
    fn from(e: CompressionError) -> Self {
        NativeError(e.into())
    }
}

/// `strerror` without Rust's " (os error N)" suffix, as Python's own OSErrors read.
fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

impl From<NativeError> for PyErr {
    fn from(NativeError(err): NativeError) -> PyErr {
        match err.class() {
            // OSError(errno, strerror, filename) picks the matching subclass, e.g.
            // FileNotFoundError.
            ErrorClass::Os { errno, path } => PyOSError::new_err((
                errno,
                strerror(errno),
                path.map(|p| p.as_os_str().to_owned()),
            )),
            ErrorClass::Layer => LayerError::new_err(err.to_string()),
            ErrorClass::Digest => DigestError::new_err(err.to_string()),
            ErrorClass::Usage => PyValueError::new_err(err.to_string()),
        }
    }
}

pub type NativeResult<T> = Result<T, NativeError>;
