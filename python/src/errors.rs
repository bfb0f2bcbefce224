//! The exception classes of the package, one per error a caller can act
//! on, all under `scribedb.Error`, and the mapping from the engine's
//! errors to them. Each exception carries the engine's message and the
//! error's fields as attributes. The classes name `scribedb` as their
//! module, which re-exports them, so that they pickle (a `multiprocessing`
//! worker's exception travels back to its parent that way).

use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{create_exception, PyErr};

create_exception!(
    scribedb,
    Error,
    PyException,
    "Base class of every error ScribeDB raises."
);
create_exception!(
    scribedb,
    WriterBusy,
    Error,
    "Another write transaction, in this or another process, held the writer role \
     for longer than `writer_timeout`. Attribute: `holder`."
);
create_exception!(
    scribedb,
    ReadersFull,
    Error,
    "Every reader slot is taken by a live read transaction. Attribute: `max`."
);
create_exception!(
    scribedb,
    ProcessesFull,
    Error,
    "Every process slot is taken by an open handle. Attribute: `max`."
);
create_exception!(
    scribedb,
    KeyTooLarge,
    Error,
    "The key is empty or longer than the limit. Attributes: `len`, `max`."
);
create_exception!(
    scribedb,
    ValueTooLarge,
    Error,
    "The value is longer than the limit. Attributes: `len`, `max`."
);
create_exception!(
    scribedb,
    Corrupted,
    Error,
    "A file is damaged. Attributes: `file`, `offset`, `what`."
);
create_exception!(
    scribedb,
    WalDamaged,
    Corrupted,
    "The write-ahead log is damaged before its tail; nothing was changed. Opening \
     with `repair=True` cuts the log there. Attributes: `file`, `offset`, `what`, \
     `records_after`."
);
create_exception!(
    scribedb,
    BadMagic,
    Corrupted,
    "A file is not a ScribeDB file of the kind expected. Attributes: `file`, `kind`."
);
create_exception!(
    scribedb,
    UnsupportedVersion,
    Error,
    "A file has a format version this build does not read. Attributes: `file`, \
     `found`, `supported`."
);
create_exception!(
    scribedb,
    NotADatabase,
    Error,
    "The path is not a database (and `create` was false, or it holds other files). \
     Attributes: `path`, `why`."
);
create_exception!(
    scribedb,
    Poisoned,
    Error,
    "An earlier write failure left this handle's state uncertain: open the \
     database again. Attribute: `why`."
);
create_exception!(
    scribedb,
    CommitOutcomeUnknown,
    Error,
    "The commit's log record was written but making it durable failed, so \
     whether it happened is unknown: open the database again and read its keys \
     before retrying. Attributes: `ts`, `why`."
);
create_exception!(
    scribedb,
    HistoryUnavailable,
    Error,
    "A read of the past asked for history no longer kept. Attributes: \
     `requested`, `oldest`."
);
create_exception!(
    scribedb,
    InvalidOption,
    Error,
    "An option is out of range. Attributes: `option`, `why`."
);
create_exception!(
    scribedb,
    IoError,
    Error,
    "The operating system refused an I/O call. Attributes: `context`, `errno`."
);
create_exception!(
    scribedb,
    Closed,
    Error,
    "The transaction or database was already closed (committed, aborted or \
     closed explicitly)."
);
create_exception!(
    scribedb,
    Forked,
    Error,
    "The handle was opened by the parent process, before a fork: open the \
     database in each worker process, after the fork. Attribute: `opened_by`."
);

/// Register the classes in module `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("WriterBusy", py.get_type::<WriterBusy>())?;
    m.add("ReadersFull", py.get_type::<ReadersFull>())?;
    m.add("ProcessesFull", py.get_type::<ProcessesFull>())?;
    m.add("KeyTooLarge", py.get_type::<KeyTooLarge>())?;
    m.add("ValueTooLarge", py.get_type::<ValueTooLarge>())?;
    m.add("Corrupted", py.get_type::<Corrupted>())?;
    m.add("WalDamaged", py.get_type::<WalDamaged>())?;
    m.add("BadMagic", py.get_type::<BadMagic>())?;
    m.add("UnsupportedVersion", py.get_type::<UnsupportedVersion>())?;
    m.add("NotADatabase", py.get_type::<NotADatabase>())?;
    m.add("Poisoned", py.get_type::<Poisoned>())?;
    m.add(
        "CommitOutcomeUnknown",
        py.get_type::<CommitOutcomeUnknown>(),
    )?;
    m.add("HistoryUnavailable", py.get_type::<HistoryUnavailable>())?;
    m.add("InvalidOption", py.get_type::<InvalidOption>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    m.add("Forked", py.get_type::<Forked>())?;
    Ok(())
}

