//! The private writes of a write transaction, before commit.
//!
//! A put must be cheap even when a transaction holds millions of random
//! keys, so the buffer is an append-only log rather than an ordered tree:
//! keys and values are appended to two byte buffers, each distinct key has
//! one fixed-size entry, and a hash index maps a key to its entry for
//! last-write-wins and read-your-writes. A put is then one hash of the key,
//! about one cache miss in the index and three appends; no put allocates on
//! its own, so a transaction of a million small puts makes about a hundred
//! allocations, not millions, and leaves the process allocator
//! unfragmented.
//!
//! Key order is needed only by `range` and `iter` (scans and commit), so it
//! is built then, by sorting entry numbers. Sorting compares an inline
//! eight-byte key prefix first and touches key bytes only on ties, so it
//! stays within a small array instead of chasing every key. The order is
//! kept in two parts so that a transaction which alternates new keys and
//! scans does not re-sort everything for every scan; see [`WriteBuffer`].

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::memtable::arena::key_prefix;
use crate::prefetch::prefetch;

/// How far ahead of a key-ordered walk its entries, and their keys and
/// values, are prefetched.
const FAR: usize = 16;
const NEAR: usize = 8;

use crate::db::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// `Entry::value_len` of a delete. Lengths are stored as `u32` because
/// keys and values are checked against the database limits before they get
/// here, and both limits are far below this marker.
const DELETED: u32 = u32::MAX;
const _: () = assert!(MAX_KEY_LEN < DELETED as usize);
const _: () = assert!(MAX_VALUE_LEN < DELETED as usize);

/// The write of one distinct key: where its key and value live in the
/// byte buffers.
#[derive(Clone, Copy)]
struct Entry {
    key_start: usize,
    value_start: usize,
    key_len: u32,
    /// [`DELETED`] for a delete.
    value_len: u32,
}

/// A length that the database limits guarantee fits in a `u32`.
fn stored_len(len: usize) -> u32 {
    u32::try_from(len)
        .ok()
        .filter(|&len| len != DELETED)
        .expect("keys and values are checked against the database limits before buffering")
}

/// The bytes of every write, in the order they were first written.
#[derive(Default)]
struct Log {
    keys: Vec<u8>,
    values: Vec<u8>,
    entries: Vec<Entry>,
}

impl Log {
    /// Start loading what a walk along `ahead` (a key-ordered run) reads
    /// soon: the entry [`FAR`] items on, and the key and value of the one
    /// [`NEAR`] items on, whose entry should have arrived by now. Entries,
    /// keys and values sit in the order keys were first written, so in key
    /// order every read would otherwise wait on memory.
    #[inline]
    fn prefetch_ahead(&self, ahead: &[SortKey]) {
        if let Some(far) = ahead.get(FAR) {
            prefetch(self.entries.as_ptr().wrapping_add(far.entry));
        }
        if let Some(near) = ahead.get(NEAR) {
            if let Some(e) = self.entries.get(near.entry) {
                prefetch(self.keys.as_ptr().wrapping_add(e.key_start));
                prefetch(self.values.as_ptr().wrapping_add(e.value_start));
            }
        }
    }

    fn key(&self, entry: usize) -> &[u8] {
        let e = &self.entries[entry];
        &self.keys[e.key_start..e.key_start + e.key_len as usize]
    }

    fn value(&self, entry: usize) -> Option<&[u8]> {
        let e = &self.entries[entry];
        (e.value_len != DELETED).then(|| &self.values[e.value_start..][..e.value_len as usize])
    }

    fn item(&self, entry: usize) -> (&[u8], Option<&[u8]>) {
        (self.key(entry), self.value(entry))
    }

    /// Append `value` and return where it went.
    fn append_value(&mut self, value: &[u8]) -> (usize, u32) {
        let start = self.values.len();
        self.values.extend_from_slice(value);
        (start, stored_len(value.len()))
    }

