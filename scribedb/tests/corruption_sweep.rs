//! Random bit flips in every kind of durable file (a log file, a segment,
//! the manifest), 1, 8 or 64 at a time, with every handle closed. Half the
//! trials reopen on the same boot (the coordination file and the memtable
//! kept), half after a simulated reboot (both gone). The only outcomes
//! allowed: the right data, or a clear error at open or at the read that
//! touches the damage. Losing the last commit alone is allowed after a
//! reboot, when the flips fell in its record and nothing else says it was
//! there (as a torn write would leave it). Never a wrong answer, a panic
//! or a signal.
//!
//! `SCRIBEDB_SWEEP_TRIALS` sets the trials per cell (kind × flips × reopen;
//! default 3); `SCRIBEDB_SWEEP_SEED` replays one run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(dir: &Path) -> scribedb::Result<Database> {
    Database::builder()
        .durability(Durability::Immediate)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .open(dir)
}

/// A closed database with segments and unflushed log records; returns the
/// state after every commit and after all but the last.
fn build(dir: &Path) -> (Model, Model) {
    let db = open(dir).unwrap();
    let mut model = Model::new();
    let mut before_last = Model::new();
    for round in 0..120u32 {
        before_last = model.clone();
        let mut w = db.begin_write().unwrap();
        for i in 0..10u32 {
            let k = format!("key-{:03}", (round * 7 + i * 13) % 300).into_bytes();
            // Short values live in the memtable, long ones in the log.
            let v = format!(
                "{round}.{i}.{}",
                "x".repeat(((round + i) % 3 * 60) as usize)
            );
            w.put(&k, v.as_bytes()).unwrap();
            model.insert(k, v.into_bytes());
        }
        w.commit().unwrap();
    }
    // A few small commits last, so that the file appended to holds records
    // (a seal at the last big commit would leave it with a header only).
    for i in 0..3u32 {
        before_last = model.clone();
        let mut w = db.begin_write().unwrap();
        let v = format!("tail {i} {}", "t".repeat(70));
        w.put(format!("tail-{i}"), v.as_bytes()).unwrap();
        model.insert(format!("tail-{i}").into_bytes(), v.into_bytes());
        w.commit().unwrap();
    }
    drop(db);
    (model, before_last)
}

fn files(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            match kind {
                "log" => common::is_log_file(&n),
                "segment" => n.starts_with("seg-"),
                "manifest" => n.starts_with("manifest-"),
                _ => unreachable!(),
            }
        })
        .collect();
    out.sort();
    out
}

/// What a reopened database shows: `Err` when opening or a read failed.
fn observe(dir: &Path, keys: &[Vec<u8>]) -> Result<Model, String> {
    let db = open(dir).map_err(|e| e.to_string())?;
    let mut seen = Model::new();
    let r = db.begin_read().map_err(|e| e.to_string())?;
    for kv in r.iter() {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        seen.insert(k.to_vec(), v.to_vec());
    }
    // Point reads take other paths (hash index, key index): each must
    // agree with the scan, or fail.
    for k in keys {
        match r.get(k) {
            Ok(got) => {
                if got != seen.get(k).map(|v| &v[..]) {
                    return Ok(BTreeMap::from([(b"!get differs".to_vec(), k.clone())]));
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(seen)
}

fn clear(e: &str) -> bool {
    // Every error names a file or says what to do.
    e.contains('/') || e.contains("repair") || e.contains("corrupt")
}

#[test]
fn bit_flips_give_the_right_data_or_a_clear_error() {
    let seed: u64 = std::env::var("SCRIBEDB_SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let trials: u32 = std::env::var("SCRIBEDB_SWEEP_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (model, before_last) = build(&base);
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    let mut table = BTreeMap::new();
    let mut n = 0;
    for kind in ["log", "segment", "manifest"] {
        for flips in [1usize, 8, 64] {
            for reboot in [false, true] {
                for _ in 0..trials {
                    n += 1;
                    let dir = tmp.path().join(format!("t{n}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    for e in std::fs::read_dir(&base).unwrap().flatten() {
                        common::sparse_copy(&e.path(), &dir.join(e.file_name()), None);
                    }
                    let candidates = files(&dir, kind);
                    assert!(!candidates.is_empty(), "no {kind} file to damage");
                    let victim = &candidates[rng.random_range(0..candidates.len())];
                    let mut bytes = std::fs::read(victim).unwrap();
                    // Flip within the bytes that hold data: a log file is
                    // preallocated with zeros past its last record.
                    let used = bytes.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
                    for _ in 0..flips {
                        let at = rng.random_range(0..used);
                        bytes[at] ^= 1 << rng.random_range(0..8);
                    }
                    std::fs::write(victim, &bytes).unwrap();
                    if reboot {
                        common::simulate_reboot(&dir);
                    }
                    let outcome = std::panic::catch_unwind(|| observe(&dir, &keys));
                    let cell = match outcome {
                        Err(_) => panic!("seed {seed}: panic ({kind}, {flips} flips)"),
                        Ok(Err(e)) => {
                            assert!(clear(&e), "seed {seed}: unclear error: {e}");
                            "error"
                        }
                        Ok(Ok(seen)) if seen == model => "right",
                        Ok(Ok(seen)) if reboot && seen == before_last => "last commit lost",
                        Ok(Ok(seen)) => panic!(
                            "seed {seed}: WRONG ANSWER after {flips} flips in {} \
                             (reboot {reboot}): {} keys differ",
                            victim.display(),
                            model
                                .iter()
                                .filter(|(k, v)| seen.get(*k) != Some(v))
                                .count()
                        ),
                    };
                    *table.entry((kind, flips, reboot, cell)).or_insert(0u32) += 1;
                    std::fs::remove_dir_all(&dir).unwrap();
                }
            }
        }
    }
    eprintln!("seed {seed}:");
    for ((kind, flips, reboot, cell), count) in table {
        eprintln!("  {kind:8} {flips:2} flips reboot={reboot:5} {cell:16} {count}");
    }
}
