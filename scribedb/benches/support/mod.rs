//! What the benchmark binaries share: the data shape, the seed, and how a
//! line of the printed table looks.

#![allow(dead_code)] // each bench uses a part of it

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::RngCore;
use scribedb::{Database, Durability};

pub type BenchResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub const KEY_LEN: usize = 24;
pub const VALUE_LEN: usize = 150;
pub const SEED: u64 = 0x5C81_BEDB_0000_0001;

pub type Key = [u8; KEY_LEN];
pub type Value = [u8; VALUE_LEN];

/// `1234567.891` with 2 decimals as `1,234,567.89`.
pub fn fmt_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let mut out = String::new();
    if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

pub fn section(title: &str) {
    println!();
    println!("{title}");
}

/// One line of the table: what, the figure, its unit.
pub fn row(label: &str, value: f64, decimals: usize, unit: &str) {
    println!("  {label:<54} {:>16} {unit}", fmt_num(value, decimals));
}

pub fn note(text: &str) {
    println!("  ({text})");
}

pub fn ns_per(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_nanos() as f64 / count.max(1) as f64
}

pub fn random_key(rng: &mut StdRng) -> Key {
    let mut k = [0u8; KEY_LEN];
    rng.fill_bytes(&mut k);
    k
}

pub fn random_value(rng: &mut StdRng) -> Value {
    let mut v = [0u8; VALUE_LEN];
    rng.fill_bytes(&mut v);
    v
}

pub fn open(path: &Path, durability: Durability) -> BenchResult<Database> {
    Ok(Database::builder().durability(durability).open(path)?)
}
