//! The protocols on the coordination file's shared words: claiming a
//! reader slot and registering its snapshot and view, the scans that
//! compute the garbage-collection horizon and the view floor, the history
//! floor, and the commit marks a writer publishes (docs/design.md,
//! sections 3, 5, 7 and 8).
//!
//! They are written over [`Word`], one shared `u64`, so that the same code
//! runs on the mapped file (`AtomicU64`, every call monomorphised and
//! inlined: the same instructions as atomics used directly) and, in the
//! model tests (`models.rs`, built with `--cfg loom`), on loom's atomics,
//! which explore every interleaving and every weak-memory outcome the
//! orderings allow.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};

/// One shared 64-bit word.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    fn fetch_max(&self, value: u64, order: Ordering) -> u64;
}

impl Word for AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order)
    }
    #[inline(always)]
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        AtomicU64::compare_exchange(self, current, new, success, failure)
    }
    #[inline(always)]
    fn fetch_max(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_max(self, value, order)
    }
}

/// A word of the model tests: a loom atomic. Loom does not model the
/// single total order of `SeqCst` accesses (it treats them as acquire and
/// release only), so a `SeqCst` access is modelled as the access with a
/// `SeqCst` fence after a store or read-modify-write and before a load,
/// which loom does model: the mapping x86 compiles them to. It is as strong
/// as `SeqCst` accesses for what the protocols rely on (a `SeqCst` store
/// or RMW, then a `SeqCst` load of another word), and stronger only where
/// a `SeqCst` store is followed by a weaker load, which no protocol here
/// relies on.
#[cfg(all(test, loom))]
#[derive(Debug, Default)]
pub(crate) struct ModelWord(loom::sync::atomic::AtomicU64);

#[cfg(all(test, loom))]
impl Word for ModelWord {
    fn load(&self, order: Ordering) -> u64 {
        if order == SeqCst {
            loom::sync::atomic::fence(SeqCst);
        }
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order);
        if order == SeqCst {
            loom::sync::atomic::fence(SeqCst);
        }
    }
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        let result = self.0.compare_exchange(current, new, success, failure);
        if success == SeqCst {
            loom::sync::atomic::fence(SeqCst);
        }
        result
    }
    fn fetch_max(&self, value: u64, order: Ordering) -> u64 {
        let before = self.0.fetch_max(value, order);
        if order == SeqCst {
            loom::sync::atomic::fence(SeqCst);
        }
        before
    }
}

// ---- reader slots -----------------------------------------------------

/// The words of one reader slot the protocols use.
pub(crate) struct ReaderWords<'a, W> {
    /// 0 when free, else the owner tag.
    pub owner: &'a W,
    pub snapshot: &'a W,
    pub view: &'a W,
}

/// The header words a registration is checked against.
pub(crate) struct Bounds<'a, W> {
    pub gc_horizon: &'a W,
    pub view_floor: &'a W,
    pub view_seq: &'a W,
}

/// Claim a free slot for `owner` among `slots`, trying them from `hint`
/// on: the first whose owner word goes from 0 to `owner` by a CAS, so no
/// two claimants ever own one slot.
#[inline]
pub(crate) fn claim_slot<'a, W: Word + 'a>(
    slots: usize,
    hint: usize,
    owner: u64,
    owner_word: impl Fn(usize) -> &'a W,
) -> Option<usize> {
    (0..slots).map(|i| (hint + i) % slots).find(|&slot| {
        let field = owner_word(slot);
        // Look before writing: a failed CAS still takes the cache line.
        field.load(Relaxed) == 0 && field.compare_exchange(0, owner, SeqCst, Relaxed).is_ok()
    })
}

/// Free a slot `owner` holds (its own, or a dead one's): a CAS from that
/// tag, which cannot clobber a slot freed and claimed again meanwhile.
#[inline]
pub(crate) fn free_slot<W: Word>(owner_word: &W, owner: u64) -> bool {
    owner_word
        .compare_exchange(owner, 0, SeqCst, Relaxed)
        .is_ok()
}

/// Store a claimed slot's snapshot and view (its words), then check them against the
/// published bounds: whether the registration holds (else the caller takes
/// a newer snapshot and the current view, and registers again). The stores
/// and loads are sequentially consistent, so a scan that misses the
/// stores comes after them in the single order, and so does what the scan
/// published: a bound published past the snapshot, or a view change after
/// the view, is seen here. `check_horizon` is false for a read of the
/// past, which relies on the history floor instead.
#[inline]
pub(crate) fn register<W: Word>(
    slot_snapshot: &W,
    slot_view: &W,
    bounds: &Bounds<'_, W>,
    snapshot: u64,
    view: u64,
    check_horizon: bool,
) -> bool {
    slot_snapshot.store(snapshot, SeqCst);
    slot_view.store(view, SeqCst);
    (!check_horizon || bounds.gc_horizon.load(SeqCst) <= snapshot)
        && bounds.view_floor.load(SeqCst) <= view
        && bounds.view_seq.load(SeqCst) == view
}