/// An exception of class `E` with the message and these attributes.
fn raise<E: pyo3::PyTypeInfo>(
    message: String,
    fields: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    Python::attach(|py| {
        let err = PyErr::new::<E, _>(message);
        let value = err.value(py);
        let dict = PyDict::new(py);
        if fields(&dict).is_ok() {
            for (k, v) in dict.iter() {
                if let Ok(name) = k.extract::<String>() {
                    let _ = value.setattr(name.as_str(), v);
                }
            }
        }
        err
    })
}

/// The exception for an engine error.
pub fn to_py(e: scribedb::Error) -> PyErr {
    use scribedb::Error as E;
    let message = e.to_string();
    match e {
        E::WriterBusy { holder } => raise::<WriterBusy>(message, |d| d.set_item("holder", holder)),
        E::ReadersFull { max } => raise::<ReadersFull>(message, |d| d.set_item("max", max)),
        E::ProcessesFull { max } => raise::<ProcessesFull>(message, |d| d.set_item("max", max)),
        E::KeyTooLarge { len, max } => raise::<KeyTooLarge>(message, |d| {
            d.set_item("len", len)?;
            d.set_item("max", max)
        }),
        E::ValueTooLarge { len, max } => raise::<ValueTooLarge>(message, |d| {
            d.set_item("len", len)?;
            d.set_item("max", max)
        }),
        E::Corrupted { file, offset, what } => raise::<Corrupted>(message, |d| {
            d.set_item("file", file.display().to_string())?;
            d.set_item("offset", offset)?;
            d.set_item("what", what)
        }),
        E::WalDamaged {
            file,
            offset,
            what,
            records_after,
        } => raise::<WalDamaged>(message, |d| {
            d.set_item("file", file.display().to_string())?;
            d.set_item("offset", offset)?;
            d.set_item("what", what)?;
            d.set_item("records_after", records_after)
        }),
        E::BadMagic { file, kind } => raise::<BadMagic>(message, |d| {
            d.set_item("file", file.display().to_string())?;
            d.set_item("kind", kind)
        }),
        E::UnsupportedVersion {
            file,
            found,
            supported,
        } => raise::<UnsupportedVersion>(message, |d| {
            d.set_item("file", file.display().to_string())?;
            d.set_item("found", found)?;
            d.set_item("supported", supported)
        }),
        E::NotADatabase { path, why } => raise::<NotADatabase>(message, |d| {
            d.set_item("path", path.display().to_string())?;
            d.set_item("why", why)
        }),
        E::Poisoned(why) => raise::<Poisoned>(message, |d| d.set_item("why", why)),
        E::CommitOutcomeUnknown { ts, why } => raise::<CommitOutcomeUnknown>(message, |d| {
            d.set_item("ts", ts)?;
            d.set_item("why", why)
        }),
        E::HistoryUnavailable { requested, oldest } => raise::<HistoryUnavailable>(message, |d| {
            d.set_item("requested", requested)?;
            d.set_item("oldest", oldest)
        }),
        E::InvalidOption { option, why } => raise::<InvalidOption>(message, |d| {
            d.set_item("option", option)?;
            d.set_item("why", why)
        }),
        E::Io { context, source } => raise::<IoError>(message, |d| {
            d.set_item("context", context)?;
            d.set_item("errno", source.raw_os_error())
        }),
        E::Forked { opened_by } => raise::<Forked>(message, |d| d.set_item("opened_by", opened_by)),
        _ => raise::<Error>(message, |_| Ok(())),
    }
}

/// `Closed`, for a transaction or database used after it ended.
pub fn closed(what: &str) -> PyErr {
    PyErr::new::<Closed, _>(format!(
        "this {what} is closed (committed, aborted or closed): start a new one"
    ))
}

/// A `TypeError` for an argument that is not bytes-like.
pub fn not_bytes(what: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let type_name = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!(
        "{what} must be bytes, bytearray or memoryview, not {type_name} \
         (encode text first, e.g. s.encode())"
    ))
}
