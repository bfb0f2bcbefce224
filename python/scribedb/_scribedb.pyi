"""Type stubs of the native module; the package re-exports all of it."""

import datetime
import os
from types import TracebackType
from typing import Iterator, List, Optional, Tuple, Type, TypedDict, Union

BytesLike = Union[bytes, bytearray, memoryview]
"""Keys and values: bytes, bytearray or memoryview. `str` is refused."""

MAX_KEY_LEN: int
"""The longest key, in bytes (keys are 1 to MAX_KEY_LEN bytes)."""
MAX_VALUE_LEN: int
"""The longest value, in bytes."""

class WriterInfo(TypedDict):
    pid: int
    since_ms: int

class ReaderInfo(TypedDict):
    slot: int
    pid: int
    snapshot: int
    age_ms: int
    lag_ms: int
    live: bool
    view: int
    manifest_generation: int
    pinned_bytes: int

class Problem(TypedDict):
    file: str
    offset: int
    what: str

class CheckReport(TypedDict):
    ok: bool
    problems: List[Problem]
    problems_left_out: int
    snapshot: int
    manifest_generation: int
    segments: int
    segment_entries: int
    segment_bytes: int
    memtables: int
    memtable_versions: int
    log_files: int
    log_records: int
    log_bytes: int

class RecoveryReport(TypedDict):
    records: int
    last_ts: int
    wal_end: int
    torn_tail: Optional[Tuple[int, int]]
    torn_records: int
    repaired: Optional[Tuple[int, int]]
    coord_rebuilt: Optional[str]

class Stats(TypedDict):
    keys: int
    versions: int
    data_bytes: int
    arenas: int
    arena_bytes: int
    wal_bytes: int
    wal_file_bytes: int
    committed_ts: int
    epoch: int
    readers: int
    max_readers: int
    processes: int
    max_processes: int
    writer: Optional[WriterInfo]
    oldest_snapshot: int
    memtable_bytes: int
    memtable_budget: int
    sealed_memtable: bool
    segments: int
    level_bytes: List[int]
    log_start: int
    manifest_generation: int
    maintenance_error: Optional[str]
    level0_segments: int
    compaction_trigger: int
    pending_compaction_bytes: int
    retention_ms: int
    oldest_readable_ts: int
    stalls: int
    stall_micros: int
    bytes_flushed: int
    bytes_compacted: int
    compactions: int

def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    durability: str = "immediate",
    max_readers: Optional[int] = None,
    max_processes: Optional[int] = None,
    writer_timeout: Optional[float] = None,
    memtable_size: Optional[int] = None,
    retention: Optional[float] = None,
    repair: bool = False,
    create: bool = True,
    verify_every_read: bool = False,
) -> Database:
    """Open (creating if needed) the database at `path`.

    durability: "immediate" (a commit returns once its log record is
    synced), "eventual" (synced within tens of milliseconds; a machine
    crash can lose the last commits) or "none" (never synced by ScribeDB).
    max_readers: reader slots (read transactions open at once in all
    processes), default 1024. max_processes: handles open at once, default
    256. writer_timeout: seconds to wait for the writer role (default 5).
    memtable_size: bytes of the shared memtable before it is flushed to a
    segment (default 64 MiB). retention: seconds of history kept for
    read_as_of (default: none). repair: cut a damaged log at the damage,
    dropping what follows (see `recovery_report()`). create: create the
    database if the path holds none. verify_every_read: check a segment
    block's checksum at every get and scan that touches it, not only the
    first time this process reads it (gets from segments cost about 3.6
    times as much; for long-lived workers on a disk that may fail).

    Open it in each process that uses it; the GIL is released while
    opening (recovery may replay the log).
    """

