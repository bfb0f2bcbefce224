//! The version store: every committed version of every key, in shared
//! memory-mapped arenas, as one skiplist ordered by (key, timestamp desc).
//!
//! Readers in any process search it without locks; only the holder of the
//! writer role inserts. A snapshot at timestamp S sees, for each key, the
//! newest version with `ts <= S`; versions of commits not yet published have
//! larger timestamps and are skipped.

pub(crate) mod arena;
pub(crate) mod fence;
pub(crate) mod key_index;
pub(crate) mod skiplist;

use std::cmp::Ordering;
use std::ops::Bound;

use crate::entry::{above_lower, below_upper};
use crate::error::Result;
pub(crate) use arena::{cmp_keys, version_bytes_bound, Arenas, Kind, Node, StoredValue};
use key_index::MAX_WALK;
pub(crate) use skiplist::{Inserter, SkipList, SpreadEntry};

/// A key's visible value, `None` for a tombstone.
pub(crate) type Visible<'a> = (&'a [u8], Option<&'a [u8]>);

/// A double-ended iterator over the keys visible at one snapshot within
/// `[lower, upper]`, yielding `(key, value)` slices of the mapping. With
/// `tombstones`, a key whose visible version is a delete is yielded with
/// `None`, so that a merge with older sources can hide their versions.
pub(crate) struct VisibleIter<'a> {
    list: SkipList<'a>,
    snapshot: u64,
    tombstones: bool,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Where the front stands.
    front: Front<'a>,
    /// Last key yielded going forward / backward: the two ends never cross.
    last_front: Option<&'a [u8]>,
    last_back: Option<&'a [u8]>,
    /// Going backward: entries of the current batch, in ascending order,
    /// and where the next batch ends.
    back_batch: Vec<Visible<'a>>,
    back_end: BackEnd<'a>,
    done: bool,
}

/// The visible version of a key, and the first node of the next key.
type VisibleNode<'a> = (Option<Node<'a>>, Option<Node<'a>>);

