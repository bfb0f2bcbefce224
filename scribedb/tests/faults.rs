//! I/O faults injected at random points of random workloads (EIO or
//! ENOSPC at the nth call of each kind, once or from then on, writes cut
//! short, a sync that fails once and then "succeeds"). After every fault:
//! every acknowledged commit is present and whole, every commit that
//! failed is absent (one whose outcome the error calls unknown may be
//! either), reads never give a wrong answer, the handle goes on working or
//! says it is poisoned, and the database reopens without repair.
//!
//! `SCRIBEDB_FAULT_TRIALS` sets the number of trials (default 30);
//! `SCRIBEDB_FAULT_SEED` replays one.

mod common;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use scribedb::faults::{Fault, Op, Plan};
use scribedb::{Database, Durability, Error};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &std::path::Path, durability: Durability) -> scribedb::Result<Database> {
    Database::builder()
        .durability(durability)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .open(dir)
}

fn random_batch(rng: &mut impl Rng, round: u32) -> Batch {
    (0..rng.random_range(1..30))
        .map(|i| {
            let key = format!("key-{:03}", rng.random_range(0..200u32)).into_bytes();
            let value = match rng.random_range(0..10) {
                0 => None,
                // Some long enough to live in the log only.
                n => Some(format!("{round}.{i}:{}", "v".repeat(n * 12)).into_bytes()),
            };
            (key, value)
        })
        .collect()
}

fn apply(model: &mut Model, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

fn commit(db: &Database, batch: &Batch) -> scribedb::Result<u64> {
    let mut w = db.begin_write()?;
    for (k, v) in batch {
        match v {
            Some(v) => w.put(k, v)?,
            None => w.delete(k)?,
        }
    }
    w.commit()
}

/// The database's contents, or the first read error.
fn contents(db: &Database) -> scribedb::Result<Model> {
    let r = db.begin_read()?;
    let mut out = Model::new();
    for kv in r.iter() {
        let (k, v) = kv?;
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok(out)
}

fn random_fault(rng: &mut impl Rng) -> Fault {
    Fault {
        op: Op::ALL[rng.random_range(0..Op::ALL.len())],
        nth: rng.random_range(1..40),
        errno: if rng.random_bool(0.5) {
            libc::EIO
        } else {
            libc::ENOSPC
        },
        sticky: rng.random_bool(0.3),
        short: rng.random_bool(0.5),
    }
}

fn trial(seed: u64) -> Result<String, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let durability = [
        Durability::Immediate,
        Durability::Eventual,
        Durability::None,
    ][rng.random_range(0..3)];
    let db = open(&dir, durability).map_err(|e| format!("first open: {e}"))?;
    let mut model = Model::new();
    let mut round = 0u32;
    for _ in 0..rng.random_range(0..40) {
        let batch = random_batch(&mut rng, round);
        commit(&db, &batch).map_err(|e| format!("warm-up commit: {e}"))?;
        apply(&mut model, &batch);
        round += 1;
    }
    let faults: Vec<Fault> = (0..rng.random_range(1..=3))
        .map(|_| random_fault(&mut rng))
        .collect();
    let plan = Plan::install(&dir, faults.clone());
    let mut unknown: Option<Batch> = None;
    let mut outcome = "no fault fired".to_string();
    for _ in 0..150 {
        let batch = random_batch(&mut rng, round);
        round += 1;
        match commit(&db, &batch) {
            Ok(_) => apply(&mut model, &batch),
            Err(Error::CommitOutcomeUnknown { .. }) => {
                unknown = Some(batch);
                outcome = "a commit's outcome is unknown".into();
                break;
            }
            Err(Error::Poisoned(_)) => {
                outcome = "the handle is poisoned".into();
                break;
            }
            // The commit failed: it is absent. The handle may go on.
            Err(e) => outcome = format!("a commit failed: {e}"),
        }
        // Reads: right, or an error, never a wrong answer.
        if rng.random_bool(0.2) && unknown.is_none() {
            if let Ok(got) = contents(&db) {
                if got != model {
                    return Err(format!("wrong contents under faults ({outcome})"));
                }
            }
        }
    }
    let fired = plan.fired();
    // Half the trials close the handle while the faults still fire.
    if rng.random_bool(0.5) {
        drop(db);
        drop(plan);
    } else {
        drop(plan);
        drop(db);
    }
    if rng.random_bool(0.5) {
        common::simulate_reboot(&dir);
    }
    let db = open(&dir, durability)
        .map_err(|e| format!("reopen after {faults:?} (fired {fired:?}, {outcome}): {e}"))?;
    let got = contents(&db).map_err(|e| format!("read after reopen: {e}"))?;
    let mut with_unknown = model.clone();
    if let Some(b) = &unknown {
        apply(&mut with_unknown, b);
    }
    if got != model && got != with_unknown {
        let missing = model.iter().filter(|(k, v)| got.get(*k) != Some(v)).count();
        return Err(format!(
            "after reopen {missing} keys differ from the acknowledged commits \
             (faults {faults:?}, fired {fired:?}, {outcome})"
        ));
    }
    // And it works: a commit, then everything once more.
    let batch = random_batch(&mut rng, round);
    commit(&db, &batch).map_err(|e| format!("commit after reopen: {e}"))?;
    let mut expect = got;
    apply(&mut expect, &batch);
    if contents(&db).map_err(|e| format!("read after reopen: {e}"))? != expect {
        return Err("the commit after reopen is not there".into());
    }
    Ok(format!("{} fired: {outcome}", fired.len()))
}

#[test]
fn random_faults_never_lose_an_acknowledged_commit() {
    let seeds: Vec<u64> = match std::env::var("SCRIBEDB_FAULT_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => {
            let base: u64 = rand::rng().random();
            (0..env_or("SCRIBEDB_FAULT_TRIALS", 30))
                .map(|i| base.wrapping_add(i))
                .collect()
        }
    };
    let mut fired = 0;
    for seed in seeds {
        match trial(seed) {
            Ok(summary) => fired += !summary.starts_with("0 fired") as u32,
            Err(e) => panic!("SCRIBEDB_FAULT_SEED={seed}: {e}"),
        }
    }
    eprintln!("faults fired in {fired} trials");
}

