//! Renderings for people: byte sizes, UTC dates and durations. Dates are
//! computed here from the Unix epoch (proleptic Gregorian calendar) rather
//! than with a date library.

/// `1.5 KiB`-style size; exact below one KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// ISO-8601 UTC time with milliseconds, e.g. `2024-02-29T13:05:09.042Z`,
/// for `ms` milliseconds since the Unix epoch.
pub fn utc(ms: u64) -> String {
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01.
/// The calendar repeats every 400 years (146,097 days); counting from
/// 0000-03-01 puts the leap day at the end of each counted year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// A short duration: `850ms`, `12.3s`, `4m05s`, `2h07m`, `3d04h`.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// An exact duration in days, hours, minutes, seconds and milliseconds,
/// leaving out the zero ones: `1h30m`, `7d`, `1m250ms`; `0` for none. `humantime` parses it back.
pub fn exact_duration(ms: u64) -> String {
    if ms == 0 {
        return "0".to_string();
    }
    let parts = [
        (ms / 86_400_000, "d"),
        (ms / 3_600_000 % 24, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(utc(1_709_211_909_042), "2024-02-29T13:05:09.042Z");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(utc(1_735_689_599_000), "2024-12-31T23:59:59.000Z");
        // The largest millisecond a 48-bit timestamp field can hold.
        assert_eq!(utc((1 << 48) - 1), "10889-08-02T05:31:50.655Z");
    }

    fn days_in_month(year: u64, month: u64) -> u64 {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut prev = civil_from_days(0);
        for days in 1..200_000 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                [next_day, next_month, next_year].contains(&(y, m, d)),
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            if d == 1 {
                assert_eq!(prev.2, days_in_month(prev.0, prev.1), "{prev:?}");
            }
            prev = (y, m, d);
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(16 << 20), "16.0 MiB");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_620_000), "2h07m");
        assert_eq!(duration(273_600_000), "3d04h");
    }

    #[test]
    fn exact_durations_parse_back() {
        for (ms, text) in [
            (0, "0"),
            (250, "250ms"),
            (90_000, "1m30s"),
            (5_400_000, "1h30m"),
            (7 * 86_400_000, "7d"),
            (86_400_000 + 60_250, "1d1m250ms"),
        ] {
            assert_eq!(exact_duration(ms), text);
            let parsed = humantime::parse_duration(text).unwrap();
            assert_eq!(parsed.as_millis(), u128::from(ms), "{text}");
        }
    }
}
