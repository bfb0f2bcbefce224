//! Sorted segments across processes: a reader process that holds one
//! snapshot through many compactions, readers killed while they pin old
//! files, a writer killed during flushes and compactions, and mappings of
//! files that were deleted.
//!
//! The test binary runs itself as the child processes: `segments_mp_child`
//! reads its role from `SCRIBEDB_SEGMP_ROLE` and is a no-op without it.
//! Parents talk to a child through its stdin (one command a line) and read
//! its answers on its stdout.
//!
//! Counts for longer runs: `SCRIBEDB_SEG_COMPACTIONS` (compactions under
//! the held snapshot, default 25), `SCRIBEDB_SEG_KILLS` (writer kills,
//! default 10), `SCRIBEDB_SEG_SEED` (the parents' random choices).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::child::{max_tagged, test_command, ChildProc};
use common::{is_log_file, simulate_reboot};
use rand::{Rng, SeedableRng};
use scribedb::{Database, Durability, ReadTxn};

const ROLE_ENV: &str = "SCRIBEDB_SEGMP_ROLE";
const DIR_ENV: &str = "SCRIBEDB_SEGMP_DIR";
/// A child gives up after this long even if nobody stops it.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// Memtable budget of the reader tests.
const READER_MEMTABLE: u64 = 64 << 10;
/// Memtable budget of the writer that is killed.
const WRITER_MEMTABLE: u64 = 32 << 10;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A generator of the parents' random choices, seeded from `SCRIBEDB_SEG_SEED`.
fn seeded_rng(test: &str) -> rand::rngs::StdRng {
    common::seeded_rng("SCRIBEDB_SEG_SEED", test)
}

fn open_small(dir: &Path, durability: Durability, memtable: u64) -> scribedb::Result<Database> {
    Database::builder()
        .durability(durability)
        .memtable_size(memtable)
        .arena_size(1 << 20)
        .writer_timeout(Duration::from_secs(30))
        .open(dir)
}

// ---- data -----------------------------------------------------------------

const KEYS: u32 = 500;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// Short values live in the arenas, long ones (64 bytes and more) in the
/// log until their memtable is flushed.
fn churn_value(rng: &mut impl Rng, i: u32, round: u64) -> Vec<u8> {
    let len = if rng.random_bool(0.5) {
        rng.random_range(0..48)
    } else {
        rng.random_range(64..400)
    };
    let mut v = format!("{i}:{round}:").into_bytes();
    v.resize(len.max(v.len()), b'a' + (round % 26) as u8);
    v
}

/// Put every key of `0..n`, in one commit.
fn fill(db: &Database, model: &mut Map, rng: &mut impl Rng, n: u32, round: u64) {
    let mut w = db.begin_write().unwrap();
    for i in 0..n {
        let v = churn_value(rng, i, round);
        w.put(key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    w.commit().unwrap();
}

/// One commit of `ops` random overwrites and deletes, applied to `model`.
fn churn_commit(db: &Database, model: &mut Map, rng: &mut impl Rng, ops: usize, round: u64) {
    let mut w = db.begin_write().unwrap();
    for _ in 0..ops {
        let i = rng.random_range(0..KEYS);
        if rng.random_bool(0.2) {
            w.delete(key(i)).unwrap();
            model.remove(&key(i));
        } else {
            let v = churn_value(rng, i, round);
            w.put(key(i), &v).unwrap();
            model.insert(key(i), v);
        }
    }
    w.commit().unwrap();
}

fn map_hash(map: &Map) -> u64 {
    // The same binary computes it in the parent and in the child.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    map.hash(&mut h);
    h.finish()
}

fn read_all(r: &ReadTxn) -> Result<Map, String> {
    r.iter()
        .map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| format!("iterating: {e}"))
        })
        .collect()
}

fn db_map(db: &Database) -> Result<Map, String> {
    read_all(&db.begin_read().map_err(|e| format!("begin_read: {e}"))?)
}