    /// Set the value of an existing entry (`None` deletes). A value that
    /// fits in the space of the one it replaces reuses that space, so
    /// rewriting one key over and over does not grow the buffer.
    fn set_value(&mut self, entry: usize, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.entries[entry].value_len = DELETED;
            return;
        };
        let e = self.entries[entry];
        let (start, len) = if e.value_len != DELETED && e.value_len as usize >= value.len() {
            self.values[e.value_start..][..value.len()].copy_from_slice(value);
            (e.value_start, stored_len(value.len()))
        } else {
            self.append_value(value)
        };
        let e = &mut self.entries[entry];
        e.value_start = start;
        e.value_len = len;
    }

    /// Append an entry for a key not written before; returns its number.
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> usize {
        let (value_start, value_len) = match value {
            Some(value) => self.append_value(value),
            None => (self.values.len(), DELETED),
        };
        let key_start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.entries.push(Entry {
            key_start,
            value_start,
            key_len: stored_len(key.len()),
            value_len,
        });
        self.entries.len() - 1
    }

    fn sort_key(&self, entry: usize) -> SortKey {
        SortKey {
            prefix: key_prefix(self.key(entry)),
            entry,
        }
    }

    /// Key order of two entries: prefixes first, key bytes only on a tie.
    fn cmp(&self, a: &SortKey, b: &SortKey) -> Ordering {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| self.key(a.entry).cmp(self.key(b.entry)))
    }

    /// Order of an entry relative to `key`, whose prefix is `prefix`.
    fn cmp_key(&self, a: &SortKey, key: &[u8], prefix: u64) -> Ordering {
        a.prefix
            .cmp(&prefix)
            .then_with(|| self.key(a.entry).cmp(key))
    }

    /// The entries from `first` on, in key order.
    fn sorted_from(&self, first: usize) -> Vec<SortKey> {
        let mut order: Vec<SortKey> = (first..self.entries.len())
            .map(|entry| self.sort_key(entry))
            .collect();
        // Sorting by prefix alone compares plain numbers; only the keys
        // that share a prefix then need their bytes compared.
        order.sort_unstable_by_key(|item| item.prefix);
        for run in order.chunk_by_mut(|a, b| a.prefix == b.prefix) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| self.cmp(a, b));
            }
        }
        order
    }

    /// Merge the key-ordered run `recent` into the key-ordered run
    /// `settled`, in place; no key is in both.
    ///
    /// Merging runs from the back: each item of `recent`, largest first, is
    /// found in what is left of `settled` by a search that gallops from the
    /// end, and the block of `settled` after it moves up in one copy. When
    /// `recent` is short, that is a few comparisons per item and one pass of
    /// copying, rather than a comparison per item of `settled`.
    fn merge_into(&self, settled: &mut Vec<SortKey>, recent: &[SortKey]) {
        let mut end = settled.len();
        let mut free = end + recent.len();
        settled.resize(free, SortKey::default());
        for item in recent.iter().rev() {
            let before = self.count_before(&settled[..end], item);
            let after = end - before;
            settled.copy_within(before..end, free - after);
            free -= after + 1;
            settled[free] = *item;
            end = before;
        }
    }

    /// The number of items of the key-ordered `run` that sort before
    /// `item`, searching from the end in doubling steps and then by halves.
    fn count_before(&self, run: &[SortKey], item: &SortKey) -> usize {
        // Every item of `run[high..]` sorts after `item`.
        let mut high = run.len();
        let mut step = 1;
        loop {
            let low = high.saturating_sub(step);
            if low == 0 || self.cmp(&run[low], item).is_lt() {
                return low + run[low..high].partition_point(|x| self.cmp(x, item).is_lt());
            }
            high = low;
            step *= 2;
        }
    }

    /// The part of the key-ordered run `order` within the bounds (empty
    /// when they are inverted).
    fn within<'o>(
        &self,
        order: &'o [SortKey],
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> &'o [SortKey] {
        // The number of leading items that sort before `key`, or before or
        // at it when `at_too`.
        let count_before = |key: &[u8], at_too: bool| {
            let prefix = key_prefix(key);
            order.partition_point(|item| match self.cmp_key(item, key, prefix) {
                Ordering::Less => true,
                Ordering::Equal => at_too,
                Ordering::Greater => false,
            })
        };
        let start = match lower {
            Bound::Included(key) => count_before(key, false),
            Bound::Excluded(key) => count_before(key, true),
            Bound::Unbounded => 0,
        };
        let end = match upper {
            Bound::Included(key) => count_before(key, true),
            Bound::Excluded(key) => count_before(key, false),
            Bound::Unbounded => order.len(),
        };
        &order[start..end.max(start)]
    }
}

/// An entry in a key-ordered run, with its key prefix inline so that
/// sorting and searching rarely leave the run.
#[derive(Clone, Copy, Default)]
struct SortKey {
    prefix: u64,
    entry: usize,
}

