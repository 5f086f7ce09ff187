//! The log file and its rotation, as Docker's `--log-opt max-size=.. max-file=..`: when an
//! entry would take the file past max-size, `FILE.(n-1)` .. `FILE.1` move up one, `FILE`
//! becomes `FILE.1` and writing goes on in a fresh `FILE`; at most max-file files exist. With
//! max-file 1 the file is truncated in place. A single entry larger than max-size still goes
//! into an empty file whole (entries are never split by rotation).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot rotate the log {} to {}: {source}", from.display(), to.display())]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether writing `incoming` bytes onto a file of `current` must rotate first.
pub fn must_rotate(current: u64, incoming: u64, max_size: Option<u64>) -> bool {
    matches!(max_size, Some(max) if current > 0 && current + incoming > max)
}

/// `FILE.n` (`FILE` for 0).
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The renames of one rotation keeping `max_file` files, oldest first (each overwrites its
/// target, so the oldest file drops out). Empty for `max_file <= 1` (truncate instead).
pub fn renames(path: &Path, max_file: u32) -> Vec<(PathBuf, PathBuf)> {
    (1..max_file)
        .rev()
        .map(|to| (numbered(path, to - 1), numbered(path, to)))
        .collect()
}

pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
}

fn open(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

impl LogFile {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<LogFile, LogError> {
        let file = open(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
        })
    }

    /// Whether an entry of `incoming` bytes, written after `pending` bytes not yet written,
    /// would rotate the file first: entries before it and it must then be written apart.
    pub fn would_rotate(&self, pending: usize, incoming: usize) -> bool {
        must_rotate(self.size + pending as u64, incoming as u64, self.max_size)
    }

    /// Writes one entry (or several, never split), rotating first when it would not fit.
    pub fn write(&mut self, entry: &[u8]) -> Result<(), LogError> {
        if must_rotate(self.size, entry.len() as u64, self.max_size) {
            self.rotate()?;
        }
        self.file
            .write_all(entry)
            .map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        if self.max_file <= 1 {
            self.file.set_len(0).map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
            self.size = 0;
            return Ok(());
        }
        for (from, to) in renames(&self.path, self.max_file) {
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(LogError::Rotate { from, to, source }),
            }
        }
        self.file = open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_to_rotate() {
        assert!(
            !must_rotate(0, 500, Some(100)),
            "an empty file takes anything"
        );
        assert!(!must_rotate(50, 50, Some(100)));
        assert!(must_rotate(51, 50, Some(100)));
        assert!(!must_rotate(1 << 40, 1, None));
    }

    #[test]
    fn rename_order() {
        let p = Path::new("/l/c.log");
        assert!(renames(p, 1).is_empty());
        assert_eq!(
            renames(p, 3),
            [
                (PathBuf::from("/l/c.log.1"), PathBuf::from("/l/c.log.2")),
                (PathBuf::from("/l/c.log"), PathBuf::from("/l/c.log.1")),
            ]
        );
    }

    #[test]
    fn keeps_at_most_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(&path, Some(10), 3).unwrap();
        for i in 0..5u8 {
            log.write(&[b'0' + i; 8]).unwrap();
        }
        let read = |n| std::fs::read(numbered(&path, n)).unwrap();
        assert_eq!(read(0), b"44444444");
        assert_eq!(read(1), b"33333333");
        assert_eq!(read(2), b"22222222");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn one_file_is_truncated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(&path, Some(10), 1).unwrap();
        log.write(b"aaaaaaaa").unwrap();
        log.write(b"bbbbbbbb").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"bbbbbbbb");
        assert!(!numbered(&path, 1).exists());
    }
}