/// The position of a forward scan.
#[derive(Clone, Copy)]
enum Front<'a> {
    /// Before the first step.
    Unpositioned,
    /// At the first node of a key (`None`: past the end).
    At(Option<Node<'a>>),
    /// Just after yielding this node, the newest version of its key: the
    /// key's older versions are passed over at the next step, so a scan
    /// that stops here (or a merge that never takes its next key) does not
    /// wait for the node after it.
    Yielded(Node<'a>),
}

/// The exclusive end of the next backward batch.
#[derive(Clone, Copy)]
enum BackEnd<'a> {
    /// The iterator's own upper bound.
    Upper,
    /// Keys below this one.
    Below(&'a [u8]),
    /// Nothing is left below.
    Exhausted,
}

/// A backward batch starts at a node reaching this level: about 2^4 nodes
/// before its end, so one search serves about 16 steps.
const BACK_BATCH_LEVEL: usize = 4;

impl<'a> VisibleIter<'a> {
    pub fn new(
        list: SkipList<'a>,
        snapshot: u64,
        tombstones: bool,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Self {
        VisibleIter {
            list,
            snapshot,
            tombstones,
            lower,
            upper,
            front: Front::Unpositioned,
            last_front: None,
            last_back: None,
            back_batch: Vec::new(),
            back_end: BackEnd::Upper,
            done: false,
        }
    }

    /// Ask for what the first forward step reads: the lower bound's key
    /// index slot (`slots`), else the fences around it. A hint only, for a
    /// merge that starts several sources at once.
    pub fn prefetch_front(&self, slots: bool) {
        if !matches!(self.front, Front::Unpositioned) {
            return;
        }
        if let Bound::Included(l) | Bound::Excluded(l) = &self.lower {
            if slots {
                self.list.prefetch_slot(l);
            } else {
                self.list.prefetch_fences(l);
            }
        }
    }

    /// Where a forward scan starts.
    fn seek_front(&self) -> Result<Option<Node<'a>>> {
        let first = match &self.lower {
            Bound::Included(l) => self.list.seek_key(l)?,
            Bound::Excluded(l) => {
                let mut n = self.list.seek_key(l)?;
                while let Some(node) = n.filter(|n| n.key() == l.as_slice()) {
                    n = self.list.next(&node)?;
                }
                n
            }
            Bound::Unbounded => self.list.first()?,
        };
        // The first value of the scan: asked for now, it arrives while the
        // key's versions are walked (later ones are asked for a step ahead).
        if let Some(node) = &first {
            node.prefetch_value();
        }
        Ok(first)
    }

    /// The item for a key's visible version, if it yields one.
    #[inline(always)]
    fn item(&self, key: &'a [u8], visible: Option<Node<'a>>) -> Result<Option<Visible<'a>>> {
        match visible {
            Some(v) if v.kind == Kind::Put => Ok(Some((key, Some(v.value()?)))),
            Some(_) if self.tombstones => Ok(Some((key, None))),
            _ => Ok(None),
        }
    }

    fn step_front(&mut self) -> Result<Option<Visible<'a>>> {
        let mut cur = match self.front {
            Front::Unpositioned => self.seek_front()?,
            Front::At(cur) => cur,
            Front::Yielded(node) => self.next_key(node)?,
        };
        while let Some(node) = cur {
            let key = node.key();
            if !below_upper(key, &self.upper) || self.last_back.is_some_and(|b| key >= b) {
                break;
            }
            if node.ts <= self.snapshot {
                // The newest version is the visible one (the common case):
                // the rest of the key is passed over at the next step, and
                // the node after it is asked for meanwhile.
                if let Some(item) = self.item(key, Some(node))? {
                    self.list.prefetch_next(&node);
                    self.front = Front::Yielded(node);
                    self.last_front = Some(key);
                    return Ok(Some(item));
                }
                cur = self.next_key(node)?;
                continue;
            }
            let (visible, after) = self.visible_version(node)?;
            cur = after;
            if let Some(item) = self.item(key, visible)? {
                self.front = Front::At(cur);
                self.last_front = Some(key);
                return Ok(Some(item));
            }
        }
        self.front = Front::At(None);
        Ok(None)
    }

    /// The first node of the key after `node`'s.
    fn next_key(&self, node: Node<'a>) -> Result<Option<Node<'a>>> {
        let key = node.key();
        let mut v = node;
        for _ in 0..MAX_WALK {
            let Some(next) = self.list.next(&v)? else {
                return Ok(None);
            };
            match cmp_keys(next.key(), key) {
                Ordering::Greater => {
                    next.prefetch_value();
                    return Ok(Some(next));
                }
                Ordering::Equal if next.ts < v.ts => v = next,
                _ => return Err(next.corrupted("link leads backwards (a cycle in a corrupt file)")),
            }
        }
        // A key overwritten many times since the last flush: one search
        // passes over the rest of its versions, instead of a walk as long
        // as the key's history. Entries order (key, newest first), and no
        // commit has timestamp 0, so (key, 0) follows all of them.
        let next = self.list.seek_ge(key, 0)?;
        match &next {
            Some(n) if cmp_keys(n.key(), key).is_le() => {
                Err(n.corrupted("search leads backwards (a corrupt file)"))
            }
            Some(n) => {
                n.prefetch_value();
                Ok(next)
            }
            None => Ok(None),
        }
    }

    /// From the newest version of a key, the version visible at the
    /// snapshot (if any) and the first node of the next key.
    // Inlined: it is the body of every scan step.
    #[inline(always)]
    fn visible_version(&self, newest: Node<'a>) -> Result<VisibleNode<'a>> {
        let key = newest.key();
        // Versions come newest first: the first one at or below the
        // snapshot is the visible one.
        let mut visible = (newest.ts <= self.snapshot).then_some(newest);
        let mut v = newest;
        let mut walked = 0;
        loop {
            walked += 1;
            if walked > MAX_WALK {
                // A key overwritten many times since the last flush: a
                // search finds the visible version (an old reader's), and
                // `next_key` passes over the rest with another.
                let visible = match visible {
                    Some(n) => n,
                    None => match self.list.seek_ge(key, self.snapshot)? {
                        Some(n) if cmp_keys(n.key(), key).is_eq() && n.ts <= self.snapshot => n,
                        Some(n) if cmp_keys(n.key(), key).is_gt() => return Ok((None, Some(n))),
                        Some(n) => {
                            return Err(n.corrupted("search leads backwards (a corrupt file)"))
                        }
                        None => return Ok((None, None)),
                    },
                };
                return Ok((Some(visible), self.next_key(visible)?));
            }
            let Some(next) = self.list.next(&v)? else {
                return Ok((visible, None));
            };
            // One comparison both finds the end of the key's versions and
            // checks that the link leads forward: scans follow links for as
            // long as they do, so a corrupt file gives an error, not an
            // endless loop.
            match cmp_keys(next.key(), key) {
                Ordering::Greater => {
                    // Most likely the next value to be read: ask for it
                    // while the caller deals with this one.
                    next.prefetch_value();
                    return Ok((visible, Some(next)));
                }
                Ordering::Equal if next.ts < v.ts => {
                    if visible.is_none() && next.ts <= self.snapshot {
                        visible = Some(next);
                    }
                    v = next;
                }
                _ => return Err(next.corrupted("link leads backwards (a cycle in a corrupt file)")),
            }
        }
    }

    fn step_back(&mut self) -> Result<Option<Visible<'a>>> {
        loop {
            if let Some((key, value)) = self.back_batch.pop() {
                if self.last_front.is_some_and(|f| key <= f) {
                    return Ok(None);
                }
                self.last_back = Some(key);
                return Ok(Some((key, value)));
            }
            if matches!(self.back_end, BackEnd::Exhausted) {
                return Ok(None);
            }
            self.fill_back_batch()?;
        }
    }

    /// Collect the visible entries of the next batch below `back_end`:
    /// jump back to a node of a high level with one search, then walk
    /// forward at level 0 as `step_front` does.
    fn fill_back_batch(&mut self) -> Result<()> {
        let (end, inclusive) = match (self.back_end, &self.upper) {
            (BackEnd::Below(k), _) => (Some(k), false),
            (_, Bound::Included(u)) => (Some(u.as_slice()), true),
            (_, Bound::Excluded(u)) => (Some(u.as_slice()), false),
            (_, Bound::Unbounded) => (None, false),
        };
        let before_end = |key: &[u8]| match end {
            Some(e) if inclusive => key <= e,
            Some(e) => key < e,
            None => true,
        };
        let anchor = self.list.last_below_at(BACK_BATCH_LEVEL, end, inclusive)?;
        // Start at the newest version of the anchor's key.
        let mut cur = match &anchor {
            Some(a) => self.list.seek_key(a.key())?,
            None => self.list.first()?,
        };
        let start = cur.map(|n| n.key());
        self.back_end = match start {
            Some(k) if anchor.is_some() => BackEnd::Below(k),
            _ => BackEnd::Exhausted,
        };
        if start.is_some_and(|k| {
            !above_lower(k, &self.lower) || self.last_front.is_some_and(|f| k <= f)
        }) {
            self.back_end = BackEnd::Exhausted;
        }
        while let Some(node) = cur {
            let key = node.key();
            if !before_end(key) {
                break;
            }
            let (visible, after) = self.visible_version(node)?;
            cur = after;
            let wanted = above_lower(key, &self.lower) && self.last_front.is_none_or(|f| key > f);
            if !wanted {
                continue;
            }
            if let Some(item) = self.item(key, visible)? {
                self.back_batch.push(item);
            }
        }
        Ok(())
    }

    fn finish(&mut self, r: Result<Option<Visible<'a>>>) -> Option<Result<Visible<'a>>> {
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
    type Item = Result<Visible<'a>>;

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