/// Slots in the first index; the index doubles when three quarters full.
const MIN_SLOTS: usize = 16;

/// Where a key is in the [`HashIndex`]: its full hash, so that growing
/// need not rehash any key, and its entry number.
#[derive(Clone, Copy, Default)]
struct Slot {
    hash: u64,
    entry: usize,
}

/// Where a key is, or would go, in the [`HashIndex`].
enum Probe {
    Found(usize),
    Vacant(usize),
}

/// Key → entry number, by open addressing with linear probing.
///
/// Each slot has a one-byte tag in a separate array: zero when the slot is
/// free, else seven bits of the key's hash. The tags take an eighth of the
/// memory of the slots, so they mostly stay in cache, and a put of a new
/// key usually reads only its tag and writes its slot without waiting for
/// memory; a probe past another key reads that key only when the tags
/// match.
///
/// Entries are never removed (a delete is an entry too), so the index needs
/// no tombstones. Growing walks the old slots in order, and each lands near
/// its old position or half the new table further, so a rebuild streams
/// through memory instead of missing the cache once per key.
///
/// The hash is XXH3-64, seeded per buffer so that no fixed set of keys
/// collides in every transaction. Keys that do
/// collide only make probes longer: matches are always confirmed on the
/// full key bytes.
struct HashIndex {
    tags: Vec<u8>,
    slots: Vec<Slot>,
    seed: u64,
}

impl Default for HashIndex {
    fn default() -> HashIndex {
        HashIndex {
            tags: Vec::new(),
            slots: Vec::new(),
            seed: RandomState::new().hash_one(0x5C71_BE0B_u64),
        }
    }
}

impl HashIndex {
    fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.seed)
    }

    /// The tag of a used slot: never zero.
    fn tag(hash: u64) -> u8 {
        (hash >> 57) as u8 | 0x80
    }

    /// The entry whose key `is_key` accepts, or the free slot where it would
    /// go. The index must not be empty.
    fn probe(&self, hash: u64, is_key: impl Fn(usize) -> bool) -> Probe {
        let mask = self.tags.len() - 1;
        let tag = Self::tag(hash);
        let mut pos = hash as usize & mask;
        loop {
            match self.tags[pos] {
                0 => return Probe::Vacant(pos),
                t if t == tag => {
                    let slot = self.slots[pos];
                    if slot.hash == hash && is_key(slot.entry) {
                        return Probe::Found(slot.entry);
                    }
                }
                _ => {}
            }
            pos = (pos + 1) & mask;
        }
    }

    fn fill(&mut self, pos: usize, hash: u64, entry: usize) {
        self.tags[pos] = Self::tag(hash);
        self.slots[pos] = Slot { hash, entry };
    }

    /// Make room for one key more than the `len` indexed.
    fn reserve_one(&mut self, len: usize) {
        if len < self.tags.len() / 4 * 3 {
            return;
        }
        let size = (self.tags.len() * 2).max(MIN_SLOTS);
        let tags = std::mem::replace(&mut self.tags, vec![0; size]);
        let slots = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        for (_, slot) in tags.iter().zip(slots).filter(|(&tag, _)| tag != 0) {
            // Every indexed key is distinct, so none is found.
            if let Probe::Vacant(pos) = self.probe(slot.hash, |_| false) {
                self.fill(pos, slot.hash, slot.entry);
            }
        }
    }
}

/// Buffered puts and deletes; the last write of a key wins.
///
/// Key order is kept in two runs: `settled` orders the first
/// `settled.len()` entries and changes only under `&mut self`, while
/// `recent` orders the entries after those and is built by the first scan
/// that needs it. While `recent` is not built, a new key costs nothing
/// there: the next scan sorts it with the others. Once built, a new key is
/// inserted into it while it is short, and it is merged into `settled` when
/// it grows past about the square root of twice the number of keys. So a
/// bulk load sorts once, at commit, and a transaction that alternates new
/// keys and scans pays about a square root of copying per new key rather
/// than a sort per scan.
///
/// `recent` is a [`OnceLock`] rather than a single-threaded cell so that
/// the buffer, and the transaction holding it, stay `Sync`.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    log: Log,
    index: HashIndex,
    settled: Vec<SortKey>,
    recent: OnceLock<Vec<SortKey>>,
}

/// The smallest `recent` run that is merged into `settled`.
const MIN_MERGE: usize = 16;

