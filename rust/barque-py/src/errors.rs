//! Python exceptions, and the one place core errors become them.

use barque_container::cgroups::CgroupError;
use barque_container::container::ContainerError as CoreContainerError;
use barque_container::device_filter::DeviceFilterError;
use barque_container::error::ErrorClass as ContainerClass;
use barque_container::exec::ExecError;
use barque_container::memory::MemoryError;
use barque_layers::compression::CompressionError;
use barque_layers::digest::DigestError as CoreDigestError;
use barque_layers::error::ErrorClass;
use barque_layers::ingest::IngestError;
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
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

create_exception!(
    barque._native,
    ContainerError,
    PyRuntimeError,
    "A container could not be started (or waited for).\n\nAttributes: ``exit_code`` (Docker's: 127 executable not found, 126 cannot execute,\n125 anything else), ``errno`` (int or None) and ``path`` (str or None)."
);

/// A core error on its way to Python (the orphan rule forbids `From<IngestError> for PyErr`).
pub enum NativeError {
    Ingest(IngestError),
    Container(CoreContainerError),
    Exec(ExecError),
    Memory(MemoryError),
    DeviceFilter(DeviceFilterError),
    Cgroup(CgroupError),
}

impl From<CgroupError> for NativeError {
    fn from(e: CgroupError) -> Self {
        NativeError::Cgroup(e)
    }
}

impl From<DeviceFilterError> for NativeError {
    fn from(e: DeviceFilterError) -> Self {
        NativeError::DeviceFilter(e)
    }
}

impl From<MemoryError> for NativeError {
    fn from(e: MemoryError) -> Self {
        NativeError::Memory(e)
    }
}

impl From<IngestError> for NativeError {
    fn from(e: IngestError) -> Self {
        NativeError::Ingest(e)
    }
}

impl From<CoreDigestError> for NativeError {
    fn from(e: CoreDigestError) -> Self {
        NativeError::Ingest(e.into())
    }
}

impl From<CompressionError> for NativeError {
    fn from(e: CompressionError) -> Self {
        NativeError::Ingest(e.into())
    }
}

impl From<CoreContainerError> for NativeError {
    fn from(e: CoreContainerError) -> Self {
        NativeError::Container(e)
    }
}

impl From<ExecError> for NativeError {
    fn from(e: ExecError) -> Self {
        NativeError::Exec(e)
    }
}

fn container_error(
    message: String,
    exit_code: i32,
    errno: Option<i32>,
    path: Option<&std::path::Path>,
) -> PyErr {
    let e = ContainerError::new_err(message);
    Python::attach(|py| {
        let value = e.value(py);
        // Setting attributes on a fresh exception instance cannot fail short of memory
        // exhaustion; the exception is still raised without them then.
        let _ = value.setattr("exit_code", exit_code);
        let _ = value.setattr("errno", errno);
        let _ = value.setattr("path", path.map(|p| p.as_os_str().to_owned()));
    });
    e
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
    fn from(err: NativeError) -> PyErr {
        match err {
            NativeError::Container(e) => {
                container_error(e.to_string(), e.exit_code(), e.errno(), e.path())
            }
            // An exec failure reads like a start failure (same exit codes), as in docker exec.
            NativeError::Exec(e) => {
                container_error(e.to_string(), e.exit_code(), e.errno(), e.path())
            }
            NativeError::Ingest(e) => by_class(e.class(), e.to_string()),
            NativeError::Memory(e) => by_container_class(e.class(), e.to_string()),
            NativeError::DeviceFilter(e) => by_container_class(e.class(), e.to_string()),
            NativeError::Cgroup(e) => by_container_class(e.class(), e.to_string()),
        }
    }
}

/// OSError(errno, strerror, filename) picks the matching subclass, e.g. FileNotFoundError.
fn os_error(errno: i32, path: Option<&std::path::Path>) -> PyErr {
    PyOSError::new_err((
        errno,
        strerror(errno),
        path.map(|p| p.as_os_str().to_owned()),
    ))
}

fn by_container_class(class: ContainerClass<'_>, message: String) -> PyErr {
    match class {
        ContainerClass::Os { errno, path } => os_error(errno, path),
        ContainerClass::Usage => PyValueError::new_err(message),
    }
}

fn by_class(class: ErrorClass<'_>, message: String) -> PyErr {
    match class {
        ErrorClass::Os { errno, path } => os_error(errno, path),
        ErrorClass::Layer => LayerError::new_err(message),
        ErrorClass::Digest => DigestError::new_err(message),
        ErrorClass::Usage => PyValueError::new_err(message),
    }
}

pub type NativeResult<T> = Result<T, NativeError>;
