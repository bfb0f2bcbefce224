//! Power loss at any point: a workload runs with every change to its
//! files recorded (`scribedb::powerloss`); then, for crash points across
//! its commits, seals, flushes, compactions, manifest switches and
//! deletions, the directory a machine crash there could leave is built
//! (unsynced writes lost, kept, or kept in part and out of order, sector
//! by sector; names durable only once their directory was synced) and
//! opened as after a reboot. Every image must open without `repair`, hold
//! exactly the state after some commit (never a mix), lose no commit that
//! `Durability::Immediate` acknowledged before the crash, pass
//! `Database::check`, and take a new commit that survives a reopen.
//!
//! `SCRIBEDB_POWERLOSS_IMAGES` sets the crash images per workload (default
//! 60), `SCRIBEDB_POWERLOSS_WORKLOADS` the workloads (default 3, which
//! take turns at the three durability modes); `SCRIBEDB_POWERLOSS_SEED`
//! replays one workload.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use scribedb::powerloss::{self, Crash, Event, History, Recording};
use scribedb::{Database, Durability};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &Path, durability: Durability) -> scribedb::Result<Database> {
    Database::builder()
        .durability(durability)
        .memtable_size(32 << 10)
        .arena_size(1 << 20)
        .open(dir)
}

/// A commit of the workload: its timestamp, the state after it, and how
/// many changes were recorded when it was acknowledged.
struct Commit {
    ts: u64,
    state: Model,
    acked_at: usize,
}

struct Workload {
    durability: Durability,
    history: History,
    commits: Vec<Commit>,
}

fn run_workload(seed: u64, durability: Durability) -> Workload {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    let recording = Recording::start(&dir).unwrap();
    let db = open(&dir, durability).expect("open");
    let mut model = Model::new();
    let mut commits = Vec::new();
    for round in 0..rng.random_range(40..80u32) {
        let mut w = db.begin_write().unwrap();
        for i in 0..rng.random_range(1..12) {
            let key = format!("key-{:03}", rng.random_range(0..150u32)).into_bytes();
            if rng.random_bool(0.15) {
                w.delete(&key).unwrap();
                model.remove(&key);
            } else {
                // Short values live in the arenas, long ones in the log;
                // some span several sectors.
                let len = match rng.random_range(0..10) {
                    0..=4 => rng.random_range(0..60),
                    5..=8 => rng.random_range(60..600),
                    _ => rng.random_range(600..3000),
                };
                let value: Vec<u8> = (0..len)
                    .map(|j| (round as usize * 31 + i * 7 + j) as u8 | 1)
                    .collect();
                w.put(&key, &value).unwrap();
                model.insert(key, value);
            }
        }
        let ts = w.commit().expect("commit");
        commits.push(Commit {
            ts,
            state: model.clone(),
            acked_at: recording.position(),
        });
        if rng.random_bool(0.05) {
            db.compact().expect("compact");
        }
    }
    drop(db);
    Workload {
        durability,
        history: recording.history(),
        commits,
    }
}

/// Crash points: just before and just after every sync, directory sync,
/// rename and removal (where the order of durability matters), plus
/// random ones; at most `limit`, spread over the whole history.
fn crash_points(history: &History, limit: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut points = Vec::new();
    for (i, e) in history.events.iter().enumerate() {
        if matches!(
            e,
            Event::Sync { .. } | Event::SyncDir | Event::Rename { .. } | Event::Remove { .. }
        ) {
            points.push(i);
            points.push(i + 1);
        }
    }
    points.push(history.events.len());
    points.sort_unstable();
    points.dedup();
    if points.len() > limit {
        // Keep an even spread, then fill with random ones.
        let step = points.len() as f64 / (limit / 2).max(1) as f64;
        let mut kept: Vec<usize> = (0..limit / 2)
            .map(|i| points[(i as f64 * step) as usize])
            .collect();
        while kept.len() < limit {
            kept.push(rng.random_range(0..=history.events.len()));
        }
        points = kept;
    }
    points
}

