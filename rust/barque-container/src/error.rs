//! How a container error should surface to callers: an OS failure, or bad usage.
//!
//! The layer crate has its own classes (a bad layer, a bad digest); the binding crate maps
//! both in one place.

use std::path::Path;

/// The caller-facing category of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass<'a> {
    /// The operating system refused something: `errno` and the path involved, if any.
    Os { errno: i32, path: Option<&'a Path> },
    /// The caller passed an invalid argument or used an object in the wrong state.
    Usage,
}
