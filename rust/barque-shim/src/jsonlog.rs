//! Docker's json-file log format: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"<RFC 3339, ns>"}`.
//!
//! Output is split at newlines; a line still open when 16 KiB have accumulated, or at EOF, is
//! written as a partial entry (no trailing `\n` in `log`), as Docker's copier does. Bytes that
//! are not UTF-8 become U+FFFD.

use crate::json;

/// Docker's copier buffer: a longer line is logged in pieces of this size.
pub const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends one log entry (with its trailing newline) to `out`.
pub fn encode_entry(out: &mut Vec<u8>, text: &[u8], stream: Stream, time: &str) {
    out.extend_from_slice(b"{\"log\":");
    json::push_str(out, &String::from_utf8_lossy(text));
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// One stream's pending partial line.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Feeds output; `emit` receives each entry's text (a whole line with its `\n`, or a
    /// 16 KiB piece of a longer one).
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_PARTIAL - self.partial.len();
            let newline = data.iter().take(room).position(|&b| b == b'\n');
            match newline {
                Some(i) => {
                    let (line, rest) = data.split_at(i + 1);
                    if self.partial.is_empty() {
                        emit(line);
                    } else {
                        self.partial.extend_from_slice(line);
                        emit(&self.partial);
                        self.partial.clear();
                    }
                    data = rest;
                }
                None if data.len() >= room => {
                    let (piece, rest) = data.split_at(room);
                    self.partial.extend_from_slice(piece);
                    emit(&self.partial);
                    self.partial.clear();
                    data = rest;
                }
                None => {
                    self.partial.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    /// At EOF: the last line without its newline, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.feed(c, |e| out.push(e.to_vec()));
        }
        lines.finish(|e| out.push(e.to_vec()));
        out
    }

    #[test]
    fn splits_at_newlines_across_chunks() {
        assert_eq!(
            entries(&[b"a\nb", b"c\n\nd"]),
            [
                b"a\n".to_vec(),
                b"bc\n".to_vec(),
                b"\n".to_vec(),
                b"d".to_vec()
            ]
        );
    }

    #[test]
    fn long_lines_in_16k_pieces() {
        let long = vec![b'x'; MAX_PARTIAL * 2 + 10];
        let mut input = long.clone();
        input.push(b'\n');
        let out = entries(&[&input[..100], &input[100..]]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_PARTIAL);
        assert_eq!(out[1].len(), MAX_PARTIAL);
        assert_eq!(out[2], b"xxxxxxxxxx\n");
    }

    #[test]
    fn entry_format() {
        let mut out = Vec::new();
        encode_entry(
            &mut out,
            b"hi \xff\"\n",
            Stream::Stderr,
            "2026-11-26T17:00:00.123456789Z",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"hi \u{fffd}\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-26T17:00:00.123456789Z\"}\n"
        );
    }
}
