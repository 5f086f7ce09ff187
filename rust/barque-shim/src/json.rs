//! How the shim writes JSON: serde_json with two layouts. Docker's json-file lines are
//! compact (`{"log":"..","stream":"stdout","time":".."}`) and escaped as Go's encoding/json
//! escapes them; the records barque's Python side reads (`{"pid": 1, "shim_pid": 2}`) keep
//! the spaced layout of Python's `json.dumps` they always had. Plus RFC 3339 timestamps.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// Go's escaping, byte for byte what Docker's json-file driver writes: `<`, `>`, `&`, U+2028
/// and U+2029 as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029` (HTML-safe), and of the
/// control characters only `\n`, `\r` and `\t` in short form (serde_json's own formatter
/// writes `\b` and `\f`, Go `\u0008` and `\u000c`). Otherwise compact.
pub struct GoEscapes;

impl Formatter for GoEscapes {
    // serde_json hands over the runs between the escapes it makes itself (quotes, backslashes,
    // control characters): only the HTML-unsafe characters are left to find in them.
    #[inline]
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        if !may_need_html_escape(bytes) {
            return out.write_all(bytes);
        }
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            let (escape, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) => match bytes.get(i + 2) {
                    Some(0xA8) => (b"\\u2028", 3),
                    Some(0xA9) => (b"\\u2029", 3),
                    _ => {
                        i += 1;
                        continue;
                    }
                },
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.write_all(&bytes[copied..i])?;
            out.write_all(escape)?;
            i += len;
            copied = i;
        }
        out.write_all(&bytes[copied..])
    }

    #[inline]
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Backspace => out.write_all(b"\\u0008"),
            CharEscape::FormFeed => out.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(out, other),
        }
    }
}

/// Whether `bytes` holds `<`, `>`, `&` or the first byte of U+2028/U+2029. Log text rarely
/// does: this is the hot path of a chatty container's log, so whole 16-byte blocks are
/// tested at once (the compiler turns the block's fold into vector compares).
#[inline]
fn may_need_html_escape(bytes: &[u8]) -> bool {
    let unsafe_byte = |b: u8| (b == b'<') | (b == b'>') | (b == b'&') | (b == 0xE2);
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |hit, &b| hit | unsafe_byte(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| unsafe_byte(b))
}

/// Python's `json.dumps` layout (`", "` between members, `": "` after keys) with Go's
/// escaping: the shape of the report line and `exit.json` since the shim first wrote them.
pub struct SpacedRecord;

impl Formatter for SpacedRecord {
    #[inline]
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            out.write_all(b", ")
        }
    }

    #[inline]
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(b": ")
    }

    #[inline]
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_object_key(out, first)
    }

    #[inline]
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        GoEscapes.write_string_fragment(out, fragment)
    }

    #[inline]
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        out: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        GoEscapes.write_char_escape(out, escape)
    }
}

/// Appends `value` to `out` as one JSON value in `format`.
pub fn write<F: Formatter>(out: &mut Vec<u8>, format: F, value: &impl Serialize) {
    let mut serializer = serde_json::Serializer::with_formatter(out, format);
    // Writing into a Vec cannot fail, and the records are plain structs (no maps with
    // non-string keys), so serialising cannot either.
    let _ = value.serialize(&mut serializer);
}

/// `value` as one spaced record line, with its newline.
pub fn record_line(value: &impl Serialize) -> String {
    let mut out = Vec::with_capacity(128);
    write(&mut out, SpacedRecord, value);
    out.push(b'\n');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01 so the leap day ends each 400/100/4-year cycle.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-26T17:00:00.123456789Z` for a time since the epoch.
pub fn rfc3339_nanos(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (y, mo, d) = civil_date(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn go_escaped(s: &str) -> String {
        let mut out = Vec::new();
        write(&mut out, GoEscapes, &s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_docker() {
        assert_eq!(
            go_escaped("a\"b\\c\n\t\u{1}<&>\u{2028}é"),
            r#""a\"b\\c\n\t\u0001\u003c\u0026\u003e\u2028é""#
        );
        // Go's long forms of backspace and form feed, and U+2029.
        assert_eq!(
            go_escaped("a\"b\\c\n\t\u{1}<&>\u{2028}\u{2029}é\u{8}\u{c}\r\u{1f}"),
            r#""a\"b\\c\n\t\u0001\u003c\u0026\u003e\u2028\u2029é\u0008\u000c\r\u001f""#
        );
        // DEL is not a control character to JSON (nor to Go).
        assert_eq!(go_escaped("\u{7f}"), "\"\u{7f}\"");
        // Other characters of the E2 80 xx block, and the escapes at the edges of a run.
        assert_eq!(go_escaped("\u{2027}\u{202a}"), "\"\u{2027}\u{202a}\"");
        assert_eq!(go_escaped("<\u{2029}x&"), r#""\u003c\u2029x\u0026""#);
    }

    #[test]
    fn records_are_spaced() {
        #[derive(Serialize)]
        struct Record<'a> {
            a: i32,
            b: Option<i32>,
            c: &'a str,
            d: [u8; 2],
        }
        assert_eq!(
            record_line(&Record {
                a: 1,
                b: None,
                c: "<",
                d: [1, 2]
            }),
            "{\"a\": 1, \"b\": null, \"c\": \"\\u003c\", \"d\": [1, 2]}\n"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            rfc3339_nanos(Duration::ZERO),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nanos(Duration::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339_nanos(Duration::new(1_795_712_400, 123_456_789)),
            "2026-11-26T17:00:00.123456789Z"
        );
        assert_eq!(
            rfc3339_nanos(Duration::new(4_102_444_799, 0)),
            "2099-12-31T23:59:59.000000000Z"
        );
    }
}
