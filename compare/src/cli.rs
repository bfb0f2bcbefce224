//! The command line, and where the databases go.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engines::Kind;
use crate::workloads::Plan;
use crate::Result;

const USAGE: &str = "\
usage: scribedb-compare [--keys N] [--reads M] [--engines LIST] [--window-ms W]
                        [--no-multi-process] [--out FILE] [--dir DIR]
       scribedb-compare --churn [--engines LIST] [--churn-keys N] [--churn-writes W]
                        [--churn-batch B] [--churn-value V] [--churn-reader]
                        [--out FILE] [--dir DIR]
       scribedb-compare --recovery [--recovery-writes LIST] [--out FILE] [--dir DIR]

With neither --churn nor --recovery: every workload, every engine, one table
(results.md).

  --keys N            keys in the bulk load (default 1,000,000)
  --reads M           gets per random-read run (default 1,000,000); range reads
                      run M/2 scans
  --engines LIST      comma-separated, from: scribedb, lmdb, redb, fjall, sqlite
                      (both columns), sqlite-full, sqlite-normal, rocksdb
                      (default: every engine this build has)
  --window-ms W       length of each multi-process window (default 3000)
  --no-multi-process  skip the multi-process workloads
  --out FILE          where to write the results (default: results.md, or
                      churn.md or recovery.md, in the crate's directory)
  --dir DIR           where to create the databases (default: the temporary
                      directory if it is on the working directory's file
                      system, else the working directory)

--churn: space and write amplification under random overwrites (churn.md).
  A fresh database per engine, committing durably: load N keys, then overwrite
  random ones in commits of B until W writes are done; bytes on disk every 10%,
  and at the end write amplification (/proc/self/io), commit latency and rate.
  --engines LIST      as above (default: scribedb,fjall,lmdb)
  --churn-keys N      live keys, 24 random bytes each (default 10,000)
  --churn-writes W    overwrites after the load (default 2,000,000)
  --churn-batch B     writes per commit (default 100)
  --churn-value V     value bytes (default 150)
  --churn-reader      also run ScribeDB with a read transaction held open from
                      25% to 50% of the writes

--recovery: ScribeDB's open time after a power cut, against history length
(recovery.md). Per history length: a fresh database of 10,000 keys overwritten
in commits of 1,000 (Durability::None) until that many writes are done, closed;
its coordination file and memtable arenas deleted (as after a reboot); then
Database::open, one read transaction and one get, timed.
  --recovery-writes LIST  comma-separated history lengths
                          (default 1000000,5000000,20000000)";

/// What the program does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every workload on every engine (the default).
    Compare,
    /// Random overwrites of a small key set.
    Churn,
    /// ScribeDB's open time after a simulated reboot.
    Recovery,
}

/// The settings of `--churn`.
#[derive(Clone, Debug)]
pub struct ChurnPlan {
    pub keys: usize,
    pub writes: usize,
    pub batch: usize,
    pub value: usize,
    pub reader: bool,
}

pub struct Args {
    pub mode: Mode,
    pub plan: Plan,
    pub churn: ChurnPlan,
    /// History lengths of `--recovery`.
    pub recovery_writes: Vec<usize>,
    pub engines: Vec<Kind>,
    pub out: PathBuf,
    pub dir: Option<PathBuf>,
    /// The arguments as given, for the results file.
    pub given: Vec<String>,
}

fn number(flag: &str, s: Option<String>) -> Result<usize> {
    let s = s.ok_or_else(|| format!("{flag} needs a number"))?;
    let digits: String = s.chars().filter(|c| !matches!(c, '_' | ',')).collect();
    let n: usize = digits.parse().map_err(|e| format!("{flag} {s:?}: {e}"))?;
    if n == 0 {
        return Err(format!("{flag} must be at least 1").into());
    }
    Ok(n)
}

/// A comma-separated list of numbers (`_` may group digits).
fn number_list(flag: &str, s: Option<String>) -> Result<Vec<usize>> {
    let s = s.ok_or_else(|| format!("{flag} needs a list of numbers"))?;
    let list = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| number(flag, Some(p.to_string())))
        .collect::<Result<Vec<_>>>()?;
    if list.is_empty() {
        return Err(format!("{flag} names no number").into());
    }
    Ok(list)
}

