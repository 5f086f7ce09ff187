//! Helpers shared by unit tests: compressing fixtures and building tars.

use std::io::Write;

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd_compress(data: &[u8]) -> Vec<u8> {
    // With a content checksum, as the zstd CLI writes by default.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_checksum(true).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub const MTIME: u64 = 1_600_000_000;

/// Builds tars with the `tar` crate, the way a well-behaved producer would.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuilder {
    pub fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Complete);
        TarBuilder { b }
    }

    pub fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    pub fn add(&mut self, mut header: tar::Header, path: &str, data: &[u8]) -> &mut Self {
        header.set_size(data.len() as u64);
        self.b.append_data(&mut header, path, data).unwrap();
        self
    }

    pub fn add_link(&mut self, mut header: tar::Header, path: &str, target: &str) -> &mut Self {
        self.b.append_link(&mut header, path, target).unwrap();
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.add(Self::header(tar::EntryType::Directory, mode), path, b"")
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.add(Self::header(tar::EntryType::Regular, mode), path, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add_link(Self::header(tar::EntryType::Symlink, 0o777), path, target)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add_link(Self::header(tar::EntryType::Link, 0o644), path, target)
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A raw ustar header with a valid checksum, for shapes the `tar` crate refuses to write.
pub fn raw_header(name: &str, typeflag: u8, size: u64, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], MTIME);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    set_checksum(&mut h);
    h
}

fn put_octal(field: &mut [u8], value: u64) {
    let s = format!("{:0width$o}\0", value, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

pub fn set_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// Appends the two zero blocks that end an archive.
pub fn finish_tar(tar: &mut Vec<u8>) {
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
}

/// One PAX extended header (raw records, any bytes) followed by `header` and its data.
pub fn pax_tar(records: &[(&str, &[u8])], header: [u8; 512], data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut len = body + body.to_string().len();
        if (len).to_string().len() != body.to_string().len() {
            len = body + len.to_string().len();
        }
        payload.extend_from_slice(format!("{len} {k}=").as_bytes());
        payload.extend_from_slice(v);
        payload.push(b'\n');
    }
    let mut tar = raw_header("PaxHeaders/entry", b'x', payload.len() as u64, 0o644).to_vec();
    tar.extend_from_slice(&payload);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(data);
    finish_tar(&mut tar);
    tar
}

/// A raw ustar link-like header (symlink, hard link) with any target, `..` included.
pub fn raw_link(name: &str, typeflag: u8, target: &str) -> [u8; 512] {
    let mut h = raw_header(name, typeflag, 0, 0o777);
    h[157..157 + target.len()].copy_from_slice(target.as_bytes());
    set_checksum(&mut h);
    h
}

/// Concatenates raw blocks into a finished tar.
pub fn raw_tar(blocks: &[&[u8]]) -> Vec<u8> {
    let mut tar = Vec::new();
    for b in blocks {
        tar.extend_from_slice(b);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    finish_tar(&mut tar);
    tar
}
