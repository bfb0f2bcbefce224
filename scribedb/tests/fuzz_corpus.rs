//! Replays the kept corpus of every fuzz target (`fuzz/corpus/<target>/`)
//! through the same function the target calls, so that the stable test
//! suite catches a regression on any input the fuzzers have kept, the
//! crashes they once found included.
//!
//! `write_seeds` (ignored) writes the seed inputs the corpora grew from:
//! the files of a few small real databases, and a few programs for the
//! model target. `cargo test -p scribedb --test fuzz_corpus -- --ignored`
//! writes them into `fuzz/corpus/`, or into `$SCRIBEDB_FUZZ_SEEDS`.

use std::path::{Path, PathBuf};

use scribedb::{fuzzing, Database, Durability};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Run every file of the target's corpus through `entry`; fail naming the
/// first file that panics.
fn replay(target: &str, entry: fn(&[u8])) {
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("reading the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    for path in &files {
        let data = std::fs::read(path).expect("reading a corpus file");
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panic!("fuzz target {target} panics on {}", path.display());
        }
    }
}

#[test]
fn log_records() {
    replay("log_records", fuzzing::log_records);
}

#[test]
fn log_recovery() {
    replay("log_recovery", fuzzing::log_recovery);
}

#[test]
fn segment() {
    replay("segment", fuzzing::segment);
}

#[test]
fn manifest() {
    replay("manifest", fuzzing::manifest);
}

#[test]
fn coord() {
    replay("coord", fuzzing::coord);
}

#[test]
fn api_model() {
    replay("api_model", fuzzing::api_model);
}

// Seeds.

/// A file's bytes without its trailing zeros (the log is preallocated),
/// kept to a multiple of 8.
fn trimmed(path: &Path) -> Vec<u8> {
    let mut b = std::fs::read(path).expect("reading a database file");
    let end = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    b.truncate(end.next_multiple_of(8).min(b.len()));
    b
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

/// A deterministic byte stream for the synthetic seeds.
struct Lcg(u64);

impl Lcg {
    fn byte(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 56) as u8
    }
}

/// A database written with `commits` commits of `keys` keys each, values
/// of `value_len` bytes, some deletes; with `memtable` as its budget.
fn write_db(dir: &Path, memtable: u64, commits: u32, keys: u32, value_len: usize) {
    let db = Database::builder()
        .durability(Durability::None)
        .memtable_size(memtable)
        .arena_size(1 << 16)
        .max_readers(4)
        .max_processes(2)
        .open(dir)
        .expect("open");
    for c in 0..commits {
        let mut w = db.begin_write().expect("begin_write");
        for k in 0..keys {
            let key = format!("key{:02}", (c * 7 + k) % 40);
            if (c + k) % 5 == 4 {
                w.delete(&key).expect("delete");
            } else {
                w.put(&key, vec![b'a' + (c % 26) as u8; value_len])
                    .expect("put");
            }
        }
        w.commit().expect("commit");
    }
    if memtable < 1 << 20 {
        db.compact().expect("compact");
    }
}

fn files_named(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listing")
        .map(|e| e.unwrap().path())
        .filter(|p| pred(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seeds() {
    let root = std::env::var_os("SCRIBEDB_FUZZ_SEEDS")
        .map(PathBuf::from)
        .unwrap_or_else(corpus_root);
    let save = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let tmp = tempfile::tempdir().unwrap();

    // Logs only: a large memtable keeps everything in `wal`.
    let shapes = [
        (0u32, 0u32, 0usize),
        (1, 1, 1),
        (3, 2, 5),
        (6, 3, 40),
        (2, 1, 700),
    ];
    for (i, &(commits, keys, len)) in shapes.iter().enumerate() {
        let dir = tmp.path().join(format!("log{i}"));
        write_db(&dir, 64 << 20, commits, keys, len);
        let wal = trimmed(&dir.join("wal"));
        save("log_recovery", &format!("wal{i}"), &with_mode(0, &wal));
        save(
            "log_recovery",
            &format!("wal{i}-fixed"),
            &with_mode(1, &wal),
        );
        if wal.len() > 64 {
            save("log_records", &format!("wal{i}"), &with_mode(0, &wal[64..]));
        }
        if i == 2 {
            let coord = std::fs::read(dir.join("coord")).unwrap();
            // Ask for the 4 readers and 2 processes it was made with.
            save("coord", "coord", &[[3u8, 1, 0].as_slice(), &coord].concat());
            save(
                "coord",
                "coord-fixed",
                &[[3u8, 1, 1].as_slice(), &coord].concat(),
            );
            save(
                "coord",
                "coord-other-sizes",
                &[[7u8, 0, 0].as_slice(), &coord].concat(),
            );
        }
    }
    save("coord", "empty", &[0, 0, 0]);

    // Segments and manifests: a small memtable flushes and compacts.
    for (i, &(commits, keys, len)) in [(40u32, 4u32, 60usize), (30, 2, 900)].iter().enumerate() {
        let dir = tmp.path().join(format!("seg{i}"));
        write_db(&dir, 16 << 10, commits, keys, len);
        for (j, seg) in files_named(&dir, |n| n.ends_with(".seg"))
            .iter()
            .enumerate()
        {
            let bytes = std::fs::read(seg).unwrap();
            if bytes.len() <= 16 << 10 {
                save("segment", &format!("db{i}-seg{j}"), &with_mode(0, &bytes));
                save(
                    "segment",
                    &format!("db{i}-seg{j}-fixed"),
                    &with_mode(1, &bytes),
                );
            }
        }
        for (j, m) in files_named(&dir, |n| n.starts_with("manifest-"))
            .iter()
            .enumerate()
        {
            save(
                "manifest",
                &format!("db{i}-{j}"),
                &std::fs::read(m).unwrap(),
            );
        }
    }
    let mut rng = Lcg(7);
    for i in 0..6 {
        // Mode 2: versions built by the writer, then bit flips for some.
        let n = 4 + 12 * i;
        let mut b = vec![2u8, n as u8];
        b.extend((0..3 * n).map(|_| rng.byte()));
        if i % 2 == 1 {
            b.extend((0..4 * (i / 2 + 1)).map(|_| rng.byte()));
        }
        save("segment", &format!("built{i}"), &b);
    }

    // Programs for the model: operation bytes with their arguments.
    for i in 0..10u64 {
        let mut rng = Lcg(100 + i);
        let mut p = vec![i as u8 % 3];
        for _ in 0..60 {
            let op = rng.byte();
            p.push(op);
            p.push(rng.byte());
            p.push(rng.byte());
        }
        save("api_model", &format!("program{i}"), &p);
    }

    // JSON lines, as `dump` writes them and a few that `load` rejects.
    let lines = [
        "{\"key\":\"user:1\",\"value\":\"Ada\"}\n",
        "{\"key_b64\":\"/w==\",\"value_b64\":\"AP4=\"}\n{\"key\":\"k\",\"value\":\"\"}\n",
        "\n   \n{\"value\":\"1\",\"key_b64\":\"YWJj\"}",
        "{\"key\":\"\\u00e9\\n\\u0000\\\"\",\"value\":\"x\"}\n",
        "{\"key\":\"a\",\"key_b64\":\"YQ==\",\"value\":\"\"}\n{\"key\":1}\nnot json\n",
        "{\"key\":\"a\",\"value\":\"b\",\"extra\":1}\n{\"key\":\"a\",\"value_b64\":\"!!\"}\n",
    ];
    for (i, l) in lines.iter().enumerate() {
        save("jsonl", &format!("lines{i}"), l.as_bytes());
    }
}
