//! Model tests of the coordination protocols, run by loom over every
//! interleaving of a few threads and every outcome the memory orderings
//! allow. Built only with `RUSTFLAGS="--cfg loom"` (scripts/nightly-checks):
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p scribedb --lib --release -- coord::models
//! ```
//!
//! Each thread stands for a process (or a thread of one). The shared words
//! are loom atomics, and the protocol steps on them are the engine's own
//! code in `protocol.rs` ([`claim_slot`], [`register`], [`read_slot`],
//! [`publish_between_scans`], [`raise_history_floor`], [`CommitWords`]),
//! and `gc::Horizon` decides which versions a flush keeps. What lies
//! around those steps is modelled here, each piece naming the engine
//! function it follows:
//! * a process slot's liveness (a kernel lock) is a flag;
//! * the writer role (`LOCK_WRITER`, a kernel lock dropped when its holder
//!   dies) is a loom `Mutex`, and a writer's death is its thread returning
//!   at a chosen step, dropping the guard as the kernel drops the lock;
//! * the log, the version store and files are words standing for what
//!   they hold: a record's timestamp, the newest version of a key, whether
//!   a file was deleted or a version dropped;
//! * `Wal::sync_and_publish` (in `wal/mod.rs`) is followed line by line in
//!   [`sync_and_publish`], as it reaches these words directly.

use loom::sync::atomic::AtomicU64;
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use super::protocol::{
    claim_slot, free_slot, publish_between_scans, raise_history_floor, read_slot, register, Bounds,
    CommitWords, ModelWord, ReaderWords, Word,
};
use crate::gc::Horizon;

/// One reader slot's words.
#[derive(Default)]
struct Slot {
    owner: ModelWord,
    snapshot: ModelWord,
    view: ModelWord,
}

impl Slot {
    fn words(&self) -> ReaderWords<'_, ModelWord> {
        ReaderWords {
            owner: &self.owner,
            snapshot: &self.snapshot,
            view: &self.view,
        }
    }
}

/// The header words the reader-side protocols use.
#[derive(Default)]
struct Header {
    committed_ts: ModelWord,
    gc_horizon: ModelWord,
    view_floor: ModelWord,
    view_seq: ModelWord,
    history_floor: ModelWord,
}

impl Header {
    fn bounds(&self) -> Bounds<'_, ModelWord> {
        Bounds {
            gc_horizon: &self.gc_horizon,
            view_floor: &self.view_floor,
            view_seq: &self.view_seq,
        }
    }
}

/// What a reader asks for, as `txn::At`.
#[derive(Clone, Copy)]
enum At {
    Latest,
    Past(u64),
}

/// `ReadTxn::begin_at` for one claimed slot: take the snapshot and the
/// view, register them, and retry until the registration holds. A read of
/// the past is then checked against the oldest readable point (with the
/// wall clock's part `by_time`). `None`: refused (`HistoryUnavailable`).
fn begin_at(h: &Header, slot: &Slot, at: At, by_time: u64) -> Option<(u64, u64)> {
    loop {
        let committed = h.committed_ts.load(SeqCst);
        let snapshot = match at {
            At::Latest => committed,
            At::Past(ts) => ts.min(committed),
        };
        // `Inner::current_view` / `Coord::read_view`: the sequence, even.
        let view = h.view_seq.load(SeqCst);
        if view % 2 == 1 {
            thread::yield_now();
            continue;
        }
        let holds = register(
            &slot.snapshot,
            &slot.view,
            &h.bounds(),
            snapshot,
            view,
            matches!(at, At::Latest),
        );
        if let At::Past(_) = at {
            // `Inner::oldest_readable`.
            if snapshot < raise_history_floor(&h.committed_ts, &h.history_floor, by_time, 0) {
                return None;
            }
        }
        if holds {
            return Some((snapshot, view));
        }
        thread::yield_now();
    }
}

