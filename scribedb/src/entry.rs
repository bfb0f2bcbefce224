//! Vocabulary shared by every layer that stores versions: the memtable, the
//! log and the segment files.

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
