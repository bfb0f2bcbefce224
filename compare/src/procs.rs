//! Child processes for the multi-process workloads.
//!
//! The program runs itself again as each child; environment variables name
//! the role, the engine, the database and the data. A child opens the
//! database, prints `ready`, waits for `go <start> <end>` on stdin (times in
//! CLOCK_MONOTONIC nanoseconds, one clock for every process on the machine),
//! works from `start` to `end` and prints `result name=value ...`. The
//! parent kills any child it drops.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::engines::Kind;
use crate::Result;

const ROLE_VAR: &str = "SCRIBEDB_COMPARE_ROLE";
const ENGINE_VAR: &str = "SCRIBEDB_COMPARE_ENGINE";
const DIR_VAR: &str = "SCRIBEDB_COMPARE_DIR";
const KEYS_VAR: &str = "SCRIBEDB_COMPARE_KEYS";
const SEED_VAR: &str = "SCRIBEDB_COMPARE_SEED";

/// Time between sending `go` and the start of the window, so that every
/// child has read its line before the clock starts.
const GO_DELAY: Duration = Duration::from_millis(50);

/// What a child does in its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Random gets of loaded keys.
    Reader,
    /// Small durable transactions back to back, stamping the clock key.
    Writer,
    /// Polls the clock key and measures how old each new value is.
    Latency,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Latency => "latency",
        }
    }

    fn parse(s: &str) -> Result<Role> {
        Ok(match s {
            "reader" => Role::Reader,
            "writer" => Role::Writer,
            "latency" => Role::Latency,
            other => return Err(format!("unknown child role {other:?}").into()),
        })
    }
}

/// The figures a child reports.
pub type Report = HashMap<String, u64>;

pub fn field(report: &Report, name: &str) -> Result<u64> {
    report
        .get(name)
        .copied()
        .ok_or_else(|| format!("child report lacks {name:?}").into())
}

// ---- clock ------------------------------------------------------------------

/// CLOCK_MONOTONIC in nanoseconds: unlike `Instant`, it means the same in
/// every process.
pub fn now_ns() -> u64 {
    // SAFETY: an all-zero timespec is a valid value of a plain C struct.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until_ns(t: u64) {
    let now = now_ns();
    if t > now {
        std::thread::sleep(Duration::from_nanos(t - now));
    }
}

// ---- parent side ------------------------------------------------------------

/// A child process, killed and reaped when dropped.
pub struct Kid {
    name: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Kid {
    pub fn spawn(role: Role, kind: Kind, dir: &Path, keys: usize, seed: u64) -> Result<Kid> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE_VAR, role.name())
            .env(ENGINE_VAR, kind.name())
            .env(DIR_VAR, dir)
            .env(KEYS_VAR, keys.to_string())
            .env(SEED_VAR, seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        Ok(Kid {
            name: format!("{} {} (pid {})", kind.name(), role.name(), child.id()),
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The rest of the next line the child prints that starts with `tag`.
    fn expect(&mut self, tag: &str) -> Result<String> {
        for line in self.lines.by_ref() {
            if let Some(rest) = line?.strip_prefix(tag) {
                return Ok(rest.trim().to_string());
            }
        }
        Err(format!("child {} exited before printing {tag:?}", self.name).into())
    }

    fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or("child stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Wait for the child to exit on its own; an error unless it succeeded.
    fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("child {} exited with {status}", self.name).into());
        }
        Ok(())
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        // Never leave a child running, whatever path got us here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run one measurement window: wait until every child is ready, start them
/// all on the same clock, collect their reports and let them exit.
pub fn run_window(mut kids: Vec<Kid>, window: Duration) -> Result<Vec<Report>> {
    for kid in &mut kids {
        kid.expect("ready")?;
    }
    let start = now_ns() + GO_DELAY.as_nanos() as u64;
    let end = start + window.as_nanos() as u64;
    for kid in &mut kids {
        kid.say(&format!("go {start} {end}"))?;
    }
    let mut reports = Vec::with_capacity(kids.len());
    for kid in &mut kids {
        let line = kid.expect("result")?;
        let mut report = Report::new();
        for pair in line.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("bad report field {pair:?} from {}", kid.name))?;
            report.insert(k.to_string(), v.parse()?);
        }
        reports.push(report);
    }
    for kid in kids {
        kid.finish()?;
    }
    Ok(reports)
}

// ---- child side -------------------------------------------------------------

/// What a child was started to do.
pub struct ChildArgs {
    pub role: Role,
    pub kind: Kind,
    pub dir: PathBuf,
    pub keys: usize,
    pub seed: u64,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}").into())
}

/// The child's instructions, or `None` in the parent.
pub fn child_args() -> Result<Option<ChildArgs>> {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return Ok(None);
    };
    let engine = var(ENGINE_VAR)?;
    Ok(Some(ChildArgs {
        role: Role::parse(&role)?,
        kind: Kind::parse(&engine).ok_or_else(|| format!("unknown engine {engine:?}"))?,
        dir: PathBuf::from(var(DIR_VAR)?),
        keys: var(KEYS_VAR)?.parse()?,
        seed: var(SEED_VAR)?.parse()?,
    }))
}

fn say(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// Tell the parent this child is ready, wait for the start signal and sleep
/// until the window opens; the window's end, or `None` when the parent went
/// away first.
pub fn ready_and_wait() -> Result<Option<u64>> {
    say(format_args!("ready"))?;
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (start, end) = match (words.next(), words.next(), words.next()) {
        (Some("go"), Some(s), Some(e)) => (s.parse::<u64>()?, e.parse::<u64>()?),
        _ => return Err(format!("expected `go <start> <end>`, got {line:?}").into()),
    };
    sleep_until_ns(start);
    Ok(Some(end))
}

pub fn report(fields: &[(&str, u64)]) -> Result<()> {
    let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say(format_args!("result {}", text.join(" ")))
}
