//! Read and write transactions.
//!
//! A `ReadTxn` holds a reader slot in the coordination file carrying its
//! snapshot timestamp, and reads the shared version store at that snapshot
//! without locks; values borrow from the mapping. A `WriteTxn` holds the
//! writer role, buffers its writes privately (reading its own writes), and
//! publishes nothing until `commit`.

use std::cell::Cell;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::coord::layout::{OFF_COMMITTED_TS, OFF_GC_HORIZON};
use crate::db::{Inner, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::history::KeyVersion;
use crate::hlc;
use crate::memtable::prefix_end;
use crate::merge::Ends;
use crate::view::{Scan, View};
use crate::wal::format::payload_len;
use crate::write_buffer::WriteBuffer;

/// Which snapshot a reader registers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum At {
    /// The newest published commit.
    Latest,
    /// A write transaction's snapshot (every commit written so far, which
    /// no garbage collection can pass).
    Writer(u64),
    /// The state at a past timestamp.
    Past(u64),
}

thread_local! {
    /// The reader slot this thread freed last (a free slot, most likely):
    /// the first one `begin_read` tries. Threads start spread out.
    static READER_HINT: Cell<usize> = Cell::new({
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(61, Ordering::Relaxed)
    });
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

fn owned_bounds<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// A consistent, read-only view of the database at one commit.
///
/// Lock-free and zero-copy; `Send`, so it may move to another thread. It
/// occupies one reader slot until dropped, and the versions it sees are kept
/// until then.
pub struct ReadTxn {
    inner: Arc<Inner>,
    slot: usize,
    snapshot: u64,
    /// The memtables and segments this transaction reads; its slot pins
    /// their files.
    view: Arc<View>,
}

impl ReadTxn {
    pub(crate) fn begin(inner: Arc<Inner>) -> Result<ReadTxn> {
        Self::begin_at(inner, At::Latest)
    }

    /// Register a reader at the snapshot `at` names.
    pub(crate) fn begin_at(inner: Arc<Inner>, at: At) -> Result<ReadTxn> {
        inner.check_fork()?;
        let coord = &inner.coord;
        let hint = READER_HINT.with(Cell::get);
        let slot = match coord.claim_reader_slot(inner.owner_tag, hint) {
            Some(slot) => slot,
            None => {
                inner.reclaim_dead_readers();
                coord
                    .claim_reader_slot(inner.owner_tag, hint)
                    .ok_or(Error::ReadersFull {
                        max: coord.max_readers() as u32,
                    })?
            }
        };
        let started = hlc::now_millis();
        // Register, then re-check: if garbage collection published a horizon
        // past our snapshot before it could see our slot, take a newer one
        // (the horizon never passes the committed timestamp, so one retry
        // settles it; the bound only guards against a corrupt header). The
        // view is taken after the snapshot, so it holds every commit the
        // snapshot covers (a commit into a new memtable is published only
        // after the view naming that memtable), and is registered the same
        // way against the view floor, below which files may be gone. A read
        // of the past checks its snapshot against the oldest readable point
        // computed after its store instead: garbage collection raises that
        // floor before it scans the slots, so either the scan sees this
        // reader or the check refuses it.
        for _ in 0..1000 {
            let committed = coord.hdr(OFF_COMMITTED_TS).load(Ordering::SeqCst);
            let snapshot = match at {
                At::Latest => committed,
                At::Writer(s) => s,
                // A future timestamp reads the newest commit.
                At::Past(ts) => ts.min(committed),
            };
            let view = match inner.current_view() {
                Ok(view) => view,
                Err(e) => {
                    coord.release_reader_slot(slot, inner.owner_tag);
                    return Err(e);
                }
            };
            // A read of the past relies on the history floor, checked
            // below, not on the horizon (`oldest_snapshot` may publish one
            // above the floor). The view must still be the current one
            // after the store: files it names are deleted only once retired
            // by a later view, after which this check fails and a new view
            // is taken.
            let holds = coord.register_reader(
                slot,
                snapshot,
                view.fields.seq,
                view.manifest.generation,
                started,
                inner.pid,
                !matches!(at, At::Past(_)),
            );
            if let At::Past(requested) = at {
                let oldest = inner.oldest_readable(&view);
                if snapshot < oldest {
                    coord.release_reader_slot(slot, inner.owner_tag);
                    return Err(Error::HistoryUnavailable { requested, oldest });
                }
            }
            if holds {
                return Ok(ReadTxn {
                    inner,
                    slot,
                    snapshot,
                    view,
                });
            }
        }
        coord.release_reader_slot(slot, inner.owner_tag);
        Err(Error::corrupted(
            coord.path(),
            OFF_GC_HORIZON as u64,
            "garbage-collection horizon is ahead of the committed timestamp; close every \
             handle, then remove the file to rebuild it from the log",
        ))
    }

    /// The commit timestamp this transaction sees: every commit with
    /// `ts <= snapshot_ts()` and nothing newer.
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot
    }

    /// The memtables and segments this transaction reads: its slot keeps
    /// their files from being deleted while it lives.
    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    /// The versions of `key` this snapshot can see that are still kept,
    /// newest first, with their commit timestamps (`None`: deleted). The
    /// first is the one `get` returns. Versions older than the oldest
    /// readable point may be gone in part.
    pub fn versions(&self, key: impl AsRef<[u8]>) -> Result<Vec<KeyVersion<'_>>> {
        let key = key.as_ref();
        check_key(key)?;
        self.inner.check_fork()?;
        self.view.versions(key, self.snapshot)
    }

    /// The value of `key`, borrowed from the shared mapping.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<&[u8]>> {
        let key = key.as_ref();
        check_key(key)?;
        self.inner.check_fork()?;
        self.view.get(key, self.snapshot)
    }

    /// Keys within `range`, in order (reverse with `.rev()`).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Range<'_> {
        let (lower, upper) = owned_bounds(&range);
        self.bounded(lower, upper)
    }

    /// Keys starting with `prefix`, in order.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Range<'_> {
        let prefix = prefix.as_ref();
        self.bounded(Bound::Included(prefix.to_vec()), prefix_end(prefix))
    }

    /// Every key, in order.
    pub fn iter(&self) -> Range<'_> {
        self.bounded(Bound::Unbounded, Bound::Unbounded)
    }

    fn bounded(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Range<'_> {
        Range {
            iter: self.view.scan(self.snapshot, lower, upper),
            inner: &self.inner,
        }
    }
}

