//! Resource limits that defuse tar and decompression bombs.

use std::io::{self, Read};

pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
pub const DEFAULT_MAX_ENTRIES: u64 = 2_000_000;

/// Upper bounds for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of uncompressed tar stream.
    pub max_bytes: u64,
    /// Tar entries (extension headers not counted).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("layer expands past max_bytes ({limit} bytes uncompressed): decompression bomb?")]
    Bytes { limit: u64 },
    #[error("entry {entry:?}: layer has more than max_entries ({limit}) entries")]
    Entries { entry: String, limit: u64 },
}

/// Fails a read as soon as the total passes `limit`, so a bomb is stopped early rather
/// than after filling the disk.
pub struct LimitedReader<R> {
    inner: R,
    limit: u64,
    count: u64,
}

impl<R> LimitedReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        LimitedReader {
            inner,
            limit,
            count: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count > self.limit {
            return Err(io::Error::other(LimitError::Bytes { limit: self.limit }));
        }
        // Ask for at most one byte past the limit: enough to detect the overrun.
        let room = (self.limit - self.count).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(LimitError::Bytes { limit: self.limit }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_exactly_past_the_limit() {
        let data = vec![7u8; 1000];
        let mut ok = LimitedReader::new(&data[..], 1000);
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 1000);

        let mut over = LimitedReader::new(&data[..], 999);
        let err = io::copy(&mut over, &mut io::sink()).unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<LimitError>());
        assert!(matches!(inner, Some(LimitError::Bytes { limit: 999 })));
    }

    #[test]
    fn never_reads_far_beyond_the_limit() {
        let data = vec![0u8; 1 << 20];
        let mut r = LimitedReader::new(&data[..], 10);
        let mut buf = vec![0u8; 1 << 16];
        assert!(r.read(&mut buf).is_err());
        assert_eq!(r.count, 11);
    }
}
