//! The key index: a hash table from each key to the newest version of it in
//! the skiplist, so that a point read costs a probe and a node instead of a
//! search down the skiplist (about one cache miss per level).
//!
//! ```text
//! table (64-byte aligned, in an arena)
//! ┌───────────────────────────────────────────┬─────────┬─────────┬─────┐
//! │ header (64 B): magic, capacity, seed, len │ entry 0 │ entry 1 │ ... │
//! └───────────────────────────────────────────┴─────────┴─────────┴─────┘
//! entry (u64): tag (19 bits) │ arena index (12 bits) │ node offset / 8 (33 bits)
//! ```
//!
//! Open addressing with linear probing; 0 is an empty slot. A key's home
//! slot is `hash & (capacity - 1)` and its tag the top 19 bits of the hash,
//! so most slots of other keys are passed over without touching their node.
//! The hash is XXH3-64 with a seed chosen when the generation is created,
//! so keys cannot be chosen in advance to collide.
//!
//! Only the writer changes the table. Entries are never removed: a slot goes
//! from empty to a key's newest version, and from then on only to newer
//! versions of the same key, each a release store made after the new node
//! is linked at level 0. A reader that loads an entry therefore finds a
//! linked node and, following level 0, every older version of the key. The
//! newest version may belong to a commit the reader's snapshot does not
//! include; it walks on to an older one, as a skiplist search would.
//!
//! The table grows by building a larger one in fresh arena space and then
//! publishing it with one release store to arena 0's header; readers still
//! probing the old table find it whole, because arena space is never reused
//! within a generation.

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::arena::{make_ptr, split_ptr, Arena, Arenas, Node, MAX_ARENAS, MAX_ARENA_SIZE};
use crate::error::{Error, Result};

const MAGIC: u64 = u64::from_le_bytes(*b"SCRBKIDX");
const T_MAGIC: usize = 0;
const T_CAPACITY: usize = 8;
const T_SEED: usize = 16;
/// Occupied slots (maintained by the writer; a hint only: a writer that
/// died between claiming a slot and counting it leaves it one short).
const T_LEN: usize = 24;
const T_ENTRIES: usize = 64;

const TAG_SHIFT: u32 = 45;
const INDEX_SHIFT: u32 = 33;
const OFFSET_MASK: u64 = (1 << INDEX_SHIFT) - 1;
const _: () = assert!(MAX_ARENAS <= 1 << (TAG_SHIFT - INDEX_SHIFT));
const _: () = assert!(MAX_ARENA_SIZE <= 8 << INDEX_SHIFT);

/// Capacity of a new generation's table.
const INITIAL_CAPACITY: u64 = 1 << 10;
/// Largest capacity (a 16 GiB table): it must fit in one arena.
const MAX_CAPACITY: u64 = 1 << 31;
const _: () = assert!(T_ENTRIES + 8 * MAX_CAPACITY as usize + 4096 <= MAX_ARENA_SIZE);

/// Occupancy above which an insertion grows the table, in percent.
const MAX_LOAD: u64 = 70;
/// Occupancy a table is sized for when it grows, in percent.
const TARGET_LOAD: u64 = 50;

/// Versions of a key a read walks past before it falls back to a skiplist
/// search, which jumps over them instead (no garbage collection yet, so an
/// old snapshot of a hot key may sit behind many newer versions).
pub const MAX_WALK: usize = 8;

fn pack(tag: u64, ptr: u64) -> u64 {
    let (index, offset) = split_ptr(ptr);
    debug_assert!(index < MAX_ARENAS && offset < MAX_ARENA_SIZE && offset % 8 == 0);
    (tag << TAG_SHIFT) | ((index as u64) << INDEX_SHIFT) | (offset as u64 >> 3)
}

fn unpack(entry: u64) -> u64 {
    let index = (entry >> INDEX_SHIFT) & ((1 << (TAG_SHIFT - INDEX_SHIFT)) - 1);
    make_ptr(index as usize, ((entry & OFFSET_MASK) << 3) as usize)
}

/// What the index says about a key.
pub enum Probe<'a> {
    /// The newest version of the key.
    Newest(Node<'a>),
    /// The key has no version at all.
    Absent,
}