/// Where two maps first differ, for a failure message.
fn describe_diff(want: &Map, got: &Map) -> String {
    let keys: BTreeSet<&Vec<u8>> = want.keys().chain(got.keys()).collect();
    for k in keys {
        let (a, b) = (want.get(k), got.get(k));
        if a != b {
            let show = |v: Option<&Vec<u8>>| v.map(|v| String::from_utf8_lossy(v).into_owned());
            return format!(
                "{} keys expected, {} found; first difference at {:?}: expected {:?}, found {:?}",
                want.len(),
                got.len(),
                String::from_utf8_lossy(k),
                show(a),
                show(b)
            );
        }
    }
    "no difference".into()
}

/// Check that `r` still reads exactly `first`: a forward scan, a reverse
/// scan, and point reads of present and absent keys.
fn verify_snapshot(r: &ReadTxn, first: &Map) -> Result<(), String> {
    let now = read_all(r)?;
    if now != *first {
        return Err(format!("scan: {}", describe_diff(first, &now)));
    }
    let mut rev = Vec::new();
    for kv in r.iter().rev() {
        rev.push(kv.map_err(|e| format!("reverse scan: {e}"))?.0.to_vec());
    }
    if !rev.iter().rev().eq(first.keys()) {
        return Err(format!(
            "reverse scan: {} keys, expected {}",
            rev.len(),
            first.len()
        ));
    }
    for i in (0..KEYS + 20).step_by(3) {
        let k = key(i);
        let got = r.get(&k).map_err(|e| format!("get: {e}"))?;
        if got != first.get(&k).map(Vec::as_slice) {
            return Err(format!(
                "get {:?}: {:?}, expected {:?}",
                String::from_utf8_lossy(&k),
                got.map(String::from_utf8_lossy),
                first.get(&k).map(|v| String::from_utf8_lossy(v))
            ));
        }
    }
    Ok(())
}

// ---- files ----------------------------------------------------------------

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_segment(name: &str) -> bool {
    name.starts_with("seg-") && name.ends_with(".seg")
}

fn count_segments(dir: &Path) -> usize {
    file_names(dir).iter().filter(|n| is_segment(n)).count()
}

/// Generation of an arena file `mem-<generation:016x>-<index:05>.arena`.
fn arena_generation(name: &str) -> Option<u64> {
    let (g, _) = name
        .strip_prefix("mem-")?
        .strip_suffix(".arena")?
        .split_once('-')?;
    u64::from_str_radix(g, 16).ok()
}

fn arena_generations(dir: &Path) -> BTreeSet<u64> {
    file_names(dir)
        .iter()
        .filter_map(|n| arena_generation(n))
        .collect()
}

/// The segment and arena files in the directory now.
fn data_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| is_segment(n) || arena_generation(n).is_some())
        .collect()
}

/// With no reader left and maintenance done: every segment file is one
/// the current manifest lists (at most `max_segments`), one manifest, no
/// temporary files, arenas of one generation only, nothing unknown.
fn check_files(dir: &Path, db: &Database, max_segments: Option<usize>) -> Result<(), String> {
    let stats = db.stats().map_err(|e| format!("stats: {e}"))?;
    let names = file_names(dir);
    let segments = names.iter().filter(|n| is_segment(n)).count();
    let manifests = names
        .iter()
        .filter(|n| n.starts_with("manifest-") && !n.ends_with(".tmp"))
        .count();
    let tmp = names.iter().filter(|n| n.ends_with(".tmp")).count();
    let generations = arena_generations(dir);
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| {
            !(*n == "coord"
                || is_log_file(n)
                || is_segment(n)
                || n.starts_with("manifest-")
                || arena_generation(n).is_some())
        })
        .collect();
    // Only log files with records not yet in segments stay: from the one
    // holding the log start (a rebuilt memtable may span several) on.
    let mut bases: Vec<u64> = names
        .iter()
        .filter(|n| is_log_file(n))
        .map(|n| {
            n.strip_prefix("wal-")
                .map_or(0, |h| u64::from_str_radix(h, 16).unwrap())
        })
        .collect();
    bases.sort();
    let flushed_logs = bases
        .windows(2)
        .filter(|w| w[1] + 64 <= stats.log_start)
        .count();
    let ok = segments == stats.segments
        && flushed_logs == 0
        && max_segments.is_none_or(|m| segments <= m)
        && manifests <= 1
        && tmp == 0
        && generations.len() == 1
        && unknown.is_empty();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "left-over files: the manifest (generation {}) lists {} segments, \
             the directory holds {names:?}",
            stats.manifest_generation, stats.segments
        ))
    }
}