impl Drop for ReadTxn {
    fn drop(&mut self) {
        // In a forked child the slot is the parent's reader's.
        if self.inner.forked() {
            return;
        }
        self.inner
            .coord
            .release_reader_slot(self.slot, self.inner.owner_tag);
        // Where this thread looks first next time: kept per thread, so
        // threads sharing a handle do not bounce one cache line.
        READER_HINT.with(|hint| hint.set(self.slot));
    }
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

/// Key-value pairs of a read transaction, borrowed from the mapping.
pub struct Range<'a> {
    iter: Scan<'a>,
    inner: &'a Inner,
}

impl<'a> Iterator for Range<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.inner.check_fork() {
            return Some(Err(e));
        }
        self.iter.next()
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.inner.check_fork() {
            return Some(Err(e));
        }
        self.iter.next_back()
    }
}

/// The one write transaction. Dropping it without `commit` aborts it.
pub struct WriteTxn {
    inner: Arc<Inner>,
    snapshot: u64,
    /// A reader at the writer's snapshot: pins the view its reads use.
    reads: ReadTxn,
    writes: WriteBuffer,
    finished: bool,
}

impl WriteTxn {
    /// With the writer role held; gives it up if no reader slot is free.
    pub(crate) fn new(inner: Arc<Inner>, snapshot: u64) -> Result<WriteTxn> {
        let reads = match ReadTxn::begin_at(inner.clone(), At::Writer(snapshot)) {
            Ok(reads) => reads,
            Err(e) => {
                inner.release_writer();
                return Err(e);
            }
        };
        Ok(WriteTxn {
            inner,
            snapshot,
            reads,
            writes: WriteBuffer::default(),
            finished: false,
        })
    }

