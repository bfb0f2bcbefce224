//! `scan`: the keys of one range of a snapshot (the newest or one of the
//! past), in either direction, as TSV or JSON lines. Also the entry writer
//! that `dump` shares.

use std::io::Write;
use std::ops::Bound;

use scribedb::ReadTxn;

use super::{flush, stdout};
use crate::cli::Format;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::{escape, jsonl};

/// The keys a scan covers: at or after `lower` and, if `upper` is set,
/// before it. `--prefix`, `--start` and `--end` all narrow it.
#[derive(Debug, PartialEq, Eq)]
pub struct Bounds {
    lower: Vec<u8>,
    upper: Option<Vec<u8>>,
}

impl Bounds {
    pub fn new(prefix: Option<&[u8]>, start: Option<&[u8]>, end: Option<&[u8]>) -> Bounds {
        let lower = prefix.max(start).unwrap_or_default().to_vec();
        let upper = [prefix.and_then(prefix_successor), end.map(<[u8]>::to_vec)]
            .into_iter()
            .flatten()
            .min();
        Bounds { lower, upper }
    }

    fn is_empty(&self) -> bool {
        self.upper
            .as_ref()
            .is_some_and(|upper| self.lower >= *upper)
    }

    fn to_range(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let upper = match &self.upper {
            Some(upper) => Bound::Excluded(upper.as_slice()),
            None => Bound::Unbounded,
        };
        (Bound::Included(self.lower.as_slice()), upper)
    }
}

/// The first key after every key that starts with `prefix`, or `None` if
/// no such key exists (the prefix is empty or all 0xff bytes).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut successor = prefix[..=last].to_vec();
    successor[last] += 1;
    Some(successor)
}

pub fn run(
    txn: &ReadTxn,
    bounds: &Bounds,
    reverse: bool,
    limit: Option<usize>,
    format: Format,
) -> Result<()> {
    let mut out = stdout();
    if !bounds.is_empty() {
        let range = txn.range::<&[u8], _>(bounds.to_range());
        let limit = limit.unwrap_or(usize::MAX);
        let mut writer = EntryWriter::new(format);
        if reverse {
            writer.write_all(&mut out, range.rev().take(limit), None)?;
        } else {
            writer.write_all(&mut out, range.take(limit), None)?;
        }
    }
    flush(out)
}

/// Writes key-value entries in one output format.
pub struct EntryWriter {
    format: Format,
    /// Reused line buffer for TSV.
    line: String,
}

impl EntryWriter {
    pub fn new(format: Format) -> EntryWriter {
        EntryWriter {
            format,
            line: String::new(),
        }
    }

    /// Write every entry of `entries`, counting each in `progress`.
    pub fn write_all<'a>(
        &mut self,
        out: &mut impl Write,
        entries: impl Iterator<Item = scribedb::Result<(&'a [u8], &'a [u8])>>,
        mut progress: Option<&mut Progress>,
    ) -> Result<()> {
        for entry in entries {
            let (key, value) = entry?;
            self.write(out, key, value).map_err(Error::Output)?;
            if let Some(progress) = progress.as_deref_mut() {
                progress.record();
            }
        }
        Ok(())
    }

    fn write(&mut self, out: &mut impl Write, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => jsonl::write_record(out, key, value),
            Format::Tsv => {
                self.line.clear();
                escape::escape_into(key, &mut self.line);
                self.line.push('\t');
                escape::escape_into(value, &mut self.line);
                self.line.push('\n');
                out.write_all(self.line.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(prefix: Option<&str>, start: Option<&str>, end: Option<&str>) -> Bounds {
        Bounds::new(
            prefix.map(str::as_bytes),
            start.map(str::as_bytes),
            end.map(str::as_bytes),
        )
    }

    fn expect(lower: &str, upper: Option<&str>) -> Bounds {
        Bounds {
            lower: lower.as_bytes().to_vec(),
            upper: upper.map(|u| u.as_bytes().to_vec()),
        }
    }

    #[test]
    fn successor_of_a_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn options_intersect() {
        assert_eq!(bounds(None, None, None), expect("", None));
        assert_eq!(
            bounds(Some("user:"), None, None),
            expect("user:", Some("user;"))
        );
        assert_eq!(
            bounds(Some("user:"), Some("user:5"), None),
            expect("user:5", Some("user;"))
        );
        assert_eq!(
            bounds(Some("user:"), Some("a"), Some("user:5")),
            expect("user:", Some("user:5"))
        );
        assert_eq!(bounds(None, Some("b"), Some("d")), expect("b", Some("d")));
        assert_eq!(
            Bounds::new(Some(b"a\x7f\xff"), None, None),
            Bounds {
                lower: b"a\x7f\xff".to_vec(),
                upper: Some(b"a\x80".to_vec())
            }
        );
    }

    #[test]
    fn empty_when_bounds_cross() {
        assert!(bounds(None, Some("d"), Some("b")).is_empty());
        assert!(bounds(None, Some("b"), Some("b")).is_empty());
        assert!(bounds(None, None, Some("")).is_empty());
        assert!(bounds(Some("x"), None, Some("a")).is_empty());
        assert!(!bounds(None, Some("b"), Some("b\0")).is_empty());
        assert!(!bounds(Some(""), None, None).is_empty());
    }
}
