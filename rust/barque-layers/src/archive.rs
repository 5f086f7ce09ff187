//! A strict, streaming tar reader.
//!
//! Hand-written rather than `tar::Archive` so that every ambiguity an attacker could play on is
//! refused instead of papered over: a stream that ends without its end-of-archive blocks or in
//! the middle of an entry, PAX records that contradict the ustar header, NUL bytes smuggled into
//! PAX paths, entry types we would not extract faithfully.

use std::io::{self, Read};

pub const BLOCK: usize = 512;
/// PAX and GNU long-name payloads are buffered in memory: cap them so a header can't OOM us.
pub const MAX_EXTENSION_SIZE: u64 = 1 << 20;
/// Sizes past this are refused outright, so offsets and padding arithmetic cannot overflow.
const MAX_SIZE: u64 = i64::MAX as u64;
/// Largest size an 11-digit octal header field can hold; above it writers put 0 in the header
/// and the real size in a PAX record.
const OCTAL_SIZE_MAX: u64 = 0o777_7777_7777;
const SKIP_CHUNK: usize = 64 << 10;

/// The kinds of entries a layer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Directory,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// One tar entry with its extension headers (PAX, GNU long names) already folded in.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    /// Symlink target or hard-link target; empty for other kinds.
    pub link: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes from PAX `SCHILY.xattr.*` records, unvalidated.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The entry's name for messages.
    pub fn name(&self) -> String {
        lossy(&self.path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("entry {entry:?}: the layer ends in the middle of this entry (truncated tar)")]
    Truncated { entry: String },
    #[error("the layer ends after entry {after:?} without the tar end-of-archive blocks (truncated tar)")]
    MissingEnd { after: String },
    #[error(
        "header following entry {after:?} at offset {offset}: checksum mismatch (corrupt tar)"
    )]
    Checksum { after: String, offset: u64 },
    #[error("entry {entry:?}: invalid {field} field in the tar header")]
    BadField { entry: String, field: &'static str },
    #[error("entry {entry:?}: PAX size {pax} disagrees with the tar header size {header}")]
    PaxSizeMismatch {
        entry: String,
        pax: u64,
        header: u64,
    },
    #[error("entry {entry:?}: PAX {key} contains a NUL byte")]
    PaxNul { entry: String, key: &'static str },
    #[error("entry {entry:?}: malformed PAX record {detail}")]
    MalformedPax { entry: String, detail: String },
    #[error("entry {entry:?}: {what} of {size} bytes exceeds the {limit}-byte limit")]
    ExtensionTooLarge {
        entry: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("entry {entry:?}: unsupported tar entry type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("extension headers following entry {after:?} describe no entry")]
    DanglingExtension { after: String },
    #[error("non-zero block after the end-of-archive marker following entry {after:?}")]
    BadEnd { after: String },
    #[error("entry {entry:?}: cannot read the layer stream: {source}")]
    Read {
        entry: String,
        #[source]
        source: io::Error,
    },
}

/// Reads entries one after another; the data of the current entry is read with
/// [`Archive::read_data`] (whatever is left unread is skipped by the next call to
/// [`Archive::next_entry`]).
pub struct Archive<R> {
    inner: R,
    offset: u64,
    data_left: u64,
    pad_left: u64,
    /// Name of the current (or last) entry, for messages.
    current: String,
    done: bool,
    scratch: Vec<u8>,
}

/// PAX fields that override or extend the next entry's header.
#[derive(Default)]
struct Pending {
    seen: bool,
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    gnu_path: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<Timestamp>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

impl<R: Read> Archive<R> {
    pub fn new(inner: R) -> Self {
        Archive {
            inner,
            offset: 0,
            data_left: 0,
            pad_left: 0,
            current: String::from("(start of layer)"),
            done: false,
            scratch: Vec::new(),
        }
    }

    /// Name of the entry being read (or the last one), for messages.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// True once the end-of-archive marker has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes of tar stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, or `None` after a proper end-of-archive marker.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Pending::default();
        loop {
            let header_offset = self.offset;
            let Some(block) = self.read_block()? else {
                return Err(if pending.seen {
                    ArchiveError::DanglingExtension {
                        after: self.current.clone(),
                    }
                } else {
                    ArchiveError::MissingEnd {
                        after: self.current.clone(),
                    }
                });
            };
            if is_zero(&block) {
                return self.end_of_archive(&pending).map(|()| None);
            }
            if !checksum_ok(&block) {
                return Err(ArchiveError::Checksum {
                    after: self.current.clone(),
                    offset: header_offset,
                });
            }
            let typeflag = block[156];
            if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
                self.read_extension(&block, typeflag, &mut pending)?;
                continue;
            }
            return self.build_entry(&block, typeflag, pending).map(Some);
        }
    }

    /// Reads the current entry's data; `Ok(0)` once all of it has been read.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        if self.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Truncated {
                        entry: self.current.clone(),
                    })
                }
                Ok(n) => {
                    self.data_left -= n as u64;
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(self.read_error(source)),
            }
        }
    }

    fn read_error(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Read {
            entry: self.current.clone(),
            source,
        }
    }

    /// Skips the unread data and padding of the current entry.
    fn skip_rest(&mut self) -> Result<(), ArchiveError> {
        let mut left = self.data_left + self.pad_left;
        if left == 0 {
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(SKIP_CHUNK, 0);
        while left > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.inner.read(&mut scratch[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Truncated {
                        entry: self.current.clone(),
                    })
                }
                Ok(n) => {
                    left -= n as u64;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.read_error(source)),
            }
        }
        self.scratch = scratch;
        self.data_left = 0;
        self.pad_left = 0;
        Ok(())
    }

    /// One 512-byte block, `None` at a clean end of stream.
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>, ArchiveError> {
        let mut block = [0u8; BLOCK];
        let mut have = 0;
        while have < BLOCK {
            match self.inner.read(&mut block[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(self.read_error(source)),
            }
        }
        self.offset += have as u64;
        match have {
            0 => Ok(None),
            BLOCK => Ok(Some(block)),
            _ => Err(ArchiveError::Truncated {
                entry: self.current.clone(),
            }),
        }
    }

    /// After a zero block: the archive ends. Like Go's archive/tar we accept a lone zero block
    /// at the very end of the stream, but not one followed by anything but a second zero block.
    fn end_of_archive(&mut self, pending: &Pending) -> Result<(), ArchiveError> {
        if pending.seen {
            return Err(ArchiveError::DanglingExtension {
                after: self.current.clone(),
            });
        }
        match self.read_block()? {
            Some(block) if !is_zero(&block) => Err(ArchiveError::BadEnd {
                after: self.current.clone(),
            }),
            _ => {
                self.done = true;
                Ok(())
            }
        }
    }

    fn read_extension(
        &mut self,
        block: &[u8; BLOCK],
        typeflag: u8,
        pending: &mut Pending,
    ) -> Result<(), ArchiveError> {
        let what = match typeflag {
            b'x' => "PAX extended header",
            b'g' => "PAX global header",
            b'L' => "GNU long name",
            _ => "GNU long link name",
        };
        let context = format!("{what} following {:?}", self.current);
        let size = numeric(&block[124..136]).ok_or_else(|| ArchiveError::BadField {
            entry: context.clone(),
            field: "size",
        })?;
        if size > MAX_EXTENSION_SIZE {
            return Err(ArchiveError::ExtensionTooLarge {
                entry: context,
                what,
                size,
                limit: MAX_EXTENSION_SIZE,
            });
        }
        let mut data = vec![0u8; size as usize];
        self.data_left = size;
        self.pad_left = padding(size);
        let mut filled = 0;
        while filled < data.len() {
            filled += self.read_data(&mut data[filled..])?;
        }
        self.skip_rest()?;
        match typeflag {
            // Docker ignores global headers too; nothing in them may change how entries land.
            b'g' => {}
            b'x' => {
                pending.seen = true;
                apply_pax(&data, pending, &context)?;
            }
            b'L' => {
                pending.seen = true;
                pending.gnu_path = Some(strip_trailing_nuls(data));
            }
            _ => {
                pending.seen = true;
                pending.gnu_link = Some(strip_trailing_nuls(data));
            }
        }
        Ok(())
    }

    fn build_entry(
        &mut self,
        block: &[u8; BLOCK],
        typeflag: u8,
        pending: Pending,
    ) -> Result<Entry, ArchiveError> {
        let (path, path_from_pax) = match (pending.path, pending.gnu_path) {
            (Some(p), _) => (p, true),
            (None, Some(p)) => (p, false),
            (None, None) => (header_path(block), false),
        };
        let entry = lossy(&path);
        self.current = entry.clone();
        if path.contains(&0) {
            let key = if path_from_pax {
                "path"
            } else {
                "GNU long name"
            };
            return Err(ArchiveError::PaxNul { entry, key });
        }
        let link = match (pending.link, pending.gnu_link) {
            (Some(l), _) => l,
            (None, Some(l)) => l,
            (None, None) => field_str(&block[157..257]).to_vec(),
        };
        if link.contains(&0) {
            return Err(ArchiveError::PaxNul {
                entry,
                key: "linkpath",
            });
        }
        if pending.sparse {
            return Err(ArchiveError::Unsupported {
                entry,
                kind: "GNU sparse (PAX)".into(),
            });
        }
        let kind = match typeflag {
            b'0' | b'7' => EntryKind::Regular,
            // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
            b'\0' if path.ends_with(b"/") => EntryKind::Directory,
            b'\0' => EntryKind::Regular,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            other => {
                return Err(ArchiveError::Unsupported {
                    entry,
                    kind: format!("{:?}", char::from(other)),
                })
            }
        };
        let bad = |field| ArchiveError::BadField {
            entry: entry.clone(),
            field,
        };
        let header_size = numeric(&block[124..136])
            .filter(|&s| s <= MAX_SIZE)
            .ok_or_else(|| bad("size"))?;
        let size = match pending.size {
            Some(pax) if pax > MAX_SIZE => return Err(bad("size")),
            Some(pax) if pax == header_size => pax,
            // Too big for the octal field: the header may only say 0 then.
            Some(pax) if header_size == 0 && pax > OCTAL_SIZE_MAX => pax,
            Some(pax) => {
                return Err(ArchiveError::PaxSizeMismatch {
                    entry,
                    pax,
                    header: header_size,
                })
            }
            None => header_size,
        };
        let mode = numeric(&block[100..108]).ok_or_else(|| bad("mode"))?;
        let mode = u32::try_from(mode & 0o7777).map_err(|_| bad("mode"))?;
        let uid = match pending.uid {
            Some(uid) => uid,
            None => id(numeric(&block[108..116])).ok_or_else(|| bad("uid"))?,
        };
        let gid = match pending.gid {
            Some(gid) => gid,
            None => id(numeric(&block[116..124])).ok_or_else(|| bad("gid"))?,
        };
        let mtime = match pending.mtime {
            Some(t) => t,
            None => {
                let sec = numeric(&block[136..148]).ok_or_else(|| bad("mtime"))?;
                Timestamp {
                    sec: i64::try_from(sec).map_err(|_| bad("mtime"))?,
                    nsec: 0,
                }
            }
        };
        let (dev_major, dev_minor) =
            if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
                let major = numeric(&block[329..337]).ok_or_else(|| bad("devmajor"))?;
                let minor = numeric(&block[337..345]).ok_or_else(|| bad("devminor"))?;
                (
                    u32::try_from(major).map_err(|_| bad("devmajor"))?,
                    u32::try_from(minor).map_err(|_| bad("devminor"))?,
                )
            } else {
                (0, 0)
            };
        self.data_left = size;
        self.pad_left = padding(size);
        let link = if matches!(kind, EntryKind::Symlink | EntryKind::HardLink) {
            link
        } else {
            Vec::new()
        };
        Ok(Entry {
            path,
            link,
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            dev_major,
            dev_minor,
            xattrs: pending.xattrs,
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn is_zero(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

fn strip_trailing_nuls(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

/// A NUL-terminated string field.
fn field_str(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// The name, with the ustar prefix when the header is POSIX ustar (GNU headers reuse those
/// bytes for other fields).
fn header_path(block: &[u8; BLOCK]) -> Vec<u8> {
    let name = field_str(&block[0..100]);
    let prefix = field_str(&block[345..500]);
    if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(name);
        path
    } else {
        name.to_vec()
    }
}

/// uid/gid must fit an id_t and not be -1, which chown reads as "leave unchanged".
fn id(value: Option<u64>) -> Option<u32> {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v != u32::MAX)
}

/// A numeric header field: octal text (padded with spaces or NULs; empty means 0, as in Go's
/// archive/tar) or GNU base-256 when the high bit is set. Negative values are refused.
fn numeric(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first == 0xff {
            return None;
        }
        let mut value: u64 = u64::from(first & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let start = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(start, |i| i + 1);
    let digits = &field[start..end.max(start)];
    if digits.is_empty() {
        return Some(0);
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// The stored checksum equals the byte sum with the checksum field read as spaces; old tars
/// summed signed bytes, which is accepted as well.
fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let Some(stored) = numeric(&block[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// Parses `<len> <key>=<value>\n` records (values may hold any byte, newlines included: the
/// length prefix is authoritative) and folds them into `pending`.
fn apply_pax(data: &[u8], pending: &mut Pending, context: &str) -> Result<(), ArchiveError> {
    let malformed = |detail: String| ArchiveError::MalformedPax {
        entry: context.to_owned(),
        detail,
    };
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the payload with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("without a length".into()))?;
        let len = decimal(&rest[..space]).ok_or_else(|| malformed("with a bad length".into()))?;
        let len = usize::try_from(len).map_err(|_| malformed("with a bad length".into()))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed("with a length that does not match".into()));
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .filter(|&i| i > 0)
            .ok_or_else(|| malformed("without a key".into()))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let bad_value = || malformed(format!("{}={:?}", lossy(key), lossy(value)));
        match key {
            // An empty value deletes the keyword: the header's own field applies again.
            b"path" => pending.path = Some(value.to_vec()).filter(|v| !v.is_empty()),
            b"linkpath" => pending.link = Some(value.to_vec()).filter(|v| !v.is_empty()),
            b"size" => pending.size = optional(value, decimal).map_err(|()| bad_value())?,
            b"uid" => {
                pending.uid = optional(value, |v| id(decimal(v))).map_err(|()| bad_value())?
            }
            b"gid" => {
                pending.gid = optional(value, |v| id(decimal(v))).map_err(|()| bad_value())?
            }
            b"mtime" => pending.mtime = optional(value, pax_time).map_err(|()| bad_value())?,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.is_empty() {
                        return Err(bad_value());
                    }
                    pending.xattrs.retain(|(n, _)| n != name);
                    pending.xattrs.push((name.to_vec(), value.to_vec()));
                } else if key.starts_with(b"GNU.sparse.") {
                    pending.sparse = true;
                }
                // Anything else (atime, uname, comments...) does not affect extraction.
            }
        }
    }
    Ok(())
}

/// An empty PAX value means "unset"; anything else must parse.
fn optional<T>(value: &[u8], parse: impl Fn(&[u8]) -> Option<T>) -> Result<Option<T>, ()> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some).ok_or(())
    }
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// A PAX time: `[-]seconds[.fraction]`.
fn pax_time(value: &[u8]) -> Option<Timestamp> {
    let (negative, value) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    let sec = i64::try_from(decimal(whole)?).ok()?;
    let mut nsec: u32 = 0;
    for i in 0..9 {
        let digit = match frac.get(i) {
            Some(b) if b.is_ascii_digit() => u32::from(b - b'0'),
            Some(_) => return None,
            None => 0,
        };
        nsec = nsec * 10 + digit;
    }
    if frac.iter().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    Some(match (negative, nsec) {
        (false, _) => Timestamp { sec, nsec },
        (true, 0) => Timestamp { sec: -sec, nsec: 0 },
        (true, n) => Timestamp {
            sec: -sec - 1,
            nsec: 1_000_000_000 - n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{finish_tar, pax_tar, raw_header, TarBuilder};

    fn entries(data: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ArchiveError> {
        let mut a = Archive::new(data);
        let mut out = Vec::new();
        while let Some(e) = a.next_entry()? {
            let mut content = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = a.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                content.extend_from_slice(&buf[..n]);
            }
            out.push((e, content));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let mut b = TarBuilder::new();
        b.dir("etc", 0o755);
        b.file("etc/hosts", 0o644, b"127.0.0.1 localhost\n");
        b.symlink("etc/link", "hosts");
        b.hardlink("etc/hard", "etc/hosts");
        let long = format!("deep/{}/file", "x".repeat(150));
        b.file(&long, 0o4755, b"long");
        let tar = b.finish();
        let got = entries(&tar).unwrap();
        let names: Vec<_> = got.iter().map(|(e, _)| e.name()).collect();
        assert_eq!(
            names,
            ["etc", "etc/hosts", "etc/link", "etc/hard", long.as_str()]
        );
        assert_eq!(got[0].0.kind, EntryKind::Directory);
        assert_eq!(got[1].1, b"127.0.0.1 localhost\n");
        assert_eq!(got[2].0.link, b"hosts");
        assert_eq!(got[3].0.kind, EntryKind::HardLink);
        assert_eq!(got[4].0.mode, 0o4755);
        assert_eq!(got[4].1, b"long");
    }

    #[test]
    fn missing_end_marker_is_refused() {
        let mut b = TarBuilder::new();
        b.file("a", 0o644, b"x");
        let tar = b.finish();
        // Entry header + one data block, no end-of-archive blocks.
        let err = entries(&tar[..1024]).unwrap_err();
        assert!(
            matches!(err, ArchiveError::MissingEnd { ref after } if after == "a"),
            "{err}"
        );
        // One zero block then EOF is accepted (Go's reader does the same).
        assert!(entries(&tar[..1536]).is_ok());
        let mut garbage = tar[..1536].to_vec();
        garbage.extend_from_slice(&[1u8; 512]);
        assert!(matches!(
            entries(&garbage),
            Err(ArchiveError::BadEnd { .. })
        ));
    }

    #[test]
    fn cut_mid_entry_is_refused() {
        let mut b = TarBuilder::new();
        b.file("big", 0o644, &vec![9u8; 5000]);
        let tar = b.finish();
        for cut in [600, 512 + 4096, 512 + 5000 + 10, 700] {
            let err = entries(&tar[..cut]).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Truncated { ref entry } if entry == "big"),
                "{cut}: {err}"
            );
        }
        // A header cut in half.
        assert!(matches!(
            entries(&tar[..300]),
            Err(ArchiveError::Truncated { .. })
        ));
    }

    #[test]
    fn checksum_is_verified() {
        let mut b = TarBuilder::new();
        b.file("a", 0o644, b"x");
        let mut tar = b.finish();
        tar[0] = b'b';
        assert!(matches!(entries(&tar), Err(ArchiveError::Checksum { .. })));
    }

    #[test]
    fn pax_overrides_and_xattrs() {
        let tar = pax_tar(
            &[
                ("path", &b"very/long/pax/name"[..]),
                ("mtime", b"1700000000.25"),
                ("uid", b"100000"),
                ("SCHILY.xattr.user.note", b"line1\nline2"),
                ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
            ],
            raw_header("short", b'0', 3, 0o644),
            b"abc",
        );
        let got = entries(&tar).unwrap();
        let e = &got[0].0;
        assert_eq!(e.path, b"very/long/pax/name");
        assert_eq!(
            e.mtime,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 250_000_000
            }
        );
        assert_eq!(e.uid, 100_000);
        assert_eq!(e.xattrs.len(), 2);
        assert_eq!(
            e.xattrs[0],
            (b"user.note".to_vec(), b"line1\nline2".to_vec())
        );
        assert_eq!(e.xattrs[1].1.len(), 20);
        assert_eq!(got[0].1, b"abc");
    }

    #[test]
    fn pax_size_must_agree_with_header() {
        let tar = pax_tar(
            &[("size", &b"4"[..])],
            raw_header("liar", b'0', 3, 0o644),
            b"abc",
        );
        let err = entries(&tar).unwrap_err();
        assert!(
            matches!(err, ArchiveError::PaxSizeMismatch { ref entry, pax: 4, header: 3 } if entry == "liar"),
            "{err}"
        );
    }

    #[test]
    fn pax_nul_in_path_is_refused() {
        let tar = pax_tar(
            &[("path", &b"evil\0name"[..])],
            raw_header("x", b'0', 0, 0o644),
            b"",
        );
        assert!(matches!(
            entries(&tar),
            Err(ArchiveError::PaxNul { key: "path", .. })
        ));
        let tar = pax_tar(
            &[("linkpath", &b"t\0x"[..])],
            raw_header("l", b'2', 0, 0o777),
            b"",
        );
        assert!(matches!(
            entries(&tar),
            Err(ArchiveError::PaxNul {
                key: "linkpath",
                ..
            })
        ));
    }

    #[test]
    fn malformed_pax_is_refused() {
        for bad in [&b"99 path=x\n"[..], b"5 path=x\n", b"nonsense", b"6 =ab\n"] {
            let mut tar = Vec::new();
            let mut h = raw_header("PaxHeaders/x", b'x', bad.len() as u64, 0o644);
            crate::test_support::set_checksum(&mut h);
            tar.extend_from_slice(&h);
            tar.extend_from_slice(bad);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
            tar.extend_from_slice(&raw_header("x", b'0', 0, 0o644));
            finish_tar(&mut tar);
            assert!(
                matches!(entries(&tar), Err(ArchiveError::MalformedPax { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dangling_pax_header_is_refused() {
        let mut tar = pax_tar(&[("path", &b"x"[..])], raw_header("x", b'0', 0, 0o644), b"");
        // Drop the real entry: keep only the PAX header and its payload.
        tar.truncate(1024);
        finish_tar(&mut tar);
        assert!(matches!(
            entries(&tar),
            Err(ArchiveError::DanglingExtension { .. })
        ));
    }

    #[test]
    fn sparse_and_unknown_types_are_refused() {
        let mut tar = raw_header("s", b'S', 0, 0o644).to_vec();
        finish_tar(&mut tar);
        assert!(matches!(
            entries(&tar),
            Err(ArchiveError::Unsupported { .. })
        ));
    }

    #[test]
    fn numbers_parse_like_go() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"  644 \0"), Some(0o644));
        assert_eq!(numeric(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(numeric(b"0000x44\0"), None);
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(&[0xff; 12]), None);
        assert_eq!(
            pax_time(b"-1.5"),
            Some(Timestamp {
                sec: -2,
                nsec: 500_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Timestamp { sec: 12, nsec: 0 }));
        assert_eq!(pax_time(b"1.x"), None);
        assert_eq!(id(Some(u64::from(u32::MAX))), None);
    }
}