/// Two slots, one of them left by a dead process; two readers claim, use
/// and free slots while two other processes reclaim the dead one's slot
/// (`Inner::reclaim_dead_readers`: list the slots, then free the dead
/// ones). No two readers ever own one slot, and a reclaim that read the
/// dead owner before the slot was freed and claimed again never frees it
/// from its new owner.
#[test]
fn no_two_readers_own_one_slot() {
    const DEAD: u64 = 99;
    loom::model(|| {
        let slots: Arc<[Slot; 2]> = Arc::new(Default::default());
        // How many readers believe they own each slot.
        let holders: Arc<[AtomicU64; 2]> = Arc::new(Default::default());
        slots[0].owner.store(DEAD, Relaxed);
        let reader = |tag: u64, hint: usize| {
            let (slots, holders) = (slots.clone(), holders.clone());
            thread::spawn(move || {
                let claimed = claim_slot(2, hint, tag, |i| &slots[i].owner);
                if let Some(i) = claimed {
                    assert_eq!(holders[i].fetch_add(1, SeqCst), 0, "slot {i} owned twice");
                    assert_eq!(
                        slots[i].owner.load(SeqCst),
                        tag,
                        "slot {i} taken from its owner"
                    );
                    holders[i].fetch_sub(1, SeqCst);
                    assert!(free_slot(&slots[i].owner, tag));
                }
                claimed
            })
        };
        let a = reader(1 << 16 | 1, 0);
        let b = reader(1 << 16 | 2, 1);
        let reclaimer = || {
            let slots = slots.clone();
            thread::spawn(move || {
                // `Coord::reader_slots`, then the dead ones freed.
                let listed: Vec<_> = slots.iter().map(|s| read_slot(&s.words())).collect();
                for (s, listed) in slots.iter().zip(listed) {
                    if let Some((owner, _, _)) = listed.filter(|l| l.0 == DEAD) {
                        free_slot(&s.owner, owner);
                    }
                }
            })
        };
        let reclaimers = [reclaimer(), reclaimer()];
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        for r in reclaimers {
            r.join().unwrap();
        }
        // Slot 1 was free from the start.
        assert!(a.is_some() || b.is_some());
        for s in slots.iter() {
            assert_eq!(s.owner.load(SeqCst), 0);
        }
    });
}

/// A flush (`Inner::live_snapshots`, then `gc::KeyFilter`) drops the
/// versions of a key its horizon does not keep, while a commit is
/// published and a reader registers. The version the reader sees at its
/// snapshot is never one the flush dropped: either the flush's scans see
/// the reader's slot, or the reader sees the raised horizon (a read of the
/// latest) or history floor (a read of the past) and moves up or is
/// refused.
fn gc_model(at: At) {
    loom::model(move || {
        // Versions of one key at timestamps 1 and 2 (the commit of 2 is
        // in the store, and being published); `dropped[ts]` once a flush
        // dropped that version.
        let h = Arc::new(Header::default());
        let slots: Arc<[Slot; 1]> = Arc::new(Default::default());
        let dropped: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        h.committed_ts.store(1, Relaxed);
        h.view_seq.store(2, Relaxed);

        let committer = {
            let h = h.clone();
            // `Inner::commit_and_publish`: raise the committed timestamp.
            thread::spawn(move || h.committed_ts.fetch_max(2, AcqRel))
        };
        let flusher = {
            let (h, slots, dropped) = (h.clone(), slots.clone(), dropped.clone());
            thread::spawn(move || {
                // `Inner::live_snapshots`: the retention window is over
                // for this clock, so the oldest readable point is the
                // newest commit.
                let newest = raise_history_floor(&h.committed_ts, &h.history_floor, u64::MAX, 0);
                let mut snapshots = Vec::new();
                publish_between_scans(
                    &h.gc_horizon,
                    || {
                        for s in slots.iter() {
                            if let Some((_, snapshot, _)) = read_slot(&s.words()) {
                                snapshots.push(snapshot);
                            }
                        }
                    },
                    |_| newest,
                );
                snapshots.retain(|&s| s <= newest);
                let horizon = Horizon::new(snapshots, newest);
                // `KeyFilter::key_versions`, newest first.
                let mut newer = None;
                for ts in [2, 1] {
                    if !horizon.keeps(ts, newer) {
                        dropped[ts as usize].store(1, SeqCst);
                    }
                    newer = Some(ts);
                }
            })
        };
        let reader = {
            let (h, slots, dropped) = (h.clone(), slots.clone(), dropped.clone());
            thread::spawn(move || {
                let tag = 1 << 16 | 1;
                let slot = claim_slot(1, 0, tag, |i| &slots[i].owner).expect("a free slot");
                // Its clock keeps everything in the retention window.
                if let Some((snapshot, _)) = begin_at(&h, &slots[slot], at, 0) {
                    // `View::get`: the newest version at or below the snapshot.
                    let seen = snapshot.min(2);
                    assert_eq!(
                        dropped[seen as usize].load(SeqCst),
                        0,
                        "reader at {snapshot} sees version {seen}, which the flush dropped"
                    );
                }
                free_slot(&slots[slot].owner, tag);
            })
        };
        committer.join().unwrap();
        flusher.join().unwrap();
        reader.join().unwrap();
    });
}

