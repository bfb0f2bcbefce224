//! The commit protocol: appending a transaction's record to the log,
//! inserting its versions into the memtable, publishing it, finishing the
//! commit of a writer that died, and sealing a memtable that passed its
//! budget (docs/design.md, sections 5 and 7).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::coord::layout::*;
use crate::coord::ViewFields;
use crate::db::{Durability, Inner};
use crate::error::{Error, Result};
use crate::hlc;
use crate::logview::LogSet;
use crate::memtable::{
    version_bytes_bound, Arenas, Inserter, Kind, SkipList, SpreadEntry, StoredValue,
};
use crate::recovery::index_seed;
use crate::view::View;
use crate::wal::format::{decode_payload, parse_header, ValueOffsets, MAX_PAYLOAD, RECORD_HEADER};

/// Writes from which an `Immediate` commit starts its sync on a thread of
/// its own as soon as its record is in the log, overlapping the sync with
/// the insertion of its versions. Smaller commits insert in less time than
/// starting a thread takes.
const EARLY_SYNC_WRITES: usize = 64;

/// Gives up the writer role when dropped.
struct WriterRoleGuard<'a>(&'a Inner);

impl Drop for WriterRoleGuard<'_> {
    fn drop(&mut self) {
        self.0.release_writer();
    }
}

impl Inner {
    /// A writer died between announcing a commit and finishing it. If its
    /// WAL record is whole, finish inserting its versions (those already
    /// inserted are skipped); if not, clear the partial record. Either way
    /// the version store again matches the WAL. Writer role held.
    pub(crate) fn finish_dead_commit(&self) -> Result<()> {
        let hdr = |off| self.coord.hdr(off);
        let marks = self.coord.commit_words();
        let Some((ts, start, end)) = marks.unfinished() else {
            return Ok(());
        };
        let view = self.current_view()?;
        let base = view.fields.active_log_base;
        let sane = start <= end
            && self.wal.within(base, start)?
            && self.wal.within(base, end)?
            && end - start <= RECORD_HEADER as u64 + MAX_PAYLOAD;
        if !sane {
            return Err(Error::corrupted(
                self.coord.path(),
                OFF_COMMIT_WAL_START as u64,
                format!(
                    "unfinished commit names log range {start}..{end}; \
                     close every handle and reopen with repair to rebuild from the log"
                ),
            ));
        }
        if end > start {
            let record = self.wal.read_at(base, start, end - start)?;
            let header =
                parse_header(&record).filter(|h| h.ts == ts && h.total_len() == end - start);
            let corrupt =
                |what: &str| Error::corrupted(self.wal.path(base), start, what.to_string());
            let header =
                header.ok_or_else(|| corrupt("unfinished commit's record does not match"))?;
            let payload = &record[RECORD_HEADER..RECORD_HEADER + header.payload_len as usize];
            if crc32c::crc32c(payload) != header.payload_crc {
                return Err(corrupt("unfinished commit's record fails its checksum"));
            }
            let writes = decode_payload(payload).map_err(corrupt)?;
            let mut ins = Inserter::new(&view.active, hdr(OFF_ARENA_COUNT), ts)?;
            ins.reserve(writes.len())?;
            let payload_at = start + RECORD_HEADER as u64;
            let mut added = 0;
            for w in &writes {
                let value = StoredValue::choose(w.value, payload_at + w.value_at);
                ins.insert_if_missing(w.key, ts, w.kind, value)?;
                added += 1;
            }
            // Every version of the commit is in the list now; count from
            // the base recorded when it began.
            marks.finished_dead(added, ts);
            self.wal.sync_and_publish(&self.coord)?;
        } else {
            self.wal.clear_partial(base, start)?;
        }
        marks.clear();
        hdr(OFF_EPOCH).fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Commit a transaction's writes (sorted by key; `None` deletes), whose
    /// log payload is `payload_len` bytes long (see `format::payload_len`).
    /// Writer role held; released before waiting for durability, so the
    /// next writer can append while this commit's sync runs.
    pub fn commit<'a>(
        &self,
        writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
        payload_len: u64,
    ) -> Result<u64> {
        if self.durability != Durability::Immediate || writes.len() < EARLY_SYNC_WRITES {
            return self.commit_and_publish(writes, payload_len, |_| {});
        }
        std::thread::scope(|scope| {
            self.commit_and_publish(writes, payload_len, |end| {
                // The record is in the log: its sync may start while the
                // versions go into the store. What it publishes is read
                // from the header, so it cannot publish this commit before
                // the versions are in. If no thread can be started, the
                // sync after the insertion does it all.
                let _ = std::thread::Builder::new()
                    .name("scribedb-early-sync".into())
                    .spawn_scoped(scope, move || self.wal.wait_durable(&self.coord, end));
            })
        })
    }