class Database:
    """An open database, shared by the threads of one process."""

    @property
    def path(self) -> str:
        """The path the database was opened at."""
    @property
    def committed_ts(self) -> int:
        """The newest commit visible to readers."""
    @property
    def closed(self) -> bool:
        """Whether close() was called."""
    def write(self) -> WriteTxn:
        """Begin the write transaction, waiting (GIL released) for the
        writer role up to writer_timeout; raises WriterBusy after it."""
    def read(self) -> ReadTxn:
        """Begin a read transaction on the latest commit."""
    def read_at(self, ts: int) -> ReadTxn:
        """A snapshot as of commit timestamp `ts` (HistoryUnavailable if
        it is older than the retention window keeps)."""
    def read_as_of(
        self, when: Union[datetime.datetime, datetime.timedelta, float]
    ) -> ReadTxn:
        """A snapshot as of a moment: a datetime, or a timedelta or a
        number of seconds ago."""
    def wait_for_commit(self, after_ts: int, timeout: Optional[float] = None) -> Optional[int]:
        """Wait (GIL released) until a commit newer than `after_ts`, made
        by any process, is visible, and return the newest committed
        timestamp; None if `timeout` seconds pass first."""
    def stats(self) -> Stats:
        """Figures about the database (walks every key)."""
    def readers(self) -> List[ReaderInfo]:
        """Registered read transactions of every process."""
    def writer(self) -> Optional[WriterInfo]:
        """Who holds the writer role, if anyone."""
    def check(self) -> CheckReport:
        """Verify every checksum and invariant of the durable files,
        beside readers and a writer (GIL released)."""
    def compact(self) -> None:
        """Flush the memtable and merge every segment now."""
    def sync(self) -> None:
        """Make every commit so far durable."""
    def oldest_readable_ts(self) -> int:
        """The oldest timestamp read_at can ask for."""
    def reclaim_dead_readers(self) -> int:
        """Free the reader slots of dead processes; returns how many."""
    def recovery_report(self) -> RecoveryReport:
        """What opening found at the end of the log."""
    def close(self) -> None:
        """Close the handle; open transactions keep what they need."""
    def __enter__(self) -> Database: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class ReadTxn:
    """A consistent snapshot. Use it with `with`, or close() it; it is
    closed when collected, too."""

    @property
    def snapshot_ts(self) -> int:
        """The commit timestamp this snapshot sees."""
    @property
    def closed(self) -> bool: ...
    def get(self, key: BytesLike) -> Optional[bytes]:
        """The value of `key` (a copy), or None."""
    def get_view(self, key: BytesLike) -> Optional[memoryview]:
        """The value of `key` without a copy: a read-only memoryview of
        the shared mapping that keeps this snapshot alive, or None."""
    def range(
        self,
        start: Optional[BytesLike] = None,
        end: Optional[BytesLike] = None,
        *,
        reverse: bool = False,
    ) -> Iter:
        """(key, value) pairs with start <= key < end, in key order."""
    def prefix(self, prefix: BytesLike, *, reverse: bool = False) -> Iter:
        """(key, value) pairs whose key starts with `prefix`."""
    def versions(self, key: BytesLike) -> List[Tuple[int, Optional[bytes]]]:
        """Kept versions of `key` this snapshot sees, newest first:
        (ts, value), value None for a delete."""
    def close(self) -> None:
        """End the transaction."""
    def __iter__(self) -> Iter: ...
    def __enter__(self) -> ReadTxn: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Iter(Iterator[Tuple[bytes, bytes]]):
    """(key, value) pairs of a read transaction."""

    def __iter__(self) -> Iter: ...
    def __next__(self) -> Tuple[bytes, bytes]: ...

class WriteIter(Iterator[Tuple[bytes, bytes]]):
    """(key, value) pairs as a write transaction sees them."""

    def __iter__(self) -> WriteIter: ...
    def __next__(self) -> Tuple[bytes, bytes]: ...

class Snapshot:
    """Held by a zero-copy view: keeps its snapshot alive."""

class WriteTxn:
    """The write transaction. With `with`, it commits when the block ends
    normally and aborts when it raises (KeyboardInterrupt included)."""

    @property
    def commit_ts(self) -> Optional[int]:
        """The commit's timestamp once committed; a transaction with no
        writes commits nothing, and this is its snapshot timestamp."""
    @property
    def snapshot_ts(self) -> int:
        """The newest commit this transaction builds on."""
    @property
    def closed(self) -> bool:
        """Whether it was committed or aborted."""
    def put(self, key: BytesLike, value: BytesLike) -> None: ...
    def put_many(self, items: "Iterator[Tuple[BytesLike, BytesLike]] | List[Tuple[BytesLike, BytesLike]]") -> None: ...
    def delete(self, key: BytesLike) -> None: ...
    def get(self, key: BytesLike) -> Optional[bytes]:
        """The value as this transaction sees it (its own writes too)."""
    def range(
        self,
        start: Optional[BytesLike] = None,
        end: Optional[BytesLike] = None,
        *,
        reverse: bool = False,
    ) -> WriteIter: ...
    def prefix(self, prefix: BytesLike, *, reverse: bool = False) -> WriteIter: ...
    def commit(self) -> int:
        """Commit (GIL released while the log syncs); returns its
        timestamp. CommitOutcomeUnknown if the sync failed."""
    def abort(self) -> None:
        """Drop every write of the transaction."""
    def __enter__(self) -> WriteTxn: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Error(Exception):
    """Base class of every error ScribeDB raises."""

class WriterBusy(Error):
    holder: str

class ReadersFull(Error):
    max: int

class ProcessesFull(Error):
    max: int

class KeyTooLarge(Error):
    len: int
    max: int

class ValueTooLarge(Error):
    len: int
    max: int

class Corrupted(Error):
    file: str
    offset: int
    what: str

class WalDamaged(Corrupted):
    records_after: int

class BadMagic(Corrupted):
    kind: str

class UnsupportedVersion(Error):
    file: str
    found: int
    supported: int

class NotADatabase(Error):
    path: str
    why: str

class Poisoned(Error):
    why: str

class CommitOutcomeUnknown(Error):
    ts: int
    why: str

class HistoryUnavailable(Error):
    requested: int
    oldest: int

class InvalidOption(Error):
    option: str
    why: str

class IoError(Error):
    context: str
    errno: Optional[int]

class Closed(Error): ...

class Forked(Error):
    opened_by: int
