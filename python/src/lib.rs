//! The native module of the `scribedb` Python package: thin classes over
//! the Rust API. The pure-Python package around it (`scribedb/`) adds
//! nothing but re-exports; the type stubs describe both.
//!
//! * Every class is `frozen` and guards its state with a lock, so that
//!   Python threads may share objects.
//! * The GIL is released while a call waits or does I/O: taking the
//!   writer role, a commit (its log sync), waiting for a commit, opening
//!   (recovery), compaction, checking, syncing.
//! * A read transaction is shared (`Arc`) by the Python object and by
//!   every iterator and zero-copy view taken from it, so the snapshot and
//!   the mappings its values live in stay alive while any of them does.

mod convert;
mod errors;

use std::ops::Bound as Edge;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use convert::{bytes_arg, check_report, reader_info, recovery_report, stats, writer_info};
use errors::{closed, to_py};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_durability(s: &str) -> PyResult<scribedb::Durability> {
    match s {
        "immediate" => Ok(scribedb::Durability::Immediate),
        "eventual" => Ok(scribedb::Durability::Eventual),
        "none" => Ok(scribedb::Durability::None),
        other => Err(PyValueError::new_err(format!(
            "durability must be \"immediate\", \"eventual\" or \"none\", not {other:?}"
        ))),
    }
}

fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("{what} must be a number of seconds >= 0")))
}

/// Open (creating if needed) the database at `path`.
#[pyfunction]
#[pyo3(signature = (
    path,
    *,
    durability = "immediate",
    max_readers = None,
    max_processes = None,
    writer_timeout = None,
    memtable_size = None,
    retention = None,
    repair = false,
    create = true,
    verify_every_read = false,
))]
#[allow(clippy::too_many_arguments)]
fn open(
    py: Python<'_>,
    path: PathBuf,
    durability: &str,
    max_readers: Option<u32>,
    max_processes: Option<u32>,
    writer_timeout: Option<f64>,
    memtable_size: Option<u64>,
    retention: Option<f64>,
    repair: bool,
    create: bool,
    verify_every_read: bool,
) -> PyResult<Database> {
    let mut b = scribedb::Database::builder()
        .durability(parse_durability(durability)?)
        .repair(repair)
        .create(create)
        .verify_every_read(verify_every_read);
    if let Some(n) = max_readers {
        b = b.max_readers(n);
    }
    if let Some(n) = max_processes {
        b = b.max_processes(n);
    }
    if let Some(s) = writer_timeout {
        b = b.writer_timeout(seconds("writer_timeout", s)?);
    }
    if let Some(n) = memtable_size {
        b = b.memtable_size(n);
    }
    if let Some(s) = retention {
        b = b.retention(seconds("retention", s)?);
    }
    let shown = path.display().to_string();
    let db = py.detach(move || b.open(&path)).map_err(to_py)?;
    Ok(Database {
        inner: RwLock::new(Some(Arc::new(db))),
        path: shown,
    })
}

/// An open database. Open one in each process (and after `fork`, in the
/// child); threads of one process may share it.
#[pyclass(module = "scribedb", frozen)]
struct Database {
    inner: RwLock<Option<Arc<scribedb::Database>>>,
    path: String,
}

impl Database {
    fn db(&self) -> PyResult<Arc<scribedb::Database>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| closed("database"))
    }
}

#[pymethods]
impl Database {
    /// Begin the write transaction, waiting for the writer role (up to
    /// `writer_timeout`) with the GIL released.
    fn write(&self, py: Python<'_>) -> PyResult<WriteTxn> {
        let db = self.db()?;
        let txn = py.detach(move || db.begin_write()).map_err(to_py)?;
        Ok(WriteTxn {
            snapshot_ts: txn.snapshot_ts(),
            txn: Mutex::new(Some(txn)),
            commit_ts: Mutex::new(None),
        })
    }

    /// Begin a read transaction: a snapshot of the latest commit.
    fn read(&self) -> PyResult<ReadTxn> {
        Ok(ReadTxn::new(self.db()?.begin_read().map_err(to_py)?))
    }

    /// A snapshot as of commit timestamp `ts` (within the retention
    /// window).
    fn read_at(&self, ts: u64) -> PyResult<ReadTxn> {
        Ok(ReadTxn::new(self.db()?.begin_read_at(ts).map_err(to_py)?))
    }