fn read_all(db: &Database) -> scribedb::Result<(u64, Model)> {
    let r = db.begin_read()?;
    let mut out = Model::new();
    for kv in r.iter() {
        let (k, v) = kv?;
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok((r.snapshot_ts(), out))
}

/// Open the image of a crash after `upto` changes and check it.
fn check_image(w: &Workload, upto: usize, crash: Crash) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    let mut image = powerloss::crash_image(&w.history, upto, crash);
    // A reboot: the coordination file and the arenas are derived state
    // kept in shared mappings, which the recording does not see.
    image.retain(|name, _| name != "coord" && !name.ends_with(".arena"));
    powerloss::write_image(&image, &dir).unwrap();

    let db = open(&dir, w.durability).map_err(|e| format!("open failed: {e}"))?;
    let (ts, got) = read_all(&db).map_err(|e| format!("read failed: {e}"))?;
    let k = if ts == 0 || ts < w.commits[0].ts {
        None
    } else {
        Some(
            w.commits
                .iter()
                .position(|c| c.ts == ts)
                .ok_or_else(|| format!("snapshot {ts} is no commit's timestamp"))?,
        )
    };
    let empty = Model::new();
    let expected = k.map_or(&empty, |k| &w.commits[k].state);
    if &got != expected {
        return Err(format!(
            "contents differ from the state after commit {k:?} (ts {ts}): \
             {} keys, expected {}",
            got.len(),
            expected.len()
        ));
    }
    if w.durability == Durability::Immediate {
        let acked = w.commits.iter().rposition(|c| c.acked_at <= upto);
        if acked > k || (acked.is_some() && k.is_none()) {
            return Err(format!(
                "commit {acked:?} was acknowledged before the crash, but the \
                 database holds the state after {k:?}"
            ));
        }
    }
    let report = db.check().map_err(|e| format!("check failed: {e}"))?;
    if !report.is_ok() {
        return Err(format!("check found problems: {report:?}"));
    }
    // The database goes on: a new commit survives a reopen.
    let mut t = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
    t.put(b"after-the-crash", b"yes").unwrap();
    t.commit()
        .map_err(|e| format!("commit after the crash: {e}"))?;
    drop(db);
    common::simulate_reboot(&dir);
    let db = open(&dir, w.durability).map_err(|e| format!("reopen failed: {e}"))?;
    let r = db.begin_read().unwrap();
    if r.get(b"after-the-crash").map_err(|e| e.to_string())? != Some(&b"yes"[..]) {
        return Err("the commit after the crash is lost".into());
    }
    Ok(())
}

fn describe(history: &History, upto: usize) -> String {
    match upto.checked_sub(1).and_then(|i| history.events.get(i)) {
        Some(Event::Write { offset, data, .. }) => {
            format!("after a write of {} bytes at {offset}", data.len())
        }
        Some(e) => format!("after {e:?}"),
        None => "before anything".into(),
    }
}

#[test]
fn every_crash_image_opens_with_a_whole_prefix_of_the_commits() {
    let images = env_or("SCRIBEDB_POWERLOSS_IMAGES", 60) as usize;
    let seeds: Vec<u64> = match std::env::var("SCRIBEDB_POWERLOSS_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (1..=env_or("SCRIBEDB_POWERLOSS_WORKLOADS", 3)).collect(),
    };
    let mut failures = Vec::new();
    let mut tried = 0;
    for seed in seeds {
        let durability = [
            Durability::Immediate,
            Durability::Eventual,
            Durability::None,
        ][seed as usize % 3];
        let w = run_workload(seed, durability);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        for upto in crash_points(&w.history, images, &mut rng) {
            let crash = match rng.random_range(0..4) {
                0 => Crash::SyncedOnly,
                1 => Crash::Everything,
                _ => Crash::Random(rng.random()),
            };
            tried += 1;
            if let Err(why) = check_image(&w, upto, crash) {
                failures.push(format!(
                    "seed {seed} ({durability:?}), crash at change {upto} of {} ({}), \
                     {crash:?}: {why}",
                    w.history.events.len(),
                    describe(&w.history, upto)
                ));
            }
        }
    }
    println!("{tried} crash images, {} failures", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
