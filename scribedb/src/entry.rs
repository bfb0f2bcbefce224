//! Vocabulary shared by every layer that stores versions: the memtable, the
//! log and the segment files.

use std::ops::Bound;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64 << 10;
/// Longest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 256 << 20;
/// The longest log whose values can be read (the read windows of
/// `logview.rs` cover it); appends stop there.
pub const MAX_LOG_LEN: u64 = 4 << 40;

/// What a version says about its key. The numbers are the on-disk codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The key has a value.
    Put = 1,
    /// The key was deleted (a tombstone).
    Delete = 2,
}

impl Kind {
    /// The kind with on-disk code `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            _ => None,
        }
    }
}

/// Whether `key` lies at or above a scan's lower bound.
pub fn above_lower(key: &[u8], lower: &Bound<Vec<u8>>) -> bool {
    match lower {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    }
}

/// Whether `key` lies at or below a scan's upper bound.
pub fn below_upper(key: &[u8], upper: &Bound<Vec<u8>>) -> bool {
    match upper {
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
        Bound::Unbounded => true,
    }
}