    /// A snapshot as of a moment: a `datetime`, or a number of seconds
    /// (or a `timedelta`) ago.
    fn read_as_of(&self, when: &Bound<'_, PyAny>) -> PyResult<ReadTxn> {
        let at = moment(when)?;
        Ok(ReadTxn::new(
            self.db()?.begin_read_as_of(at).map_err(to_py)?,
        ))
    }

    /// Wait, with the GIL released, until a commit newer than `after_ts`
    /// is visible (made by any process), and return its timestamp; `None`
    /// if `timeout` seconds pass first (`None`: wait as long as it takes).
    #[pyo3(signature = (after_ts, timeout = None))]
    fn wait_for_commit(
        &self,
        py: Python<'_>,
        after_ts: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let db = self.db()?;
        let timeout = timeout.map(|s| seconds("timeout", s)).transpose()?;
        // Waits in slices, so that Ctrl-C (a pending signal) is noticed.
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(std::time::Instant::now())
                    .min(Duration::from_millis(200)),
                None => Duration::from_millis(200),
            };
            let db = db.clone();
            let got = py
                .detach(move || db.wait_for_commit(after_ts, Some(slice)))
                .map_err(to_py)?;
            if got.is_some() {
                return Ok(got);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// The newest commit visible to readers.
    #[getter]
    fn committed_ts(&self) -> PyResult<u64> {
        Ok(self.db()?.committed_ts())
    }

    /// The path the database was opened at.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Figures about the database, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats(py, &self.db()?.stats().map_err(to_py)?)
    }

    /// The registered read transactions of every process, as dicts.
    fn readers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for r in self.db()?.readers() {
            list.append(reader_info(py, &r)?)?;
        }
        Ok(list)
    }

    /// Who holds the writer role (`pid`, `since_ms`), or `None`.
    fn writer<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.db()?.writer().map(|w| writer_info(py, &w)).transpose()
    }

    /// Verify every checksum and invariant of the durable files, beside
    /// readers and a writer. Returns the report as a dict; `ok` is false
    /// if anything is damaged (`problems` says what, with file and offset).
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let report = py.detach(move || db.check()).map_err(to_py)?;
        check_report(py, &report)
    }

    /// Flush the memtable and merge every segment now.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db()?;
        py.detach(move || db.compact()).map_err(to_py)
    }

    /// Make every commit so far durable (for `eventual` and `none`).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db()?;
        py.detach(move || db.sync()).map_err(to_py)
    }

    /// The oldest commit timestamp a read of the past can ask for.
    fn oldest_readable_ts(&self) -> PyResult<u64> {
        self.db()?.oldest_readable_ts().map_err(to_py)
    }

    /// Free the reader slots of processes that died; returns how many.
    fn reclaim_dead_readers(&self) -> PyResult<usize> {
        Ok(self.db()?.reclaim_dead_readers())
    }

    /// What opening found at the end of the log, as a dict.
    fn recovery_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        recovery_report(py, self.db()?.recovery_report())
    }

    /// Close the handle. Transactions still open keep what they need
    /// until they end.
    fn close(&self, py: Python<'_>) {
        let db = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        // Closing joins background threads and may sync: no GIL needed.
        py.detach(move || drop(db));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("<scribedb.Database {:?}>", self.path)
    }
}

/// A `SystemTime` from a `datetime`, a `timedelta` ago or seconds ago.
fn moment(when: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    let now = SystemTime::now();
    let ago = |secs: f64| -> PyResult<SystemTime> {
        if !secs.is_finite() || secs < 0.0 {
            return Err(PyValueError::new_err(
                "a moment in the past is a number of seconds ago >= 0",
            ));
        }
        Ok(now
            .checked_sub(Duration::from_secs_f64(secs))
            .unwrap_or(UNIX_EPOCH))
    };
    if when.hasattr("timestamp")? {
        // A datetime (naive ones are local time, as Python says).
        let secs: f64 = when.call_method0("timestamp")?.extract()?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(PyValueError::new_err("the moment is before 1970"));
        }
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    if when.hasattr("total_seconds")? {
        return ago(when.call_method0("total_seconds")?.extract()?);
    }
    match when.extract::<f64>() {
        Ok(secs) => ago(secs),
        Err(_) => Err(PyTypeError::new_err(
            "read_as_of takes a datetime, a timedelta ago, or a number of seconds ago",
        )),
    }
}

/// A read transaction: a consistent snapshot. Use it with `with`, or
/// `close()` it; it is closed when collected, too.
#[pyclass(module = "scribedb", frozen)]
struct ReadTxn {
    txn: RwLock<Option<Arc<scribedb::ReadTxn>>>,
    snapshot_ts: u64,
}

