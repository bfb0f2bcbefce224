//! A lock-free-to-read, single-writer skiplist over the arenas.
//!
//! Entries are ordered by key ascending, then commit timestamp descending, so
//! the newest version of a key comes first and "the version visible at
//! snapshot S" is the first entry at or after `(key, S)`.
//!
//! The writer fills a node's tower before linking it, level 0 first, each
//! link a release store; a reader following a link with an acquire load
//! always sees a whole node. A node linked at some levels but not yet at the
//! upper ones is a valid skiplist, so readers never wait.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::atomic::{self, AtomicU64};

use super::arena::{
    cmp_keys, key_prefix, make_ptr, Arenas, Kind, Node, StoredValue, ARENA_HEADER, MAX_HEIGHT,
};
use super::fence::{Fences, FENCE_LEVEL};
use super::key_index::{KeyIndex, Probe, MAX_WALK};
use crate::error::Result;

/// The head node: first node of arena 0, full height, empty key.
pub const HEAD: u64 = make_ptr(0, ARENA_HEADER);

/// Order of a node relative to the entry `(key, ts)`.
fn cmp_entry(node: &Node<'_>, key: &[u8], ts: u64) -> Ordering {
    cmp_keys(node.key(), key).then(ts.cmp(&node.ts))
}

/// Moves along one level after which a search starts checking that every
/// link leads forward: a corrupt file could hold a cycle. Below this, a
/// cycle is caught by the bound, above it by the order check.
const TRUSTED_MOVES: usize = 4096;

/// Check that the link from `from` to `to` leads forward in entry order.
pub fn check_forward(from: &Node<'_>, to: &Node<'_>) -> Result<()> {
    if cmp_entry(to, from.key(), from.ts) == Ordering::Greater {
        Ok(())
    } else {
        Err(to.corrupted("link leads backwards (a cycle in a corrupt file)"))
    }
}

/// Read access to the list (any thread, any process).
#[derive(Clone, Copy)]
pub struct SkipList<'a> {
    arenas: &'a Arenas,
}

impl<'a> SkipList<'a> {
    pub fn new(arenas: &'a Arenas) -> Self {
        SkipList { arenas }
    }

    /// Create the head node and the key index in a fresh generation and
    /// store the arena count; `seed` seeds the key index's hash.
    pub fn init(arenas: &Arenas, arena_count: &AtomicU64, seed: u64) -> Result<()> {
        arena_count.store(0, atomic::Ordering::Release);
        let (ptr, count) =
            arenas.append(0, MAX_HEIGHT, Kind::Put, 0, &[], StoredValue::Inline(&[]))?;
        debug_assert_eq!(ptr, HEAD);
        arena_count.store(count as u64, atomic::Ordering::Release);
        KeyIndex::init(arenas, arena_count, seed)
    }