/// Mappings of this process that name a deleted file in `dir`.
fn deleted_mappings(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/maps")
        .expect("reading this process's mappings")
        .lines()
        .filter(|l| l.ends_with(" (deleted)"))
        .filter_map(|l| l.find('/').map(|at| l[at..].to_string()))
        .filter(|path| path.starts_with(&prefix))
        .collect()
}

/// Wait until no sealed memtable waits for its flush.
fn settle(db: &Database) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().unwrap().sealed_memtable {
        assert!(Instant::now() < deadline, "the flush never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- the writer's rounds --------------------------------------------------

/// Keys every round of the writer sets to one value: a commit applied in
/// part shows up as group keys that disagree.
const GROUP: u64 = 5;
/// Other keys each round puts, spread over `WRITER_KEYS`.
const SCATTER: u64 = 8;
const WRITER_KEYS: u64 = 300;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn group_key(j: u64) -> Vec<u8> {
    format!("grp-{j}").into_bytes()
}

fn scatter_key(i: u64) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// A value of round `r`, tagged with the round and `what`, `len` bytes
/// long (or the tag's length if that is more).
fn tagged(r: u64, what: u64, len: usize) -> Vec<u8> {
    let mut v = format!("r{r}/{what}/").into_bytes();
    v.resize(len.max(v.len()), b'a' + (mix(r ^ what) % 26) as u8);
    v
}

/// The writes of round `r` of the writer child (`None` deletes), the same
/// in every process: the group keys, some other keys, one delete, and
/// `last` = `r`.
fn round_writes(r: u64) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut w = BTreeMap::new();
    let group_len = 16 + (mix(r) % 500) as usize;
    for j in 0..GROUP {
        w.insert(group_key(j), Some(tagged(r, 0, group_len)));
    }
    for j in 0..SCATTER {
        let h = mix(r << 8 | j);
        let len = ((h >> 32) % 900) as usize;
        w.insert(scatter_key(h % WRITER_KEYS), Some(tagged(r, 1 + j, len)));
    }
    w.entry(scatter_key(mix(r ^ 0xd1e7e) % WRITER_KEYS))
        .or_insert(None);
    w.insert(b"last".to_vec(), Some(r.to_string().into_bytes()));
    w
}

fn write_round(w: &mut scribedb::WriteTxn, r: u64) -> Result<(), String> {
    for (k, v) in round_writes(r) {
        match v {
            Some(v) => w.put(&k, &v),
            None => w.delete(&k),
        }
        .map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

fn parse_last(v: Option<&[u8]>) -> Result<u64, String> {
    match v {
        None => Ok(0),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad round counter {:?}", String::from_utf8_lossy(v))),
    }
}

/// The database as the writer's rounds `1..=upto` leave it.
#[derive(Default)]
struct RoundModel {
    upto: u64,
    map: Map,
}

impl RoundModel {
    fn advance(&mut self, to: u64) -> Result<(), String> {
        if to < self.upto {
            return Err(format!(
                "the database went back from round {} to round {to}",
                self.upto
            ));
        }
        for r in self.upto + 1..=to {
            for (k, v) in round_writes(r) {
                match v {
                    Some(v) => self.map.insert(k, v),
                    None => self.map.remove(&k),
                };
            }
        }
        self.upto = to;
        Ok(())
    }
}

/// Check that `db` holds exactly what whole rounds `1..=R` wrote, for the
/// `R` it names; returns `R`.
fn check_rounds(db: &Database, model: &mut RoundModel) -> Result<u64, String> {
    check_round_map(&db_map(db)?, model)
}

/// Check that `got` is exactly what whole rounds `1..=R` wrote, for the
/// `R` it names; returns `R`.
fn check_round_map(got: &Map, model: &mut RoundModel) -> Result<u64, String> {
    let last = parse_last(got.get(&b"last"[..]).map(Vec::as_slice))?;
    if last == 0 {
        return if got.is_empty() {
            Ok(0)
        } else {
            Err(format!("{} keys but no round counter", got.len()))
        };
    }
    let tag = format!("r{last}/0/").into_bytes();
    for j in 0..GROUP {
        match got.get(&group_key(j)) {
            Some(v) if v.starts_with(&tag) && Some(v) == got.get(&group_key(0)) => {}
            other => {
                return Err(format!(
                    "partial commit visible: round counter {last}, group key {j} holds {:?}",
                    other.map(|v| String::from_utf8_lossy(&v[..v.len().min(24)]).into_owned())
                ))
            }
        }
    }
    model.advance(last)?;
    if *got != model.map {
        return Err(format!(
            "contents after round {last}: {}",
            describe_diff(&model.map, got)
        ));
    }
    Ok(last)
}

// ---- the child side -------------------------------------------------------

/// Entry point of the child processes; does nothing in a normal test run.
#[test]
#[ignore = "run by the tests of this file as a child process"]
fn segments_mp_child() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("database directory"));
    let result = match role.as_str() {
        "reader" => child_reader(&dir),
        "writer" => child_writer(&dir),
        "compactor" => child_compactor(&dir),
        "round-checker" => child_round_checker(&dir),
        other => Err(format!("unknown role {other}")),
    };
    if let Err(e) = result {
        let _ = common::say(&format!("ERROR {e}"));
        std::process::exit(3);
    }
}

fn say(line: &str) -> Result<(), String> {
    common::say(line).map_err(|e| format!("stdout: {e}"))
}

/// Take a snapshot, report what it holds, then on each `CHECK n` read it
/// all again and compare; `DROP` ends it, `MAPS` begins a new read and
/// reports mappings of deleted files, `EXIT` (or the end of stdin) exits.
fn child_reader(dir: &Path) -> Result<(), String> {
    let db =
        open_small(dir, Durability::None, READER_MEMTABLE).map_err(|e| format!("open: {e}"))?;
    let mut snapshot = Some(db.begin_read().map_err(|e| format!("begin_read: {e}"))?);
    let first = read_all(snapshot.as_ref().expect("just taken"))?;
    say(&format!(
        "SNAP {} {} {}",
        snapshot.as_ref().expect("just taken").snapshot_ts(),
        first.len(),
        map_hash(&first)
    ))?;
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("CHECK"), Some(n)) => {
                let r = snapshot.as_ref().ok_or("CHECK after DROP")?;
                match verify_snapshot(r, &first) {
                    Ok(()) => say(&format!("OK {n}"))?,
                    Err(e) => say(&format!("BAD {n} {e}"))?,
                }
            }
            (Some("DROP"), _) => {
                snapshot = None;
                say("DROPPED")?;
            }
            (Some("MAPS"), _) => {
                let r = db.begin_read().map_err(|e| format!("begin_read: {e}"))?;
                let n = read_all(&r)?.len();
                let deleted = deleted_mappings(dir);
                drop(r);
                say(&format!("MAPS {} {n} {deleted:?}", deleted.len()))?;
            }
            (Some("EXIT"), _) => break,
            _ => return Err(format!("unknown command {line:?}")),
        }
    }
    drop(snapshot);
    Ok(())
}

