"""ScribeDB: an embedded, transactional key-value database that many
processes on one machine share. Any number of them read, one writes at a
time, and nobody waits.

    import scribedb
    db = scribedb.open("app.db")
    with db.write() as w:
        w.put(b"user:1", b"alice")
    with db.read() as r:
        r.get(b"user:1")            # b"alice"

Open the database in each process. A handle inherited through ``fork()``
raises ``scribedb.Forked``: open it again in the child (for example in
gunicorn's ``post_fork`` hook, or in a ``multiprocessing`` pool's
initializer).
"""

from ._scribedb import (
    MAX_KEY_LEN,
    MAX_VALUE_LEN,
    BadMagic,
    Closed,
    CommitOutcomeUnknown,
    Corrupted,
    Database,
    Error,
    Forked,
    HistoryUnavailable,
    InvalidOption,
    IoError,
    Iter,
    KeyTooLarge,
    NotADatabase,
    Poisoned,
    ProcessesFull,
    ReadersFull,
    ReadTxn,
    Snapshot,
    UnsupportedVersion,
    ValueTooLarge,
    WalDamaged,
    WriteIter,
    WriterBusy,
    WriteTxn,
    open,
)

__all__ = [
    "MAX_KEY_LEN",
    "MAX_VALUE_LEN",
    "BadMagic",
    "Closed",
    "CommitOutcomeUnknown",
    "Corrupted",
    "Database",
    "Error",
    "Forked",
    "HistoryUnavailable",
    "InvalidOption",
    "IoError",
    "Iter",
    "KeyTooLarge",
    "NotADatabase",
    "Poisoned",
    "ProcessesFull",
    "ReadersFull",
    "ReadTxn",
    "Snapshot",
    "UnsupportedVersion",
    "ValueTooLarge",
    "WalDamaged",
    "WriteIter",
    "WriterBusy",
    "WriteTxn",
    "open",
]
