//! Progress display for long loads and dumps.
//!
//! Drawn on stderr, and only when stderr is a terminal and the operation
//! has already run for a moment, so quick commands and scripted use never
//! see it. Progress is measured in bytes of the JSONL stream (read with
//! [`Progress::wrap_read`], written with [`Progress::wrap_write`]) and in
//! records counted with [`Progress::record`].

use std::borrow::Cow;
use std::io::{self, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long an operation runs before its progress is shown.
const SHOW_AFTER: Duration = Duration::from_millis(500);
/// Records between two checks of the clock and updates of the message.
const REFRESH_EVERY: u64 = 4096;

/// Progress of one load or dump; cleared from the screen when dropped.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    terminal: bool,
    shown: bool,
    records: u64,
    phase: Cow<'static, str>,
}

impl Progress {
    /// Progress of `verb` ("loading", "dumping") over `total_bytes` bytes
    /// if known.
    pub fn new(verb: &'static str, total_bytes: Option<u64>) -> Progress {
        let template = match total_bytes {
            Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes}, {msg} (eta {eta})",
            None => "{spinner} {prefix} {bytes}, {msg} ({bytes_per_sec})",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(verb)
            .with_message("0 records");
        Progress {
            bar,
            started: Instant::now(),
            terminal: io::stderr().is_terminal(),
            shown: false,
            records: 0,
            phase: Cow::Borrowed(""),
        }
    }

    /// `read`, counting the bytes read from it as progress.
    pub fn wrap_read<R: Read>(&self, read: R) -> impl Read {
        self.bar.wrap_read(read)
    }

    /// `write`, counting the bytes written to it as progress.
    pub fn wrap_write<W: Write>(&self, write: W) -> impl Write {
        self.bar.wrap_write(write)
    }

    /// Count one record. Cheap: the display is refreshed now and then.
    pub fn record(&mut self) {
        self.records += 1;
        if self.records % REFRESH_EVERY == 0 {
            self.refresh();
        }
    }

    /// Say what is happening besides reading or writing, e.g. committing.
    pub fn set_phase(&mut self, phase: impl Into<Cow<'static, str>>) {
        self.phase = phase.into();
        self.refresh();
    }

    fn refresh(&mut self) {
        if !self.shown {
            if !self.terminal || self.started.elapsed() < SHOW_AFTER {
                return;
            }
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            // Keep the spinner and clock moving while blocked in a commit.
            self.bar.enable_steady_tick(Duration::from_millis(200));
            self.shown = true;
        }
        let sep = if self.phase.is_empty() { "" } else { ", " };
        self.bar
            .set_message(format!("{} records{sep}{}", self.records, self.phase));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
