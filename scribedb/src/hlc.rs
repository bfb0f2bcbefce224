//! Hybrid-logical-clock commit timestamps.
//!
//! A timestamp is a `u64`: the high 48 bits are wall-clock milliseconds since
//! the Unix epoch, the low 16 bits a counter. The next timestamp is
//! `max(last + 1, now_ms << 16)`, so timestamps are strictly increasing
//! forever: a counter overflow carries into the millisecond field, and a
//! wall clock that steps backwards only makes the counter run on.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
pub const COUNTER_BITS: u32 = 16;

/// The timestamp that follows `last` when the wall clock reads `now_ms`;
/// `None` only if `last` is the largest timestamp (a corrupt clock).
pub fn next(last: u64, now_ms: u64) -> Option<u64> {
    let physical = now_ms.min((1 << 48) - 1) << COUNTER_BITS;
    Some(physical.max(last.checked_add(1)?))
}

/// Wall-clock milliseconds of a timestamp.
pub fn millis(ts: u64) -> u64 {
    ts >> COUNTER_BITS
}

/// The smallest timestamp issued at or after wall-clock millisecond `ms`.
pub fn from_millis(ms: u64) -> u64 {
    ms << COUNTER_BITS
}

/// The current wall clock in milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_wall_clock() {
        let t = next(0, 1_000).unwrap();
        assert_eq!(t, 1_000 << 16);
        assert_eq!(millis(t), 1_000);
        assert_eq!(next(t, 1_001).unwrap(), 1_001 << 16);
    }

    #[test]
    fn counter_runs_within_a_millisecond() {
        let a = next(0, 5).unwrap();
        let b = next(a, 5).unwrap();
        assert_eq!(b, a + 1);
        assert_eq!(millis(b), 5);
    }

    #[test]
    fn counter_overflow_carries_into_milliseconds() {
        let mut ts = next(0, 7).unwrap();
        for _ in 0..70_000 {
            let n = next(ts, 7).unwrap();
            assert!(n > ts);
            ts = n;
        }
        // 70,000 commits in millisecond 7 spill into millisecond 8.
        assert_eq!(millis(ts), 8);
        assert_eq!(ts & 0xffff, 70_000 - 65_536);
    }

    #[test]
    fn clock_stepping_backwards_never_repeats() {
        let a = next(0, 10_000).unwrap();
        let b = next(a, 9_000).unwrap();
        let c = next(b, 1).unwrap();
        assert!(a < b && b < c);
        assert_eq!(millis(c), 10_000);
        // When the clock catches up, it takes over again.
        let d = next(c, 10_050).unwrap();
        assert_eq!(d, 10_050 << 16);
    }

    #[test]
    fn exhausted_clock_is_reported_not_wrapped() {
        assert_eq!(next(u64::MAX, 1), None);
    }
}
