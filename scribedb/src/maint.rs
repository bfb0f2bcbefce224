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
//! Deletion: a file (arenas of a flushed memtable, an old segment, an old
//! manifest, the log behind a flush) is retired by the view change that
//! stops naming it, and deleted once no live reader in any process reads an
//! older view (`Inner::view_floor`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::coord::layout::OFF_VIEW_SEQ;
use crate::db::Inner;
use crate::entry::Kind;
use crate::error::{IoContext, Result};
use crate::gc::{Horizon, KeyFilter};
use crate::manifest::{parse_segment_file, segment_file, Manifest, SegmentRef};
use crate::memtable::{Arenas, SkipList};
use crate::segment::{Segment, SegmentMeta, SegmentWriter};
use crate::view::View;

/// Level 0 segments that trigger a compaction.
pub const L0_COMPACTION_TRIGGER: usize = 4;
/// Compaction outputs are cut at this size (at a key boundary).
pub const TARGET_SEGMENT_SIZE: u64 = 256 << 20;
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
    /// Files retired by this process's jobs: (view sequence that retired
    /// them, what).
    retired: Mutex<Vec<(u64, Retired)>>,
    /// Commits that waited for a flush (backpressure), and for how long.
    pub stalls: AtomicU64,
    pub stall_micros: AtomicU64,
    /// The view sequence of the last sweep.
    swept: AtomicU64,
}

#[derive(Clone, Debug)]
enum Retired {
    Arenas(u64),
    /// The log below this offset (its records are in a segment).
    LogBelow(u64),
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