/// One table, checked once when opened so that every slot access is in
/// bounds.
pub struct KeyIndex<'a> {
    arena: &'a Arena,
    /// Offset of the table header in `arena`.
    base: usize,
    mask: u64,
    seed: u64,
}

impl<'a> KeyIndex<'a> {
    /// The current table, or `None` if the arena header names none (only
    /// damage does that; callers then search the skiplist).
    pub fn open(arenas: &'a Arenas) -> Result<Option<KeyIndex<'a>>> {
        let root = arenas.key_index_root()?.load(Ordering::Acquire);
        if root == 0 {
            return Ok(None);
        }
        let (arena, base) = arenas.locate(root)?;
        let bad = |what: &str| arena.corrupted(base, format!("key index {what}"));
        if base % 64 != 0 || base.checked_add(T_ENTRIES).is_none_or(|e| e > arena.len()) {
            return Err(bad("table pointer out of bounds"));
        }
        if arena.atomic(base + T_MAGIC).load(Ordering::Relaxed) != MAGIC {
            return Err(bad("table has a bad magic number"));
        }
        let capacity = arena.atomic(base + T_CAPACITY).load(Ordering::Relaxed);
        let fits = (capacity as usize)
            .checked_mul(8)
            .and_then(|n| n.checked_add(base + T_ENTRIES))
            .is_some_and(|end| end <= arena.len());
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY || !fits {
            return Err(bad("table has an invalid capacity"));
        }
        Ok(Some(KeyIndex {
            arena,
            base,
            mask: capacity - 1,
            seed: arena.atomic(base + T_SEED).load(Ordering::Relaxed),
        }))
    }

    fn slot(&self, i: u64) -> &'a AtomicU64 {
        self.arena.atomic(self.base + T_ENTRIES + 8 * i as usize)
    }

