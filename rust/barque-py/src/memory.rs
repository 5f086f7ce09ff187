//! `populate_writable_memory`: copy a fork's shared pages ahead of use (see barque-container's
//! `memory` module); used by the forkserver's waiting child.

use barque_container::memory;
use pyo3::prelude::*;

use crate::errors::NativeError;

/// Copies every present page of this process's private writable mappings now, stopping once
/// `stop_when_readable` is readable; returns how many pages (0 where the kernel lacks
/// MADV_POPULATE_WRITE).
#[pyfunction]
#[pyo3(signature = (stop_when_readable = None))]
pub fn populate_writable_memory(
    py: Python<'_>,
    stop_when_readable: Option<i32>,
) -> PyResult<usize> {
    Ok(py
        .detach(|| memory::populate_writable(stop_when_readable))
        .map_err(NativeError::from)?)
}