    /// The newest commit this transaction builds on (durable or not yet).
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot
    }

    /// Set `key` to `value`. Keys are 1 byte to 64 KiB; values up to
    /// [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN). An empty value is a value.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        self.writes.put(key, value);
        Ok(())
    }

    /// Remove `key` (a no-op if it does not exist).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        check_key(key)?;
        self.writes.delete(key);
        Ok(())
    }

    /// The value of `key`, including this transaction's own writes.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<&[u8]>> {
        let key = key.as_ref();
        check_key(key)?;
        if let Some(v) = self.writes.get(key) {
            return Ok(v);
        }
        self.reads.get(key)
    }

    /// Keys within `range`, including this transaction's own writes.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> WriteRange<'_> {
        let (lower, upper) = owned_bounds(&range);
        self.bounded(lower, upper)
    }

    /// Keys starting with `prefix`, including this transaction's own writes.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> WriteRange<'_> {
        let prefix = prefix.as_ref();
        self.bounded(Bound::Included(prefix.to_vec()), prefix_end(prefix))
    }

    /// Every key, including this transaction's own writes.
    pub fn iter(&self) -> WriteRange<'_> {
        self.bounded(Bound::Unbounded, Bound::Unbounded)
    }

    fn bounded(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> WriteRange<'_> {
        // Built before the bounds move into the stored iterator; it borrows
        // only the buffer.
        let buffered = self.writes.range(
            lower.as_ref().map(Vec::as_slice),
            upper.as_ref().map(Vec::as_slice),
        );
        let stored = self.reads.view.scan(self.snapshot, lower, upper);
        WriteRange {
            buffered: Ends::new(Box::new(buffered)),
            stored: Ends::new(stored),
        }
    }

    /// Make the writes durable (per the database's durability mode) and
    /// visible; returns the commit timestamp. A commit with no writes
    /// returns the snapshot timestamp.
    pub fn commit(mut self) -> Result<u64> {
        self.finished = true;
        if self.writes.is_empty() {
            self.inner.release_writer();
            return Ok(self.snapshot);
        }
        let writes = std::mem::take(&mut self.writes);
        let (puts, deletes, key_bytes, value_bytes) = writes.totals();
        let payload_len = payload_len(puts, deletes, key_bytes, value_bytes);
        self.inner.commit(writes.iter(), payload_len)
    }

    /// Discard the writes and give up the writer role.
    pub fn abort(mut self) {
        self.finished = true;
        self.inner.release_writer();
    }
}

impl Drop for WriteTxn {
    fn drop(&mut self) {
        // In a forked child the writer role is the parent's.
        if !self.finished && !self.inner.forked() {
            self.inner.release_writer();
        }
    }
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("snapshot", &self.snapshot)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

type Item<'a, V> = (&'a [u8], V);
/// A write transaction's own writes in key order (`None` deletes).
type Buffered<'a> = Box<dyn DoubleEndedIterator<Item = Item<'a, Option<&'a [u8]>>> + 'a>;

/// Key-value pairs of a write transaction: its buffered writes merged over
/// the stored versions, the buffer winning on equal keys.
pub struct WriteRange<'a> {
    buffered: Ends<Buffered<'a>>,
    stored: Ends<Scan<'a>>,
}

impl<'a> WriteRange<'a> {
    fn step(&mut self, back: bool) -> Option<Result<Item<'a, &'a [u8]>>> {
        loop {
            let b = self.buffered.peek(back).map(|(k, _)| *k);
            let s = match self.stored.peek(back) {
                Some(Ok((k, _))) => Some(*k),
                Some(Err(_)) => return self.stored.take(back),
                None => None,
            };
            // Which side comes first in this direction?
            let take_buffered = match (b, s) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(bk), Some(sk)) => {
                    if bk == sk {
                        self.stored.take(back);
                        true
                    } else {
                        (bk < sk) != back
                    }
                }
            };
            if !take_buffered {
                return self.stored.take(back);
            }
            if let Some((k, Some(v))) = self.buffered.take(back) {
                return Some(Ok((k, v)));
            }
        }
    }
}

impl<'a> Iterator for WriteRange<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for WriteRange<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
