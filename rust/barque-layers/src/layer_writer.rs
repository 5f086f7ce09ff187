//! Compressing a layer made on this machine (import, commit): the tar is written in once and
//! a zstd blob comes out, with the tar's sha256 (the DiffID) and the blob's sha256 and size
//! computed in the same pass.
//!
//! The output is reproducible: a fixed level, one thread and a content checksum, and zstd's
//! streaming encoder cuts blocks by its own buffer, not by how the input was chunked, so the
//! same tar always gives the same blob digest.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::ingest::IngestError;

/// What containerd and Docker use by default: a good ratio at a few hundred MB/s.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
const OUTPUT_BUFFER: usize = 1 << 20;

/// The digests of a finished layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the compressed blob.
    pub digest: Digest,
    /// Bytes of the compressed blob.
    pub size: u64,
}

/// Hashes and counts the compressed bytes on their way to the file.
struct HashingWriter {
    file: BufWriter<File>,
    hasher: Hasher,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// An uncompressed layer tar in, a zstd blob at `path` out (see the module docs).
pub struct ZstdLayerWriter {
    path: PathBuf,
    tar: Hasher,
    /// None once finished, aborted or failed.
    encoder: Option<zstd::stream::write::Encoder<'static, HashingWriter>>,
}

impl ZstdLayerWriter {
    /// Writes to `path` (created mode 0600, or emptied if it exists).
    pub fn create(path: &Path, level: i32) -> Result<Self, IngestError> {
        let io_err = |op, source| IngestError::Io {
            op,
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("create", e))?;
        let sink = HashingWriter {
            file: BufWriter::with_capacity(OUTPUT_BUFFER, file),
            hasher: Hasher::new(),
        };
        let mut encoder =
            zstd::stream::write::Encoder::new(sink, level).map_err(|e| io_err("compress", e))?;
        // A checksum, as the zstd CLI writes by default, so `zstd -t` can verify the blob.
        encoder
            .include_checksum(true)
            .map_err(|e| io_err("compress", e))?;
        Ok(ZstdLayerWriter {
            path: path.to_owned(),
            tar: Hasher::new(),
            encoder: Some(encoder),
        })
    }

    fn closed(&self) -> IngestError {
        IngestError::Closed {
            path: self.path.clone(),
        }
    }

    /// Compress a chunk of the tar. After an error the writer is closed.
    pub fn write(&mut self, data: &[u8]) -> Result<(), IngestError> {
        let encoder = self.encoder.as_mut().ok_or_else(|| IngestError::Closed {
            path: self.path.clone(),
        })?;
        self.tar.update(data);
        if let Err(source) = encoder.write_all(data) {
            self.encoder = None;
            return Err(IngestError::Io {
                op: "write",
                path: self.path.clone(),
                source,
            });
        }
        Ok(())
    }

    /// End the frame and flush the file; the digests of what was written.
    pub fn finish(&mut self) -> Result<LayerDigests, IngestError> {
        let encoder = self.encoder.take().ok_or_else(|| self.closed())?;
        let io_err = |source| IngestError::Io {
            op: "write",
            path: self.path.clone(),
            source,
        };
        let mut sink = encoder.finish().map_err(io_err)?;
        sink.flush().map_err(io_err)?;
        let size = sink.hasher.len();
        Ok(LayerDigests {
            diff_id: std::mem::take(&mut self.tar).finish(),
            digest: sink.hasher.finish(),
            size,
        })
    }

    /// Close without finishing and delete the file.
    pub fn abort(&mut self) {
        self.encoder = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_bytes() -> Vec<u8> {
        // Compressible but not trivial: several MB so the encoder emits many blocks.
        (0..6_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    fn write_in_chunks(path: &Path, data: &[u8], chunk: usize) -> LayerDigests {
        let mut writer = ZstdLayerWriter::create(path, DEFAULT_ZSTD_LEVEL).unwrap();
        for part in data.chunks(chunk) {
            writer.write(part).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn digests_match_the_blob_and_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.zst");
        let data = layer_bytes();
        let digests = write_in_chunks(&path, &data, 10_240);
        let blob = std::fs::read(&path).unwrap();
        assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(digests.size, blob.len() as u64);
        let mut h = Hasher::new();
        h.update(&blob);
        assert_eq!(digests.digest, h.finish());
        let mut h = Hasher::new();
        h.update(&data);
        assert_eq!(digests.diff_id, h.finish());
        assert_eq!(zstd::stream::decode_all(&blob[..]).unwrap(), data);
    }

    #[test]
    fn same_tar_gives_the_same_blob_however_it_is_chunked() {
        let dir = tempfile::tempdir().unwrap();
        let data = layer_bytes();
        let a = write_in_chunks(&dir.path().join("a"), &data, 10_240);
        let b = write_in_chunks(&dir.path().join("b"), &data, 1 << 20);
        let c = write_in_chunks(&dir.path().join("c"), &data, 777);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn closed_after_finish_and_abort_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let mut writer = ZstdLayerWriter::create(&path, DEFAULT_ZSTD_LEVEL).unwrap();
        writer.write(b"abc").unwrap();
        writer.finish().unwrap();
        assert!(matches!(
            writer.write(b"more"),
            Err(IngestError::Closed { .. })
        ));
        assert!(matches!(writer.finish(), Err(IngestError::Closed { .. })));
        let mut writer = ZstdLayerWriter::create(&path, DEFAULT_ZSTD_LEVEL).unwrap();
        writer.write(b"abc").unwrap();
        writer.abort();
        assert!(!path.exists());
    }

    #[test]
    fn unwritable_path_is_an_os_error() {
        let err = ZstdLayerWriter::create(Path::new("/nonexistent/dir/x"), 3)
            .err()
            .unwrap();
        assert!(matches!(
            err.class(),
            crate::error::ErrorClass::Os {
                errno: libc::ENOENT,
                ..
            }
        ));
    }
}