/// Commit the writer's rounds until killed, reporting each round before
/// (`TRY`) and after (`ACK`) its commit returns, and compacting now and
/// then (`C+` before, `C-` after).
fn child_writer(dir: &Path) -> Result<(), String> {
    let db = open_small(dir, Durability::Immediate, WRITER_MEMTABLE)
        .map_err(|e| format!("open: {e}"))?;
    say("READY")?;
    let mut rng = rand::rng();
    let start = Instant::now();
    while start.elapsed() < CHILD_DEADLINE {
        let mut w = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
        let r = parse_last(w.get(b"last").map_err(|e| format!("get: {e}"))?)? + 1;
        write_round(&mut w, r)?;
        say(&format!("TRY {r}"))?;
        w.commit().map_err(|e| format!("commit {r}: {e}"))?;
        say(&format!("ACK {r}"))?;
        if rng.random_ratio(1, 8) {
            say(&format!("C+ {r}"))?;
            db.compact().map_err(|e| format!("compact: {e}"))?;
            say(&format!("C- {r}"))?;
        }
    }
    Ok(())
}

/// Until told `STOP`: take snapshots one after another and check that
/// each holds exactly whole rounds of the writer, none older than the
/// last; keep one snapshot of every 16 and check it again at each step.
fn child_round_checker(dir: &Path) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db =
        open_small(dir, Durability::None, WRITER_MEMTABLE).map_err(|e| format!("open: {e}"))?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop_reader = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if line.map_or(true, |l| l.trim() == "STOP") {
                break;
            }
        }
        stop_reader.store(true, Ordering::Release);
    });
    say("READY")?;
    let mut model = RoundModel::default();
    let mut held: Option<(ReadTxn, Map)> = None;
    let (mut checks, mut distinct, mut held_checks, mut last_seen) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    while !stop.load(Ordering::Acquire) && start.elapsed() < CHILD_DEADLINE {
        let r = db.begin_read().map_err(|e| format!("begin_read: {e}"))?;
        let got = read_all(&r)?;
        let last = check_round_map(&got, &mut model)
            .map_err(|e| format!("snapshot {}: {e}", r.snapshot_ts()))?;
        distinct += (last != last_seen) as u64;
        last_seen = last;
        checks += 1;
        if let Some((h, seen)) = &held {
            verify_snapshot(h, seen)
                .map_err(|e| format!("held snapshot {}: {e}", h.snapshot_ts()))?;
            held_checks += 1;
        }
        if checks % 16 == 0 {
            held = Some((r, got));
        }
    }
    drop(held);
    say(&format!("CHECKED {checks} {distinct} {held_checks}"))
}

