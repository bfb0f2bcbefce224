//! Waking threads of any process when a commit becomes visible.
//!
//! A publisher raises `COMMITTED_TS`, then bumps `COMMIT_SEQ`, then wakes
//! the sleepers on its low 32 bits if `COMMIT_WAITERS` says there are
//! any. A waiter reads `COMMIT_SEQ`, then `COMMITTED_TS`; if that is not
//! yet past what it waits for, it counts itself in `COMMIT_WAITERS`, looks
//! once more, and sleeps on the futex word for as long as it still holds
//! the sequence it read. No wake-up is lost: a bump after the waiter read
//! the sequence makes the kernel refuse to sleep (the word changed), and
//! a bump before it came after the timestamp the waiter then saw. The
//! count and the word are stored and loaded sequentially consistent, so a
//! publisher that reads no waiter bumped the word before any waiter could
//! count itself and sleep on the old value.
//!
//! The futex is a shared one (no private flag), keyed by the mapped file
//! and offset, so it works across processes. A waiter killed while asleep
//! leaves the count high: publishers then make a needless wake-up call
//! until the next rebuild resets the header, which costs time, never a
//! lost wake-up.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::layout::{OFF_COMMITTED_TS, OFF_COMMIT_SEQ, OFF_COMMIT_WAITERS};
use super::Coord;

impl Coord {
    /// The futex word: the low half of `COMMIT_SEQ`.
    fn commit_word(&self) -> &AtomicU32 {
        let field: &AtomicU64 = self.hdr(OFF_COMMIT_SEQ);
        // SAFETY: the field is an 8-byte aligned u64 in the mapping, which
        // lives as long as `self`; its first 4 bytes (little-endian: the
        // low half) are a valid, aligned u32 that is only ever accessed
        // atomically, here and by the kernel's futex calls.
        unsafe { &*(field.as_ptr() as *const AtomicU32) }
    }

    /// Tell waiters that `COMMITTED_TS` rose (call after raising it).
    pub(crate) fn notify_commit(&self) {
        let word = self.commit_word();
        word.fetch_add(1, Ordering::SeqCst);
        if self.hdr(OFF_COMMIT_WAITERS).load(Ordering::SeqCst) != 0 {
            futex_wake(word);
        }
    }

    /// Wait until `COMMITTED_TS` is past `after`, or `timeout` passes;
    /// returns it, or `None` on timeout.
    pub(crate) fn wait_commit_past(&self, after: u64, timeout: Option<Duration>) -> Option<u64> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let committed = self.hdr(OFF_COMMITTED_TS);
        let waiters = self.hdr(OFF_COMMIT_WAITERS);
        let word = self.commit_word();
        loop {
            let seq = word.load(Ordering::SeqCst);
            let ts = committed.load(Ordering::SeqCst);
            if ts > after {
                return Some(ts);
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return None,
                },
                None => None,
            };
            waiters.fetch_add(1, Ordering::SeqCst);
            let ts = committed.load(Ordering::SeqCst);
            if ts <= after {
                futex_wait(word, seq, left);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Sleep while `word` holds `expected`, for at most `timeout`. Returns on
/// a wake-up, a changed word, the timeout, a signal or a spurious wake:
/// the caller looks again in every case.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 in shared memory for the whole
    // call; the timeout, if any, points at a timespec on this stack frame.
    // The futex reads the word and sleeps; it writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        );
    }
}

/// Wake every thread asleep on `word`, in any process.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; waking reads no memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}
