//! A disk that fills while flushes and compactions run: commits fail with a
//! clear error, jobs fail and are retried, readers keep reading, nothing
//! acknowledged is lost, and everything resumes once there is space again.
//!
//! Runs on a small tmpfs mounted for the test (root is needed to mount; as
//! another user the test says so and checks nothing).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{db_contents, simulate_reboot};
use scribedb::{Database, Durability};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

fn open(path: &Path) -> Database {
    Database::builder()
        .durability(Durability::Immediate)
        .memtable_size(2 << 20)
        .arena_size(4 << 20)
        .open(path)
        .expect("open")
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:07}").into_bytes()
}

#[test]
fn a_full_disk_fails_jobs_cleanly_and_they_resume_with_space() {
    let Some(fs) = Tmpfs::mount(112) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let root = fs.path();
    let path = root.join("db");
    let db = open(&path);
    // Leave about 24 MiB free.
    let ballast = root.join("ballast");
    {
        let free = {
            let s = nix_free_bytes(&root);
            s.saturating_sub(24 << 20)
        };
        std::fs::write(&ballast, vec![1u8; free as usize]).unwrap();
    }
    let mut model = BTreeMap::new();
    let mut failed_commit = None;
    let mut round = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Overwrite a working set larger than the memtable until something
    // runs out of space.
    while Instant::now() < deadline {
        let mut w = db.begin_write().unwrap();
        let mut batch = Vec::new();
        for i in 0..500 {
            let k = key((round * 500 + i) % 40_000);
            let v = format!("{round}-{i}-{}", "v".repeat(140)).into_bytes();
            w.put(&k, &v).unwrap();
            batch.push((k, v));
        }
        match w.commit() {
            Ok(_) => model.extend(batch),
            Err(e) => {
                failed_commit = Some(e.to_string());
                break;
            }
        }
        round += 1;
    }
    let stats = db.stats().unwrap();
    eprintln!(
        "after {round} commits: commit error {failed_commit:?}, maintenance error {:?}",
        stats.maintenance_error
    );
    assert!(
        failed_commit.is_some() || stats.maintenance_error.is_some(),
        "the disk never filled"
    );
    if let Some(e) = &failed_commit {
        assert!(
            e.contains("No space") || e.contains("disk") || e.contains("space"),
            "unclear error: {e}"
        );
    }
    // Readers keep reading every acknowledged commit.
    assert!(db_contents(&db) == model, "contents differ on a full disk");
    // Space again: the jobs are retried and commits go on.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut w = match db.begin_write() {
            Ok(w) => w,
            Err(e) => panic!("no writer after space came back: {e}"),
        };
        w.put(b"after", b"space").unwrap();
        match w.commit() {
            Ok(_) => break,
            // A handle whose commit failed past its log record is poisoned;
            // reopening is the documented remedy.
            Err(scribedb::Error::Poisoned(_)) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("commits never resumed: {e}"),
        }
    }
    drop(db);
    let db = open(&path);
    let mut w = db.begin_write().unwrap();
    w.put(b"after", b"space").unwrap();
    w.commit().unwrap();
    model.insert(b"after".to_vec(), b"space".to_vec());
    db.compact().unwrap();
    let s = db.stats().unwrap();
    assert!(!s.sealed_memtable, "the flush caught up");
    assert!(
        db_contents(&db) == model,
        "contents differ after space came back"
    );
    drop(db);
    simulate_reboot(&path);
    let db = open(&path);
    assert!(db_contents(&db) == model, "contents differ after a reboot");
}

/// Free bytes of the file system holding `path`.
fn nix_free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the struct we pass; the path is a valid
    // C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Fill the file system holding `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let ballast = dir.join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut step = chunk.len();
    while step > 0 {
        match f.write(&chunk[..step]) {
            Ok(0) => step /= 2,
            Ok(_) => {}
            Err(_) => step /= 2,
        }
    }
    let _ = f.sync_all();
    ballast
}

#[test]
fn a_database_on_a_full_disk_opens_and_serves_reads_after_a_reboot() {
    let Some(fs) = Tmpfs::mount(64) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let root = fs.path();
    let path = root.join("db");
    let db = open(&path);
    let mut model = BTreeMap::new();
    // Segments, a sealed or current memtable, and values in the log.
    for round in 0..40u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..200 {
            let k = key(round * 200 + i);
            let v = format!("{round}-{i}-{}", "v".repeat(100 + (i as usize % 200))).into_bytes();
            w.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        w.commit().unwrap();
    }
    drop(db);
    let ballast = fill(&root);
    assert!(nix_free_bytes(&root) < 64 << 10, "the disk is full");
    // A reboot: the coordination file and the arenas stay on disk, but the
    // boot id no longer matches, so the version store is rebuilt.
    let coord = path.join("coord");
    let mut header = std::fs::read(&coord).unwrap();
    header[40] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&coord)
        .and_then(|f| {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&header[40..41], 40)
        })
        .unwrap();
    let db = Database::builder()
        .durability(Durability::Immediate)
        .memtable_size(2 << 20)
        .arena_size(4 << 20)
        .open(&path)
        .expect("a database on a full disk opens after a reboot");
    assert!(db.recovery_report().records > 0, "the memtable was rebuilt");
    assert!(db_contents(&db) == model, "contents differ on a full disk");
    // Writes fail with an error that names the cause, and lose nothing.
    let mut failed = None;
    for round in 0..200u32 {
        let mut w = db.begin_write().unwrap();
        for i in 0..200 {
            w.put(key(1_000_000 + round * 200 + i), vec![1u8; 400])
                .unwrap();
        }
        match w.commit() {
            Ok(_) => {
                for i in 0..200 {
                    model.insert(key(1_000_000 + round * 200 + i), vec![1u8; 400]);
                }
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    let failed = failed.expect("a write fails on a full disk");
    assert!(
        failed.contains("space") || failed.contains("disk"),
        "unclear error: {failed}"
    );
    assert!(
        db_contents(&db) == model,
        "contents differ after a failed write"
    );
    drop(db);
    std::fs::remove_file(&ballast).unwrap();
    let db = open(&path);
    assert!(
        db_contents(&db) == model,
        "contents differ once there is space"
    );
    let mut w = db.begin_write().unwrap();
    w.put(b"after", b"space").unwrap();
    w.commit().unwrap();
}
