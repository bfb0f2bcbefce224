//! The private writes of a write transaction, before commit.
//!
//! Keys up to 32 bytes live inline in the index and values are appended to
//! one byte buffer, so a put costs no allocation of its own: a transaction
//! of a million small puts makes a few thousand allocations, not two
//! million (which also leaves the process allocator unfragmented).

use std::collections::BTreeMap;
use std::ops::Bound;

use smallvec::SmallVec;

type InlineKey = SmallVec<[u8; 32]>;

/// Buffered puts and deletes, ordered by key; the last write of a key wins.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    /// Key → value range in `values`, or `None` for a delete.
    index: BTreeMap<InlineKey, Option<(usize, usize)>>,
    values: Vec<u8>,
}

impl WriteBuffer {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let range = match self.index.get(key) {
            // Reuse the space of an overwritten value when the new one fits,
            // so rewriting one key over and over does not grow the buffer.
            Some(Some((start, len))) if *len >= value.len() => {
                self.values[*start..*start + value.len()].copy_from_slice(value);
                (*start, value.len())
            }
            _ => {
                let start = self.values.len();
                self.values.extend_from_slice(value);
                (start, value.len())
            }
        };
        self.index.insert(InlineKey::from_slice(key), Some(range));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.index.insert(InlineKey::from_slice(key), None);
    }

    fn value(&self, range: &Option<(usize, usize)>) -> Option<&[u8]> {
        range.map(|(start, len)| &self.values[start..start + len])
    }

    /// `None` if the key was not written; `Some(None)` if it was deleted.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.index.get(key).map(|range| self.value(range))
    }

    /// Writes with keys within the bounds, in key order (empty when the
    /// bounds are inverted).
    pub fn range<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let inverted = match (lower, upper) {
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) => {
                l >= u
            }
            _ => false,
        };
        // BTreeMap::range panics on inverted bounds.
        (!inverted)
            .then(|| self.index.range::<[u8], _>((lower, upper)))
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_slice(), self.value(v)))
    }

    /// Every write, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
        self.index
            .iter()
            .map(|(k, v)| (k.as_slice(), self.value(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_wins_and_space_is_reused() {
        let mut b = WriteBuffer::default();
        b.put(b"k", b"long value");
        b.put(b"k", b"short");
        assert_eq!(b.get(b"k"), Some(Some(&b"short"[..])));
        assert_eq!(b.values.len(), 10, "the shorter value reused the space");
        b.put(b"k", b"a longer value than before");
        assert_eq!(b.get(b"k"), Some(Some(&b"a longer value than before"[..])));
        b.delete(b"k");
        assert_eq!(b.get(b"k"), Some(None));
        assert_eq!(b.get(b"other"), None);
        b.put(b"a-key-longer-than-thirty-two-bytes-.....", b"");
        assert_eq!(
            b.get(b"a-key-longer-than-thirty-two-bytes-....."),
            Some(Some(&b""[..]))
        );
        let keys: Vec<_> = b.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            keys,
            vec![
                b"a-key-longer-than-thirty-two-bytes-.....".to_vec(),
                b"k".to_vec()
            ]
        );
        assert_eq!(
            b.range(Bound::Included(b"z"), Bound::Excluded(b"a"))
                .count(),
            0
        );
        assert_eq!(b.range(Bound::Excluded(b"a"), Bound::Unbounded).count(), 2);
    }
}
