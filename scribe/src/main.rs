//! `scribe`: inspect and edit ScribeDB databases from the shell.
//!
//! Exit codes: 0 on success, 1 when `get` finds no such key, 2 on any error
//! (including bad usage, and damage found by `check`).

mod as_of;
mod cli;
mod commands;
mod error;
mod escape;
mod human;
mod progress;

use std::process::ExitCode;

use clap::Parser;
// In the library half, so that the fuzz targets reach it too.
use scribe::jsonl;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`scribe dump db | head`):
        // nothing more to say and no one to say it to.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scribe: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