#[test]
fn a_reader_never_sees_a_version_gc_dropped() {
    gc_model(At::Latest);
}

#[test]
fn a_read_of_the_past_never_sees_a_version_gc_dropped() {
    gc_model(At::Past(1));
}

/// `Inner::oldest_snapshot`: a snapshot registered before the two-scan
/// computation returns is never below what it returns (invariant 4).
#[test]
fn a_registered_snapshot_is_never_below_the_oldest_snapshot() {
    loom::model(|| {
        let h = Arc::new(Header::default());
        let slots: Arc<[Slot; 1]> = Arc::new(Default::default());
        h.committed_ts.store(1, Relaxed);
        h.view_seq.store(2, Relaxed);
        // Registered: the reader's snapshot once `begin_at` returned.
        let registered = Arc::new(AtomicU64::new(0));
        let reader = {
            let (h, slots, registered) = (h.clone(), slots.clone(), registered.clone());
            thread::spawn(move || {
                let slot = claim_slot(1, 0, 7, |i| &slots[i].owner).unwrap();
                let (snapshot, _) = begin_at(&h, &slots[slot], At::Latest, 0).unwrap();
                registered.store(snapshot, SeqCst);
            })
        };
        let committer = {
            let h = h.clone();
            thread::spawn(move || h.committed_ts.fetch_max(2, AcqRel))
        };
        let scan = || {
            let committed = h.committed_ts.load(SeqCst);
            slots
                .iter()
                .filter_map(|s| read_slot(&s.words()))
                .map(|(_, snapshot, _)| snapshot)
                .fold(committed, u64::min)
        };
        let (first, second) = publish_between_scans(&h.gc_horizon, scan, |&f| f);
        let oldest = first.min(second);
        // A registration that completed before this point.
        let done = registered.load(SeqCst);
        if done != 0 {
            assert!(done >= oldest, "snapshot {done} registered below {oldest}");
        }
        reader.join().unwrap();
        committer.join().unwrap();
    });
}

