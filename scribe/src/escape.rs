//! The escaped text form of keys and values used by `scan --format tsv`,
//! by error messages and, with `--escaped`, by command-line arguments.
//!
//! Printable ASCII stands for itself except the backslash; tab, newline and
//! backslash are `\t`, `\n` and `\\`; every other byte (controls, DEL and
//! all bytes of 0x80 and above) is `\xNN` in lowercase hex. The result is
//! plain ASCII without tabs or newlines, so it is safe in a TSV column, and
//! `unescape` inverts it exactly.

/// The escaped form of `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(bytes, &mut out);
    out
}

/// Append the escaped form of `bytes` to `out`.
pub fn escape_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match b {
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                out.push_str("\\x");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
}

/// The bytes that escaped text `text` stands for. Bytes other than the
/// backslash stand for themselves (so UTF-8 text passes through); a
/// backslash must start `\xNN` (either case of hex), `\t`, `\n` or `\\`.
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let byte = text
                    .get(i + 2..i + 4)
                    .and_then(|d| Some(hex_digit(d[0])? << 4 | hex_digit(d[1])?))
                    .ok_or_else(|| format!("\\x at offset {i} needs two hex digits"))?;
                out.push(byte);
                i += 2;
            }
            Some(&c) => {
                return Err(format!(
                    "unknown escape \\{} at offset {i} (use \\xNN, \\t, \\n or \\\\)",
                    escape(&[c])
                ))
            }
            None => return Err("trailing backslash (write \\\\ for a backslash)".into()),
        }
        i += 2;
    }
    Ok(out)
}

fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_is_not_printable_ascii() {
        assert_eq!(escape(b"plain text 123"), "plain text 123");
        assert_eq!(escape(b"a\tb\nc\\d"), "a\\tb\\nc\\\\d");
        assert_eq!(escape(b"\0\r\x7f\x80\xff"), "\\x00\\x0d\\x7f\\x80\\xff");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn unescape_inverts_escape_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(escape(&all).as_bytes()).unwrap(), all);
    }

    #[test]
    fn unescape_accepts_raw_bytes_and_uppercase_hex() {
        assert_eq!(unescape("é\\xC3\\xA9".as_bytes()).unwrap(), "éé".as_bytes());
        assert_eq!(unescape(b"\xff").unwrap(), b"\xff");
    }

    #[test]
    fn unescape_rejects_malformed_escapes() {
        for bad in [
            &b"\\"[..],
            b"a\\q",
            b"\\x",
            b"\\x4",
            b"\\xg0",
            b"\\x+1",
            b"\\x 1",
        ] {
            assert!(unescape(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