impl WriteBuffer {
    pub fn len(&self) -> usize {
        self.log.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.entries.is_empty()
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.write(key, Some(value));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.write(key, None);
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.index.reserve_one(self.log.entries.len());
        let hash = self.index.hash(key);
        match self.index.probe(hash, |entry| self.log.key(entry) == key) {
            Probe::Found(entry) => self.log.set_value(entry, value),
            Probe::Vacant(pos) => {
                let entry = self.log.push(key, value);
                self.index.fill(pos, hash, entry);
                self.order_new(entry);
            }
        }
    }

    /// Keep the key order valid after appending `entry`, a new key.
    fn order_new(&mut self, entry: usize) {
        let Some(recent) = self.recent.get_mut() else {
            // Not built: the next scan sorts the new entry with the rest.
            return;
        };
        let limit = (2 * self.log.entries.len()).isqrt().max(MIN_MERGE);
        if recent.len() < limit {
            let new = self.log.sort_key(entry);
            let at = recent.partition_point(|item| self.log.cmp(item, &new).is_lt());
            recent.insert(at, new);
        } else {
            // `settled` and `recent` order the entries before this one.
            let recent = self.recent.take().unwrap_or_default();
            if self.settled.is_empty() {
                self.settled = recent;
            } else {
                self.log.merge_into(&mut self.settled, &recent);
            }
        }
    }

    /// Totals over the writes (one per distinct key): puts, deletes, key
    /// bytes and value bytes. One pass in the order keys were first
    /// written, which touches only the entries, sequentially.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let (mut puts, mut deletes, mut key_bytes, mut value_bytes) = (0, 0, 0, 0);
        for e in &self.log.entries {
            key_bytes += u64::from(e.key_len);
            if e.value_len == DELETED {
                deletes += 1;
            } else {
                puts += 1;
                value_bytes += u64::from(e.value_len);
            }
        }
        (puts, deletes, key_bytes, value_bytes)
    }

    /// `None` if the key was not written; `Some(None)` if it was deleted.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        if self.index.tags.is_empty() {
            return None;
        }
        let hash = self.index.hash(key);
        match self.index.probe(hash, |entry| self.log.key(entry) == key) {
            Probe::Found(entry) => Some(self.log.value(entry)),
            Probe::Vacant(_) => None,
        }
    }

    /// Writes with keys within the bounds, in key order (empty when the
    /// bounds are inverted).
    pub fn range<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        self.merged(lower, upper)
    }

    /// Every write, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
        self.merged(Bound::Unbounded, Bound::Unbounded)
    }

    fn merged(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Merged<'_> {
        let recent = self
            .recent
            .get_or_init(|| self.log.sorted_from(self.settled.len()));
        Merged {
            log: &self.log,
            settled: self.log.within(&self.settled, lower, upper),
            recent: self.log.within(recent, lower, upper),
        }
    }
}

/// The writes of two key-ordered runs of distinct keys, merged in key
/// order from either end.
#[derive(Clone)]
struct Merged<'a> {
    log: &'a Log,
    settled: &'a [SortKey],
    recent: &'a [SortKey],
}

impl<'a> Merged<'a> {
    /// Whether the next item (first, or last when `back`) is from `settled`.
    fn next_is_settled(&self, back: bool) -> Option<bool> {
        let (a, b) = if back {
            (self.settled.last(), self.recent.last())
        } else {
            (self.settled.first(), self.recent.first())
        };
        match (a, b) {
            (Some(a), Some(b)) => Some(self.log.cmp(a, b).is_lt() != back),
            (a, _) => a.map(|_| true).or(b.map(|_| false)),
        }
    }

    fn run(&mut self, settled: bool) -> &mut &'a [SortKey] {
        if settled {
            &mut self.settled
        } else {
            &mut self.recent
        }
    }
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let settled = self.next_is_settled(false)?;
        let run = self.run(settled);
        let items: &'a [SortKey] = run;
        let (first, rest) = items.split_first()?;
        *run = rest;
        self.log.prefetch_ahead(rest);
        Some(self.log.item(first.entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.settled.len() + self.recent.len();
        (len, Some(len))
    }
}

impl<'a> DoubleEndedIterator for Merged<'a> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let settled = self.next_is_settled(true)?;
        let run = self.run(settled);
        let items: &'a [SortKey] = run;
        let (last, rest) = items.split_last()?;
        *run = rest;
        Some(self.log.item(last.entry))
    }
}