/// Reclamation (`Inner::delete_retired` with `Inner::live_views`): a
/// file named by views 2 and up is retired by the view change to 4 and
/// deleted once no live reader reads a view in `[2, 4)`. A reader whose
/// registration held reads its view's files: if its view names the file,
/// the file is not deleted while the reader holds its slot.
#[test]
fn a_reader_never_reads_a_deleted_file() {
    loom::model(|| {
        let h = Arc::new(Header::default());
        let slots: Arc<[Slot; 1]> = Arc::new(Default::default());
        let deleted = Arc::new(AtomicU64::new(0));
        let (born, retired) = (2, 4);
        h.view_seq.store(born, Relaxed);

        let maintainer = {
            let (h, slots, deleted) = (h.clone(), slots.clone(), deleted.clone());
            thread::spawn(move || {
                // `Coord::write_view` (under LOCK_VIEW): odd, then even.
                h.view_seq.store(born + 1, SeqCst);
                h.view_seq.store(retired, SeqCst);
                // `Inner::live_views`.
                let current = h.view_seq.load(SeqCst) & !1;
                let mut views = Vec::new();
                let scan = || {
                    let mut floor = current;
                    for s in slots.iter() {
                        if let Some((_, _, view)) = read_slot(&s.words()) {
                            floor = floor.min(view);
                            views.push(view);
                        }
                    }
                    floor
                };
                publish_between_scans(&h.view_floor, scan, |&first| first);
                // `Inner::delete_retired`.
                if !views.iter().any(|&v| born <= v && v < retired) {
                    deleted.store(1, SeqCst);
                }
            })
        };
        let reader = {
            let (h, slots, deleted) = (h.clone(), slots.clone(), deleted.clone());
            thread::spawn(move || {
                let tag = 1 << 16 | 1;
                let slot = claim_slot(1, 0, tag, |i| &slots[i].owner).unwrap();
                let (_, view) = begin_at(&h, &slots[slot], At::Latest, 0).unwrap();
                if born <= view && view < retired {
                    assert_eq!(deleted.load(SeqCst), 0, "view {view} lost its file");
                }
                free_slot(&slots[slot].owner, tag);
            })
        };
        maintainer.join().unwrap();
        reader.join().unwrap();
    });
}

/// The header words of the commit protocol, and what stands for the log
/// and the version store.
#[derive(Default)]
struct Store {
    commit_in_progress: ModelWord,
    commit_wal_start: ModelWord,
    commit_version_base: ModelWord,
    version_count: ModelWord,
    wal_end: ModelWord,
    wal_synced: ModelWord,
    written_ts: ModelWord,
    committed_ts: ModelWord,
    /// The timestamp of the record at the log's start, once it is whole.
    record: ModelWord,
    /// The newest version of each of the commit's two keys.
    keys: [ModelWord; 2],
}

impl Store {
    fn marks(&self) -> CommitWords<'_, ModelWord> {
        CommitWords {
            commit_in_progress: &self.commit_in_progress,
            commit_wal_start: &self.commit_wal_start,
            commit_version_base: &self.commit_version_base,
            version_count: &self.version_count,
            wal_end: &self.wal_end,
            written_ts: &self.written_ts,
        }
    }
}

/// Where the log's records start, and where the one record ends.
const START: u64 = 64;
const END: u64 = 128;
const TS: u64 = 5;

/// `Wal::sync_and_publish` (wal/mod.rs), line by line: the written
/// timestamp before the end (the writer stores them in the other order),
/// the sync, then publish both.
fn sync_and_publish(s: &Store) {
    let ts = s.written_ts.load(Acquire);
    let end = s.wal_end.load(Acquire);
    // fdatasync of the log up to `end`.
    s.wal_synced.fetch_max(end, AcqRel);
    s.committed_ts.fetch_max(ts, AcqRel);
}

/// The steps of `Inner::commit_locked` and `commit_and_publish` at which
/// the model's first writer may die (its thread returns, the writer lock
/// goes).
const STEPS: u32 = 7;

/// `Inner::commit_locked`, then publishing (`commit_and_publish`), for a
/// commit of two keys at `TS`, stopping before step `die_at`.
fn commit(s: &Store, role: &Mutex<()>, die_at: u32) {
    let _role = role.lock().unwrap();
    let alive = |step| step < die_at;
    if !alive(0) {
        return;
    }
    let start = s.wal_end.load(Acquire);
    let versions = s.marks().announce(start, TS);
    if !alive(1) {
        return;
    }
    // `Wal::append`: the record, written whole.
    s.record.store(TS, Relaxed);
    if !alive(2) {
        return;
    }
    s.marks().logged(END);
    if !alive(3) {
        return;
    }
    // `Inserter::insert_all`: each version linked with a release store.
    for (i, key) in s.keys.iter().enumerate() {
        key.store(TS, Release);
        if !alive(4 + i as u32) {
            return;
        }
    }
    s.marks().written(2, TS);
    assert_eq!(versions + 2, s.version_count.load(Relaxed));
    if !alive(6) {
        return;
    }
    drop(_role);
    // `commit_and_publish`: durability (the Immediate mode syncs), then
    // the committed timestamp.
    sync_and_publish(s);
    s.committed_ts.fetch_max(TS, AcqRel);
}