fn parse_engines(list: &str) -> Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let named = match name {
            "sqlite" => vec![Kind::SqliteFull, Kind::SqliteNormal],
            "all" => Kind::ALL.into_iter().filter(|k| k.compiled()).collect(),
            _ => vec![Kind::parse(name).ok_or_else(|| format!("unknown engine {name:?}"))?],
        };
        for kind in named {
            if !kind.compiled() {
                return Err(format!(
                    "{} is not in this build: add `--features {}` to the cargo command",
                    kind.name(),
                    kind.name()
                )
                .into());
            }
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    if kinds.is_empty() {
        return Err("--engines names no engine".into());
    }
    Ok(kinds)
}

pub fn parse_args() -> Result<Option<Args>> {
    let given: Vec<String> = std::env::args().skip(1).collect();
    let mut keys = 1_000_000;
    let mut reads = None;
    let mut window_ms = 3_000;
    let mut multi_process = true;
    let mut engines = None;
    let mut out = None;
    let mut mode = Mode::Compare;
    let mut churn = ChurnPlan {
        keys: 10_000,
        writes: 2_000_000,
        batch: 100,
        value: 150,
        reader: false,
    };
    let mut recovery_writes = vec![1_000_000, 5_000_000, 20_000_000];
    let mut dir = None;
    let mut it = given.iter().cloned();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "--keys" => keys = number("--keys", value())?,
            "--reads" => reads = Some(number("--reads", value())?),
            "--window-ms" => window_ms = number("--window-ms", value())?,
            "--no-multi-process" => multi_process = false,
            "--engines" => {
                engines = Some(parse_engines(&value().ok_or("--engines needs a list")?)?)
            }
            "--out" => out = Some(PathBuf::from(value().ok_or("--out needs a file")?)),
            "--churn" => mode = Mode::Churn,
            "--churn-keys" => churn.keys = number("--churn-keys", value())?,
            "--churn-writes" => churn.writes = number("--churn-writes", value())?,
            "--churn-batch" => churn.batch = number("--churn-batch", value())?,
            "--churn-value" => churn.value = number("--churn-value", value())?,
            "--churn-reader" => churn.reader = true,
            "--recovery" => mode = Mode::Recovery,
            "--recovery-writes" => recovery_writes = number_list("--recovery-writes", value())?,
            "--dir" => dir = Some(PathBuf::from(value().ok_or("--dir needs a directory")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}").into()),
        }
    }
    if keys > u32::MAX as usize {
        return Err("--keys is limited to 2^32 - 1".into());
    }
    if given.iter().any(|a| a == "--churn") && given.iter().any(|a| a == "--recovery") {
        return Err("--churn and --recovery are separate runs: give one".into());
    }
    let reads = reads.unwrap_or(1_000_000);
    let (file, default_engines) = match mode {
        Mode::Compare => (
            "results.md",
            Kind::ALL.into_iter().filter(|k| k.compiled()).collect(),
        ),
        Mode::Churn => ("churn.md", vec![Kind::ScribeDb, Kind::Fjall, Kind::Lmdb]),
        Mode::Recovery => ("recovery.md", vec![Kind::ScribeDb]),
    };
    if mode == Mode::Recovery && engines.as_ref().is_some_and(|e| e != &[Kind::ScribeDb]) {
        return Err("--recovery measures ScribeDB only".into());
    }
    Ok(Some(Args {
        mode,
        churn,
        recovery_writes,
        plan: Plan {
            keys,
            reads,
            scans: (reads / 2).max(1),
            window: Duration::from_millis(window_ms as u64),
            multi_process,
        },
        engines: engines.unwrap_or(default_engines),
        out: out.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(file)),
        dir,
        given,
    }))
}

/// The file system type of `path`, by name where it is a common one.
pub fn fs_type(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: an all-zero statfs is a valid value of a plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is writable.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    match st.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        other => format!("type {other:#x}"),
    }
}

/// Where the databases go: `--dir`, else the temporary directory when it is
/// on the same device as the working directory (not a RAM disk), else the
/// working directory.
pub fn database_parent(dir: Option<PathBuf>) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if let Some(dir) = dir {
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    let cwd = std::env::current_dir()?;
    let tmp = std::env::temp_dir();
    let same_device = match (std::fs::metadata(&cwd), std::fs::metadata(&tmp)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    Ok(if same_device && fs_type(&tmp) != "tmpfs" {
        tmp
    } else {
        cwd
    })
}
