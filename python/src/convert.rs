//! Conversions between Python values and the engine's: bytes-like
//! arguments, and reports as dicts.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString};

use crate::errors::not_bytes;

/// The bytes of a bytes-like argument: `bytes` without a copy,
/// `bytearray` and `memoryview` copied. Text and everything else (an int
/// would make `bytes(n)` zeros) is a `TypeError`.
pub fn bytes_arg<'a>(what: &str, obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj.call_method0("tobytes")?;
        let bytes = bytes.cast::<PyBytes>()?;
        return Ok(Cow::Owned(bytes.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(not_bytes(what, obj));
    }
    Err(not_bytes(what, obj))
}

pub fn stats<'py>(py: Python<'py>, s: &scribedb::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("keys", s.keys)?;
    d.set_item("versions", s.versions)?;
    d.set_item("data_bytes", s.data_bytes)?;
    d.set_item("arenas", s.arenas)?;
    d.set_item("arena_bytes", s.arena_bytes)?;
    d.set_item("wal_bytes", s.wal_bytes)?;
    d.set_item("wal_file_bytes", s.wal_file_bytes)?;
    d.set_item("committed_ts", s.committed_ts)?;
    d.set_item("epoch", s.epoch)?;
    d.set_item("readers", s.readers)?;
    d.set_item("max_readers", s.max_readers)?;
    d.set_item("processes", s.processes)?;
    d.set_item("max_processes", s.max_processes)?;
    d.set_item(
        "writer",
        s.writer.as_ref().map(|w| writer_info(py, w)).transpose()?,
    )?;
    d.set_item("oldest_snapshot", s.oldest_snapshot)?;
    d.set_item("memtable_bytes", s.memtable_bytes)?;
    d.set_item("memtable_budget", s.memtable_budget)?;
    d.set_item("sealed_memtable", s.sealed_memtable)?;
    d.set_item("segments", s.segments)?;
    d.set_item("level_bytes", s.level_bytes.clone())?;
    d.set_item("log_start", s.log_start)?;
    d.set_item("manifest_generation", s.manifest_generation)?;
    d.set_item("maintenance_error", s.maintenance_error.clone())?;
    d.set_item("level0_segments", s.level0_segments)?;
    d.set_item("compaction_trigger", s.compaction_trigger)?;
    d.set_item("pending_compaction_bytes", s.pending_compaction_bytes)?;
    d.set_item("retention_ms", s.retention_ms)?;
    d.set_item("oldest_readable_ts", s.oldest_readable_ts)?;
    d.set_item("stalls", s.stalls.0)?;
    d.set_item("stall_micros", s.stalls.1)?;
    d.set_item("bytes_flushed", s.bytes_flushed)?;
    d.set_item("bytes_compacted", s.bytes_compacted)?;
    d.set_item("compactions", s.compactions)?;
    Ok(d)
}

pub fn writer_info<'py>(py: Python<'py>, w: &scribedb::WriterInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pid", w.pid)?;
    d.set_item("since_ms", w.since_ms)?;
    Ok(d)
}

pub fn reader_info<'py>(py: Python<'py>, r: &scribedb::ReaderInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("slot", r.slot)?;
    d.set_item("pid", r.pid)?;
    d.set_item("snapshot", r.snapshot)?;
    d.set_item("age_ms", r.age_ms)?;
    d.set_item("lag_ms", r.lag_ms)?;
    d.set_item("live", r.live)?;
    d.set_item("view", r.view)?;
    d.set_item("manifest_generation", r.manifest_generation)?;
    d.set_item("pinned_bytes", r.pinned_bytes)?;
    Ok(d)
}

pub fn check_report<'py>(
    py: Python<'py>,
    r: &scribedb::CheckReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ok", r.is_ok())?;
    let problems = PyList::empty(py);
    for p in &r.problems {
        let item = PyDict::new(py);
        item.set_item("file", p.file.display().to_string())?;
        item.set_item("offset", p.offset)?;
        item.set_item("what", &p.what)?;
        problems.append(item)?;
    }
    d.set_item("problems", problems)?;
    d.set_item("problems_left_out", r.problems_left_out)?;
    d.set_item("snapshot", r.snapshot)?;
    d.set_item("manifest_generation", r.manifest_generation)?;
    d.set_item("segments", r.segments)?;
    d.set_item("segment_entries", r.segment_entries)?;
    d.set_item("segment_bytes", r.segment_bytes)?;
    d.set_item("memtables", r.memtables)?;
    d.set_item("memtable_versions", r.memtable_versions)?;
    d.set_item("log_files", r.log_files)?;
    d.set_item("log_records", r.log_records)?;
    d.set_item("log_bytes", r.log_bytes)?;
    Ok(d)
}

pub fn recovery_report<'py>(
    py: Python<'py>,
    r: &scribedb::RecoveryReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("records", r.records)?;
    d.set_item("last_ts", r.last_ts)?;
    d.set_item("wal_end", r.wal_end)?;
    d.set_item("torn_tail", r.torn_tail)?;
    d.set_item("torn_records", r.torn_records)?;
    d.set_item("repaired", r.repaired)?;
    d.set_item("coord_rebuilt", r.coord_rebuilt.as_deref())?;
    Ok(d)
}