/// `Inner::finish_dead_commit`, run by the next writer as it takes the
/// role: a whole record's missing versions are inserted
/// (`insert_if_missing`) and published, a partial one is cleared.
fn finish_dead_commit(s: &Store, role: &Mutex<()>) {
    let _role = role.lock().unwrap();
    let Some((ts, start, end)) = s.marks().unfinished() else {
        return;
    };
    if end > start {
        assert_eq!(
            s.record.load(Relaxed),
            ts,
            "the log end passed a partial record"
        );
        for key in &s.keys {
            if key.load(Acquire) != ts {
                key.store(ts, Release);
            }
        }
        s.marks().finished_dead(2, ts);
        sync_and_publish(s);
    } else {
        // `Wal::clear_partial`.
        s.record.store(0, Relaxed);
    }
    s.marks().clear();
}

/// The writer handoff: a writer commits and may die at any step; the next
/// writer takes the role (the kernel lock dropped with the dead one),
/// finds the unfinished commit and finishes or clears it, while another
/// process syncs and publishes and a reader reads. `committed_ts` never
/// exposes a commit not fully written (nor passes `written_ts`), and
/// afterwards the commit is whole in the store exactly when its record
/// reached the log's end.
#[test]
fn the_writer_handoff_repairs_a_dead_commit_and_readers_see_commits_whole() {
    for die_at in 0..=STEPS {
        loom::model(move || {
            let s = Arc::new(Store::default());
            let role = Arc::new(Mutex::new(()));
            s.wal_end.store(START, Relaxed);
            let first_gone = Arc::new(AtomicU64::new(0));

            let writers = {
                let (s, role, gone) = (s.clone(), role.clone(), first_gone.clone());
                thread::spawn(move || {
                    commit(&s, &role, die_at);
                    gone.store(1, Release);
                })
            };
            let next_writer = {
                let (s, role, gone) = (s.clone(), role.clone(), first_gone.clone());
                thread::spawn(move || {
                    // Takes the role after the first writer has let it go.
                    while gone.load(Acquire) == 0 {
                        thread::yield_now();
                    }
                    finish_dead_commit(&s, &role);
                })
            };
            let syncer = {
                let s = s.clone();
                thread::spawn(move || sync_and_publish(&s))
            };
            // A reader: what is committed is wholly in the store.
            let committed = s.committed_ts.load(SeqCst);
            if committed >= TS {
                for key in &s.keys {
                    assert_eq!(key.load(Acquire), TS, "commit {TS} visible in part");
                }
            }
            assert!(s.written_ts.load(Acquire) >= committed);

            writers.join().unwrap();
            next_writer.join().unwrap();
            syncer.join().unwrap();
            assert_eq!(s.commit_in_progress.load(SeqCst), 0, "left unfinished");
            let whole = die_at >= 3;
            let expect = if whole { TS } else { 0 };
            assert_eq!(s.written_ts.load(SeqCst), expect);
            assert_eq!(s.version_count.load(SeqCst), if whole { 2 } else { 0 });
            for key in &s.keys {
                assert_eq!(key.load(SeqCst), expect);
            }
            if !whole {
                assert_eq!(s.record.load(SeqCst), 0, "a partial record was left");
            }
            assert!(s.committed_ts.load(SeqCst) <= s.written_ts.load(SeqCst));
        });
    }
}