    pub fn node(&self, ptr: u64) -> Result<Node<'a>> {
        self.arenas.node(ptr)
    }

    /// The first real node, if any.
    pub fn first(&self) -> Result<Option<Node<'a>>> {
        self.follow(self.node(HEAD)?.next(0))
    }

    /// The node after `node` at level 0.
    pub fn next(&self, node: &Node<'a>) -> Result<Option<Node<'a>>> {
        self.follow(node.next(0))
    }

    /// Ask for the node after `node` at level 0, ahead of a
    /// [`next`](Self::next). A hint only.
    #[inline]
    pub fn prefetch_next(&self, node: &Node<'a>) {
        self.arenas.prefetch_node(node.next(0));
    }

    fn follow(&self, ptr: u64) -> Result<Option<Node<'a>>> {
        if ptr == 0 {
            Ok(None)
        } else {
            self.node(ptr).map(Some)
        }
    }

    /// The last node for which `before(node)` holds, where `before` is
    /// monotone (true for a prefix of the list). `None` if only the head.
    ///
    /// `limit`: a node whose key prefix is above it cannot satisfy `before`.
    /// The prefix of the successor is stored beside the pointer to it, so
    /// most nodes that end a level are rejected without being touched: a
    /// search costs about one cache miss per level instead of two.
    fn last_where(
        &self,
        limit: Option<u64>,
        before: impl Fn(&Node<'a>) -> bool,
    ) -> Result<Option<Node<'a>>> {
        self.last_where_at(0, limit, before)
    }

    /// [`last_where`](Self::last_where) among the nodes that reach at least
    /// `min_level`: about `2^min_level` nodes before the answer at level 0.
    fn last_where_at(
        &self,
        min_level: usize,
        limit: Option<u64>,
        before: impl Fn(&Node<'a>) -> bool,
    ) -> Result<Option<Node<'a>>> {
        self.descend(
            self.node(HEAD)?,
            true,
            MAX_HEIGHT - 1,
            min_level,
            limit,
            before,
        )
    }

    /// [`last_where_at`](Self::last_where_at) from node `x` (the head if
    /// `is_head`), which satisfies `before`, at levels `top` and below.
    fn descend(
        &self,
        mut x: Node<'a>,
        mut is_head: bool,
        top: usize,
        min_level: usize,
        limit: Option<u64>,
        before: impl Fn(&Node<'a>) -> bool,
    ) -> Result<Option<Node<'a>>> {
        // The node that ended the level above; it often ends this one too.
        let mut rejected = 0;
        for level in (min_level..=top).rev() {
            let mut moves = 0;
            loop {
                let (next, prefix) = x.next_with_prefix(level);
                if next == 0 || next == rejected || limit.is_some_and(|l| prefix > l) {
                    break;
                }
                let n = self.node(next)?;
                if !before(&n) {
                    rejected = next;
                    break;
                }
                moves += 1;
                if moves > TRUSTED_MOVES && !is_head {
                    check_forward(&x, &n)?;
                }
                x = n;
                is_head = false;
            }
        }
        Ok((!is_head).then_some(x))
    }

    /// The first node at or after entry `(key, ts)`.
    pub fn seek_ge(&self, key: &[u8], ts: u64) -> Result<Option<Node<'a>>> {
        let limit = Some(key_prefix(key));
        let before = |n: &Node<'a>| cmp_entry(n, key, ts) == Ordering::Less;
        let pred = match self.fence_before(key)? {
            // A fence's key is below `key`: it precedes the entry.
            Some(f) => {
                let top = FENCE_LEVEL.min(f.height() - 1);
                self.descend(f, false, top, 0, limit, before)?
            }
            None => self.last_where(limit, before)?,
        };
        let mut cur = match pred {
            Some(n) => self.next(&n)?,
            None => self.first()?,
        };
        // The writer may have linked nodes after the predecessor since the
        // search passed it (newer versions, invisible to readers but still
        // ordered before the target): walk past them.
        while let Some(n) = cur.filter(|n| cmp_entry(n, key, ts) == Ordering::Less) {
            cur = self.next(&n)?;
            if let Some(c) = &cur {
                check_forward(&n, c)?;
            }
        }
        Ok(cur)
    }

    /// The node of the last fence whose key is below `key` (see
    /// [`fence`](super::fence)), taking a new sample first if the list has
    /// grown enough since the last one.
    fn fence_before(&self, key: &[u8]) -> Result<Option<Node<'a>>> {
        let cache = self.arenas.fences();
        // The key count is a hint; a damaged index only means no sample.
        let keys = KeyIndex::open(self.arenas)
            .ok()
            .flatten()
            .map_or(0, |index| index.keys());
        if cache.stale(keys) {
            cache.rebuild(keys, || self.sample(keys));
        }
        let Some(fences) = cache.get() else {
            return Ok(None);
        };
        let Some(fences) = fences.as_ref() else {
            return Ok(None);
        };
        let (before, after) = fences.around(key);
        // Asked for while the fence before is read.
        self.arenas.prefetch_node(after);
        match before {
            Some(ptr) => self.node(ptr).map(Some),
            None => Ok(None),
        }
    }

    /// Ask for the key index slot of `key` (a hint).
    pub fn prefetch_slot(&self, key: &[u8]) {
        if let Ok(Some(index)) = KeyIndex::open(self.arenas) {
            index.prefetch(key);
        }
    }

    /// Ask for the fence nodes a search for `key` will start from (a hint).
    pub fn prefetch_fences(&self, key: &[u8]) {
        if let Some(fences) = self.arenas.fences().get() {
            if let Some(fences) = fences.as_ref() {
                let (before, after) = fences.around(key);
                self.arenas.prefetch_node(before.unwrap_or(0));
                self.arenas.prefetch_node(after);
            }
        }
    }

    /// Every node linked at [`FENCE_LEVEL`], in order; `None` if the walk
    /// finds the list damaged.
    fn sample(&self, keys: u64) -> Option<Fences> {
        let mut fences = Fences::with_capacity((keys >> FENCE_LEVEL) as usize + 64);
        let mut x = self.node(HEAD).ok()?;
        let mut is_head = true;
        loop {
            let next = x.next(FENCE_LEVEL);
            if next == 0 {
                return Some(fences);
            }
            let n = self.node(next).ok()?;
            // Every step is checked, so a cycle ends the walk.
            if !is_head {
                check_forward(&x, &n).ok()?;
            }
            if n.height() <= FENCE_LEVEL || !fences.push(&n) {
                return (fences.len() > 0).then_some(fences);
            }
            x = n;
            is_head = false;
        }
    }

    /// The first node whose key is at or after `key`: the newest version of
    /// `key` when it has one (found through the key index, so a scan that
    /// starts at an existing key costs a probe instead of a search).
    ///
    /// A version linked after the index named the newest one may precede
    /// the returned node; it belongs to a commit not yet published when the
    /// caller took its snapshot, so the caller never needs it.
    pub fn seek_key(&self, key: &[u8]) -> Result<Option<Node<'a>>> {
        if let Some(index) = KeyIndex::open(self.arenas)? {
            if let Some(Probe::Newest(newest)) = index.newest(self.arenas, key)? {
                return Ok(Some(newest));
            }
        }
        self.seek_ge(key, u64::MAX)
    }

    /// The version of `key` visible at `snapshot` (a put or a delete).
    pub fn get(&self, key: &[u8], snapshot: u64) -> Result<Option<Node<'a>>> {
        if let Some(index) = KeyIndex::open(self.arenas)? {
            match index.newest(self.arenas, key)? {
                Some(Probe::Absent) => return Ok(None),
                Some(Probe::Newest(newest)) => {
                    if let Some(found) = self.walk_to_visible(newest, snapshot)? {
                        return Ok(found);
                    }
                }
                None => {}
            }
        }
        Ok(self.seek_ge(key, snapshot)?.filter(|n| n.key() == key))
    }

    /// From the newest version of a key, the version visible at
    /// `snapshot` (`Some(None)`: there is none). `None` after
    /// [`MAX_WALK`] newer versions: a search skips them faster.
    fn walk_to_visible(&self, newest: Node<'a>, snapshot: u64) -> Result<Option<Option<Node<'a>>>> {
        let key = newest.key();
        let mut n = newest;
        for _ in 0..MAX_WALK {
            if n.ts <= snapshot {
                return Ok(Some(Some(n)));
            }
            match self.next(&n)? {
                Some(older) if older.key() == key => {
                    check_forward(&n, &older)?;
                    n = older;
                }
                _ => return Ok(Some(None)),
            }
        }
        Ok(None)
    }

    /// Among nodes reaching `min_level`, the last whose key is `< key`, or
    /// `<= key` when `inclusive`, or any key when `key` is `None`.
    pub fn last_below_at(
        &self,
        min_level: usize,
        key: Option<&[u8]>,
        inclusive: bool,
    ) -> Result<Option<Node<'a>>> {
        let Some(key) = key else {
            return self.last_where_at(min_level, None, |_| true);
        };
        self.last_where_at(min_level, Some(key_prefix(key)), |n| {
            match n.key().cmp(key) {
                Ordering::Less => true,
                Ordering::Equal => inclusive,
                Ordering::Greater => false,
            }
        })
    }
}

