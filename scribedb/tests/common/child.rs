//! Child processes of a test binary: it runs one of its own ignored tests,
//! which reads its role from the environment and answers on stdout, one
//! line at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A command that runs the ignored test `entry` of this test binary alone,
/// with its output shown.
pub fn test_command(entry: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        entry,
        "--nocapture",
        "--ignored",
        "--test-threads=1",
    ]);
    cmd
}

/// A running child, killed if still running when dropped.
pub struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    waited: bool,
}

impl ChildProc {
    /// Spawn `cmd` with its stdout and stderr piped; its stdin is kept if
    /// the caller piped it.
    pub fn spawn(cmd: &mut Command) -> ChildProc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning the child");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(mut line) = line else { break };
                // The harness prints "test <entry> ... " without a line
                // break before the child's own output.
                if let Some(at) = line.rfind(" ... ") {
                    line.drain(..at + 5);
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        ChildProc {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
            waited: false,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Write one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("telling the child {line:?}: {e}"));
    }

    /// The child's stderr, once it has exited.
    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Wait for a line starting with `prefix` (the lines before it are
    /// returned too); a line reporting a failure (`ERROR` or `BAD`) ends
    /// the wait with it.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("ERROR") || line.starts_with("BAD") => {
                    return Err(format!("child reported: {line}"));
                }
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    seen.push(line);
                    if done {
                        return Ok(seen);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let tail = &seen[seen.len().saturating_sub(10)..];
                    return Err(format!(
                        "timed out waiting for {prefix:?}; last output {tail:?}"
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    self.waited = true;
                    return Err(format!(
                        "child exited before printing {prefix:?}; output {seen:?}; stderr {}",
                        self.take_stderr()
                    ));
                }
            }
        }
    }

    /// SIGKILL the child, reap it, and return the rest of its output.
    pub fn kill(mut self) -> Result<Vec<String>, String> {
        use std::os::unix::process::ExitStatusExt;
        self.child.kill().map_err(|e| format!("kill: {e}"))?;
        let status = self.child.wait().map_err(|e| format!("wait: {e}"))?;
        self.waited = true;
        let lines: Vec<String> = self.lines.iter().collect();
        if status.signal() != Some(libc::SIGKILL) {
            return Err(format!(
                "child ended by itself ({status}); output {lines:?}; stderr {}",
                self.take_stderr()
            ));
        }
        Ok(lines)
    }

    /// Close its stdin and wait for it to exit by itself, successfully;
    /// returns the rest of its output.
    pub fn finish(mut self, timeout: Duration) -> Result<Vec<String>, String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                return Err("child did not finish in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.waited = true;
        let lines: Vec<String> = self.lines.iter().collect();
        if !status.success() {
            return Err(format!(
                "child failed ({status}); output {lines:?}; stderr {}",
                self.take_stderr()
            ));
        }
        Ok(lines)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The largest number in the lines starting with `tag`.
pub fn max_tagged(lines: &[String], tag: &str) -> Option<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag)?.trim().parse().ok())
        .max()
}
