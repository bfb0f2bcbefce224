//! Fences: a per-process sorted sample of a skiplist's nodes, so that a
//! search for a key that has no version (the start of a scan, say) begins a
//! few levels above the bottom instead of at the head.
//!
//! The sample is every node linked at [`FENCE_LEVEL`] when it was taken
//! (about one node in `2^FENCE_LEVEL`), kept in process memory as sorted
//! arrays: key prefixes, node pointers and the keys themselves. A search
//! binary-searches the prefixes (small and hot in the cache, where the
//! skiplist's levels each cost a cache miss), takes the last fence before
//! its key, and descends from that node at `FENCE_LEVEL`: a handful of
//! nodes instead of one per level.
//!
//! A sample never goes wrong, only stale: nodes are never removed or moved
//! within a generation, so a fence node stays linked at its levels and
//! before every key after it; nodes inserted since only lengthen the
//! descent. A reader rebuilds the sample once the key index counts a
//! quarter more keys than when it was taken. Readers share it through an
//! atomic pointer swap; one thread at a time rebuilds, the others go on
//! with the old sample (or the head) meanwhile.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::arena::{key_prefix, Node};

/// The level whose nodes are sampled.
pub const FENCE_LEVEL: usize = 1;

/// Prefixes per chunk of the two-level search.
const CHUNK: usize = 64;

/// Lists with fewer keys are searched from the head: their upper levels
/// stay in the cache, and a sample would be rebuilt too often.
const MIN_KEYS: u64 = 4096;

/// A sample of nodes at [`FENCE_LEVEL`], in key order.
pub struct Fences {
    prefixes: Vec<u64>,
    /// Every [`CHUNK`]th prefix: a search looks here first (a few lines,
    /// always in the cache), then at one chunk of `prefixes`.
    top: Vec<u64>,
    ptrs: Vec<u64>,
    /// `ends[i]` is where fence `i`'s key ends in `keys`.
    ends: Vec<u32>,
    keys: Vec<u8>,
}

impl Fences {
    pub fn with_capacity(n: usize) -> Self {
        Fences {
            prefixes: Vec::with_capacity(n),
            top: Vec::with_capacity(n / CHUNK + 1),
            ptrs: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            keys: Vec::new(),
        }
    }

    /// Add a node, in key order. `false` if the keys no longer fit the
    /// offsets (4 GiB of keys: the sample is then left incomplete, which
    /// is still correct).
    pub fn push(&mut self, node: &Node<'_>) -> bool {
        let key = node.key();
        let Ok(end) = u32::try_from(self.keys.len() + key.len()) else {
            return false;
        };
        if self.prefixes.len() % CHUNK == 0 {
            self.top.push(key_prefix(key));
        }
        self.prefixes.push(key_prefix(key));
        self.ptrs.push(node.ptr());
        self.keys.extend_from_slice(key);
        self.ends.push(end);
        true
    }

    pub fn len(&self) -> usize {
        self.ptrs.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }

    /// The first index whose prefix is at least `prefix` (`len()` if none).
    #[inline]
    fn first_prefix_at_or_above(&self, prefix: u64) -> usize {
        // The chunk before the first whose leading prefix reaches it holds
        // the answer, or the answer is that chunk's start.
        let c = self.top.partition_point(|&p| p < prefix);
        let Some(start) = c.checked_sub(1).map(|c| c * CHUNK) else {
            return 0;
        };
        let chunk = &self.prefixes[start..(start + CHUNK).min(self.prefixes.len())];
        for line in chunk.chunks(8) {
            crate::prefetch::prefetch(line.as_ptr());
        }
        start + chunk.partition_point(|&p| p < prefix)
    }

    /// The pointers of the last fence whose key is below `key` and of the
    /// fence after it (0 for none): the search starts at the first, and
    /// most likely ends at or just before the second.
    pub fn around(&self, key: &[u8]) -> (Option<u64>, u64) {
        let prefix = key_prefix(key);
        // Prefixes decide unless they tie; ties compare the whole key.
        let lo = self.first_prefix_at_or_above(prefix);
        let mut at = lo;
        if self.prefixes.get(lo) == Some(&prefix) {
            let hi = lo + self.prefixes[lo..].partition_point(|&p| p == prefix);
            let (mut a, mut b) = (lo, hi);
            while a < b {
                let mid = a + (b - a) / 2;
                if self.key(mid).cmp(key) == Ordering::Less {
                    a = mid + 1;
                } else {
                    b = mid;
                }
            }
            at = a;
        }
        (
            at.checked_sub(1).map(|i| self.ptrs[i]),
            self.ptrs.get(at).copied().unwrap_or(0),
        )
    }
}

/// The current sample of one generation's skiplist in this process.
#[derive(Default)]
pub struct FenceCache {
    current: ArcSwapOption<Fences>,
    /// Key count when the current sample was taken (or last tried).
    sampled_at: AtomicU64,
    building: AtomicBool,
}

impl FenceCache {
    /// The sample, if there is one; `None` when the list is small.
    #[inline]
    pub fn get(&self) -> Option<arc_swap::Guard<Option<Arc<Fences>>>> {
        let guard = self.current.load();
        guard.is_some().then_some(guard)
    }

    /// Whether a list of `keys` keys is worth a new sample now.
    #[inline]
    pub fn stale(&self, keys: u64) -> bool {
        let at = self.sampled_at.load(AtomicOrdering::Relaxed);
        keys >= MIN_KEYS
            && keys >= at.saturating_add(at / 4)
            && !self.building.load(AtomicOrdering::Relaxed)
    }

    /// Take a new sample with `build` unless another thread is taking one.
    /// A failed build (a corrupt list) leaves the old sample; the next try
    /// waits for the list to grow as after a success.
    pub fn rebuild(&self, keys: u64, build: impl FnOnce() -> Option<Fences>) {
        if self
            .building
            .compare_exchange(
                false,
                true,
                AtomicOrdering::Acquire,
                AtomicOrdering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        if let Some(fences) = build() {
            self.current.store(Some(Arc::new(fences)));
        }
        self.sampled_at.store(keys, AtomicOrdering::Relaxed);
        self.building.store(false, AtomicOrdering::Release);
    }
}