/// Searches of a spread batch that run in lockstep.
pub const LANES: usize = 16;

/// The average gap between a commit's entries in the list from which
/// their searches run in lockstep: below it, the finger search from the
/// previous insertion is cheaper.
pub const SPREAD_GAP: u64 = 32;

/// One version of a commit, for [`Inserter::insert_all`].
#[derive(Clone, Copy)]
pub struct SpreadEntry<'k> {
    pub key: &'k [u8],
    pub kind: Kind,
    pub value: StoredValue<'k>,
}

/// The state of one search of a spread batch.
#[derive(Clone, Copy)]
struct Lane<'a> {
    prefix: u64,
    /// The last node known to precede the entry at `level`.
    x: Node<'a>,
    level: usize,
    /// The successor asked for, compared in the next round (0: none).
    pending: u64,
    /// The node that ended the level above.
    rejected: u64,
    /// Moves along the current level.
    moves: usize,
}

/// Inserts a commit's versions in key order, remembering the path of the
/// previous insertion so that a sorted batch costs little more than a walk.
pub struct Inserter<'a> {
    list: SkipList<'a>,
    arenas: &'a Arenas,
    /// For each level, the last node known to precede the next insertion.
    prev: [u64; MAX_HEIGHT],
    /// Arenas in use, in the coordination header: raised as soon as an
    /// arena is created, before any node in it is linked.
    arena_count: &'a AtomicU64,
    rng: u64,
    /// The previous insertion (0 before the first).
    last: u64,
    /// The key index, kept pointing at each key's newest version (`None`
    /// if the arena header names no table, which only damage does).
    index: Option<KeyIndex<'a>>,
}

