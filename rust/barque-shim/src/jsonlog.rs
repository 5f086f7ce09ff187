//! Docker's json-file log format: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"<RFC 3339, ns>"}`.
//!
//! Output is split at newlines; a line still open when 16 KiB have accumulated, or at EOF, is
//! written as a partial entry (no trailing `\n` in `log`), as Docker's copier does. Bytes that
//! are not UTF-8 become U+FFFD.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::json::{self, GoEscapes};

/// Docker's copier buffer: a longer line is logged in pieces of this size.
pub const MAX_PARTIAL: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// When output was read, as a log line's `time` field: the quoted RFC 3339 text, made once
/// for all the lines of one read (it needs no escaping, so none is looked for per line).
pub struct LogTime(Box<RawValue>);

impl LogTime {
    pub fn at(since_epoch: std::time::Duration) -> LogTime {
        LogTime::from_rfc3339(&json::rfc3339_nanos(since_epoch))
    }

    fn from_rfc3339(text: &str) -> LogTime {
        let raw = RawValue::from_string(format!("\"{text}\""));
        // A timestamp's digits, dashes and colons always make a valid JSON string.
        LogTime(raw.unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

/// One line of the log file, its fields in Docker's order.
#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: Stream,
    time: &'a RawValue,
}

/// Appends one log entry (with its trailing newline) to `out`.
pub fn encode_entry(out: &mut Vec<u8>, text: &[u8], stream: Stream, time: &LogTime) {
    let entry = Entry {
        log: &String::from_utf8_lossy(text),
        stream,
        time: &time.0,
    };
    json::write(out, GoEscapes, &entry);
    out.push(b'\n');
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

    /// Log lines per second through the shim's path (split into entries, encoded), for the
    /// chatty containers the json-file log must keep up with.
    #[test]
    #[ignore = "a measurement: cargo test -p barque-shim --release -- --ignored --nocapture"]
    fn encode_throughput() {
        let lines: [(&str, Vec<u8>); 4] = [
            ("`yes`, 2-byte lines", b"y\n".to_vec()),
            ("100-byte ASCII lines", [&[b'a'; 99][..], b"\n"].concat()),
            (
                "HTML and UTF-8",
                "<p class=\"x\">caf\u{e9} & \u{4e2d}\u{6587}</p>\tend\n".into(),
            ),
            ("16 KiB pieces", vec![b'x'; 64 * 1024]),
        ];
        for (name, line) in lines {
            let chunk = line.repeat((32 * 1024 / line.len()).max(1));
            let total = 128usize << 20;
            let time = LogTime::from_rfc3339("2026-11-26T17:00:00.123456789Z");
            let mut best = f64::MAX;
            for _ in 0..3 {
                let mut lines = Lines::default();
                let mut entry = Vec::new();
                let mut written = 0usize;
                let start = std::time::Instant::now();
                let mut fed = 0;
                while fed < total {
                    lines.feed(std::hint::black_box(&chunk), |text| {
                        entry.clear();
                        encode_entry(&mut entry, text, Stream::Stdout, &time);
                        written += std::hint::black_box(&entry).len();
                    });
                    fed += chunk.len();
                }
                best = best.min(start.elapsed().as_secs_f64());
                assert!(written > fed);
            }
            println!(
                "{name}: {:.0} MB/s of container output",
                total as f64 / best / 1e6
            );
        }
    }

    #[test]
    fn entry_format() {
        let mut out = Vec::new();
        encode_entry(
            &mut out,
            b"hi \xff\"\n",
            Stream::Stderr,
            &LogTime::from_rfc3339("2026-11-26T17:00:00.123456789Z"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"hi \u{fffd}\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-26T17:00:00.123456789Z\"}\n"
        );
    }
}