    /// Commit with the writer role, then wait for durability as the mode
    /// says and publish. `logged` is as for `commit_locked`.
    fn commit_and_publish<'a>(
        &self,
        writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
        payload_len: u64,
        logged: impl FnOnce(u64),
    ) -> Result<u64> {
        let result = {
            // Released on every path, a panic included.
            let _role = WriterRoleGuard(self);
            self.commit_locked(writes, payload_len, logged)
        };
        let (ts, end) = result?;
        if self.durability == Durability::Immediate {
            // A failed sync poisons the log of this handle for good; an
            // early sync that failed fails this one too. The record may or
            // may not have reached the disk.
            self.wal
                .wait_durable(&self.coord, end)
                .map_err(|e| Error::CommitOutcomeUnknown {
                    ts,
                    why: e.to_string(),
                })?;
        }
        self.coord
            .hdr(OFF_COMMITTED_TS)
            .fetch_max(ts, Ordering::AcqRel);
        self.coord.notify_commit();
        Ok(ts)
    }

    /// `logged` is called with the end of the commit's record once the
    /// record is whole in the log, before its versions are inserted.
    fn commit_locked<'a>(
        &self,
        writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
        payload_len: u64,
        logged: impl FnOnce(u64),
    ) -> Result<(u64, u64)> {
        self.check_poison()?;
        let hdr = |off| self.coord.hdr(off);
        let written = hdr(OFF_WRITTEN_TS).load(Ordering::Acquire);
        let last = hdr(OFF_HLC_LAST).load(Ordering::Acquire).max(written);
        let ts = hlc::next(last, hlc::now_millis()).ok_or_else(|| {
            Error::corrupted(self.coord.path(), OFF_HLC_LAST as u64, "clock exhausted")
        })?;
        hdr(OFF_HLC_LAST).store(ts, Ordering::Release);

        // The writer role is held: only this commit's own seal (below)
        // changes the memtable of the view and the log file appended to.
        let view = self.current_view()?;
        let base = view.fields.active_log_base;
        let count = writes.len() as u64;
        let synced_mark = hdr(OFF_WAL_SYNCED).load(Ordering::Acquire);
        let start = hdr(OFF_WAL_END).load(Ordering::Acquire);
        if !self.wal.within(base, start)? {
            return Err(Error::corrupted(
                self.coord.path(),
                OFF_WAL_END as u64,
                format!("log end {start} lies outside the log"),
            ));
        }
        // Space in the memtable first: a commit that cannot have it (a full
        // disk) fails before its record exists, so it can never come back
        // at the next rebuild after its caller was told it failed.
        let bound = writes
            .clone()
            .map(|(key, v)| version_bytes_bound(key.len(), v.map(<[u8]>::len)))
            .fold(0usize, usize::saturating_add);
        let mut ins = Inserter::new(&view.active, hdr(OFF_ARENA_COUNT), ts)?;
        ins.reserve(writes.len())?;
        let arenas = hdr(OFF_ARENA_COUNT).load(Ordering::Acquire) as usize;
        view.active.reserve_for(arenas, bound)?;

        let marks = self.coord.commit_words();
        let versions = marks.announce(start, ts);
        let end = match self.wal.append(
            base,
            start,
            ts,
            synced_mark,
            count,
            payload_len,
            writes.clone(),
        ) {
            Ok(end) => end,
            Err(e) => {
                // Nothing reached the version store, and the append cleared
                // what it wrote.
                marks.clear();
                return Err(e);
            }
        };
        marks.logged(end);
        logged(end);

        // Values long enough live only in the log: where the record puts
        // each one follows from the writes, as the append laid them out.
        let payload_at = start + RECORD_HEADER as u64;
        let mut offsets = ValueOffsets::new();
        let entries = writes.map(|(key, v)| {
            let value_at = payload_at + offsets.next(key.len(), v.map(<[u8]>::len));
            let (kind, value) = match v {
                Some(v) => (Kind::Put, StoredValue::choose(v, value_at)),
                None => (Kind::Delete, StoredValue::Inline(&[])),
            };
            SpreadEntry { key, kind, value }
        });
        if let Err(e) = ins.insert_all(ts, versions, count, entries) {
            // The record is in the WAL: the next writer (or a reopen)
            // finishes this commit from it, if the record is durable.
            self.set_poison(format!("inserting a commit failed: {e}"));
            return Err(Error::CommitOutcomeUnknown {
                ts,
                why: format!("inserting its versions failed: {e}"),
            });
        }
        marks.written(count, ts);
        // The commit is whole; a memtable past its budget is sealed now (a
        // failure leaves it active and is retried by the next commit).
        if let Err(e) = self.seal_if_full(&view) {
            self.note_maintenance_error(format!("sealing the memtable failed: {e}"));
        }
        Ok((ts, end))
    }

    /// This handle's memtable budget.
    pub fn memtable_size(&self) -> u64 {
        self.memtable_size
    }

    /// Bytes the memtable of `view` uses: its arenas plus its log records.
    fn memtable_bytes(&self, view: &View) -> Result<u64> {
        let (used, _) = view.active.usage(view.fields.arena_count as usize)?;
        let end = self.coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
        Ok(used + end.saturating_sub(view.fields.active_log_start))
    }

    /// Seal the memtable if it passed its budget (writer role held). If the
    /// previous memtable is still being flushed, carry on in this one, and
    /// wait for that flush once this one reaches twice the budget.
    fn seal_if_full(&self, view: &View) -> Result<()> {
        let bytes = self.memtable_bytes(view)?;
        if bytes < self.memtable_size {
            return Ok(());
        }
        if view.fields.sealed_generation != 0 {
            self.start_maintenance();
            if bytes < 2 * self.memtable_size {
                return Ok(());
            }
            // Backpressure: the flush is behind the commits. A flush that
            // fails (a full disk) ends the wait: the memtable goes on
            // growing, and the flush is retried.
            let started = Instant::now();
            let failures = self.coord.hdr(OFF_FLUSH_FAILURES).load(Ordering::Acquire);
            while self.coord.read_view()?.sealed_generation != 0 {
                if self.coord.hdr(OFF_FLUSH_FAILURES).load(Ordering::Acquire) != failures {
                    break;
                }
                self.maint.wake();
                std::thread::sleep(Duration::from_millis(1));
                if started.elapsed() > Duration::from_secs(30) {
                    break;
                }
            }
            let waited = started.elapsed().as_micros() as u64;
            self.coord.hdr(OFF_STALLS).fetch_add(1, Ordering::Relaxed);
            self.coord
                .hdr(OFF_STALL_MICROS)
                .fetch_add(waited, Ordering::Relaxed);
            return self.seal(&*self.current_view()?);
        }
        self.seal(view)
    }

    /// Seal the memtable of `view` and start a new one (writer role held):
    /// make the log durable up to here and publish it, create the new
    /// generation's arenas, and switch the view. The maintenance thread
    /// then flushes the sealed one.
    pub fn seal(&self, view: &View) -> Result<()> {
        if view.fields.sealed_generation != 0
            || self.coord.hdr(OFF_VERSION_COUNT).load(Ordering::Acquire) == 0
        {
            return Ok(());
        }
        // The whole file is durable before the next one is started: a sync
        // of the next covers every position below its end (`Wal`).
        self.wal.sync_and_publish(&self.coord)?;
        let next_gen = view
            .fields
            .mem_generation
            .max(view.fields.sealed_generation)
            + 1;
        // Under the view lock, so that no sweep takes the new file for the
        // leftover of a seal that died.
        let _view_lock = self.coord.lock_view()?;
        let result = (|| {
            let fields = self.coord.read_view()?;
            let end = self.coord.hdr(OFF_WAL_END).load(Ordering::Acquire);
            let log_base = self.wal.start_file(fields.active_log_base, end)?;
            // Only initialised here; each process maps it through its view.
            let arenas = Arenas::new(&self.dir, next_gen, self.arena_size, LogSet::empty());
            let count = std::sync::atomic::AtomicU64::new(0);
            SkipList::init(&arenas, &count, index_seed())?;
            self.coord
                .hdr(OFF_VERSION_COUNT)
                .store(0, Ordering::Release);
            let seq = self.coord.write_view(&ViewFields {
                seq: 0,
                mem_generation: next_gen,
                arena_count: count.load(Ordering::Acquire),
                sealed_generation: fields.mem_generation,
                sealed_log_end: end,
                active_log_start: end,
                active_log_base: log_base,
                manifest_generation: fields.manifest_generation,
            });
            self.memtable_born(next_gen, seq);
            Ok(())
        })();
        result?;
        self.start_maintenance();
        self.maint.wake();
        Ok(())
    }
}