impl<'a> Inserter<'a> {
    pub fn new(arenas: &'a Arenas, arena_count: &'a AtomicU64, seed: u64) -> Result<Self> {
        Ok(Inserter {
            list: SkipList::new(arenas),
            arenas,
            prev: [HEAD; MAX_HEIGHT],
            arena_count,
            rng: seed | 1,
            last: 0,
            index: KeyIndex::open(arenas)?,
        })
    }

    /// Prepare for `additional` insertions: the key index grows once now
    /// instead of step by step.
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        match &mut self.index {
            Some(index) => index.reserve(self.arenas, self.arena_count, additional as u64),
            None => Ok(()),
        }
    }

    /// Insert version `(key, ts)` unless the list already holds it (a
    /// dead writer's commit being finished); either way the key index
    /// names it afterwards.
    pub fn insert_if_missing(
        &mut self,
        key: &[u8],
        ts: u64,
        kind: Kind,
        value: StoredValue<'_>,
    ) -> Result<()> {
        match self.list.seek_ge(key, ts)? {
            Some(n) if n.key() == key && n.ts == ts => {
                let ptr = n.ptr();
                match &mut self.index {
                    Some(index) => index.upsert(self.arenas, self.arena_count, key, ts, ptr),
                    None => Ok(()),
                }
            }
            _ => self.insert(key, ts, kind, value),
        }
    }

    fn random_height(&mut self) -> usize {
        // xorshift64; each level with probability 1/2. With prefixes in the
        // towers, a level costs about one touched node, so more, shorter
        // levels beat fewer, longer ones.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (1 + self.rng.trailing_ones() as usize).min(MAX_HEIGHT)
    }

    /// Insert version `(key, ts)`. Entries must come in strictly increasing
    /// entry order within one `Inserter`; otherwise the path is reset.
    pub fn insert(
        &mut self,
        key: &[u8],
        ts: u64,
        kind: Kind,
        value: StoredValue<'_>,
    ) -> Result<()> {
        let prefix = key_prefix(key);
        let sorted =
            self.last != 0 && cmp_entry(&self.list.node(self.last)?, key, ts) == Ordering::Less;
        let mut preds = [HEAD; MAX_HEIGHT];
        // Finger search. Going up from level 0, find the first level at
        // which the previous insertion's predecessor is followed by a node
        // at or after the new entry (or by none). At that level and every
        // level above it, those predecessors still precede the new entry
        // with nothing in between (a higher level's next node after the
        // previous insertion is never before a lower level's), so the
        // search starts there and only descends: a run of close entries
        // (a bulk load, a batch of deletes) costs a level or two each.
        let mut top = MAX_HEIGHT - 1;
        if sorted {
            for level in 0..MAX_HEIGHT {
                let (succ, succ_prefix) = self.list.node(self.prev[level])?.next_with_prefix(level);
                // Decided by the prefix alone unless it ties: the successor
                // is not touched on the way up.
                let at_or_after = succ == 0
                    || match succ_prefix.cmp(&prefix) {
                        Ordering::Less => false,
                        Ordering::Greater => true,
                        Ordering::Equal => {
                            cmp_entry(&self.list.node(succ)?, key, ts) != Ordering::Less
                        }
                    };
                if at_or_after {
                    top = level;
                    break;
                }
            }
            preds[top..].copy_from_slice(&self.prev[top..]);
        }
        let mut x_ptr = preds[top];
        let mut x = self.list.node(x_ptr)?;
        let mut rejected = 0;
        // Below `top`, a level starts from whichever is further: the node we
        // came down with, or the previous insertion's predecessor there.
        // Those repeat over runs of levels: each distinct one is checked once.
        let mut checked = x_ptr;
        for level in (0..=top).rev() {
            let hint = self.prev[level];
            if sorted && hint != HEAD && hint != x_ptr && hint != checked {
                checked = hint;
                let h = self.list.node(hint)?;
                let ahead = x_ptr == HEAD || cmp_entry(&h, x.key(), x.ts) == Ordering::Greater;
                if ahead && cmp_entry(&h, key, ts) == Ordering::Less {
                    x = h;
                    x_ptr = hint;
                }
            }
            // As in a search: the successor's prefix rejects most nodes that
            // end a level without touching them.
            let mut moves = 0;
            loop {
                let (next, next_prefix) = x.next_with_prefix(level);
                if next == 0 || next == rejected || next_prefix > prefix {
                    break;
                }
                let n = self.list.node(next)?;
                if cmp_entry(&n, key, ts) != Ordering::Less {
                    rejected = next;
                    break;
                }
                moves += 1;
                if moves > TRUSTED_MOVES && x_ptr != HEAD {
                    check_forward(&x, &n)?;
                }
                x = n;
                x_ptr = next;
            }
            preds[level] = x_ptr;
        }
        self.link(key, ts, kind, value, preds)
    }

    /// Insert a commit's `count` versions at `ts`, in strictly increasing
    /// key order, into a list of about `list_len` entries: in lockstep
    /// searches when they are spread thinly over the list (an average gap
    /// of [`SPREAD_GAP`] entries or more), else one finger search after
    /// another.
    pub fn insert_all<'k>(
        &mut self,
        ts: u64,
        list_len: u64,
        count: u64,
        entries: impl Iterator<Item = SpreadEntry<'k>>,
    ) -> Result<()> {
        let dense = count < 2 || list_len / count < SPREAD_GAP;
        if dense && count < 2 * LANES as u64 {
            // Too few to gain from asking for anything ahead.
            for e in entries {
                self.insert(e.key, ts, e.kind, e.value)?;
            }
            return Ok(());
        }
        if dense {
            // The finger search finds each place among nodes just touched;
            // the key index slot is elsewhere, so it is asked for a few
            // entries ahead.
            let mut ahead = VecDeque::with_capacity(LANES);
            for e in entries {
                if let Some(index) = &self.index {
                    index.prefetch(e.key);
                }
                if ahead.len() == LANES {
                    let e: SpreadEntry<'_> = ahead.pop_front().expect("full");
                    self.insert(e.key, ts, e.kind, e.value)?;
                }
                ahead.push_back(e);
            }
            for e in ahead {
                self.insert(e.key, ts, e.kind, e.value)?;
            }
            return Ok(());
        }
        let mut chunk = Vec::with_capacity(LANES);
        for e in entries {
            chunk.push(e);
            if chunk.len() == LANES {
                self.insert_chunk(ts, &chunk)?;
                chunk.clear();
            }
        }
        self.insert_chunk(ts, &chunk)
    }

    /// Insert up to [`LANES`] versions at `ts` whose keys are strictly
    /// increasing (and above any inserted before by this `Inserter`),
    /// spread thinly over a large list: part of a commit of random keys
    /// (out of order, they are inserted one by one). Their searches run in
    /// lockstep, each lane asking for the node it will compare
    /// next before the others take their step, so the cache misses of the
    /// searches overlap instead of following one another. A dense batch
    /// (a bulk load, deletes of a run of keys) is better served by
    /// [`insert`](Self::insert)'s finger search.
    fn insert_chunk(&mut self, ts: u64, chunk: &[SpreadEntry<'_>]) -> Result<()> {
        debug_assert!(chunk.len() <= LANES);
        let in_order = match (self.last, chunk.first()) {
            (0, _) | (_, None) => true,
            (last, Some(first)) => {
                cmp_entry(&self.list.node(last)?, first.key, ts) == Ordering::Less
            }
        } && chunk.windows(2).all(|w| w[0].key < w[1].key);
        if !in_order {
            for e in chunk {
                self.insert(e.key, ts, e.kind, e.value)?;
            }
            return Ok(());
        }
        let mut planned = [[HEAD; MAX_HEIGHT]; LANES];
        self.plan(ts, chunk, &mut planned)?;
        for (e, planned) in chunk.iter().zip(&planned) {
            let preds = self.catch_up(planned)?;
            self.link(e.key, ts, e.kind, e.value, preds)?;
        }
        Ok(())
    }

    /// The predecessors, at every level, of each entry of `chunk` in the
    /// list as it is now (before any of them is inserted), found by
    /// searches from the head that advance in lockstep.
    fn plan(
        &self,
        ts: u64,
        chunk: &[SpreadEntry<'_>],
        planned: &mut [[u64; MAX_HEIGHT]; LANES],
    ) -> Result<()> {
        let head = self.list.node(HEAD)?;
        let mut lanes: [Option<Lane<'a>>; LANES] = [None; LANES];
        for (lane, e) in lanes.iter_mut().zip(chunk) {
            if let Some(index) = &self.index {
                index.prefetch(e.key);
            }
            *lane = Some(Lane {
                prefix: key_prefix(e.key),
                x: head,
                level: MAX_HEIGHT - 1,
                pending: 0,
                rejected: 0,
                moves: 0,
            });
        }
        let mut running = chunk.len();
        while running > 0 {
            for (i, slot) in lanes.iter_mut().enumerate() {
                let Some(lane) = slot else { continue };
                let key = chunk[i].key;
                let preds = &mut planned[i];
                // Compare the node asked for in the previous round.
                if lane.pending != 0 {
                    let n = self.list.node(lane.pending)?;
                    if cmp_entry(&n, key, ts) == Ordering::Less {
                        lane.moves += 1;
                        if lane.moves > TRUSTED_MOVES && lane.x.ptr() != HEAD {
                            check_forward(&lane.x, &n)?;
                        }
                        lane.x = n;
                    } else {
                        lane.rejected = lane.pending;
                        preds[lane.level] = lane.x.ptr();
                        if lane.level == 0 {
                            *slot = None;
                            running -= 1;
                            continue;
                        }
                        lane.level -= 1;
                        lane.moves = 0;
                    }
                    lane.pending = 0;
                }
                // Descend while the successor's prefix rejects it; stop at
                // the first node that must be looked at, and ask for it.
                loop {
                    let (next, next_prefix) = lane.x.next_with_prefix(lane.level);
                    if next == 0 || next == lane.rejected || next_prefix > lane.prefix {
                        preds[lane.level] = lane.x.ptr();
                        if lane.level == 0 {
                            break;
                        }
                        lane.level -= 1;
                        lane.moves = 0;
                        continue;
                    }
                    lane.pending = next;
                    self.arenas.prefetch_node(next);
                    break;
                }
                if lane.pending == 0 {
                    *slot = None;
                    running -= 1;
                }
            }
        }
        Ok(())
    }

    /// Predecessors planned before the previous insertions of a spread
    /// batch, brought up to date: at each level the later of the planned
    /// one and `prev`, which names the previous insertion if it reaches
    /// that level, else that insertion's predecessor there (an older node,
    /// or an earlier insertion). Both precede the entry. A node at that
    /// level before the entry either was there when the plan was made (so
    /// it is at or before the planned one) or was inserted since (so it is
    /// at or before `prev`): the later of the two is the predecessor.
    fn catch_up(&self, planned: &[u64; MAX_HEIGHT]) -> Result<[u64; MAX_HEIGHT]> {
        let mut preds = *planned;
        for (pred, &prev) in preds.iter_mut().zip(&self.prev) {
            if prev == HEAD || prev == *pred {
                continue;
            }
            if *pred == HEAD {
                *pred = prev;
                continue;
            }
            let p = self.list.node(*pred)?;
            if cmp_entry(&self.list.node(prev)?, p.key(), p.ts) == Ordering::Greater {
                *pred = prev;
            }
        }
        Ok(preds)
    }

    /// Link a new node for `(key, ts)` after `preds` and point the key
    /// index at it.
    fn link(
        &mut self,
        key: &[u8],
        ts: u64,
        kind: Kind,
        value: StoredValue<'_>,
        mut preds: [u64; MAX_HEIGHT],
    ) -> Result<()> {
        let prefix = key_prefix(key);
        let height = self.random_height();
        // Only a corrupt file has a node at a level above its height.
        for (level, &pred) in preds.iter().enumerate().take(height) {
            let p = self.list.node(pred)?;
            if level >= p.height() {
                return Err(p.corrupted("is linked at a level above its height"));
            }
        }
        let count = self.arena_count.load(atomic::Ordering::Acquire) as usize;
        let (ptr, new_count) = self.arenas.append(count, height, kind, ts, key, value)?;
        if new_count != count {
            self.arena_count
                .store(new_count as u64, atomic::Ordering::Release);
        }
        let node = self.list.node(ptr)?;
        for (level, &pred) in preds.iter().enumerate().take(height) {
            let (succ, succ_prefix) = self.list.node(pred)?.next_with_prefix(level);
            node.set_next(level, succ, succ_prefix);
        }
        for (level, &pred) in preds.iter().enumerate().take(height) {
            self.list.node(pred)?.set_next(level, ptr, prefix);
        }
        // The new node precedes the next insertion at the levels it reaches.
        preds[..height].fill(ptr);
        self.prev = preds;
        self.last = ptr;
        // Linked at level 0: the index may name it now.
        match &mut self.index {
            Some(index) => index.upsert(self.arenas, self.arena_count, key, ts, ptr),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use super::*;
    use crate::logview::{LogFile, LogSet};

    /// Check every level: links lead forward, each node reached at a level
    /// reaches it, and a node of height h is reached at every level below
    /// h. Returns level 0 as (key, ts) pairs.
    fn check_structure(list: SkipList<'_>) -> Vec<(Vec<u8>, u64)> {
        let mut below: Option<HashSet<u64>> = None;
        let mut entries = Vec::new();
        for level in 0..MAX_HEIGHT {
            let mut seen = HashSet::new();
            let mut x = list.node(HEAD).unwrap();
            let mut is_head = true;
            loop {
                let next = x.next(level);
                if next == 0 {
                    break;
                }
                let n = list.node(next).unwrap();
                assert!(level < n.height(), "level {level}: node above its height");
                if !is_head {
                    check_forward(&x, &n).unwrap();
                }
                if let Some(below) = &below {
                    assert!(below.contains(&next), "level {level}: node missing below");
                }
                if level == 0 {
                    entries.push((n.key().to_vec(), n.ts));
                }
                seen.insert(next);
                x = n;
                is_head = false;
            }
            if let Some(below) = &below {
                let tall = below
                    .iter()
                    .filter(|&&p| list.node(p).unwrap().height() > level)
                    .count();
                assert_eq!(tall, seen.len(), "level {level}: a tall node is skipped");
            }
            below = Some(seen);
        }
        entries
    }

    #[test]
    fn spread_and_dense_commits_keep_every_level_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log");
        std::fs::write(&log_path, b"").unwrap();
        let log = Arc::new(LogSet::new(vec![Arc::new(
            LogFile::open(&log_path, 0).unwrap(),
        )]));
        let arenas = Arenas::new(dir.path(), 1, 1 << 20, log);
        let count = AtomicU64::new(0);
        SkipList::init(&arenas, &count, 7).unwrap();

        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Every version ever inserted, newest first within a key.
        let mut model: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
        let mut len = 0u64;
        for ts in 1..=300u64 {
            // The first commit is dense (a load); later ones are spread,
            // and some rewrite keys that exist.
            let n = if ts == 1 { 4000 } else { 2 + next() % 60 };
            let existing: Vec<Vec<u8>> = model.keys().cloned().collect();
            let mut keys = std::collections::BTreeSet::new();
            while (keys.len() as u64) < n {
                let r = next();
                let key = if !existing.is_empty() && r % 4 == 0 {
                    existing[(r >> 8) as usize % existing.len()].clone()
                } else {
                    // Short keys and a shared 8-byte prefix: prefix ties.
                    let mut k = (r >> 16).to_be_bytes().to_vec();
                    if r % 3 == 0 {
                        k = [&b"samepref"[..], &k[..(r % 8) as usize]].concat();
                    }
                    k
                };
                keys.insert(key);
            }
            let mut ins = Inserter::new(&arenas, &count, ts).unwrap();
            ins.reserve(keys.len()).unwrap();
            let mut order: Vec<&Vec<u8>> = keys.iter().collect();
            if ts % 50 == 0 {
                // Out of order (a damaged record could be): each chunk
                // falls back to searches of its own.
                order.reverse();
            }
            let entries = order.into_iter().map(|k| SpreadEntry {
                key: k,
                kind: Kind::Put,
                value: StoredValue::Inline(b"v"),
            });
            ins.insert_all(ts, len, n, entries).unwrap();
            len += n;
            for k in keys {
                model.entry(k).or_default().insert(0, ts);
            }
        }
        let entries = check_structure(SkipList::new(&arenas));
        let expected: Vec<(Vec<u8>, u64)> = model
            .iter()
            .flat_map(|(k, tss)| tss.iter().map(move |&ts| (k.clone(), ts)))
            .collect();
        assert_eq!(entries.len() as u64, len);
        assert!(entries == expected, "level 0 differs from the model");
    }

    #[test]
    fn searches_from_fences_find_what_searches_from_the_head_find() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("log");
        std::fs::write(&log_path, b"").unwrap();
        let log = Arc::new(LogSet::new(vec![Arc::new(
            LogFile::open(&log_path, 0).unwrap(),
        )]));
        let arenas = Arenas::new(dir.path(), 1, 8 << 20, log);
        let count = AtomicU64::new(0);
        SkipList::init(&arenas, &count, 11).unwrap();
        let list = SkipList::new(&arenas);

        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Keys with a shared 8-byte prefix as well, so that fences tie.
        let key = |r: u64| -> Vec<u8> {
            if r % 3 == 0 {
                [
                    &b"samepref"[..],
                    &(r >> 20).to_be_bytes()[..(r % 9) as usize],
                ]
                .concat()
            } else {
                (r >> 8).to_be_bytes()[..1 + (r % 8) as usize].to_vec()
            }
        };
        let mut model: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
        let mut len = 0u64;
        let check = |model: &BTreeMap<Vec<u8>, Vec<u64>>, probe: &mut dyn FnMut() -> u64| {
            for _ in 0..3000 {
                let k = key(probe());
                let got = list.seek_ge(&k, u64::MAX).unwrap();
                let want = model.range(k.clone()..).next();
                assert_eq!(
                    got.map(|n| (n.key().to_vec(), n.ts)),
                    want.map(|(k, tss)| (k.clone(), tss[0])),
                    "seek {k:?}"
                );
                // A search from the head agrees.
                let limit = Some(key_prefix(&k));
                let before = |n: &Node<'_>| cmp_entry(n, &k, u64::MAX) == Ordering::Less;
                let head = match list.last_where(limit, before).unwrap() {
                    Some(n) => list.next(&n).unwrap(),
                    None => list.first().unwrap(),
                };
                assert_eq!(head.map(|n| n.ptr()), got.map(|n| n.ptr()));
            }
        };
        for (ts, n) in [(1u64, 20_000u64), (2, 3_000), (3, 9_000)] {
            let keys: std::collections::BTreeSet<Vec<u8>> = (0..n).map(|_| key(next())).collect();
            let mut ins = Inserter::new(&arenas, &count, ts).unwrap();
            ins.reserve(keys.len()).unwrap();
            let entries = keys.iter().map(|k| SpreadEntry {
                key: k,
                kind: Kind::Put,
                value: StoredValue::Inline(b"v"),
            });
            ins.insert_all(ts, len, keys.len() as u64, entries).unwrap();
            len += keys.len() as u64;
            for k in keys {
                model.entry(k).or_default().insert(0, ts);
            }
            // The second round searches a stale sample; the others a new one.
            check(&model, &mut next);
            assert!(arenas.fences().get().is_some());
        }
    }
}
