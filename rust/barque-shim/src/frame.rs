//! The attach socket's framing, both ways: an 8-byte header `[type, 0, 0, 0, length u32 BE]`
//! then `length` bytes of payload.

pub const HEADER_LEN: usize = 8;
/// A client sending more than this in one frame is broken (stdin comes in small chunks).
pub const MAX_PAYLOAD: usize = 1 << 20;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const RESIZE: u8 = 3;
pub const EXIT: u8 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds {MAX_PAYLOAD}")]
    TooLong { len: usize },
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    pub fn feed(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&avail[4..8]);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong { len });
        }
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = (avail[0], avail[HEADER_LEN..HEADER_LEN + len].to_vec());
        self.start += HEADER_LEN + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

/// `rows, cols` of a resize payload.
pub fn resize(payload: &[u8]) -> Option<(u16, u16)> {
    match payload {
        [r0, r1, c0, c1] => Some((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_in_pieces() {
        let mut wire = Vec::new();
        encode(&mut wire, STDIN, b"hello\n");
        encode(&mut wire, STDIN, b"");
        encode(&mut wire, RESIZE, &[0, 24, 0, 80]);
        assert_eq!(&wire[..8], &[0, 0, 0, 0, 0, 0, 0, 6]);
        let mut d = Decoder::default();
        let mut frames = Vec::new();
        // One byte at a time: a frame is only returned once complete.
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            [
                (STDIN, b"hello\n".to_vec()),
                (STDIN, vec![]),
                (RESIZE, vec![0, 24, 0, 80])
            ]
        );
        assert_eq!(resize(&frames[2].1), Some((24, 80)));
        assert_eq!(resize(b"abc"), None);
    }

    #[test]
    fn refuses_huge_frames() {
        let mut d = Decoder::default();
        d.feed(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn exit_frame() {
        let mut out = Vec::new();
        encode(&mut out, EXIT, &(-1i32).to_be_bytes());
        assert_eq!(out, [4, 0, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    }
}