/// Overwrite everything and compact a few times, then exit.
fn child_compactor(dir: &Path) -> Result<(), String> {
    let db =
        open_small(dir, Durability::None, READER_MEMTABLE).map_err(|e| format!("open: {e}"))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id() as u64);
    let mut model = Map::new();
    for round in 0..5 {
        churn_commit(&db, &mut model, &mut rng, 300, 100 + round);
        db.compact().map_err(|e| format!("compact: {e}"))?;
    }
    say("DONE")
}

// ---- the parent side ------------------------------------------------------

/// Start a child in `role` on the database `dir`, its stdin piped.
fn spawn_child(role: &str, dir: &Path) -> ChildProc {
    let mut cmd = test_command("segments_mp_child");
    cmd.env(ROLE_ENV, role)
        .env(DIR_ENV, dir)
        .stdin(Stdio::piped());
    ChildProc::spawn(&mut cmd)
}

/// Start a reader child on `dir` and check that its snapshot holds
/// exactly `model`.
fn spawn_reader(dir: &Path, model: &Map) -> ChildProc {
    let mut child = spawn_child("reader", dir);
    let lines = child
        .wait_for("SNAP ", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("reader child: {e}"));
    let snap: Vec<u64> = lines
        .last()
        .expect("the SNAP line")
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().expect("a number"))
        .collect();
    assert_eq!(snap[1], model.len() as u64, "keys in the child's snapshot");
    assert_eq!(snap[2], map_hash(model), "contents of the child's snapshot");
    child
}