/// A sync that fails once and then "succeeds" (the kernel reports a lost
/// write-back once): the handle never trusts a later sync, and the commit
/// whose sync failed says its outcome is unknown.
#[test]
fn a_failed_sync_is_never_trusted_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = open(&dir, Durability::Immediate).unwrap();
    let mut w = db.begin_write().unwrap();
    w.put(b"before", b"1").unwrap();
    w.commit().unwrap();
    let plan = Plan::install(
        &dir,
        vec![Fault {
            op: Op::Sync,
            nth: 1,
            errno: libc::EIO,
            sticky: false,
            short: false,
        }],
    );
    let mut w = db.begin_write().unwrap();
    w.put(b"during", b"2").unwrap();
    match w.commit() {
        Err(Error::CommitOutcomeUnknown { why, .. }) => {
            assert!(why.contains("Input/output error"), "{why}")
        }
        other => panic!("expected CommitOutcomeUnknown, got {other:?}"),
    }
    assert_eq!(plan.fired().len(), 1);
    // The next sync would succeed, but nothing is trusted any more.
    match db.begin_write().and_then(|mut w| {
        w.put(b"after", b"3")?;
        w.commit()
    }) {
        Err(Error::Poisoned(why)) => assert!(why.contains("sync"), "{why}"),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    drop(plan);
    drop(db);
    let db = open(&dir, Durability::Immediate).unwrap();
    let got = contents(&db).unwrap();
    assert_eq!(got.get(&b"before"[..]), Some(&b"1".to_vec()));
    assert_eq!(got.get(&b"after"[..]), None);
}

/// ENOSPC on every allocation: commits fail cleanly (absent after a
/// reopen), reads go on.
#[test]
fn a_full_disk_fails_commits_cleanly_and_reads_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = open(&dir, Durability::Immediate).unwrap();
    let mut model = Model::new();
    for round in 0..20 {
        let batch: Batch = vec![(
            format!("k{round}").into_bytes(),
            Some(vec![round as u8; 100]),
        )];
        commit(&db, &batch).unwrap();
        apply(&mut model, &batch);
    }
    let full = |op| Fault {
        op,
        nth: 1,
        errno: libc::ENOSPC,
        sticky: true,
        short: true,
    };
    let plan = Plan::install(&dir, vec![full(Op::Allocate), full(Op::Write)]);
    let mut failed = 0;
    for round in 0..200u32 {
        let batch: Batch = vec![(format!("big{round}").into_bytes(), Some(vec![7u8; 4000]))];
        match commit(&db, &batch) {
            Ok(_) => apply(&mut model, &batch),
            Err(e) => {
                assert!(e.to_string().contains("No space"), "unclear: {e}");
                failed += 1;
            }
        }
        assert_eq!(contents(&db).unwrap(), model, "reads under a full disk");
    }
    assert!(failed > 0, "the disk never filled");
    drop(plan);
    drop(db);
    let db = open(&dir, Durability::Immediate).unwrap();
    assert_eq!(contents(&db).unwrap(), model);
}