impl ReadTxn {
    fn new(txn: scribedb::ReadTxn) -> ReadTxn {
        ReadTxn {
            snapshot_ts: txn.snapshot_ts(),
            txn: RwLock::new(Some(Arc::new(txn))),
        }
    }

    fn txn(&self) -> PyResult<Arc<scribedb::ReadTxn>> {
        self.txn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| closed("read transaction"))
    }
}

/// A key range: its lower and upper bound.
type Bounds = (Edge<Vec<u8>>, Edge<Vec<u8>>);

fn bounds(start: Option<&Bound<'_, PyAny>>, end: Option<&Bound<'_, PyAny>>) -> PyResult<Bounds> {
    let lower = match start {
        Some(s) => Edge::Included(bytes_arg("start", s)?.into_owned()),
        None => Edge::Unbounded,
    };
    let upper = match end {
        Some(e) => Edge::Excluded(bytes_arg("end", e)?.into_owned()),
        None => Edge::Unbounded,
    };
    Ok((lower, upper))
}

/// The bounds of the keys that start with `prefix`.
fn prefix_bounds(prefix: &[u8]) -> Bounds {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (Edge::Included(prefix.to_vec()), Edge::Excluded(end));
        }
    }
    (Edge::Included(prefix.to_vec()), Edge::Unbounded)
}

#[pymethods]
impl ReadTxn {
    /// The value of `key` (a copy, as `bytes`), or `None`.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = bytes_arg("key", key)?;
        let guard = self.txn.read().unwrap_or_else(|p| p.into_inner());
        let txn = guard.as_ref().ok_or_else(|| closed("read transaction"))?;
        Ok(txn.get(&key).map_err(to_py)?.map(|v| PyBytes::new(py, v)))
    }

    /// The value of `key` without a copy: a read-only `memoryview` of the
    /// shared mapping, or `None`. The view keeps this snapshot alive (even
    /// past `close()`), so it never outlives the bytes it shows.
    fn get_view<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = bytes_arg("key", key)?;
        let txn = self.txn()?;
        let Some(value) = txn.get(&key).map_err(to_py)? else {
            return Ok(None);
        };
        let (addr, len) = (value.as_ptr() as usize, value.len());
        // The limited API of Python 3.9 lets an extension export no buffer
        // of its own, so the view is made over a ctypes array at the
        // value's address, which holds the snapshot as an attribute: every
        // memoryview or slice of it keeps the array, hence the snapshot,
        // alive.
        let (c_ubyte, memoryview) = view_makers(py)?;
        let array = c_ubyte
            .bind(py)
            .mul(len)?
            .call_method1("from_address", (addr,))?;
        array.setattr("_scribedb_snapshot", Snapshot { _txn: txn })?;
        let view = memoryview.bind(py).call1((array,))?;
        Ok(Some(
            view.call_method1("cast", ("B",))?
                .call_method0("toreadonly")?,
        ))
    }

    /// `(key, value)` pairs with `start <= key < end`, in key order
    /// (`reverse=True`: from the end).
    #[pyo3(signature = (start = None, end = None, *, reverse = false))]
    fn range(
        &self,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        reverse: bool,
    ) -> PyResult<Iter> {
        Iter::new(self.txn()?, bounds(start, end)?, reverse)
    }

    /// `(key, value)` pairs whose key starts with `prefix`, in order.
    #[pyo3(signature = (prefix, *, reverse = false))]
    fn prefix(&self, prefix: &Bound<'_, PyAny>, reverse: bool) -> PyResult<Iter> {
        let prefix = bytes_arg("prefix", prefix)?;
        Iter::new(self.txn()?, prefix_bounds(&prefix), reverse)
    }

    /// Every `(key, value)` pair, in key order.
    fn __iter__(&self) -> PyResult<Iter> {
        Iter::new(self.txn()?, (Edge::Unbounded, Edge::Unbounded), false)
    }

    /// The versions of `key` this snapshot can see that are still kept,
    /// newest first: `(ts, value)` with `None` for a delete.
    fn versions<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = bytes_arg("key", key)?;
        let txn = self.txn()?;
        let list = PyList::empty(py);
        for v in txn.versions(&key).map_err(to_py)? {
            let value = v.value.map(|b| PyBytes::new(py, b));
            list.append((v.ts, value))?;
        }
        Ok(list)
    }

    /// The commit timestamp this snapshot sees.
    #[getter]
    fn snapshot_ts(&self) -> u64 {
        self.snapshot_ts
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.txn.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// End the transaction (its reader slot is freed once no iterator or
    /// view taken from it is left).
    fn close(&self) {
        self.txn.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<scribedb.ReadTxn snapshot_ts={}>", self.snapshot_ts)
    }
}