/// A database with data in a segment and in the memtable (some of it
/// values kept in the log), no flush pending.
fn populate(dir: &Path, rng: &mut impl Rng, model: &mut Map) -> Database {
    let db = open_small(dir, Durability::None, READER_MEMTABLE).unwrap();
    fill(&db, model, rng, 400, 0);
    db.compact().unwrap();
    let mut w = db.begin_write().unwrap();
    for i in (0..400).step_by(10) {
        let v = format!("{i}:in-the-memtable:{}", "m".repeat(200)).into_bytes();
        w.put(key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    w.commit().unwrap();
    settle(&db);
    db
}

#[test]
fn a_reader_process_keeps_one_snapshot_through_many_compactions() {
    let compactions = env_count("SCRIBEDB_SEG_COMPACTIONS", 25);
    let mut rng = seeded_rng("a_reader_process_keeps_one_snapshot_through_many_compactions");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut model = Map::new();
    let db = populate(&dir, &mut rng, &mut model);
    // What the child's view names: it must stay while the child reads it.
    let pinned = data_files(&dir);
    let log_start = db.stats().unwrap().log_start;
    let mut child = spawn_reader(&dir, &model);
    let mut most_extra = 0;
    let mut flushes = 0;
    let started = Instant::now();
    for round in 1..=compactions {
        let generation = db.stats().unwrap().manifest_generation;
        // Enough to pass the memtable budget: flushes in the background
        // besides the compaction's own.
        for _ in 0..6 {
            churn_commit(&db, &mut model, &mut rng, 150, round);
        }
        flushes += db.stats().unwrap().manifest_generation - generation;
        db.compact().unwrap();
        let missing: Vec<&String> = pinned.iter().filter(|f| !dir.join(f).exists()).collect();
        assert!(
            missing.is_empty(),
            "compaction {round} deleted {missing:?}, which the reader process's view names"
        );
        let listed = db.stats().unwrap().segments;
        most_extra = most_extra.max(count_segments(&dir) - listed);
        child.send(&format!("CHECK {round}"));
        child
            .wait_for(&format!("OK {round}"), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("after compaction {round}: {e}"));
        if round % 5 == 0 {
            let now = db_map(&db).unwrap();
            assert!(now == model, "{}", describe_diff(&model, &now));
        }
    }
    eprintln!(
        "{compactions} compactions under a snapshot held by another process in {:?}; \
         {flushes} manifest changes besides them; at most {most_extra} segment files \
         beyond the manifest's",
        started.elapsed()
    );
    assert!(
        most_extra > 0,
        "the reader's segments stayed while it read them"
    );
    // Its snapshot gone, the old files may go: the process must not keep
    // them mapped once it takes a new view.
    child.send("DROP");
    child.wait_for("DROPPED", Duration::from_secs(30)).unwrap();
    db.compact().unwrap();
    child.send("MAPS");
    let lines = child.wait_for("MAPS ", Duration::from_secs(30)).unwrap();
    let maps = lines.last().unwrap();
    assert!(
        maps.starts_with("MAPS 0 "),
        "the reader process still maps deleted files after taking a new view: {maps}"
    );
    child.send("EXIT");
    child.finish(Duration::from_secs(30)).unwrap();
    db.compact().unwrap();
    let max = if model.is_empty() { 0 } else { 1 };
    check_files(&dir, &db, Some(max)).unwrap();
    let left: Vec<&String> = pinned.iter().filter(|f| dir.join(f).exists()).collect();
    assert!(
        left.is_empty(),
        "files the reader pinned are left: {left:?}"
    );
    let stats = db.stats().unwrap();
    assert!(
        stats.log_start > log_start,
        "the log was cut: start {} then {log_start}",
        stats.log_start
    );
    assert!(db_map(&db).unwrap() == model);
}

/// A reader child pins the files of its view and is SIGKILLed; the files
/// must go. With `reopen`, the handle whose jobs retired them is closed
/// (and another opened) before the kill, so only the files' names tell.
fn killed_reader_releases_pins(test: &str, reopen: bool) {
    let mut rng = seeded_rng(test);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut model = Map::new();
    let mut db = populate(&dir, &mut rng, &mut model);
    let pinned = data_files(&dir);
    let child = spawn_reader(&dir, &model);
    for round in 1..=3 {
        for _ in 0..4 {
            churn_commit(&db, &mut model, &mut rng, 100, round);
        }
        db.compact().unwrap();
    }
    let missing: Vec<&String> = pinned.iter().filter(|f| !dir.join(f).exists()).collect();
    assert!(
        missing.is_empty(),
        "files a live reader reads were deleted: {missing:?}"
    );
    assert!(count_segments(&dir) > db.stats().unwrap().segments);
    if reopen {
        drop(db);
        db = open_small(&dir, Durability::None, READER_MEMTABLE).unwrap();
    }
    child.kill().unwrap();
    // Writes until the memtable passes its budget and is flushed in the
    // background: that job finds the dead reader and deletes what it
    // pinned.
    let generation = db.stats().unwrap().manifest_generation;
    let mut round = 4;
    while db.stats().unwrap().manifest_generation == generation {
        assert!(round < 100, "no flush after {round} commits");
        churn_commit(&db, &mut model, &mut rng, 100, round);
        round += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        settle(&db);
        let left: Vec<&String> = pinned.iter().filter(|f| dir.join(f).exists()).collect();
        let (files, listed) = (count_segments(&dir), db.stats().unwrap().segments);
        if left.is_empty() && files == listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the reader was killed, {left:?} are still there, \
             {files} segment files for {listed} in the manifest: {:?}",
            file_names(&dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    db.compact().unwrap();
    check_files(&dir, &db, Some(1)).unwrap();
    assert_eq!(count_segments(&dir), 1);
    assert!(
        db.readers().iter().all(|r| r.live),
        "the dead reader's slot is reclaimed: {:?}",
        db.readers()
    );
    let now = db_map(&db).unwrap();
    assert!(now == model, "{}", describe_diff(&model, &now));
}

#[test]
fn a_killed_readers_pins_are_released() {
    killed_reader_releases_pins("a_killed_readers_pins_are_released", false);
}

#[test]
fn a_killed_readers_pins_are_released_after_the_retiring_handle_closed() {
    killed_reader_releases_pins(
        "a_killed_readers_pins_are_released_after_the_retiring_handle_closed",
        true,
    );
}

#[test]
fn sigkill_of_a_writer_during_flushes_and_compactions_loses_nothing() {
    let kills = env_count("SCRIBEDB_SEG_KILLS", 10);
    let mut rng = seeded_rng("sigkill_of_a_writer_during_flushes_and_compactions_loses_nothing");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let open = || open_small(&dir, Durability::Immediate, WRITER_MEMTABLE);
    let mut model = RoundModel::default();
    let mut state = 0u64;
    let (mut in_compaction, mut in_commit, mut orphans, mut reboots) = (0, 0, 0usize, 0);
    for kill in 0..kills {
        // Every third writer shares the database with a handle of this
        // process, which then takes over with nothing rebuilt.
        let attached = (kill % 3 == 2).then(|| open().unwrap());
        let mut child = spawn_child("writer", &dir);
        child
            .wait_for("READY", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        std::thread::sleep(Duration::from_millis(rng.random_range(3..=300)));
        let lines = child.kill().unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let acked = max_tagged(&lines, "ACK ").unwrap_or(state);
        let tried = max_tagged(&lines, "TRY ").unwrap_or(state);
        match lines.last().map(|l| l.split(' ').next().unwrap_or("")) {
            Some("C+") => in_compaction += 1,
            Some("TRY") => in_commit += 1,
            _ => {}
        }
        let reboot_first = kill % 3 == 1;
        if reboot_first {
            // The machine went down with the writer.
            simulate_reboot(&dir);
            reboots += 1;
        }
        let db = attached
            .unwrap_or_else(|| open().unwrap_or_else(|e| panic!("kill {kill}: reopen: {e}")));
        let seen = check_rounds(&db, &mut model).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        assert!(
            acked <= seen && seen <= tried,
            "kill {kill}: round {seen} visible, {acked} acknowledged, {tried} tried"
        );
        if reboot_first {
            // The rebuild removed what no manifest lists.
            check_files(&dir, &db, None).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        }
        orphans = orphans.max(count_segments(&dir) - db.stats().unwrap().segments);
        db.compact().unwrap();
        let after = check_rounds(&db, &mut model).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        assert!(
            seen <= after && after <= tried,
            "kill {kill}: round {after} after compaction, {seen} before, {tried} tried"
        );
        check_files(&dir, &db, Some(1)).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        drop(db);
        if !reboot_first {
            // What the compaction left survives a reboot.
            simulate_reboot(&dir);
            reboots += 1;
            let db = open().unwrap_or_else(|e| panic!("kill {kill}: open after reboot: {e}"));
            let rebooted =
                check_rounds(&db, &mut model).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
            assert_eq!(rebooted, after, "kill {kill}: after a reboot");
            check_files(&dir, &db, Some(1)).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        }
        state = after;
    }
    eprintln!(
        "{kills} kills ({in_compaction} during a compaction, {in_commit} during a commit; \
         every third with a handle of the parent attached), \
         {reboots} reboots, {state} rounds committed, at most {orphans} orphan segment files \
         at a reopen"
    );
    assert!(state > 0, "the writer committed something");
}

#[test]
fn no_mapping_of_a_deleted_file_stays_after_compactions() {
    let mut rng = seeded_rng("no_mapping_of_a_deleted_file_stays_after_compactions");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut model = Map::new();
    let db = populate(&dir, &mut rng, &mut model);
    let mut held = Some(db.begin_read().unwrap());
    let seen = model.clone();
    for round in 1..=6 {
        for _ in 0..4 {
            churn_commit(&db, &mut model, &mut rng, 100, round);
        }
        // Some reads between compactions, so that views of every age
        // were mapped.
        let r = db.begin_read().unwrap();
        assert!(read_all(&r).unwrap() == model);
        drop(r);
        db.compact().unwrap();
        if round == 3 {
            let r = held.take().unwrap();
            verify_snapshot(&r, &seen).unwrap();
        }
    }
    db.compact().unwrap();
    let r = db.begin_read().unwrap();
    assert!(read_all(&r).unwrap() == model);
    let deleted = deleted_mappings(&dir);
    assert!(deleted.is_empty(), "mappings of deleted files: {deleted:?}");
    drop(r);
    // Flushes by the background thread alone, then a new read.
    for round in 7..=9 {
        churn_commit(&db, &mut model, &mut rng, 200, round);
    }
    settle(&db);
    let r = db.begin_read().unwrap();
    assert!(read_all(&r).unwrap() == model);
    let deleted = deleted_mappings(&dir);
    assert!(
        deleted.is_empty(),
        "mappings of deleted files after flushes: {deleted:?}"
    );
}

#[test]
fn no_mapping_of_a_file_another_process_deleted_stays() {
    let mut rng = seeded_rng("no_mapping_of_a_file_another_process_deleted_stays");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut model = Map::new();
    let db = populate(&dir, &mut rng, &mut model);
    // Map every file of the current view.
    assert!(db_map(&db).unwrap() == model);
    let child = spawn_child("compactor", &dir);
    let lines = child.finish(Duration::from_secs(60)).unwrap();
    assert!(
        lines.iter().any(|l| l == "DONE"),
        "compactor output {lines:?}"
    );
    let stale = deleted_mappings(&dir).len();
    let r = db.begin_read().unwrap();
    let n = read_all(&r).unwrap().len();
    let deleted = deleted_mappings(&dir);
    eprintln!("{stale} mappings of deleted files before a new view, {n} keys");
    assert!(
        deleted.is_empty(),
        "mappings of files the other process deleted, after a new read: {deleted:?}"
    );
    drop(r);
    db.compact().unwrap();
    check_files(&dir, &db, Some(1)).unwrap();
}

#[test]
fn readers_in_other_processes_see_whole_commits_while_files_go_under_them() {
    let readers = env_count("SCRIBEDB_SEG_READERS", 2);
    let millis = env_count("SCRIBEDB_SEG_MILLIS", 3000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = open_small(&dir, Durability::None, WRITER_MEMTABLE).unwrap();
    let commit = |r: u64| {
        let mut w = db.begin_write().unwrap();
        write_round(&mut w, r).unwrap();
        w.commit().unwrap();
    };
    commit(1);
    let mut children: Vec<ChildProc> = (0..readers)
        .map(|_| spawn_child("round-checker", &dir))
        .collect();
    for c in &mut children {
        c.wait_for("READY", Duration::from_secs(60)).unwrap();
    }
    let start = Instant::now();
    let (mut r, mut compactions) = (1u64, 0);
    let generation = db.stats().unwrap().manifest_generation;
    while start.elapsed() < Duration::from_millis(millis) {
        r += 1;
        commit(r);
        if r % 16 == 0 {
            db.compact().unwrap();
            compactions += 1;
        }
    }
    let generations = db.stats().unwrap().manifest_generation - generation;
    let mut totals = Vec::new();
    for mut c in children {
        c.send("STOP");
        let lines = c
            .wait_for("CHECKED ", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("reader process: {e}"));
        let n: Vec<u64> = lines
            .last()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|w| w.parse().unwrap())
            .collect();
        c.finish(Duration::from_secs(30)).unwrap();
        totals.push(n);
    }
    eprintln!(
        "{r} rounds, {compactions} compactions, {generations} manifests; \
         per reader process [snapshots, distinct rounds, held re-checks]: {totals:?}"
    );
    assert!(totals.iter().all(|t| t[0] > 0 && t[1] > 0));
    db.compact().unwrap();
    check_files(&dir, &db, Some(1)).unwrap();
    let mut model = RoundModel::default();
    assert_eq!(check_rounds(&db, &mut model).unwrap(), r);
}
