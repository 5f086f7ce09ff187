//! `ZstdLayerWriter`: a layer tar in, a reproducible zstd blob out, both digests in one pass;
//! detached from the interpreter around every call that compresses or writes.

use std::path::PathBuf;

use barque_layers::layer_writer::{self, ZstdLayerWriter, DEFAULT_ZSTD_LEVEL};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::NativeError;

/// A binary sink for an uncompressed layer tar: writes it zstd-compressed to ``path``.
#[pyclass(module = "barque._native", name = "ZstdLayerWriter")]
pub struct PyZstdLayerWriter {
    inner: ZstdLayerWriter,
}

#[pymethods]
impl PyZstdLayerWriter {
    #[new]
    #[pyo3(signature = (path, *, level = DEFAULT_ZSTD_LEVEL))]
    fn new(py: Python<'_>, path: PathBuf, level: i32) -> PyResult<Self> {
        let inner = py
            .detach(|| ZstdLayerWriter::create(&path, level))
            .map_err(NativeError::from)?;
        Ok(PyZstdLayerWriter { inner })
    }

    /// Compress a chunk of the tar; returns its length (a file's ``write``).
    fn write(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        let inner = &mut self.inner;
        py.detach(|| inner.write(data)).map_err(NativeError::from)?;
        Ok(data.len())
    }

    /// End the zstd frame and flush; ``{"diff_id", "digest", "size"}``.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let digests: layer_writer::LayerDigests =
            py.detach(|| inner.finish()).map_err(NativeError::from)?;
        let d = PyDict::new(py);
        d.set_item("diff_id", digests.diff_id.to_string())?;
        d.set_item("digest", digests.digest.to_string())?;
        d.set_item("size", digests.size)?;
        Ok(d)
    }

    /// Close without finishing and delete the file.
    fn abort(&mut self, py: Python<'_>) {
        let inner = &mut self.inner;
        py.detach(|| inner.abort());
    }
}