/// `ctypes.c_ubyte` and `memoryview`, looked up once.
fn view_makers(py: Python<'_>) -> PyResult<&'static (Py<PyAny>, Py<PyAny>)> {
    static MAKERS: OnceLock<(Py<PyAny>, Py<PyAny>)> = OnceLock::new();
    if let Some(m) = MAKERS.get() {
        return Ok(m);
    }
    let c_ubyte = py.import("ctypes")?.getattr("c_ubyte")?.unbind();
    let memoryview = py.import("builtins")?.getattr("memoryview")?.unbind();
    Ok(MAKERS.get_or_init(|| (c_ubyte, memoryview)))
}

/// What a zero-copy view holds: its snapshot.
#[pyclass(module = "scribedb", frozen)]
struct Snapshot {
    _txn: Arc<scribedb::ReadTxn>,
}

type BoxedRange<'a> = Box<dyn Iterator<Item = scribedb::Result<(&'a [u8], &'a [u8])>> + Send + 'a>;

self_cell::self_cell!(
    /// A range of a shared read transaction, with the transaction.
    struct RangeCell {
        owner: Arc<scribedb::ReadTxn>,
        #[not_covariant]
        dependent: BoxedRange,
    }
);

/// An iterator over `(key, value)` pairs of a read transaction.
#[pyclass(module = "scribedb", frozen)]
struct Iter {
    range: Mutex<RangeCell>,
}

impl Iter {
    fn new(txn: Arc<scribedb::ReadTxn>, (lower, upper): Bounds, reverse: bool) -> PyResult<Iter> {
        let cell = RangeCell::new(txn, |txn| {
            let range = txn.range::<Vec<u8>, _>((lower, upper));
            if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            }
        });
        Ok(Iter {
            range: Mutex::new(cell),
        })
    }
}

#[pymethods]
impl Iter {
    #[allow(clippy::self_named_constructors)]
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let mut cell = lock(&self.range);
        cell.with_dependent_mut(|_, range| match range.next() {
            None => Ok(None),
            Some(Err(e)) => Err(to_py(e)),
            Some(Ok((k, v))) => Ok(Some((PyBytes::new(py, k), PyBytes::new(py, v)))),
        })
    }
}

/// The write transaction. With `with`, it commits when the block ends
/// normally and aborts when it raises (Ctrl-C included); otherwise call
/// `commit()` or `abort()`.
#[pyclass(module = "scribedb", frozen)]
struct WriteTxn {
    txn: Mutex<Option<scribedb::WriteTxn>>,
    commit_ts: Mutex<Option<u64>>,
    snapshot_ts: u64,
}

impl WriteTxn {
    fn with<T>(&self, f: impl FnOnce(&mut scribedb::WriteTxn) -> PyResult<T>) -> PyResult<T> {
        let mut guard = lock(&self.txn);
        f(guard.as_mut().ok_or_else(|| closed("write transaction"))?)
    }
}

#[pymethods]
impl WriteTxn {
    /// Set `key` to `value`.
    fn put(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = bytes_arg("key", key)?;
        let value = bytes_arg("value", value)?;
        self.with(|t| t.put(&key, &value).map_err(to_py))
    }

    /// Set every `(key, value)` of an iterable.
    fn put_many(&self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in items.try_iter()? {
            let item = item?;
            let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            self.put(&key, &value)?;
        }
        Ok(())
    }

    /// Delete `key` (nothing happens if it is absent).
    fn delete(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = bytes_arg("key", key)?;
        self.with(|t| t.delete(&key).map_err(to_py))
    }