    pub fn record_stall(&self, waited: Duration) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.stall_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
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
        let result = (|| {
            self.flush_sealed()?;
            self.compact(all)?;
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
        let horizon = self.live_snapshots(&view);
        let id = m.next_segment_id.max(1);
        let path = segment_file(&self.dir, id);
        let bottom = m.segments.is_empty();
        let meta = write_memtable(&path, &sealed, &horizon, bottom)?;
        let mut next = (**m).clone();
        next.generation = m.generation + 1;
        next.next_segment_id = id + 1;
        next.log_start = view.fields.sealed_log_end;
        next.flushed_ts = next.flushed_ts.max(meta.max_ts);
        next.history_floor = next.history_floor.max(horizon.newest());
        if meta.entries > 0 {
            next.segments.insert(0, segment_ref(id, 0, &meta));
        } else {
            let _ = std::fs::remove_file(&path);
        }
        next.write(&self.dir)?;
        let seq = self.publish_manifest(next.generation, true)?;
        self.retire(
            seq,
            [
                Retired::Arenas(sealed.generation()),
                Retired::LogBelow(next.log_start),
                Retired::Manifest(m.generation),
            ],
        );
        Ok(())
    }

    /// Merge every segment into one sorted run at level 1 when level 0 has
    /// grown to the trigger (or always, with `all`), dropping what no
    /// snapshot can see.
    fn compact(&self, all: bool) -> Result<()> {
        let view = self.current_view()?;
        let inputs: Vec<Arc<Segment>> = view
            .l0
            .iter()
            .chain(view.runs.iter().flatten())
            .cloned()
            .collect();
        let due = view.l0.len() >= L0_COMPACTION_TRIGGER;
        if inputs.is_empty() || !(due || all) {
            return Ok(());
        }
        let m = &view.manifest;
        let horizon = self.live_snapshots(&view);
        let mut next = (**m).clone();
        next.generation = m.generation + 1;
        next.history_floor = next.history_floor.max(horizon.newest());
        let mut id = m.next_segment_id.max(1);
        let outputs = merge_segments(&self.dir, &inputs, &horizon, &mut id)?;
        next.next_segment_id = id;
        next.segments = outputs;
        next.write(&self.dir)?;
        let seq = self.publish_manifest(next.generation, false)?;
        let mut retired: Vec<Retired> = m.segments.iter().map(|s| Retired::Segment(s.id)).collect();
        retired.push(Retired::Manifest(m.generation));
        self.retire(seq, retired);
        Ok(())
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

    fn retire(&self, seq: u64, what: impl IntoIterator<Item = Retired>) {
        let mut list = self.maint.retired.lock().unwrap_or_else(|p| p.into_inner());
        list.extend(what.into_iter().map(|w| (seq, w)));
    }

    /// Delete the files retired by views no live reader reads any more;
    /// when no reader reads anything but the current view, also remove
    /// whatever the current view does not name (left by crashed jobs) and
    /// cut the log behind the flushed memtables.
    fn delete_retired(&self) {
        let floor = self.view_floor();
        let due: Vec<Retired> = {
            let mut list = self.maint.retired.lock().unwrap_or_else(|p| p.into_inner());
            let (due, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|(s, _)| *s <= floor);
            *list = keep;
            due.into_iter().map(|(_, w)| w).collect()
        };
        for w in due {
            match w {
                Retired::Arenas(g) => {
                    Arenas::remove_generations(&self.dir, |x| x != g);
                }
                Retired::Segment(id) => {
                    let _ = std::fs::remove_file(segment_file(&self.dir, id));
                }
                Retired::Manifest(g) => {
                    let _ = std::fs::remove_file(Manifest::file(&self.dir, g));
                }
                Retired::LogBelow(offset) => {
                    if let Err(e) = self.wal.cut_below(offset) {
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
            self.wal.cut_below(view.manifest.log_start)
        })()
    }
}

/// Remove arenas, segments and manifests `view` does not name.
pub(crate) fn remove_unnamed(dir: &Path, view: &View) {
    let (active, sealed) = (view.fields.mem_generation, view.fields.sealed_generation);
    Arenas::remove_generations(dir, |g| g == active || (sealed != 0 && g == sealed));
    let named: std::collections::HashSet<u64> =
        view.manifest.segments.iter().map(|s| s.id).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if parse_segment_file(name).is_some_and(|id| !named.contains(&id)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let keep = view.manifest.generation;
    Manifest::remove_older(dir, keep);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let newer = name
                .to_str()
                .and_then(|n| n.strip_prefix("manifest-"))
                .and_then(|g| u64::from_str_radix(g, 16).ok())
                .is_some_and(|g| g > keep);
            if newer {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
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

/// Write every version of a sealed memtable that `horizon` keeps.
fn write_memtable(
    path: &Path,
    arenas: &Arenas,
    horizon: &Horizon,
    bottom: bool,
) -> Result<SegmentMeta> {
    // A crashed flush may have left this file; no view names it.
    let _ = std::fs::remove_file(path);
    let mut w = SegmentWriter::create(path)?;
    let list = SkipList::new(arenas);
    let mut filter = KeyFilter::new(horizon, bottom);
    let mut node = list.first()?;
    let mut versions = Vec::new();
    while let Some(n) = node {
        let key = n.key();
        versions.clear();
        let mut cur = Some(n);
        while let Some(v) = cur.filter(|v| v.key() == key) {
            versions.push((v.ts, v.kind, v));
            cur = list.next(&v)?;
        }
        for (ts, kind, v) in filter.key_versions(std::mem::take(&mut versions)) {
            let value = if kind == Kind::Put { v.value()? } else { &[] };
            w.add(key, ts, kind, value)?;
        }
        node = cur;
    }
    let meta = w.finish()?;
    sync_dir(path)?;
    Ok(meta)
}

/// Merge `inputs` (newest first) into a run of level 1 segments of about
/// `TARGET_SEGMENT_SIZE` each, numbered from `*next_id`.
fn merge_segments(
    dir: &Path,
    inputs: &[Arc<Segment>],
    horizon: &Horizon,
    next_id: &mut u64,
) -> Result<Vec<SegmentRef>> {
    let mut pos: Vec<usize> = vec![0; inputs.len()];
    let mut filter = KeyFilter::new(horizon, true);
    let mut outputs = Vec::new();
    let mut writer: Option<(u64, SegmentWriter)> = None;
    let mut versions = Vec::new();
    loop {
        // The smallest key at the inputs' heads.
        let mut key: Option<&[u8]> = None;
        for (i, seg) in inputs.iter().enumerate() {
            if pos[i] < seg.len() {
                let k = seg.entry(pos[i])?.key;
                if key.is_none_or(|best| k < best) {
                    key = Some(k);
                }
            }
        }
        let Some(key) = key else { break };
        // All of its versions; inputs are newest first, so their versions
        // come out in descending timestamp order.
        versions.clear();
        for (i, seg) in inputs.iter().enumerate() {
            while pos[i] < seg.len() {
                let e = seg.entry(pos[i])?;
                if e.key != key {
                    break;
                }
                versions.push((e.ts, e.kind, e.value));
                pos[i] += 1;
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        let kept = filter.key_versions(std::mem::take(&mut versions));
        if kept.is_empty() {
            continue;
        }
        if writer
            .as_ref()
            .is_some_and(|(_, w)| w.bytes() >= TARGET_SEGMENT_SIZE)
        {
            let (id, w) = writer.take().expect("checked");
            outputs.push(segment_ref(id, 1, &w.finish()?));
        }
        if writer.is_none() {
            let id = *next_id;
            *next_id += 1;
            let path = segment_file(dir, id);
            let _ = std::fs::remove_file(&path);
            writer = Some((id, SegmentWriter::create(&path)?));
        }
        let (_, w) = writer.as_mut().expect("just made");
        for (ts, kind, value) in kept {
            w.add(key, ts, kind, value)?;
        }
    }
    if let Some((id, w)) = writer {
        outputs.push(segment_ref(id, 1, &w.finish()?));
    }
    sync_dir(&segment_file(dir, 0))?;
    Ok(outputs)
}

fn sync_dir(file_in_dir: &Path) -> Result<()> {
    if let Some(dir) = file_in_dir.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}
