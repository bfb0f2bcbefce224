//! Maintenance: flushing the sealed memtable into a segment, compacting
//! segments, and deleting files no view needs any more.
//!
//! One process at a time maintains (`LOCK_MAINT`, taken for each job), in a
//! background thread of a process that writes. Every job starts from the
//! durable state (manifest and coordination header) and publishes its result
//! with one view change, so a job cut short by a crash leaves only files no
//! view names, which the next maintainer removes, and the next job starts
//! from what was published.
//!
//! Deletion: a file (arenas and log range of a flushed memtable, an old
//! segment, an old manifest) is retired by the view change that stops
//! naming it, and deleted once no live reader in any process reads a view
//! between the one that first named it and that change
//! (`Inner::live_views`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::coord::layout::{OFF_COMMITTED_TS, OFF_FLUSH_FAILURES, OFF_VIEW_SEQ};
use crate::db::Inner;
use crate::entry::Kind;
use crate::error::Result;
use crate::gc::{Horizon, KeyFilter};
use crate::io;
use crate::logfiles;
use crate::manifest::{parse_segment_file, segment_file, Manifest, SegmentRef};
use crate::memtable::{Arenas, SkipList};
use crate::segment::{Segment, SegmentMeta, SegmentWriter};
use crate::view::View;

/// Level 0 segments that trigger a compaction into level 1.
pub const L0_COMPACTION_TRIGGER: usize = 4;
/// Segment files are cut at this size (at a key boundary), or at the
/// level 1 target if that is smaller.
pub const TARGET_SEGMENT_SIZE: u64 = 256 << 20;
/// Each level's target size is this many times the one above.
pub const LEVEL_RATIO: u64 = 10;
/// Deepest level.
pub const MAX_LEVEL: usize = 6;
/// A file whose tombstones make up this share of its entries (in
/// percent) is compacted down even when no level is over its size, so
/// that deleted space comes back when nothing grows.
const TOMBSTONE_PERCENT: u64 = 25;
/// After this long without a commit, level 0 is compacted into level 1
/// whatever its size, so the space its shadowed versions take comes back.
const IDLE_COMPACTION: Duration = Duration::from_secs(30);
/// How often an idle maintenance thread looks for work in other processes'
/// commits and for files it may delete.
const POLL: Duration = Duration::from_millis(50);

