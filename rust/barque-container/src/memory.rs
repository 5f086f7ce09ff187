//! Breaking copy-on-write sharing ahead of time.
//!
//! A forked CPython writes reference counts across most of its heap, so each page it shares
//! with its parent costs a page fault and a copy the first time the child touches it. A fork
//! that has time to spare (the forkserver's spare child, waiting for a command) copies the
//! pages it already has in one pass with `MADV_POPULATE_WRITE` instead. Only pages present in
//! memory are touched, so reserved but unused address space stays unallocated.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::error::ErrorClass;

/// `MADV_POPULATE_WRITE` (Linux 5.14); the libc crate may not name it on every target.
const MADV_POPULATE_WRITE: libc::c_int = 23;
/// /proc/self/pagemap: bit 63 of an entry says the page is present in RAM.
const PRESENT: u64 = 1 << 63;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

impl MemoryError {
    pub fn class(&self) -> ErrorClass<'_> {
        match self {
            MemoryError::Read { path, source } => ErrorClass::Os {
                errno: source.raw_os_error().unwrap_or(libc::EIO),
                path: Some(path),
            },
        }
    }
}

/// One private writable mapping of /proc/self/maps: [start, end).
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
}

/// The private, writable mappings in the text of /proc/self/maps (not the stack guard, vvar or
/// anything shared: writing to a shared mapping needs no copy).
pub fn private_writable(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            if !perms.starts_with("rw") || perms.as_bytes().get(3) != Some(&b'p') {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            Some(Mapping {
                start: usize::from_str_radix(lo, 16).ok()?,
                end: usize::from_str_radix(hi, 16).ok()?,
            })
        })
        .collect()
}

/// Runs of consecutive present pages, as (first page index, count), from pagemap entries.
pub fn present_runs(entries: &[u64]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, entry) in entries.iter().enumerate() {
        match (entry & PRESENT != 0, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - s));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, entries.len() - s));
    }
    runs
}

/// Pages populated per call: small enough to notice `stop_when_readable` within ~0.1 ms.
const CHUNK_PAGES: usize = 64;

/// Copy every present page of this process's private writable mappings now, stopping early
/// once `stop_when_readable` (say, a listening socket) has something to read: the work then
/// left is done by page faults, as it would have been anyway. Returns the number of pages
/// populated; 0 on a kernel without `MADV_POPULATE_WRITE`. A range the kernel refuses is
/// skipped: this only moves work earlier, it never changes what runs.
pub fn populate_writable(stop_when_readable: Option<i32>) -> Result<usize, MemoryError> {
    let maps_path = PathBuf::from("/proc/self/maps");
    let maps = std::fs::read_to_string(&maps_path).map_err(|source| MemoryError::Read {
        path: maps_path,
        source,
    })?;
    let pagemap_path = PathBuf::from("/proc/self/pagemap");
    let mut pagemap = File::open(&pagemap_path).map_err(|source| MemoryError::Read {
        path: pagemap_path.clone(),
        source,
    })?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut total = 0;
    for mapping in private_writable(&maps) {
        let first = mapping.start / page;
        let count = (mapping.end - mapping.start) / page;
        let mut raw = vec![0u8; count * 8];
        pagemap
            .seek(SeekFrom::Start((first * 8) as u64))
            .and_then(|_| pagemap.read_exact(&mut raw))
            .map_err(|source| MemoryError::Read {
                path: pagemap_path.clone(),
                source,
            })?;
        let entries: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        for (at, pages) in present_runs(&entries) {
            for offset in (0..pages).step_by(CHUNK_PAGES) {
                if stop_when_readable.is_some_and(readable) {
                    return Ok(total);
                }
                let addr = (first + at + offset) * page;
                let len = CHUNK_PAGES.min(pages - offset) * page;
                // SAFETY: the range lies in a mapping of this process; populating only faults
                // its pages in, it changes no contents.
                let rc =
                    unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_POPULATE_WRITE) };
                if rc == 0 {
                    total += len / page;
                } else if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
                    && total == 0
                {
                    return Ok(0); // a kernel before 5.14: nothing to gain here
                }
            }
        }
    }
    Ok(total)
}

fn readable(fd: i32) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut poll, 1, 0) > 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_private_writable_mappings_only() {
        let maps = "\
55d0a0000000-55d0a0021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 r--p 00000000 08:01 123                        /usr/lib/libc.so.6
7f0000001000-7f0000003000 rw-s 00000000 00:01 7                          /dev/shm/x
7f0000003000-7f0000004000 ---p 00000000 00:00 0
7f0000004000-7f0000006000 rw-p 00002000 08:01 123                        /usr/lib/libc.so.6
";
        assert_eq!(
            private_writable(maps),
            vec![
                Mapping {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0021000
                },
                Mapping {
                    start: 0x7f0000004000,
                    end: 0x7f0000006000
                },
            ]
        );
    }

    #[test]
    fn finds_runs_of_present_pages() {
        let p = PRESENT;
        assert_eq!(
            present_runs(&[p, p, 0, p, 0, 0, p]),
            vec![(0, 2), (3, 1), (6, 1)]
        );
        assert_eq!(present_runs(&[0, 0]), vec![]);
        assert_eq!(present_runs(&[p, p]), vec![(0, 2)]);
    }

    #[test]
    fn populating_leaves_memory_as_it_was() {
        let data: Vec<u8> = (0..1_000_000).map(|i| (i % 251) as u8).collect();
        let pages = populate_writable(None).unwrap();
        let _ = pages; // 0 on kernels before 5.14
        assert!(data.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }

    #[test]
    fn stops_at_once_when_the_descriptor_is_readable() {
        let mut fds = [0; 2];
        // SAFETY: pipe into a valid array; both ends closed below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: writing one byte from a live buffer.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(populate_writable(Some(fds[0])).unwrap(), 0);
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