    /// The value of `key` as this transaction sees it (its own writes
    /// included), or `None`.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = bytes_arg("key", key)?;
        self.with(|t| Ok(t.get(&key).map_err(to_py)?.map(|v| PyBytes::new(py, v))))
    }

    /// `(key, value)` pairs with `start <= key < end` as this transaction
    /// sees them, in order (`reverse=True`: from the end).
    #[pyo3(signature = (start = None, end = None, *, reverse = false))]
    fn range(
        slf: Py<Self>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        reverse: bool,
    ) -> PyResult<WriteIter> {
        Ok(WriteIter::new(slf, bounds(start, end)?, reverse))
    }

    /// `(key, value)` pairs whose key starts with `prefix`.
    #[pyo3(signature = (prefix, *, reverse = false))]
    fn prefix(slf: Py<Self>, prefix: &Bound<'_, PyAny>, reverse: bool) -> PyResult<WriteIter> {
        let prefix = bytes_arg("prefix", prefix)?;
        Ok(WriteIter::new(slf, prefix_bounds(&prefix), reverse))
    }

    /// Commit, with the GIL released while the log is synced; returns the
    /// commit's timestamp (also `commit_ts` from then on). A transaction
    /// with no writes commits nothing and returns its snapshot timestamp.
    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        let txn = lock(&self.txn)
            .take()
            .ok_or_else(|| closed("write transaction"))?;
        let ts = py.detach(move || txn.commit()).map_err(to_py)?;
        *lock(&self.commit_ts) = Some(ts);
        Ok(ts)
    }

    /// Abort: nothing of the transaction happens. Aborting an ended
    /// transaction does nothing.
    fn abort(&self) {
        if let Some(txn) = lock(&self.txn).take() {
            txn.abort();
        }
    }

    /// The commit's timestamp once committed, else `None`; for a
    /// transaction with no writes, its snapshot timestamp.
    #[getter]
    fn commit_ts(&self) -> Option<u64> {
        *lock(&self.commit_ts)
    }

    /// The newest commit this transaction builds on.
    #[getter]
    fn snapshot_ts(&self) -> u64 {
        self.snapshot_ts
    }

    /// Whether the transaction has ended (committed or aborted).
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.txn).is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let open = lock(&self.txn).is_some();
        if exc_type.is_some_and(|t| !t.is_none()) {
            self.abort();
        } else if open {
            self.commit(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.commit_ts() {
            Some(ts) => format!("<scribedb.WriteTxn committed at {ts}>"),
            None => format!("<scribedb.WriteTxn snapshot_ts={}>", self.snapshot_ts),
        }
    }
}

/// An iterator over a write transaction's view of a range. It reads in
/// batches, each resuming after the last key returned, so it needs no
/// borrow of the transaction between calls; writes made meanwhile are seen
/// from the resume point on.
#[pyclass(module = "scribedb", frozen)]
struct WriteIter {
    txn: Py<WriteTxn>,
    state: Mutex<WriteIterState>,
}

struct WriteIterState {
    lower: Edge<Vec<u8>>,
    upper: Edge<Vec<u8>>,
    reverse: bool,
    batch: std::collections::VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

const WRITE_ITER_BATCH: usize = 256;

impl WriteIter {
    fn new(txn: Py<WriteTxn>, (lower, upper): Bounds, reverse: bool) -> WriteIter {
        WriteIter {
            txn,
            state: Mutex::new(WriteIterState {
                lower,
                upper,
                reverse,
                batch: Default::default(),
                done: false,
            }),
        }
    }
}

#[pymethods]
impl WriteIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let mut s = lock(&self.state);
        if s.batch.is_empty() && !s.done {
            let s = &mut *s;
            self.txn.get().with(|t| {
                let range = t.range::<Vec<u8>, _>((s.lower.clone(), s.upper.clone()));
                let items: Box<dyn Iterator<Item = _>> = if s.reverse {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                for item in items.take(WRITE_ITER_BATCH) {
                    let (k, v) = item.map_err(to_py)?;
                    s.batch.push_back((k.to_vec(), v.to_vec()));
                }
                Ok(())
            })?;
            match s.batch.back() {
                Some((k, _)) if s.batch.len() == WRITE_ITER_BATCH => {
                    if s.reverse {
                        s.upper = Edge::Excluded(k.clone());
                    } else {
                        s.lower = Edge::Excluded(k.clone());
                    }
                }
                _ => s.done = true,
            }
        }
        Ok(s.batch
            .pop_front()
            .map(|(k, v)| (PyBytes::new(py, &k), PyBytes::new(py, &v))))
    }
}

/// The native module.
#[pymodule]
fn _scribedb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_class::<Database>()?;
    m.add_class::<ReadTxn>()?;
    m.add_class::<WriteTxn>()?;
    m.add_class::<Iter>()?;
    m.add_class::<WriteIter>()?;
    m.add_class::<Snapshot>()?;
    m.add("MAX_KEY_LEN", scribedb::MAX_KEY_LEN)?;
    m.add("MAX_VALUE_LEN", scribedb::MAX_VALUE_LEN)?;
    errors::register(m)?;
    Ok(())
}
