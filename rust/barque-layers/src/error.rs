//! How an error should surface to callers: an OS failure, a bad layer, a bad digest, bad usage.
//!
//! Every module's error enum reports its class, so the binding layer maps errors in one place.

use std::io;
use std::path::Path;

use crate::compression::SourceError;
use crate::limits::LimitError;

/// The caller-facing category of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass<'a> {
    /// The operating system refused something: `errno` and the path involved, if any.
    Os { errno: i32, path: Option<&'a Path> },
    /// The layer is malformed or hostile.
    Layer,
    /// Content did not match its expected digest or size.
    Digest,
    /// The caller passed an invalid argument or used an object in the wrong state.
    Usage,
}

/// Classifies an I/O error met while reading a layer stream.
///
/// Decoders pass errors of their input through untouched, so the source's own failures are
/// tagged ([`SourceError`]) and the bomb guard's too ([`LimitError`]); anything else came from
/// a decoder rejecting the bytes, i.e. a corrupt or truncated stream.
pub fn stream_error_class<'a>(
    err: &'a io::Error,
    fallback_path: Option<&'a Path>,
) -> ErrorClass<'a> {
    if let Some(inner) = err.get_ref() {
        if inner.downcast_ref::<LimitError>().is_some() {
            return ErrorClass::Layer;
        }
        if let Some(source) = inner.downcast_ref::<SourceError>() {
            return source.class();
        }
    }
    match err.raw_os_error() {
        Some(errno) => ErrorClass::Os {
            errno,
            path: fallback_path,
        },
        None => ErrorClass::Layer,
    }
}

/// Classifies a plain I/O error on a known path.
pub fn os_class<'a>(err: &io::Error, path: &'a Path) -> ErrorClass<'a> {
    ErrorClass::Os {
        errno: err.raw_os_error().unwrap_or(libc::EIO),
        path: Some(path),
    }
}
