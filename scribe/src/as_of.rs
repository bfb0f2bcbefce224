//! The `--as-of WHEN` argument of `get`, `scan` and `dump`, and the
//! `DURATION` of `retention`.
//!
//! WHEN takes one of three forms, told apart by their characters alone:
//!
//! - only decimal digits: a commit timestamp, as `stat` and `readers` print
//!   them (`committed_ts`, `snapshot`);
//! - anything with a `-` or a `:`: an RFC 3339 time, such as
//!   `2026-12-01T12:00:00Z`, `2026-12-01T12:00:00.250Z` or
//!   `2026-12-01T13:00:00+01:00`;
//! - anything else: a duration before now, such as `250ms`, `90s`, `10m`
//!   or `1h30m`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scribedb::{Database, ReadTxn};

use crate::error::{Error, Result};

/// What `--as-of` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// A commit timestamp.
    Timestamp(u64),
    /// A wall-clock moment.
    Time(SystemTime),
    /// That long before the command runs.
    Ago(Duration),
}

/// Parse WHEN; the message says what was expected.
pub fn parse(s: &str) -> std::result::Result<AsOf, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(AsOf::Timestamp)
            .map_err(|e| format!("timestamp {s}: {e}"));
    }
    if s.contains(['-', ':']) {
        return parse_rfc3339(s).map(AsOf::Time);
    }
    humantime::parse_duration(s).map(AsOf::Ago).map_err(|e| {
        format!(
            "{s:?} is not a timestamp (digits only), an RFC 3339 time \
             (2026-12-01T12:00:00Z) or a duration ago (10m, 1h30m): {e}"
        )
    })
}

/// An RFC 3339 time: `Z` or a numeric offset, fractional seconds optional.
/// The library parses UTC times; an offset other than zero is applied here.
fn parse_rfc3339(s: &str) -> std::result::Result<SystemTime, String> {
    let bad = |why: &dyn std::fmt::Display| {
        format!("{s:?} is not an RFC 3339 time such as 2026-12-01T12:00:00Z: {why}")
    };
    // RFC 3339 allows lower-case `t` and `z`.
    let upper = s.to_ascii_uppercase();
    let (utc, offset) = split_offset(&upper).map_err(|why| bad(&why))?;
    let time = humantime::parse_rfc3339(&utc).map_err(|e| {
        if humantime::parse_rfc3339_weak(&utc).is_ok() {
            bad(&"it needs a time zone: Z or an offset such as +01:00")
        } else {
            bad(&e)
        }
    })?;
    // Local time = UTC + offset, so UTC = local time - offset.
    let shifted = if offset >= 0 {
        time.checked_sub(Duration::from_secs(offset.unsigned_abs()))
    } else {
        time.checked_add(Duration::from_secs(offset.unsigned_abs()))
    };
    shifted
        .filter(|t| *t >= UNIX_EPOCH)
        .ok_or_else(|| bad(&"before 1970"))
}

/// The time with a numeric offset (`+HH:MM` or `-HH:MM` after the seconds)
/// replaced by `Z`, and the offset in seconds; anything else unchanged,
/// with offset 0.
fn split_offset(s: &str) -> std::result::Result<(String, i64), &'static str> {
    let unchanged = Ok((s.to_string(), 0));
    let Some(at) = s.len().checked_sub(6).filter(|&at| at >= 19) else {
        return unchanged;
    };
    let Some((time, offset)) = s.split_at_checked(at) else {
        return unchanged;
    };
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return unchanged,
    };
    let field = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = offset.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    match (field(1..3), offset.as_bytes()[3], field(4..6)) {
        (Some(h), b':', Some(m)) if h < 24 && m < 60 => {
            Ok((format!("{time}Z"), sign * (h * 3600 + m * 60)))
        }
        _ => Err("bad offset: it must be +HH:MM or -HH:MM"),
    }
}