/// A slot as a scan reads it: `(owner, snapshot, view)`, `None` if free.
#[inline]
pub(crate) fn read_slot<W: Word>(slot: &ReaderWords<'_, W>) -> Option<(u64, u64, u64)> {
    let owner = slot.owner.load(SeqCst);
    (owner != 0).then(|| (owner, slot.snapshot.load(SeqCst), slot.view.load(SeqCst)))
}

/// Scan the slots, raise `published` to `bound(&first scan)`, and scan
/// again. A reader whose registering store the first scan missed either
/// is seen by the second scan or, storing after the second scan read its
/// slot, loads the raised bound when it checks its registration
/// ([`register`]). So the lower of the two scans' results bounds every
/// registration made before this returns.
pub(crate) fn publish_between_scans<W: Word, T>(
    published: &W,
    mut scan: impl FnMut() -> T,
    bound: impl FnOnce(&T) -> u64,
) -> (T, T) {
    let first = scan();
    published.fetch_max(bound(&first), SeqCst);
    let second = scan();
    (first, second)
}

/// The oldest readable point: `by_time`, or the floor (the header's or
/// `kept`, the manifest's) if later, never later than `committed_ts`;
/// raised in `floor` before it is returned, so it never moves back.
#[inline]
pub(crate) fn raise_history_floor<W: Word>(
    committed_ts: &W,
    floor: &W,
    by_time: u64,
    kept: u64,
) -> u64 {
    let committed = committed_ts.load(SeqCst);
    let oldest = by_time.max(floor.load(SeqCst).max(kept)).min(committed);
    let before = floor.fetch_max(oldest, SeqCst);
    // The newest commit is always readable: a floor above it can only come
    // from commits a rebuild dropped, which no one can read any more.
    oldest.max(before).min(committed)
}

// ---- the writer's commit marks ------------------------------------------

/// The header words a commit announces itself and its progress in.
pub(crate) struct CommitWords<'a, W> {
    pub commit_in_progress: &'a W,
    pub commit_wal_start: &'a W,
    pub commit_version_base: &'a W,
    pub version_count: &'a W,
    pub wal_end: &'a W,
    pub written_ts: &'a W,
}

impl<W: Word> CommitWords<'_, W> {
    /// Step 3 of the commit: where its record starts and how many versions
    /// the store held, then its timestamp, which tells the next writer
    /// that a commit is under way. Returns that version count.
    #[inline]
    pub fn announce(&self, wal_start: u64, ts: u64) -> u64 {
        self.commit_wal_start.store(wal_start, Release);
        let versions = self.version_count.load(Acquire);
        self.commit_version_base.store(versions, Release);
        self.commit_in_progress.store(ts, Release);
        versions
    }

    /// Step 5: the record is whole in the log up to `end`.
    #[inline]
    pub fn logged(&self, end: u64) {
        self.wal_end.store(end, Release);
    }

    /// Step 7: every version of the commit is in the store. Writers see
    /// it from now on; readers once `committed_ts` is raised past it.
    #[inline]
    pub fn written(&self, versions: u64, ts: u64) {
        let base = self.commit_version_base.load(Acquire);
        self.version_count.store(base + versions, Release);
        self.written_ts.store(ts, Release);
        self.commit_in_progress.store(0, Release);
    }

    /// The commit is over without reaching the store (its append failed
    /// and was cleared), or a dead writer's has been finished or cleared.
    #[inline]
    pub fn clear(&self) {
        self.commit_in_progress.store(0, Release);
    }

    /// The commit a writer that died left unfinished, as the next writer
    /// finds it: `(ts, record start, log end)`. Its record is whole when
    /// the log end lies past its start (step 5 came after the append).
    #[inline]
    pub fn unfinished(&self) -> Option<(u64, u64, u64)> {
        let ts = self.commit_in_progress.load(Acquire);
        (ts != 0).then(|| {
            let start = self.commit_wal_start.load(Acquire);
            (ts, start, self.wal_end.load(Acquire))
        })
    }

    /// A dead writer's commit `ts`, whose record was whole, now has all
    /// its `versions` in the store (those it had linked, and the rest).
    #[inline]
    pub fn finished_dead(&self, versions: u64, ts: u64) {
        let base = self.commit_version_base.load(Acquire);
        self.version_count.store(base + versions, Release);
        self.written_ts.fetch_max(ts, AcqRel);
    }
}
