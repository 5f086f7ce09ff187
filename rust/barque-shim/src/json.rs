//! The little JSON the shim writes: escaped strings (as Docker's json-file escapes them) and
//! RFC 3339 UTC timestamps, without a serialisation framework in a process that must stay
//! small.

/// Appends `s` as a JSON string literal. `<`, `>`, `&`, U+2028 and U+2029 are escaped too, as
/// Docker's json-file driver does, so lines compare equal with Docker's.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let v = c as u32;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(v >> 4) as usize]);
                out.push(HEX[(v & 0xf) as usize]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

pub fn string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn escapes_like_docker() {
        let mut out = Vec::new();
        push_str(&mut out, "a\"b\\c\n\t\u{1}<&>\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\n\t\u0001\u003c\u0026\u003e\u2028é""#
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
