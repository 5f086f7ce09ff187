//! `BlobIngest`, `unpack_blob`, `syncfs` and `sha256_file`: thin wrappers that detach from the
//! interpreter around every call that does I/O or waits.

use std::path::PathBuf;

use barque_layers::compression::Compression;
use barque_layers::digest::{self, Digest};
use barque_layers::ingest::{self, BlobIngest, IngestOptions, IngestResult, UnpackOptions};
use barque_layers::limits::{Limits, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{NativeError, NativeResult};

fn parse_digest(value: Option<&str>) -> NativeResult<Option<Digest>> {
    Ok(value.map(Digest::parse).transpose()?)
}

/// Parses the unpack arguments (all of them, even when they end up unused).
fn unpack_options(
    dir: PathBuf,
    compression: &str,
    expected_diff_id: Option<&str>,
    max_bytes: u64,
    max_entries: u64,
) -> NativeResult<UnpackOptions> {
    Ok(UnpackOptions {
        dir,
        compression: compression.parse::<Compression>()?,
        expected_diff_id: parse_digest(expected_diff_id)?,
        limits: Limits {
            max_bytes,
            max_entries,
        },
        writeback: false,
    })
}

fn result_dict<'py>(py: Python<'py>, r: &IngestResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("digest", r.digest.to_string())?;
    d.set_item("size", r.size)?;
    d.set_item("diff_id", r.diff_id.map(|id| id.to_string()))?;
    d.set_item("unpacked_bytes", r.unpacked_bytes)?;
    d.set_item("entries", r.entries)?;
    Ok(d)
}

/// One blob streamed once: sha256 -> append to an ingest file -> (decompress -> sha256 -> untar).
///
/// ``writeback=True`` starts writing the blob and the large unpacked files to disk as they
/// arrive, which pays off only for ``finish(sync=True)``; without it (the default) the kernel
/// writes them back in the background, off the ingest's critical path.
#[pyclass(module = "barque._native", name = "BlobIngest")]
pub struct PyBlobIngest {
    inner: BlobIngest,
}

#[pymethods]
impl PyBlobIngest {
    #[new]
    #[pyo3(signature = (
        partial_path,
        expected_digest,
        expected_size = None,
        *,
        unpack_dir = None,
        compression = "auto",
        expected_diff_id = None,
        max_bytes = DEFAULT_MAX_BYTES,
        max_entries = DEFAULT_MAX_ENTRIES,
        writeback = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        partial_path: PathBuf,
        expected_digest: &str,
        expected_size: Option<u64>,
        unpack_dir: Option<PathBuf>,
        compression: &str,
        expected_diff_id: Option<&str>,
        max_bytes: u64,
        max_entries: u64,
        writeback: bool,
    ) -> PyResult<Self> {
        let expected_digest = Digest::parse(expected_digest).map_err(NativeError::from)?;
        // Validated even when not unpacking: a malformed argument is a bug worth surfacing.
        let unpack = unpack_options(
            unpack_dir.clone().unwrap_or_default(),
            compression,
            expected_diff_id,
            max_bytes,
            max_entries,
        )?;
        let unpack = unpack_dir.map(|_| UnpackOptions {
            writeback,
            ..unpack
        });
        let options = IngestOptions {
            expected_digest,
            expected_size,
            unpack,
            writeback,
        };
        let inner = py
            .detach(|| BlobIngest::new(&partial_path, options))
            .map_err(NativeError::from)?;
        Ok(PyBlobIngest { inner })
    }

    /// Bytes of the blob already received (persisted in ``partial_path``).
    #[getter]
    fn offset(&self) -> u64 {
        self.inner.offset()
    }

    /// Append a chunk. Raises DigestError past ``expected_size``, LayerError if unpacking failed.
    fn write(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.write(data)).map_err(NativeError::from)?;
        Ok(())
    }

    /// Verify size and digest, wait for the unpacker, verify the DiffID; with ``sync`` also
    /// syncfs, fsync and rename to ``blob_path``, else leave the verified blob at ``partial_path``.
    #[pyo3(signature = (blob_path, *, sync = true))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        blob_path: PathBuf,
        sync: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let result = py
            .detach(|| inner.finish(&blob_path, sync))
            .map_err(NativeError::from)?;
        result_dict(py, &result)
    }

    /// Stop the unpacker and close files; the partial file is kept for a later resume.
    fn abort(&mut self, py: Python<'_>) {
        let inner = &mut self.inner;
        py.detach(|| inner.abort());
    }
}

/// Unpack a blob already in the store into ``unpack_dir`` (which must exist and be empty).
#[pyfunction]
#[pyo3(signature = (
    blob_path,
    unpack_dir,
    *,
    compression = "auto",
    expected_diff_id = None,
    max_bytes = DEFAULT_MAX_BYTES,
    max_entries = DEFAULT_MAX_ENTRIES,
    sync = true,
))]
#[allow(clippy::too_many_arguments)]
pub fn unpack_blob<'py>(
    py: Python<'py>,
    blob_path: PathBuf,
    unpack_dir: PathBuf,
    compression: &str,
    expected_diff_id: Option<&str>,
    max_bytes: u64,
    max_entries: u64,
    sync: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut opts = unpack_options(
        unpack_dir,
        compression,
        expected_diff_id,
        max_bytes,
        max_entries,
    )?;
    // Writeback as files are written only pays off when the tree is synced right after.
    opts.writeback = sync;
    let result = py
        .detach(|| ingest::unpack_blob(&blob_path, &opts, sync))
        .map_err(NativeError::from)?;
    result_dict(py, &result)
}

/// syncfs(2) on the filesystem holding ``path``.
#[pyfunction]
pub fn syncfs(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(|| ingest::syncfs(&path))
        .map_err(NativeError::from)?;
    Ok(())
}

/// "sha256:<hex>" of a file's content.
#[pyfunction]
pub fn sha256_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let d = py
        .detach(|| digest::sha256_file(&path))
        .map_err(NativeError::from)?;
    Ok(d.to_string())
}