impl AsOf {
    /// Begin a read transaction on the state it names.
    pub fn begin_read(&self, db: &Database) -> Result<ReadTxn> {
        let txn = match self {
            AsOf::Timestamp(ts) => db.begin_read_at(*ts),
            AsOf::Time(time) => db.begin_read_as_of(*time),
            AsOf::Ago(ago) => {
                let time = SystemTime::now()
                    .checked_sub(*ago)
                    .filter(|t| *t >= UNIX_EPOCH)
                    .unwrap_or(UNIX_EPOCH);
                db.begin_read_as_of(time)
            }
        };
        txn.map_err(|e| match e {
            scribedb::Error::HistoryUnavailable { requested, oldest } => {
                Error::HistoryUnavailable {
                    requested,
                    oldest,
                    retention_ms: db
                        .retention()
                        .map_or(0, |r| r.as_millis().try_into().unwrap_or(u64::MAX)),
                }
            }
            e => e.into(),
        })
    }
}

/// Begin a read transaction on the newest commit, or as of `as_of`.
pub fn begin_read(db: &Database, as_of: Option<&AsOf>) -> Result<ReadTxn> {
    match as_of {
        Some(as_of) => as_of.begin_read(db),
        None => Ok(db.begin_read()?),
    }
}

/// A retention window: a duration of whole milliseconds, or `0` for none.
pub fn parse_retention(s: &str) -> std::result::Result<Duration, String> {
    let window = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 1h, 30m or 7days: {e}"))?;
    if window.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{s:?} is not a whole number of milliseconds"));
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u32) -> AsOf {
        AsOf::Time(UNIX_EPOCH + Duration::new(secs, millis * 1_000_000))
    }

    #[test]
    fn digits_are_timestamps() {
        assert_eq!(parse("0"), Ok(AsOf::Timestamp(0)));
        assert_eq!(
            parse("115366400000000000"),
            Ok(AsOf::Timestamp(115_366_400_000_000_000))
        );
        assert!(parse("18446744073709551616")
            .unwrap_err()
            .contains("timestamp"));
        assert!(parse("").is_err());
    }

    #[test]
    fn rfc3339_times() {
        // 2026-12-01T12:00:00Z
        let noon = 1_796_126_400;
        assert_eq!(parse("2026-12-01T12:00:00Z"), Ok(at(noon, 0)));
        assert_eq!(parse("2026-12-01t12:00:00z"), Ok(at(noon, 0)));
        assert_eq!(parse("2026-12-01T12:00:00.250Z"), Ok(at(noon, 250)));
        assert_eq!(parse("2026-12-01T12:00:00+00:00"), Ok(at(noon, 0)));
        assert_eq!(parse("2026-12-01T13:30:00+01:30"), Ok(at(noon, 0)));
        assert_eq!(parse("2026-12-01T07:00:00.5-05:00"), Ok(at(noon, 500)));
        // What `stat` and `readers` print parses back.
        let printed = crate::human::utc(1_796_126_400_042);
        assert_eq!(parse(&printed), Ok(at(noon, 42)));
        for bad in [
            "2026-12-01",
            "2026-12-01T12:00:00",
            "2026-12-01T12:00:00+1:00",
            "2026-12-01T12:00:00+24:00",
            "2026-12-01T12:00:00+01:0x",
            "2026-13-01T12:00:00Z",
            "1970-01-01T00:30:00+01:00",
            "12:00",
            "-5m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let err = parse("2026-12-01T12:00:00").unwrap_err();
        assert!(err.contains("time zone"), "{err}");
        let err = parse("2026-12-01T12:00:00+01:0x").unwrap_err();
        assert!(err.contains("offset"), "{err}");
    }

    #[test]
    fn durations_ago() {
        let ago = |d: Duration| Ok(AsOf::Ago(d));
        assert_eq!(parse("10m"), ago(Duration::from_secs(600)));
        assert_eq!(parse("90s"), ago(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), ago(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), ago(Duration::from_millis(250)));
        let err = parse("10 parsecs").unwrap_err();
        assert!(
            err.contains("RFC 3339") && err.contains("duration"),
            "{err}"
        );
    }

    #[test]
    fn retention_windows() {
        assert_eq!(parse_retention("0"), Ok(Duration::ZERO));
        assert_eq!(parse_retention("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_retention("7days"),
            Ok(Duration::from_secs(7 * 86_400))
        );
        assert!(parse_retention("1500us").is_err());
        assert!(parse_retention("soon").is_err());
    }
}
