//! The JSON-lines record format of `dump`, `load` and `scan --format jsonl`.
//!
//! One JSON object per line with one key field and one value field. A key
//! or value that is valid UTF-8 is a JSON string under `"key"` / `"value"`;
//! anything else is standard base64 (with padding) under `"key_b64"` /
//! `"value_b64"`:
//!
//! ```text
//! {"key":"user:1","value":"Ada"}
//! {"key":"blob","value_b64":"AP8="}
//! {"key":"empty","value":""}
//! ```
//!
//! Reading accepts either spelling for any bytes (base64 of valid UTF-8 is
//! fine), ignores blank lines, and rejects unknown fields, a missing field,
//! or both spellings of the same field, so a typo cannot silently load the
//! wrong bytes.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Out<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_b64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In {
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
}

/// The text form of `bytes`: itself if UTF-8, otherwise its base64.
fn text_or_base64(bytes: &[u8]) -> (Option<&str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

/// Write the record for one key and value, with its newline.
pub fn write_record(out: &mut impl Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    let (key, key_b64) = text_or_base64(key);
    let (value, value_b64) = text_or_base64(value);
    let record = Out {
        key,
        key_b64,
        value,
        value_b64,
    };
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}

/// Whether a line holds no record (only whitespace).
pub fn is_blank(line: &[u8]) -> bool {
    line.trim_ascii().is_empty()
}

/// The key and value of one record line (a trailing newline is allowed).
pub fn parse_record(line: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let record: In = serde_json::from_slice(line).map_err(describe_json_error)?;
    let key = field("key", record.key, record.key_b64)?;
    let value = field("value", record.value, record.value_b64)?;
    Ok((key, value))
}

/// serde_json's message with the position as a column only: a record is
/// one line, and the caller names the line of the input.
fn describe_json_error(e: serde_json::Error) -> String {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) if e.line() > 0 => &message[..at],
        _ => &message,
    };
    format!("bad record at column {}: {message}", e.column())
}

fn field(name: &str, text: Option<String>, b64: Option<String>) -> Result<Vec<u8>, String> {
    match (text, b64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(b64)) => BASE64
            .decode(b64)
            .map_err(|e| format!("\"{name}_b64\" is not valid base64: {e}")),
        (Some(_), Some(_)) => Err(format!(
            "record has both \"{name}\" and \"{name}_b64\"; it needs exactly one"
        )),
        (None, None) => Err(format!("record has neither \"{name}\" nor \"{name}_b64\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(key: &[u8], value: &[u8]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, key, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_stays_text_and_bytes_become_base64() {
        assert_eq!(encode(b"k", b"v"), "{\"key\":\"k\",\"value\":\"v\"}\n");
        assert_eq!(encode(b"k", b""), "{\"key\":\"k\",\"value\":\"\"}\n");
        assert_eq!(
            encode(b"\xff", b"\x00\xfe"),
            "{\"key_b64\":\"/w==\",\"value_b64\":\"AP4=\"}\n"
        );
        // Valid UTF-8 with controls is still text; JSON escapes the controls.
        assert_eq!(
            encode("é\n\0\"".as_bytes(), b"x"),
            "{\"key\":\"é\\n\\u0000\\\"\",\"value\":\"x\"}\n"
        );
    }

    #[test]
    fn round_trips_arbitrary_bytes() {
        let samples: [&[u8]; 7] = [
            b"",
            b"plain",
            b"\0",
            b"line\nbreak\r\n",
            b"\xc3\xa9\xc3",
            b"\x80\x81\xff\xfe",
            "κλειδί 🔑".as_bytes(),
        ];
        for key in samples {
            for value in samples {
                let line = encode(key, value);
                assert_eq!(line.matches('\n').count(), 1, "{line}");
                let (k, v) = parse_record(line.as_bytes()).unwrap();
                assert_eq!((k.as_slice(), v.as_slice()), (key, value), "{line}");
            }
        }
    }

    #[test]
    fn accepts_base64_for_text_and_any_field_order() {
        let (k, v) = parse_record(br#"{"value":"1","key_b64":"YWJj"}"#).unwrap();
        assert_eq!((k.as_slice(), v.as_slice()), (&b"abc"[..], &b"1"[..]));
    }

    #[test]
    fn rejects_malformed_records() {
        let cases: [(&str, &str); 8] = [
            ("not json", "bad record"),
            (r#"{"key":"a"}"#, "neither \"value\" nor \"value_b64\""),
            (r#"{"value":"a"}"#, "neither \"key\" nor \"key_b64\""),
            (r#"{"key":"a","key_b64":"YQ==","value":""}"#, "both"),
            (r#"{"key":"a","value_b64":"!!"}"#, "not valid base64"),
            (r#"{"key":"a","value":"b","extra":1}"#, "unknown field"),
            (r#"{"key":1,"value":"b"}"#, "bad record"),
            (r#"{"key":"a","key":"b","value":"c"}"#, "duplicate field"),
        ];
        for (line, expected) in cases {
            let err = parse_record(line.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }
}