    fn len(&self) -> &'a AtomicU64 {
        self.arena.atomic(self.base + T_LEN)
    }

    /// Keys in the table (a hint: see `T_LEN`).
    pub fn keys(&self) -> u64 {
        self.len().load(Ordering::Relaxed)
    }

    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// The newest version of `key`. `None` if the probe ran through the
    /// whole table (only a corrupt table is ever full): the caller searches
    /// the skiplist instead.
    pub fn newest(&self, arenas: &'a Arenas, key: &[u8]) -> Result<Option<Probe<'a>>> {
        let hash = xxh3_64_with_seed(key, self.seed);
        let tag = hash >> TAG_SHIFT;
        let mut i = hash & self.mask;
        for _ in 0..=self.mask {
            let entry = self.slot(i).load(Ordering::Acquire);
            if entry == 0 {
                return Ok(Some(Probe::Absent));
            }
            if entry >> TAG_SHIFT == tag {
                let node = arenas.node(unpack(entry))?;
                if node.key() == key {
                    return Ok(Some(Probe::Newest(node)));
                }
            }
            i = (i + 1) & self.mask;
        }
        Ok(None)
    }

    /// Ask for the cache line of `key`'s home slot, ahead of an
    /// [`upsert`](Self::upsert) of it. A hint only.
    pub fn prefetch(&self, key: &[u8]) {
        let hash = xxh3_64_with_seed(key, self.seed);
        crate::prefetch::prefetch(self.slot(hash & self.mask) as *const AtomicU64);
    }

    /// Allocate, zero and fill in the header of a table; not published.
    fn create(
        arenas: &'a Arenas,
        arena_count: &AtomicU64,
        capacity: u64,
        seed: u64,
    ) -> Result<(u64, KeyIndex<'a>)> {
        let bytes = T_ENTRIES + 8 * capacity as usize;
        let count = arena_count.load(Ordering::Acquire) as usize;
        let (ptr, new_count) = arenas.alloc(count, bytes, 64)?;
        if new_count != count {
            arena_count.store(new_count as u64, Ordering::Release);
        }
        let (arena, base) = arenas.locate(ptr)?;
        // A writer that died may have left bytes in this space.
        arena.zero_unpublished(base, bytes);
        for (at, v) in [(T_MAGIC, MAGIC), (T_CAPACITY, capacity), (T_SEED, seed)] {
            arena.atomic(base + at).store(v, Ordering::Relaxed);
        }
        let index = KeyIndex {
            arena,
            base,
            mask: capacity - 1,
            seed,
        };
        Ok((ptr, index))
    }

    /// Create a new generation's (empty) table and publish it.
    pub fn init(arenas: &'a Arenas, arena_count: &AtomicU64, seed: u64) -> Result<()> {
        let (ptr, _) = KeyIndex::create(arenas, arena_count, INITIAL_CAPACITY, seed)?;
        arenas.key_index_root()?.store(ptr, Ordering::Release);
        Ok(())
    }

    /// Make room for `additional` more keys without growing again.
    /// Writer only.
    pub fn reserve(
        &mut self,
        arenas: &'a Arenas,
        arena_count: &AtomicU64,
        additional: u64,
    ) -> Result<()> {
        let wanted = self
            .len()
            .load(Ordering::Relaxed)
            .saturating_add(additional);
        if wanted.saturating_mul(100) <= self.capacity().saturating_mul(MAX_LOAD) {
            return Ok(());
        }
        let capacity = (wanted.saturating_mul(100) / TARGET_LOAD)
            .max(INITIAL_CAPACITY)
            .next_power_of_two()
            .min(MAX_CAPACITY);
        if capacity <= self.capacity() {
            return Ok(());
        }
        self.grow(arenas, arena_count, capacity)
    }

    /// Move every entry into a new table of `capacity` and publish it.
    fn grow(&mut self, arenas: &'a Arenas, arena_count: &AtomicU64, capacity: u64) -> Result<()> {
        let (ptr, new) = KeyIndex::create(arenas, arena_count, capacity, self.seed)?;
        let mut len = 0;
        for i in 0..self.capacity() {
            let entry = self.slot(i).load(Ordering::Relaxed);
            if entry == 0 {
                continue;
            }
            let hash = xxh3_64_with_seed(arenas.node(unpack(entry))?.key(), self.seed);
            let mut j = hash & new.mask;
            while new.slot(j).load(Ordering::Relaxed) != 0 {
                j = (j + 1) & new.mask;
            }
            new.slot(j).store(entry, Ordering::Relaxed);
            len += 1;
        }
        new.len().store(len, Ordering::Relaxed);
        // Release: a reader that loads the new root sees every entry.
        arenas.key_index_root()?.store(ptr, Ordering::Release);
        *self = new;
        Ok(())
    }

    /// Point `key` at the node `ptr` (version `ts`), which is linked in the
    /// skiplist, unless the index already names a newer version of it.
    /// Writer only.
    pub fn upsert(
        &mut self,
        arenas: &'a Arenas,
        arena_count: &AtomicU64,
        key: &[u8],
        ts: u64,
        ptr: u64,
    ) -> Result<()> {
        let hash = xxh3_64_with_seed(key, self.seed);
        let tag = hash >> TAG_SHIFT;
        let mut i = hash & self.mask;
        for _ in 0..=self.mask {
            let slot = self.slot(i);
            let entry = slot.load(Ordering::Relaxed);
            if entry == 0 {
                slot.store(pack(tag, ptr), Ordering::Release);
                let len = self.len().fetch_add(1, Ordering::Relaxed) + 1;
                if len * 100 > self.capacity() * MAX_LOAD {
                    self.reserve(arenas, arena_count, 1)?;
                }
                return Ok(());
            }
            if entry >> TAG_SHIFT == tag {
                let node = arenas.node(unpack(entry))?;
                if node.key() == key {
                    if node.ts <= ts {
                        slot.store(pack(tag, ptr), Ordering::Release);
                    }
                    return Ok(());
                }
            }
            i = (i + 1) & self.mask;
        }
        Err(Error::io(
            "indexing a key",
            std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!("the key index is full ({} keys)", self.capacity()),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_their_pointer() {
        for (index, offset) in [(0, 64), (1, 8), (4095, MAX_ARENA_SIZE - 8), (17, 123456)] {
            let ptr = make_ptr(index, offset);
            for tag in [0, 1, (1 << 19) - 1] {
                let e = pack(tag, ptr);
                assert_ne!(e, 0);
                assert_eq!(e >> TAG_SHIFT, tag);
                assert_eq!(unpack(e), ptr);
            }
        }
    }
}
