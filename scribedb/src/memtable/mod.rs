//! The version store: every committed version of every key, in shared
//! memory-mapped arenas, as one skiplist ordered by (key, timestamp desc).
//!
//! Readers in any process search it without locks; only the holder of the
//! writer role inserts. A snapshot at timestamp S sees, for each key, the
//! newest version with `ts <= S`; versions of commits not yet published have
//! larger timestamps and are skipped.

pub(crate) mod arena;
pub(crate) mod skiplist;

use std::ops::Bound;

use crate::error::Result;
pub(crate) use arena::{Arenas, Kind, Node};
pub(crate) use skiplist::{Inserter, SkipList};

/// A double-ended iterator over the keys visible at one snapshot within
/// `[lower, upper]`, yielding `(key, value)` slices of the mapping.
pub(crate) struct VisibleIter<'a> {
    list: SkipList<'a>,
    snapshot: u64,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Next node to examine going forward; `None` before the first step.
    front: Option<Option<Node<'a>>>,
    /// Last key yielded going forward / backward: the two ends never cross.
    last_front: Option<&'a [u8]>,
    last_back: Option<&'a [u8]>,
    done: bool,
}

fn above_lower(key: &[u8], lower: &Bound<Vec<u8>>) -> bool {
    match lower {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    }
}

fn below_upper(key: &[u8], upper: &Bound<Vec<u8>>) -> bool {
    match upper {
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
        Bound::Unbounded => true,
    }
}

impl<'a> VisibleIter<'a> {
    pub fn new(
        list: SkipList<'a>,
        snapshot: u64,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Self {
        VisibleIter {
            list,
            snapshot,
            lower,
            upper,
            front: None,
            last_front: None,
            last_back: None,
            done: false,
        }
    }

    fn step_front(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        let mut cur = match self.front.take() {
            Some(cur) => cur,
            None => match &self.lower {
                Bound::Included(l) => self.list.seek_ge(l, u64::MAX)?,
                Bound::Excluded(l) => {
                    let mut n = self.list.seek_ge(l, u64::MAX)?;
                    while let Some(node) = n.filter(|n| n.key() == l.as_slice()) {
                        n = self.list.next(&node)?;
                    }
                    n
                }
                Bound::Unbounded => self.list.first()?,
            },
        };
        while let Some(node) = cur {
            let key = node.key();
            if !below_upper(key, &self.upper) || self.last_back.is_some_and(|b| key >= b) {
                break;
            }
            // Versions of `key` come newest first: take the first one visible.
            let mut visible = None;
            let mut n = Some(node);
            while let Some(v) = n.filter(|v| v.key() == key) {
                if visible.is_none() && v.ts <= self.snapshot {
                    visible = Some(v);
                }
                n = self.list.next(&v)?;
            }
            cur = n;
            if let Some(v) = visible.filter(|v| v.kind == Kind::Put) {
                self.front = Some(cur);
                self.last_front = Some(key);
                return Ok(Some((key, v.value())));
            }
        }
        self.front = Some(None);
        Ok(None)
    }

    fn step_back(&mut self) -> Result<Option<(&'a [u8], &'a [u8])>> {
        // The oldest version of the last key below the current upper end.
        let mut cur = match (self.last_back, &self.upper) {
            (Some(b), _) => self.list.last_below(b, false)?,
            (None, Bound::Included(u)) => self.list.last_below(u, true)?,
            (None, Bound::Excluded(u)) => self.list.last_below(u, false)?,
            (None, Bound::Unbounded) => self.list.last()?,
        };
        while let Some(node) = cur {
            let key = node.key();
            if !above_lower(key, &self.lower) || self.last_front.is_some_and(|f| key <= f) {
                break;
            }
            if let Some(v) = self
                .list
                .get(key, self.snapshot)?
                .filter(|v| v.kind == Kind::Put)
            {
                self.last_back = Some(key);
                return Ok(Some((key, v.value())));
            }
            cur = self.list.last_below(key, false)?;
        }
        Ok(None)
    }

    fn finish(
        &mut self,
        r: Result<Option<(&'a [u8], &'a [u8])>>,
    ) -> Option<Result<(&'a [u8], &'a [u8])>> {
        match r {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<'a> Iterator for VisibleIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step_front();
        self.finish(r)
    }
}

impl<'a> DoubleEndedIterator for VisibleIter<'a> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.step_back();
        self.finish(r)
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}
