//! Merging sorted sources of visible keys into one view.
//!
//! A read sees the memtable, a sealed memtable waiting for its flush and
//! the segments, each as a double-ended iterator of `(key, value or
//! tombstone)` in key order at the reader's snapshot. Sources are given in
//! priority order: a source's commits are all newer than those of every
//! source after it (the memtable is newer than the sealed one, which is
//! newer than any segment; level 0 segments are newest first, and deeper
//! levels are older still), so for a key present in several sources the
//! first one's version is the one visible at the snapshot.

use crate::error::Result;
use crate::memtable::VisibleIter;
use crate::segment::SegmentIter;

/// A key's visible value, `None` for a tombstone.
pub(crate) type Item<'a> = (&'a [u8], Option<&'a [u8]>);

/// One source of a merge: a memtable or a segment (a concrete type each,
/// so that a step is a direct call).
pub(crate) enum Source<'a> {
    Memtable(VisibleIter<'a>),
    Segment(SegmentIter<'a>),
    #[cfg(test)]
    Other(Box<dyn DoubleEndedIterator<Item = Result<Item<'a>>> + Send + 'a>),
}

impl<'a> Source<'a> {
    /// Ask for the memory the first forward step will read (a hint).
    fn prefetch_front(&mut self, stage: Stage) {
        match self {
            Source::Memtable(it) => it.prefetch_front(stage == Stage::Slots),
            Source::Segment(it) => it.prefetch_front(stage == Stage::Slots),
            #[cfg(test)]
            Source::Other(_) => {}
        }
    }
}

/// The two rounds of asking for memory ahead of the first step: first the
/// hash slots of every source, then (once they have arrived together) what
/// they name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Slots,
    Entries,
}

impl<'a> Iterator for Source<'a> {
    type Item = Result<Item<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Source::Memtable(it) => it.next(),
            Source::Segment(it) => it.next(),
            #[cfg(test)]
            Source::Other(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for Source<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Source::Memtable(it) => it.next_back(),
            Source::Segment(it) => it.next_back(),
            #[cfg(test)]
            Source::Other(it) => it.next_back(),
        }
    }
}

/// A double-ended iterator whose next item at either end can be peeked.
/// When the middle runs dry, an end takes the item peeked at the other.
pub(crate) struct Ends<I: DoubleEndedIterator> {
    iter: I,
    front: Option<I::Item>,
    back: Option<I::Item>,
}

impl<I: DoubleEndedIterator> Ends<I> {
    pub fn new(iter: I) -> Self {
        Ends {
            iter,
            front: None,
            back: None,
        }
    }

    pub fn peek(&mut self, back: bool) -> Option<&I::Item> {
        let (mine, other) = if back {
            (&mut self.back, &mut self.front)
        } else {
            (&mut self.front, &mut self.back)
        };
        if mine.is_none() {
            *mine = if back {
                self.iter.next_back()
            } else {
                self.iter.next()
            }
            .or_else(|| other.take());
        }
        mine.as_ref()
    }

    pub fn take(&mut self, back: bool) -> Option<I::Item> {
        self.peek(back);
        if back {
            self.back.take()
        } else {
            self.front.take()
        }
    }
}

/// The merge of several sources, newest first; yields only keys whose
/// newest version is a put.
pub(crate) struct MergeIter<'a> {
    sources: Vec<Ends<Source<'a>>>,
    /// Whether a forward step has been taken (the first one asks for the
    /// sources' starting points together, so that their cache misses
    /// overlap).
    started: bool,
    done: bool,
}

impl<'a> MergeIter<'a> {
    pub fn new(sources: Vec<Ends<Source<'a>>>) -> Self {
        MergeIter {
            sources,
            started: false,
            done: false,
        }
    }

    fn step(&mut self, back: bool) -> Option<Result<(&'a [u8], &'a [u8])>> {
        if self.done {
            return None;
        }
        if !back && !self.started {
            self.started = true;
            for stage in [Stage::Slots, Stage::Entries] {
                for s in &mut self.sources {
                    s.iter.prefetch_front(stage);
                }
            }
        }
        loop {
            // The source whose next key comes first in this direction; the
            // earliest such source on ties.
            let mut best: Option<(usize, &'a [u8])> = None;
            for (i, s) in self.sources.iter_mut().enumerate() {
                match s.peek(back) {
                    None => {}
                    Some(Err(_)) => {
                        self.done = true;
                        return match s.take(back) {
                            Some(Err(e)) => Some(Err(e)),
                            _ => None,
                        };
                    }
                    Some(Ok((k, _))) => {
                        let better = match best {
                            None => true,
                            Some((_, b)) => {
                                if back {
                                    *k > b
                                } else {
                                    *k < b
                                }
                            }
                        };
                        if better {
                            best = Some((i, k));
                        }
                    }
                }
            }
            let (winner, key) = best?;
            // Older versions of the same key in later sources are hidden.
            for s in &mut self.sources[winner + 1..] {
                if matches!(s.peek(back), Some(Ok((k, _))) if *k == key) {
                    s.take(back);
                }
            }
            match self.sources[winner].take(back) {
                Some(Ok((k, Some(v)))) => return Some(Ok((k, v))),
                Some(Ok((_, None))) => continue,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => return None,
            }
        }
    }
}

impl<'a> Iterator for MergeIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for MergeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(items: &'static [(&'static [u8], Option<&'static [u8]>)]) -> Ends<Source<'static>> {
        Ends::new(Source::Other(Box::new(
            items.iter().map(|&(k, v)| Ok((k, v))),
        )))
    }

    #[test]
    fn newer_sources_win_and_tombstones_hide() {
        let merged = || {
            MergeIter::new(vec![
                source(&[(b"a", Some(b"new")), (b"c", None)]),
                source(&[(b"a", Some(b"old")), (b"b", Some(b"b")), (b"c", Some(b"c"))]),
                source(&[(b"d", Some(b"d"))]),
            ])
        };
        let fwd: Vec<_> = merged().map(|r| r.unwrap()).collect();
        let want: Vec<(&[u8], &[u8])> = vec![(b"a", b"new"), (b"b", b"b"), (b"d", b"d")];
        assert_eq!(fwd, want);
        let mut rev: Vec<_> = merged().rev().map(|r| r.unwrap()).collect();
        rev.reverse();
        assert_eq!(rev, want);
        // From both ends: every key once.
        let mut m = merged();
        let first = m.next().unwrap().unwrap();
        let last = m.next_back().unwrap().unwrap();
        let middle: Vec<_> = m.map(|r| r.unwrap()).collect();
        assert_eq!(first, want[0]);
        assert_eq!(last, want[2]);
        assert_eq!(middle, vec![want[1]]);
    }
}
