//! Layer compression: naming, magic-byte detection and streaming decoders.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{os_class, ErrorClass};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Compressed input is pulled in big reads: a blob file or a channel of network chunks.
const INPUT_BUFFER: usize = 256 << 10;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
    /// Decide from the first bytes (gzip and zstd magic, otherwise a plain tar).
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("unknown compression {name:?}: expected \"gzip\", \"zstd\", \"none\" or \"auto\"")]
    Unknown { name: String },
}

impl CompressionError {
    pub fn class(&self) -> ErrorClass<'_> {
        ErrorClass::Usage
    }
}

impl FromStr for Compression {
    type Err = CompressionError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            "auto" => Ok(Compression::Auto),
            _ => Err(CompressionError::Unknown {
                name: name.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
            Compression::Auto => "auto",
        })
    }
}

/// Compression named by a blob's first bytes; anything unrecognised is taken as a plain tar,
/// as Docker does.
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `raw` in the decoder for `compression`, peeking at the magic when it is `Auto`.
/// Returns the compression actually used.
pub fn decoder<'a, R: Read + Send + 'a>(
    compression: Compression,
    mut raw: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut magic = [0u8; ZSTD_MAGIC.len()];
    let mut have = 0;
    if compression == Compression::Auto {
        while have < magic.len() {
            match raw.read(&mut magic[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    let resolved = match compression {
        Compression::Auto => detect(&magic[..have]),
        other => other,
    };
    // The peeked bytes go back in front of the stream.
    let input = io::Cursor::new(magic).take(have as u64).chain(raw);
    let decoded: Box<dyn Read + Send + 'a> = match resolved {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(INPUT_BUFFER, input),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(INPUT_BUFFER, input),
        )?),
        Compression::None | Compression::Auto => Box::new(input),
    };
    Ok((resolved, decoded))
}

/// A failure of the raw input, tagged so it stays distinguishable from a decoder's complaint
/// once it has travelled up through the decoder.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ingest aborted")]
    Aborted,
}

impl SourceError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            SourceError::Io { path, source } => os_class(source, path),
            SourceError::Aborted => ErrorClass::Usage,
        }
    }
}

/// Tags the errors of a raw input with [`SourceError`].
pub struct SourceReader<R> {
    inner: R,
    path: PathBuf,
}

impl<R> SourceReader<R> {
    pub fn new(inner: R, path: &Path) -> Self {
        SourceReader {
            inner,
            path: path.to_owned(),
        }
    }
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(io::Error::other(SourceError::Io {
                        path: self.path.clone(),
                        source,
                    }))
                }
                Ok(n) => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{gzip, zstd_compress};

    fn decode_all(c: Compression, data: &[u8]) -> io::Result<(Compression, Vec<u8>)> {
        let (resolved, mut d) = decoder(c, data)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok((resolved, out))
    }

    #[test]
    fn names_parse() {
        assert_eq!("gzip".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!("auto".parse::<Compression>().unwrap(), Compression::Auto);
        assert!("xz".parse::<Compression>().is_err());
        assert_eq!(Compression::Zstd.to_string(), "zstd");
    }

    #[test]
    fn detects_by_magic() {
        let plain = b"hello world, this is not compressed".repeat(100);
        let (c, out) = decode_all(Compression::Auto, &gzip(&plain)).unwrap();
        assert_eq!((c, &out), (Compression::Gzip, &plain));
        let (c, out) = decode_all(Compression::Auto, &zstd_compress(&plain)).unwrap();
        assert_eq!((c, &out), (Compression::Zstd, &plain));
        let (c, out) = decode_all(Compression::Auto, &plain).unwrap();
        assert_eq!((c, &out), (Compression::None, &plain));
        let (c, out) = decode_all(Compression::Auto, b"ab").unwrap();
        assert_eq!((c, &out[..]), (Compression::None, &b"ab"[..]));
    }

    #[test]
    fn concatenated_gzip_members_decode_whole() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        let (_, out) = decode_all(Compression::Gzip, &two).unwrap();
        assert_eq!(out, b"first second");
    }

    #[test]
    fn truncated_and_corrupt_streams_fail() {
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for (c, packed) in [
            (Compression::Gzip, gzip(&plain)),
            (Compression::Zstd, zstd_compress(&plain)),
        ] {
            for cut in [packed.len() - 1, packed.len() - 4, packed.len() / 2, 12] {
                assert!(
                    decode_all(c, &packed[..cut]).is_err(),
                    "{c} cut at {cut} of {} decoded without error",
                    packed.len()
                );
            }
            let mut bad = packed.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 0xff;
            bad[mid + 1] ^= 0x55;
            assert!(
                decode_all(c, &bad).is_err(),
                "{c} corruption went unnoticed"
            );
        }
    }

    #[test]
    fn source_errors_stay_tagged_through_decoders() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
        let src = SourceReader::new(Failing, Path::new("/blob"));
        let err = match decoder(Compression::Gzip, src) {
            Ok((_, mut d)) => d.read(&mut [0u8; 10]).unwrap_err(),
            Err(e) => e,
        };
        let class = crate::error::stream_error_class(&err, None);
        assert_eq!(
            class,
            ErrorClass::Os {
                errno: libc::EIO,
                path: Some(Path::new("/blob"))
            }
        );
    }
}