impl ExactSizeIterator for Merged<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps of the randomised tests: fewer under Miri, which interprets
    /// every operation.
    const SCALE: usize = if cfg!(miri) { 100 } else { 10_000 };
    /// Operations of one property-test case.
    const OPS: usize = if cfg!(miri) { 60 } else { 300 };

    #[test]
    fn last_write_wins_and_space_is_reused() {
        let mut b = WriteBuffer::default();
        b.put(b"k", b"long value");
        b.put(b"k", b"short");
        assert_eq!(b.get(b"k"), Some(Some(&b"short"[..])));
        assert_eq!(b.log.values.len(), 10, "the shorter value reused the space");
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
        // One put (40-byte key, empty value) and one delete ("k").
        assert_eq!(b.totals(), (1, 1, 41, 0));
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

    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// What the buffer must behave like: key → value, `None` for a delete.
    type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

    type Item = (Vec<u8>, Option<Vec<u8>>);

    fn owned((k, v): (&[u8], Option<&[u8]>)) -> Item {
        (k.to_vec(), v.map(<[u8]>::to_vec))
    }

    fn within(key: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
        let above = match lower {
            Bound::Included(l) => key >= l,
            Bound::Excluded(l) => key > l,
            Bound::Unbounded => true,
        };
        let below = match upper {
            Bound::Included(u) => key <= u,
            Bound::Excluded(u) => key < u,
            Bound::Unbounded => true,
        };
        above && below
    }

    /// The buffer's range agrees with the model's, from both ends.
    fn check_range(b: &WriteBuffer, model: &Model, lower: Bound<&[u8]>, upper: Bound<&[u8]>) {
        let expected: Vec<Item> = model
            .iter()
            .filter(|(k, _)| within(k, lower, upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let forward: Vec<Item> = b.range(lower, upper).map(owned).collect();
        assert_eq!(forward, expected, "range {lower:?}..{upper:?}");
        let mut backward: Vec<Item> = b.range(lower, upper).rev().map(owned).collect();
        backward.reverse();
        assert_eq!(backward, expected, "reversed range {lower:?}..{upper:?}");
        // Taking from both ends in turn meets in the middle.
        let mut range = b.range(lower, upper);
        let (mut front, mut back) = (Vec::new(), Vec::new());
        while let Some(item) = range.next() {
            front.push(owned(item));
            let Some(item) = range.next_back() else { break };
            back.push(owned(item));
        }
        front.extend(back.into_iter().rev());
        assert_eq!(front, expected, "range {lower:?}..{upper:?} from both ends");
    }

    /// Everything the buffer answers agrees with the model.
    fn check_all(b: &WriteBuffer, model: &Model) {
        assert_eq!(b.len(), model.len());
        assert_eq!(b.is_empty(), model.is_empty());
        let iter = b.iter();
        assert_eq!(iter.len(), model.len());
        let items: Vec<Item> = iter.clone().map(owned).collect();
        let expected: Vec<Item> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(items, expected);
        assert_eq!(
            iter.map(owned).collect::<Vec<_>>(),
            expected,
            "a clone iterates alike"
        );
        for (k, v) in model {
            assert_eq!(b.get(k), Some(v.as_deref()));
        }
        check_order_invariant(b);
    }

    /// The two key-ordered runs together cover every entry once.
    fn check_order_invariant(b: &WriteBuffer) {
        if let Some(recent) = b.recent.get() {
            assert_eq!(b.settled.len() + recent.len(), b.len());
            let mut seen: Vec<usize> = b.settled.iter().chain(recent).map(|s| s.entry).collect();
            seen.sort_unstable();
            assert!(seen.iter().copied().eq(0..b.len()));
        }
    }

    fn apply(b: &mut WriteBuffer, model: &mut Model, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => b.put(key, v),
            None => b.delete(key),
        }
        model.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }

    #[test]
    fn delete_after_put_and_put_after_delete() {
        let mut b = WriteBuffer::default();
        assert!(b.is_empty());
        assert_eq!(b.get(b"a"), None);
        b.put(b"a", b"1");
        b.delete(b"a");
        assert_eq!(b.get(b"a"), Some(None));
        b.delete(b"b");
        b.put(b"b", b"2");
        assert_eq!(b.get(b"b"), Some(Some(&b"2"[..])));
        b.delete(b"c");
        assert_eq!(b.len(), 3);
        let items: Vec<Item> = b.iter().map(owned).collect();
        assert_eq!(
            items,
            vec![
                (b"a".to_vec(), None),
                (b"b".to_vec(), Some(b"2".to_vec())),
                (b"c".to_vec(), None),
            ]
        );
        // A value written after a delete does not reuse stale space.
        b.put(b"a", b"fresh");
        assert_eq!(b.get(b"a"), Some(Some(&b"fresh"[..])));
    }

    #[test]
    fn range_bounds() {
        let mut b = WriteBuffer::default();
        let mut model = Model::new();
        for key in [&b"b"[..], b"d", b"f", b"h"] {
            apply(&mut b, &mut model, key, Some(key));
        }
        let probes: [&[u8]; 9] = [b"", b"a", b"b", b"c", b"d", b"f", b"g", b"h", b"i"];
        let mut bounds = vec![Bound::Unbounded];
        for p in probes {
            bounds.push(Bound::Included(p));
            bounds.push(Bound::Excluded(p));
        }
        for &lower in &bounds {
            for &upper in &bounds {
                check_range(&b, &model, lower, upper);
            }
        }
        // Inverted and empty bounds yield nothing rather than panicking.
        assert_eq!(
            b.range(Bound::Included(b"h"), Bound::Included(b"b"))
                .count(),
            0
        );
        assert_eq!(
            b.range(Bound::Excluded(b"d"), Bound::Excluded(b"d"))
                .count(),
            0
        );
        assert_eq!(
            b.range(Bound::Included(b"d"), Bound::Excluded(b"d"))
                .count(),
            0
        );
        assert_eq!(
            b.range(Bound::Excluded(b"d"), Bound::Included(b"d"))
                .count(),
            0
        );
        assert_eq!(
            b.range(Bound::Included(b"d"), Bound::Included(b"d"))
                .count(),
            1
        );
    }

    #[test]
    fn iter_is_in_key_order_with_exact_len() {
        let mut b = WriteBuffer::default();
        for key in [&b"m"[..], b"c", b"x", b"a", b"c", b"m"] {
            b.put(key, b"v");
        }
        let iter = b.iter();
        assert_eq!(iter.len(), 4);
        let keys: Vec<&[u8]> = iter.map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"c", b"m", b"x"]);
        let mut iter = b.iter();
        iter.next();
        assert_eq!(iter.len(), 3);
    }

    #[test]
    fn keys_sharing_prefixes_zero_bytes_and_long_keys() {
        let mut b = WriteBuffer::default();
        let mut model = Model::new();
        let long = [b'k'; 100];
        let keys: Vec<Vec<u8>> = vec![
            b"ab".to_vec(),
            b"ab\0".to_vec(),
            b"ab\0\0\0\0\0\0".to_vec(),
            b"ab\0\0\0\0\0\0\0".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\0".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefgha-key-longer-than-thirty-two-bytes".to_vec(),
            b"abcdefgha-key-longer-than-thirty-two-bytez".to_vec(),
            vec![0],
            vec![0xff; 9],
            vec![0xff; 8],
            long[..33].to_vec(),
            long.to_vec(),
            [&long[..], b"!"].concat(),
        ];
        for (i, key) in keys.iter().enumerate() {
            apply(&mut b, &mut model, key, Some(&[i as u8; 40]));
        }
        check_all(&b, &model);
        for key in &keys {
            check_range(&b, &model, Bound::Included(key), Bound::Unbounded);
            check_range(&b, &model, Bound::Excluded(key), Bound::Unbounded);
            check_range(&b, &model, Bound::Unbounded, Bound::Included(key));
            check_range(&b, &model, Bound::Unbounded, Bound::Excluded(key));
        }
    }

    #[test]
    fn a_long_key_is_one_key() {
        let mut b = WriteBuffer::default();
        let key = vec![7u8; MAX_KEY_LEN];
        b.put(&key, b"one");
        b.put(&key, b"two");
        assert_eq!(b.len(), 1);
        assert_eq!(b.get(&key), Some(Some(&b"two"[..])));
        assert_eq!(b.get(&key[1..]), None);
    }

    /// A random key: often sharing a long prefix with others, sometimes
    /// with trailing zero bytes, sometimes longer than one word.
    fn random_key(rng: &mut impl Rng) -> Vec<u8> {
        let len = match rng.random_range(0..4) {
            0 => rng.random_range(1..=8),
            1 => rng.random_range(9..=12),
            _ => rng.random_range(1..=40),
        };
        let alphabet: &[u8] = if rng.random_bool(0.5) {
            b"\0ab"
        } else {
            b"\0abcdefghijklmnopqrstuvwxyz\xff"
        };
        (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    }

    fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        bound.as_ref().map(Vec::as_slice)
    }

    fn random_bound(rng: &mut impl Rng, model: &Model) -> Bound<Vec<u8>> {
        let key = if !model.is_empty() && rng.random_bool(0.5) {
            let n = rng.random_range(0..model.len());
            model.keys().nth(n).cloned().unwrap_or_default()
        } else {
            random_key(rng)
        };
        match rng.random_range(0..5) {
            0 => Bound::Unbounded,
            1 | 2 => Bound::Included(key),
            _ => Bound::Excluded(key),
        }
    }

    #[test]
    fn many_random_writes_and_scans_against_a_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5c_71_be);
        let mut b = WriteBuffer::default();
        let mut model = Model::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for step in 0..SCALE {
            let key = if keys.is_empty() || rng.random_bool(0.7) {
                let key = random_key(&mut rng);
                keys.push(key.clone());
                key
            } else {
                keys[rng.random_range(0..keys.len())].clone()
            };
            let value: Vec<u8> = (0..rng.random_range(0..60)).map(|_| rng.random()).collect();
            let value = rng.random_bool(0.8).then_some(&value[..]);
            apply(&mut b, &mut model, &key, value);
            // Scans now and then, in bursts, so that the order is kept up
            // by insertion and merging as well as rebuilt by sorting.
            if step % 1000 < 300 && rng.random_bool(0.5) {
                let lower = random_bound(&mut rng, &model);
                let upper = random_bound(&mut rng, &model);
                check_range(&b, &model, as_slice(&lower), as_slice(&upper));
                check_order_invariant(&b);
            }
            let probe = &keys[rng.random_range(0..keys.len())];
            assert_eq!(b.get(probe), model.get(probe).map(Option::as_deref));
        }
        check_all(&b, &model);
    }

    #[test]
    fn many_random_keys_in_one_load() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(24);
        let mut b = WriteBuffer::default();
        let mut model = Model::new();
        for _ in 0..SCALE {
            let key: [u8; 24] = rng.random();
            apply(&mut b, &mut model, &key, Some(&key[..8]));
        }
        check_all(&b, &model);
        assert_eq!(b.get(&[0u8; 24]), None);
    }

    /// Long runs of new keys between scans make the two key-ordered runs
    /// both long when they merge.
    #[test]
    fn merging_long_runs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = WriteBuffer::default();
        let mut model = Model::new();
        for burst in [3000, 1, 2000, 1, 500, 4000, 1, 1, 64, 1] {
            for _ in 0..burst * SCALE / 10_000 + 1 {
                let key = random_key(&mut rng);
                apply(&mut b, &mut model, &key, Some(b"v"));
            }
            check_range(&b, &model, Bound::Unbounded, Bound::Unbounded);
            check_order_invariant(&b);
        }
        assert!(!b.settled.is_empty(), "runs were merged");
        check_all(&b, &model);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(Vec<u8>, Vec<u8>),
        Delete(Vec<u8>),
        Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
    }

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', 0xff]), 1..12)
    }

    fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
        prop_oneof![
            Just(Bound::Unbounded),
            key_strategy().prop_map(Bound::Included),
            key_strategy().prop_map(Bound::Excluded),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (key_strategy(), prop::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(k, v)| Op::Put(k, v)),
            1 => key_strategy().prop_map(Op::Delete),
            2 => (bound_strategy(), bound_strategy()).prop_map(|(l, u)| Op::Range(l, u)),
        ]
    }

    proptest! {
        // Under Miri: a few cases, and no failure file (no file system).
        #![proptest_config(if cfg!(miri) {
            ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(4) }
        } else {
            ProptestConfig::default()
        })]
        #[test]
        fn behaves_like_an_ordered_map(ops in prop::collection::vec(op_strategy(), 0..OPS)) {
            let mut b = WriteBuffer::default();
            let mut model = Model::new();
            for op in &ops {
                match op {
                    Op::Put(k, v) => apply(&mut b, &mut model, k, Some(v)),
                    Op::Delete(k) => apply(&mut b, &mut model, k, None),
                    Op::Range(l, u) => check_range(&b, &model, as_slice(l), as_slice(u)),
                }
            }
            check_all(&b, &model);
        }
    }
}
