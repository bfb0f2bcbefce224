//! `retention`: the window of history the database keeps for `--as-of`,
//! printed or set.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{flush, stdout, Opener};
use crate::error::{Error, Result};
use crate::human;

/// Print the stored window; with `window`, store it first. Setting it goes
/// through the builder, which keeps it in the database's manifest.
pub fn run(opener: &Opener, path: &Path, window: Option<Duration>) -> Result<()> {
    let mut builder = opener.existing_builder();
    if let Some(window) = window {
        builder = builder.retention(window);
    }
    let db = builder.open(path)?;
    if window.is_some() {
        return Ok(());
    }
    let stored = db.retention()?;
    let ms = u64::try_from(stored.as_millis()).unwrap_or(u64::MAX);
    let mut out = stdout();
    writeln!(out, "{}", human::exact_duration(ms)).map_err(Error::Output)?;
    flush(out)
}