/// The maintenance thread of one handle.
#[derive(Default)]
pub(crate) struct Maintenance {
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set to wake the thread early (a seal in this process).
    wake: Mutex<bool>,
    woken: Condvar,
    shutdown: AtomicBool,
    /// One job at a time in this process (the file lock is per process).
    pub job: Mutex<()>,
    /// Files retired by this process's jobs: (view sequence that first
    /// named them, 0 if unknown; view sequence that retired them; what).
    retired: Mutex<Vec<(u64, u64, Retired)>>,
    /// The view sequence that first named a segment or a manifest this
    /// process published: a file only readers of views from there on to
    /// its retirement can need.
    born: Mutex<std::collections::HashMap<Born, u64>>,
    /// The view sequence of the last sweep.
    swept: AtomicU64,
    /// Per level, the first key of the file compacted last there.
    cursors: Mutex<Vec<Vec<u8>>>,
    /// Bytes this handle's jobs wrote into segments: flushes, compactions.
    pub flushed_bytes: AtomicU64,
    pub compacted_bytes: AtomicU64,
    pub compactions: AtomicU64,
    /// The committed timestamp when last seen to move, and when.
    last_commit: Mutex<(u64, Option<std::time::Instant>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Born {
    Segment(u64),
    Manifest(u64),
    /// A memtable (arena generation) and the log its records take.
    Memtable(u64),
}

#[derive(Clone, Debug)]
enum Retired {
    Arenas(u64),
    /// The log positions of one flushed memtable (its records are in a
    /// segment): its file, or part of one.
    Log(u64, u64),
    Segment(u64),
    Manifest(u64),
}

impl Maintenance {
    /// Start the thread if it is not running.
    pub fn ensure_started(&self, inner: Weak<Inner>) {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.is_some() || self.shutdown.load(Ordering::Acquire) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("scribedb-maint".into())
            .spawn(move || run(inner));
        // Without a thread, the next writer (or a later open) maintains.
        if let Ok(handle) = spawned {
            *thread = Some(handle);
        }
    }

    pub fn wake(&self) {
        *self.wake.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.woken.notify_all();
    }

    /// Stop the thread, letting it finish a pending flush first.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.wake();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// How long no commit has been seen (the first call starts the clock).
    fn idle_for(&self) -> Duration {
        let last = self.last_commit.lock().unwrap_or_else(|p| p.into_inner());
        last.1.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Note the committed timestamp seen now.
    pub fn saw_commit(&self, committed: u64) {
        let mut last = self.last_commit.lock().unwrap_or_else(|p| p.into_inner());
        if last.0 != committed || last.1.is_none() {
            *last = (committed, Some(std::time::Instant::now()));
        }
    }

    fn sleep(&self) {
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        if !*wake {
            wake = self
                .woken
                .wait_timeout(wake, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *wake = false;
    }
}

fn run(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let maint = &inner.maint;
        let stopping = maint.shutdown.load(Ordering::Acquire);
        let result = inner.maintain_once(false, false);
        if let Err(e) = &result {
            inner.note_maintenance_error(e.to_string());
        }
        if stopping {
            return;
        }
        drop(inner);
        let Some(inner) = weak.upgrade() else { return };
        inner.maint.sleep();
    }
}

impl Inner {
    /// One round of maintenance if this process can take the role: flush a
    /// sealed memtable, compact if due (or everything, with `all`), delete
    /// what no reader needs. With `wait`, waits for another process's job
    /// to finish instead of skipping.
    pub fn maintain_once(&self, wait: bool, all: bool) -> Result<()> {
        let _job = self.maint.job.lock().unwrap_or_else(|p| p.into_inner());
        if wait {
            self.coord.lock_maint_wait()?;
        } else if !self.coord.try_lock_maint()? {
            return Ok(());
        }
        self.maint
            .saw_commit(self.coord.hdr(OFF_COMMITTED_TS).load(Ordering::Acquire));
        // A handle that is closing flushes what it owes but starts no
        // compaction (a short-lived process, one `scribe put`, does not
        // wait for one); one under way stops at its next key boundary.
        let closing = self.maint.shutdown.load(Ordering::Acquire) && !wait;
        let result = (|| {
            self.flush_sealed().inspect_err(|_| {
                self.coord
                    .hdr(OFF_FLUSH_FAILURES)
                    .fetch_add(1, Ordering::AcqRel);
            })?;
            if !closing {
                self.compact(all)?;
            }
            self.delete_retired();
            Ok(())
        })();
        self.coord.unlock_maint();
        result
    }

    /// Flush the sealed memtable, if there is one, into a level 0 segment.
    fn flush_sealed(&self) -> Result<()> {
        let view = self.current_view()?;
        let Some(sealed) = view.sealed.clone() else {
            return Ok(());
        };
        let m = &view.manifest;
        remove_newer_manifests(&self.dir, m.generation)?;
        let horizon = self.live_snapshots(&view);
        let mut id = m.next_segment_id.max(1);
        let bottom = m.segments.is_empty();
        let target = self.target_file_size();
        let (outputs, newest) =
            write_memtable(&self.dir, &sealed, &horizon, bottom, target, &mut id)?;
        let mut next = (**m).clone();
        next.generation = m.generation + 1;
        next.next_segment_id = id;
        next.log_start = view.fields.sealed_log_end;
        // The newest commit the flush covers, even if none of its versions
        // was kept: a rebuild takes the clock from it.
        next.flushed_ts = next.flushed_ts.max(newest);
        let written: u64 = outputs.iter().map(|(r, _)| r.size).sum();
        next.history_floor = next.history_floor.max(horizon.newest());
        // Newest first; the files of one flush do not overlap.
        for (seg, _) in outputs.into_iter().rev() {
            next.segments.insert(0, seg);
        }
        next.write(&self.dir)?;
        self.maint
            .flushed_bytes
            .fetch_add(written, Ordering::Relaxed);
        let seq = self.publish_manifest(next.generation, true)?;
        self.published(seq, m, &next);
        self.retire(
            seq,
            [
                Retired::Arenas(sealed.generation()),
                Retired::Log(m.log_start, next.log_start),
                Retired::Manifest(m.generation),
            ],
        );
        Ok(())
    }

    /// Level 1's target size; each deeper level's is `LEVEL_RATIO` times
    /// the one above.
    fn level_target(&self, level: usize) -> u64 {
        let base = (4 * self.memtable_size()).max(1 << 20);
        base.saturating_mul(LEVEL_RATIO.saturating_pow(level.saturating_sub(1) as u32))
    }

    fn target_file_size(&self) -> u64 {
        TARGET_SEGMENT_SIZE.min(self.level_target(1))
    }

    /// Run one compaction if one is due (or, with `all`, merge everything
    /// into one run at the deepest level). Leveled: level 0 (flushed
    /// files, newest first, overlapping) goes into level 1 once it holds
    /// `L0_COMPACTION_TRIGGER` files; a level over its target size sends
    /// one file (taken in turn through the key space) down into the
    /// overlapping files of the next level; a file that overlaps nothing
    /// below moves down without being rewritten.
    fn compact(&self, all: bool) -> Result<()> {
        let view = self.current_view()?;
        let Some(job) = self.pick(&view, all) else {
            return Ok(());
        };
        let m = &view.manifest;
        remove_newer_manifests(&self.dir, m.generation)?;
        let mut next = (**m).clone();
        next.generation = m.generation + 1;
        let input_ids: std::collections::HashSet<u64> =
            job.inputs.iter().map(|(r, _)| r.id).collect();
        next.segments.retain(|s| !input_ids.contains(&s.id));
        let mut firsts: std::collections::HashMap<u64, Vec<u8>> = view_files(&view)
            .map(|(r, seg)| (r.id, seg.meta().first_key.clone()))
            .collect();
        let mut retired = vec![Retired::Manifest(m.generation)];
        if job.trivial {
            // Nothing below overlaps: the file moves down as it is.
            for (r, _) in &job.inputs {
                next.segments.push(SegmentRef {
                    level: job.output_level as u8,
                    ..r.clone()
                });
            }
        } else {
            let horizon = self.live_snapshots(&view);
            next.history_floor = next.history_floor.max(horizon.newest());
            let mut id = m.next_segment_id.max(1);
            let inputs: Vec<Arc<Segment>> = job.inputs.iter().map(|(_, s)| s.clone()).collect();
            let cancel = if all {
                None
            } else {
                Some(&self.maint.shutdown)
            };
            let run = RunWriter::new(
                &self.dir,
                job.output_level as u8,
                self.target_file_size(),
                &mut id,
            );
            let outputs = merge_segments(&inputs, &horizon, job.bottom, run, cancel)?;
            next.next_segment_id = id;
            let written: u64 = outputs.iter().map(|(r, _)| r.size).sum();
            self.maint
                .compacted_bytes
                .fetch_add(written, Ordering::Relaxed);
            for (r, first) in outputs {
                firsts.insert(r.id, first);
                next.segments.push(r);
            }
            retired.extend(job.inputs.iter().map(|(r, _)| Retired::Segment(r.id)));
        }
        // Level 0 stays newest first; deeper levels go in key order.
        let l0: Vec<SegmentRef> = next
            .segments
            .iter()
            .filter(|s| s.level == 0)
            .cloned()
            .collect();
        let mut deeper: Vec<SegmentRef> = next
            .segments
            .iter()
            .filter(|s| s.level > 0)
            .cloned()
            .collect();
        deeper.sort_by(|a, b| {
            a.level
                .cmp(&b.level)
                .then_with(|| firsts.get(&a.id).cmp(&firsts.get(&b.id)))
        });
        next.segments = l0.into_iter().chain(deeper).collect();
        next.write(&self.dir)?;
        let seq = self.publish_manifest(next.generation, false)?;
        self.published(seq, m, &next);
        self.retire(seq, retired);
        self.maint.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The compaction to run now, if any.
    fn pick(&self, view: &View, all: bool) -> Option<Job> {
        let files: Vec<(SegmentRef, Arc<Segment>)> = view_files(view)
            .map(|(r, s)| (r.clone(), s.clone()))
            .collect();
        if files.is_empty() {
            return None;
        }
        let deepest = files
            .iter()
            .map(|(r, _)| r.level as usize)
            .max()
            .unwrap_or(0);
        if all {
            // One run at the deepest level (level 1 at least).
            if files.len() == 1 && deepest > 0 && files[0].1.meta().tombstones == 0 {
                return None;
            }
            return Some(Job {
                inputs: files,
                output_level: deepest.max(1),
                bottom: true,
                trivial: false,
            });
        }
        let at = |level: usize| files.iter().filter(move |(r, _)| r.level as usize == level);
        let bytes = |level: usize| at(level).map(|(r, _)| r.size).sum::<u64>();
        let l0 = at(0).count();
        let idle = self.maint.idle_for() >= IDLE_COMPACTION;
        if l0 >= L0_COMPACTION_TRIGGER || (l0 > 0 && idle) {
            let upper: Vec<_> = at(0).cloned().collect();
            return Some(self.job_into(&files, upper, 1, deepest));
        }
        // The level furthest over its target.
        let over = (1..MAX_LEVEL)
            .map(|level| (level, bytes(level) as f64 / self.level_target(level) as f64))
            .filter(|(_, score)| *score > 1.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((level, _)) = over {
            let file = self.next_in_turn(level, at(level).cloned().collect());
            return Some(self.job_into(&files, vec![file], level + 1, deepest));
        }
        // A file mostly made of tombstones, once every snapshot that could
        // still need them is gone (else the rewrite would keep them, and
        // come back at every poll).
        let oldest = self.oldest_snapshot_seen().min(self.oldest_readable(view));
        let dense = files.iter().find(|(r, s)| {
            let m = s.meta();
            r.level > 0
                && m.entries >= 64
                && m.tombstones * 100 >= m.entries * TOMBSTONE_PERCENT
                && m.max_ts <= oldest
        });
        if let Some((r, _)) = dense {
            let level = r.level as usize;
            let file = dense.cloned().expect("found");
            if level >= deepest {
                // At the bottom: rewrite it alone, dropping its tombstones.
                return Some(Job {
                    inputs: vec![file],
                    output_level: level,
                    bottom: true,
                    trivial: false,
                });
            }
            return Some(self.job_into(&files, vec![file], level + 1, deepest));
        }
        None
    }

    /// A job merging `upper` with the files of `output_level` it overlaps.
    fn job_into(
        &self,
        files: &[(SegmentRef, Arc<Segment>)],
        upper: Vec<(SegmentRef, Arc<Segment>)>,
        output_level: usize,
        deepest: usize,
    ) -> Job {
        let lo = upper.iter().map(|(_, s)| s.meta().first_key.clone()).min();
        let hi = upper.iter().map(|(_, s)| s.meta().last_key.clone()).max();
        let lower: Vec<_> = files
            .iter()
            .filter(|(r, s)| {
                r.level as usize == output_level
                    && s.meta().last_key >= lo.clone().unwrap_or_default()
                    && Some(&s.meta().first_key) <= hi.as_ref()
            })
            .cloned()
            .collect();
        // Moving files down without a rewrite keeps the order of versions
        // only if they do not overlap one another: files of a deeper level
        // never do, and neither do the level 0 files of one large flush.
        let disjoint = {
            let mut ranges: Vec<(&[u8], &[u8])> = upper
                .iter()
                .map(|(_, s)| (s.meta().first_key.as_slice(), s.meta().last_key.as_slice()))
                .collect();
            ranges.sort_unstable();
            ranges.windows(2).all(|w| w[0].1 < w[1].0)
        };
        let trivial = lower.is_empty() && (upper.iter().all(|(r, _)| r.level > 0) || disjoint);
        let bottom = output_level >= deepest;
        let mut inputs = upper;
        inputs.extend(lower);
        Job {
            inputs,
            output_level,
            bottom,
            trivial,
        }
    }

    /// The file of `level` after the one compacted last there, in key
    /// order (round robin through the key space).
    fn next_in_turn(
        &self,
        level: usize,
        files: Vec<(SegmentRef, Arc<Segment>)>,
    ) -> (SegmentRef, Arc<Segment>) {
        let mut cursors = self.maint.cursors.lock().unwrap_or_else(|p| p.into_inner());
        if cursors.len() <= level {
            cursors.resize(level + 1, Vec::new());
        }
        let after = &cursors[level];
        let pick = files
            .iter()
            .find(|(_, s)| s.meta().first_key > *after)
            .or(files.first())
            .cloned()
            .expect("the level is not empty");
        cursors[level] = pick.1.meta().first_key.clone();
        pick
    }

    /// Store a new retention window in the manifest (waits for a job
    /// another process runs).
    pub fn set_retention(&self, retention_ms: u64) -> Result<()> {
        if self.current_view()?.manifest.retention_ms == retention_ms {
            return Ok(());
        }
        let _job = self.maint.job.lock().unwrap_or_else(|p| p.into_inner());
        self.coord.lock_maint_wait()?;
        let result = (|| {
            let view = self.current_view()?;
            let m = &view.manifest;
            if m.retention_ms == retention_ms {
                return Ok(());
            }
            let mut next = (**m).clone();
            next.generation = m.generation + 1;
            next.retention_ms = retention_ms;
            // Shortening the window must not move the floor back.
            next.history_floor = next.history_floor.max(self.oldest_readable(&view));
            next.write(&self.dir)?;
            let seq = self.publish_manifest(next.generation, false)?;
            self.retire(seq, [Retired::Manifest(m.generation)]);
            Ok(())
        })();
        self.coord.unlock_maint();
        result
    }

    /// Publish manifest `generation` in the view (and, after a flush, drop
    /// the sealed memtable from it). Returns the new view sequence.
    fn publish_manifest(&self, generation: u64, flushed: bool) -> Result<u64> {
        let _view_lock = self.coord.lock_view()?;
        self.coord.read_view().map(|mut f| {
            f.manifest_generation = generation;
            if flushed {
                f.sealed_generation = 0;
                f.sealed_log_end = 0;
            }
            self.coord.write_view(&f)
        })
    }

    /// Note that memtable `generation` became the current one at view `seq`.
    pub fn memtable_born(&self, generation: u64, seq: u64) {
        self.born(seq, [Born::Memtable(generation)]);
    }

    /// Note what manifest `next`, published at view `seq` in place of
    /// `prev`, names first: itself and the segments written for it.
    fn published(&self, seq: u64, prev: &Manifest, next: &Manifest) {
        let new = next
            .segments
            .iter()
            .filter(|s| s.id >= prev.next_segment_id)
            .map(|s| Born::Segment(s.id));
        self.born(seq, new.chain([Born::Manifest(next.generation)]));
    }

    fn born(&self, seq: u64, what: impl IntoIterator<Item = Born>) {
        let mut born = self.maint.born.lock().unwrap_or_else(|p| p.into_inner());
        born.extend(what.into_iter().map(|b| (b, seq)));
    }

    fn retire(&self, seq: u64, what: impl IntoIterator<Item = Retired>) {
        let mut born = self.maint.born.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = self.maint.retired.lock().unwrap_or_else(|p| p.into_inner());
        for w in what {
            let first = match w {
                Retired::Segment(id) => born.remove(&Born::Segment(id)),
                Retired::Manifest(g) => born.remove(&Born::Manifest(g)),
                Retired::Arenas(g) => born.get(&Born::Memtable(g)).copied(),
                Retired::Log(..) => None,
            };
            // The log of a memtable is born with it.
            let first = match w {
                Retired::Log(..) => list
                    .iter()
                    .rev()
                    .find(|(_, s, r)| *s == seq && matches!(r, Retired::Arenas(_)))
                    .map(|(b, _, _)| *b),
                _ => first,
            };
            if let Retired::Arenas(g) = w {
                born.remove(&Born::Memtable(g));
            }
            list.push((first.unwrap_or(0), seq, w));
        }
    }

    /// Delete the files retired by views no live reader reads any more;
    /// when no reader reads anything but the current view, also remove
    /// whatever the current view does not name (left by crashed jobs) and
    /// cut the log behind the flushed memtables.
    fn delete_retired(&self) {
        // A file named from view `born` until view `retired` is needed only
        // by a reader of a view in between: one that started after it was
        // made, or after it was retired, does not pin it.
        let (floor, views) = self.live_views();
        let due: Vec<Retired> = {
            let mut list = self.maint.retired.lock().unwrap_or_else(|p| p.into_inner());
            let (due, keep): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|(born, retired, _)| !views.iter().any(|v| born <= v && v < retired));
            *list = keep;
            due.into_iter().map(|(_, _, w)| w).collect()
        };
        for w in due {
            match w {
                Retired::Arenas(g) => {
                    Arenas::remove_generations(&self.dir, |x| x != g);
                }
                Retired::Segment(id) => {
                    io::remove_quietly(&segment_file(&self.dir, id));
                }
                Retired::Manifest(g) => {
                    io::remove_quietly(&Manifest::file(&self.dir, g));
                }
                Retired::Log(from, to) => {
                    let active = self.coord.read_view().map(|f| f.active_log_base);
                    if let Err(e) = active.and_then(|base| self.wal.release(from, to, base)) {
                        self.note_maintenance_error(e.to_string());
                    }
                }
            }
        }
        // Once per view (an idle thread does not list the directory every
        // time it looks).
        let current = self.coord.hdr(OFF_VIEW_SEQ).load(Ordering::SeqCst);
        if floor >= current && self.maint.swept.swap(current, Ordering::AcqRel) != current {
            if let Err(e) = self.sweep() {
                self.maint.swept.store(0, Ordering::Release);
                self.note_maintenance_error(e.to_string());
            }
        }
    }

    /// Remove every file the current view does not name, and cut the log
    /// below the manifest's `log_start`. Only when no reader reads an older
    /// view; under the view lock, so no seal creates arenas meanwhile.
    fn sweep(&self) -> Result<()> {
        let _view_lock = self.coord.lock_view()?;
        (|| {
            let f = self.coord.read_view()?;
            if self.view_floor() < f.seq {
                return Ok(());
            }
            let view = self.current_view()?;
            remove_unnamed(&self.dir, &view);
            self.wal
                .release_below(view.manifest.log_start, view.fields.active_log_base)
        })()
    }
}

/// Remove arenas, segments, manifests and log files `view` does not name
/// (a log file past the one appended to was started by a seal that died).
pub(crate) fn remove_unnamed(dir: &Path, view: &View) {
    for base in logfiles::list(dir).unwrap_or_default() {
        if base > view.fields.active_log_base {
            io::remove_quietly(&logfiles::path(dir, base));
        }
    }
    for (name, path) in io::list(dir).unwrap_or_default() {
        if logfiles::is_temporary(&name) {
            io::remove_quietly(&path);
        }
    }
    let keep = view.manifest.generation;
    // Unpublished manifests first, durably: a rebuild must never find one
    // that names segments removed below.
    if remove_newer_manifests(dir, keep).is_err() {
        return;
    }
    let (active, sealed) = (view.fields.mem_generation, view.fields.sealed_generation);
    Arenas::remove_generations(dir, |g| g == active || (sealed != 0 && g == sealed));
    remove_unlisted_segments(dir, &view.manifest);
    Manifest::remove_older(dir, keep);
}

/// Remove manifests newer than the published generation `keep` (written
/// by a job that died before publishing them) and sync the directory, so
/// that no rebuild trusts one whose segments a later job reuses the names
/// of. Every job runs this before it writes a segment.
pub(crate) fn remove_newer_manifests(dir: &Path, keep: u64) -> Result<()> {
    let mut removed = false;
    for (name, path) in io::list(dir)? {
        let newer = name
            .strip_prefix("manifest-")
            .filter(|g| g.len() == 16)
            .and_then(|g| u64::from_str_radix(g, 16).ok())
            .is_some_and(|g| g > keep);
        if newer {
            removed |= io::remove(&path)?;
        }
    }
    if removed {
        io::sync_dir(dir)?;
    }
    Ok(())
}

/// Remove segment files a manifest does not list (left by a flush or a
/// compaction that died).
pub(crate) fn remove_unlisted_segments(dir: &Path, manifest: &Manifest) {
    let listed: std::collections::HashSet<u64> = manifest.segments.iter().map(|s| s.id).collect();
    for (name, path) in io::list(dir).unwrap_or_default() {
        if parse_segment_file(&name).is_some_and(|id| !listed.contains(&id)) {
            io::remove_quietly(&path);
        }
    }
}

/// A compaction: merge `inputs` into a run at `output_level`.
struct Job {
    inputs: Vec<(SegmentRef, Arc<Segment>)>,
    output_level: usize,
    /// No level below the output holds data: tombstones may go.
    bottom: bool,
    /// The inputs overlap nothing at the output level: move them.
    trivial: bool,
}

/// Every segment of `view` with its manifest entry (the view lists them
/// in manifest order: level 0, then each deeper level).
fn view_files(view: &View) -> impl Iterator<Item = (&SegmentRef, &Arc<Segment>)> {
    view.manifest
        .segments
        .iter()
        .zip(view.l0.iter().chain(view.runs.iter().flatten()))
}

fn segment_ref(id: u64, level: u8, meta: &SegmentMeta) -> SegmentRef {
    SegmentRef {
        id,
        level,
        size: meta.size,
        entries: meta.entries,
        live_bytes: meta.newest_put_bytes,
        min_ts: meta.min_ts,
        max_ts: meta.max_ts,
    }
}

/// The files of a run, each with its first key.
type RunFiles = Vec<(SegmentRef, Vec<u8>)>;

/// Segment files written one after another, cut at a size at key
/// boundaries: a sorted run.
struct RunWriter<'d> {
    dir: &'d Path,
    level: u8,
    target: u64,
    next_id: &'d mut u64,
    current: Option<(u64, SegmentWriter)>,
    done: Vec<(SegmentRef, Vec<u8>)>,
}

impl<'d> RunWriter<'d> {
    fn new(dir: &'d Path, level: u8, target: u64, next_id: &'d mut u64) -> Self {
        RunWriter {
            dir,
            level,
            target,
            next_id,
            current: None,
            done: Vec::new(),
        }
    }

    /// The writer for the next key's versions.
    fn for_key(&mut self) -> Result<&mut SegmentWriter> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, w)| w.bytes() >= self.target)
        {
            self.finish_current()?;
        }
        if self.current.is_none() {
            let id = *self.next_id;
            *self.next_id += 1;
            let path = segment_file(self.dir, id);
            // A crashed job may have left this file; no view names it.
            io::remove(&path)?;
            self.current = Some((id, SegmentWriter::create(&path)?));
        }
        Ok(&mut self.current.as_mut().expect("just made").1)
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some((id, w)) = self.current.take() {
            let meta = w.finish()?;
            let first = meta.first_key.clone();
            self.done.push((segment_ref(id, self.level, &meta), first));
        }
        Ok(())
    }

    /// Finish the run: its files, each with its first key.
    fn finish(mut self) -> Result<RunFiles> {
        self.finish_current()?;
        sync_dir(&segment_file(self.dir, 0))?;
        Ok(self.done)
    }
}

/// Write every version of a sealed memtable that `horizon` keeps, as a
/// run of level 0 files; also returns the newest timestamp in the memtable
/// (kept or not: the newest commit the flush covers).
fn write_memtable(
    dir: &Path,
    arenas: &Arenas,
    horizon: &Horizon,
    bottom: bool,
    target: u64,
    next_id: &mut u64,
) -> Result<(RunFiles, u64)> {
    let mut newest = 0;
    let mut run = RunWriter::new(dir, 0, target, next_id);
    let list = SkipList::new(arenas);
    let mut filter = KeyFilter::new(horizon, bottom);
    let mut node = list.first()?;
    let mut versions = Vec::new();
    while let Some(n) = node {
        let key = n.key();
        versions.clear();
        let mut cur = Some(n);
        while let Some(v) = cur.filter(|v| v.key() == key) {
            newest = newest.max(v.ts);
            versions.push((v.ts, v.kind, v));
            cur = list.next(&v)?;
        }
        let kept = filter.key_versions(std::mem::take(&mut versions));
        if !kept.is_empty() {
            let w = run.for_key()?;
            for (ts, kind, v) in kept {
                let value = if kind == Kind::Put { v.value()? } else { &[] };
                w.add(key, ts, kind, value)?;
            }
        }
        node = cur;
    }
    Ok((run.finish()?, newest))
}

/// Merge `inputs` (newest first: level 0 files, then deeper ones) into
/// `run`, keeping what `horizon` keeps; stops early when `cancel` is set.
fn merge_segments(
    inputs: &[Arc<Segment>],
    horizon: &Horizon,
    bottom: bool,
    mut run: RunWriter<'_>,
    cancel: Option<&AtomicBool>,
) -> Result<RunFiles> {
    let mut pos: Vec<usize> = vec![0; inputs.len()];
    let mut keys = 0u64;
    let mut heads = Vec::with_capacity(inputs.len());
    for seg in inputs {
        heads.push(if seg.len() == 0 {
            None
        } else {
            Some(seg.entry(0)?)
        });
    }
    let mut filter = KeyFilter::new(horizon, bottom);
    let mut versions = Vec::new();
    // The smallest key at the inputs' heads, one key at a time.
    while let Some(key) = heads.iter().flatten().map(|h| h.key).min() {
        // All of its versions. A key's versions in an earlier input are
        // newer than in a later one, and each input holds them newest
        // first, so they come out in descending timestamp order.
        versions.clear();
        for (i, seg) in inputs.iter().enumerate() {
            while let Some(h) = heads[i].filter(|h| h.key == key) {
                versions.push((h.ts, h.kind, h.value));
                pos[i] += 1;
                heads[i] = if pos[i] < seg.len() {
                    Some(seg.entry(pos[i])?)
                } else {
                    None
                };
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        versions.dedup_by_key(|v| v.0);
        let kept = filter.key_versions(std::mem::take(&mut versions));
        keys += 1;
        if keys % 4096 == 0 && cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
            // The handle is closing: the unfinished files are removed as
            // their writers drop, and the job is left to the next one.
            return Err(crate::error::Error::io(
                "compacting",
                std::io::Error::new(std::io::ErrorKind::Interrupted, "the handle is closing"),
            ));
        }
        if kept.is_empty() {
            continue;
        }
        let w = run.for_key()?;
        for (ts, kind, value) in kept {
            w.add(key, ts, kind, value)?;
        }
    }
    run.finish()
}

fn sync_dir(file_in_dir: &Path) -> Result<()> {
    match file_in_dir.parent() {
        Some(dir) => io::sync_dir(dir),
        None => Ok(()),
    }
}
