//! Time as data (sans-IO): callers pass "now" in; nothing here reads a clock.
//!
//! `tdate` values (RFC 3339, BIND-VII-A-05) have exactly one accepted spelling
//! (PROFILE G-25): `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, upper-case `T` and `Z`, UTC only,
//! 1–9 fraction digits without trailing zeros, no fraction when it is zero.

use std::fmt;

/// An instant with nanosecond precision, years 0000–9999 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a time string is not a canonical `tdate`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not an RFC 3339 date-time: {0}")]
    Syntax(&'static str),
    #[error("date or time field out of range: {0}")]
    Range(&'static str),
    #[error("valid RFC 3339 but not the canonical UTC form (PROFILE G-25): {0}")]
    NotCanonical(&'static str),
}

const NANOS_PER_SEC: i128 = 1_000_000_000;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z in Unix seconds.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// From Unix seconds and a nanosecond fraction; `None` outside years 0000–9999.
    pub fn new(secs: i64, nanos: u32) -> Option<Timestamp> {
        (nanos < 1_000_000_000 && (MIN_SECS..=MAX_SECS).contains(&secs))
            .then_some(Timestamp { secs, nanos })
    }

    pub fn from_unix_secs(secs: i64) -> Option<Timestamp> {
        Timestamp::new(secs, 0)
    }

    /// From nanoseconds since the Unix epoch (the MTP-UUID timestamp field, BIND IX).
    pub fn from_unix_nanos(n: u64) -> Timestamp {
        Timestamp {
            secs: (n / 1_000_000_000) as i64,
            nanos: (n % 1_000_000_000) as u32,
        }
    }

    /// Nanoseconds since the Unix epoch; `None` before 1970 or after 2554.
    pub fn unix_nanos(self) -> Option<u64> {
        u64::try_from(self.total_nanos()).ok()
    }

    pub fn unix_secs(self) -> i64 {
        self.secs
    }

    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    fn total_nanos(self) -> i128 {
        self.secs as i128 * NANOS_PER_SEC + self.nanos as i128
    }

    fn from_total_nanos(n: i128) -> Option<Timestamp> {
        let secs = i64::try_from(n.div_euclid(NANOS_PER_SEC)).ok()?;
        Timestamp::new(secs, n.rem_euclid(NANOS_PER_SEC) as u32)
    }

    /// `self + ms` milliseconds (negative allowed); `None` out of range.
    pub fn add_millis(self, ms: i64) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() + ms as i128 * 1_000_000)
    }

    pub fn add_secs(self, s: i64) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() + s as i128 * NANOS_PER_SEC)
    }

    /// Signed difference `self - other` in nanoseconds.
    pub fn nanos_since(self, other: Timestamp) -> i128 {
        self.total_nanos() - other.total_nanos()
    }

    /// Parses a canonical `tdate` (PROFILE G-25). Any other RFC 3339 spelling of a valid
    /// instant is [`TimeError::NotCanonical`]; anything else is `Syntax`/`Range`.
    pub fn parse(s: &str) -> Result<Timestamp, TimeError> {
        let (ts, canonical) = parse_rfc3339(s)?;
        if !canonical.is_empty() {
            return Err(TimeError::NotCanonical(canonical));
        }
        Ok(ts)
    }

    /// Parses any RFC 3339 `date-time` (offsets, lower-case `t`/`z`, trailing zeros), for
    /// diagnostics and lenient import. The result is normalised to UTC.
    pub fn parse_lenient(s: &str) -> Result<Timestamp, TimeError> {
        parse_rfc3339(s).map(|(ts, _)| ts)
    }

    /// The canonical `tdate` text.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// Returns the instant and, when the spelling is valid but not canonical, the reason.
fn parse_rfc3339(s: &str) -> Result<(Timestamp, &'static str), TimeError> {
    let b = s.as_bytes();
    let mut noncanon = "";
    if b.len() < 20 {
        return Err(TimeError::Syntax("too short"));
    }
    let num = |r: std::ops::Range<usize>, what: &'static str| -> Result<i64, TimeError> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(TimeError::Syntax(what));
        }
        Ok(part
            .iter()
            .fold(0i64, |acc, d| acc * 10 + (d - b'0') as i64))
    };
    let year = num(0..4, "year")?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err(TimeError::Syntax("date separator"));
    }
    let month = num(5..7, "month")?;
    let day = num(8..10, "day")?;
    match b[10] {
        b'T' => {}
        b't' => noncanon = "lower-case 't'",
        _ => return Err(TimeError::Syntax("'T' separator")),
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(TimeError::Syntax("time separator"));
    }
    let hour = num(11..13, "hour")?;
    let minute = num(14..16, "minute")?;
    let second = num(17..19, "second")?;
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = &b[start..end];
        if digits.is_empty() {
            return Err(TimeError::Syntax("empty fraction"));
        }
        if digits.len() > 9 {
            return Err(TimeError::Range("more than nanosecond precision"));
        }
        for (k, d) in digits.iter().enumerate() {
            nanos += (d - b'0') as u32 * 10u32.pow(8 - k as u32);
        }
        if digits.last() == Some(&b'0') && noncanon.is_empty() {
            noncanon = "trailing zero in fraction";
        }
        i = end;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(b'z') if i + 1 == b.len() => {
            if noncanon.is_empty() {
                noncanon = "lower-case 'z'";
            }
            0
        }
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3, "offset hour")?;
            let om = num(i + 4..i + 6, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err(TimeError::Range("offset"));
            }
            if noncanon.is_empty() {
                noncanon = "numeric UTC offset instead of 'Z'";
            }
            let o = oh * 3600 + om * 60;
            if sign == b'+' { o } else { -o }
        }
        _ => return Err(TimeError::Syntax("time zone")),
    };
    if !(1..=12).contains(&month) {
        return Err(TimeError::Range("month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimeError::Range("day"));
    }
    if hour > 23 || minute > 59 {
        return Err(TimeError::Range("hour/minute"));
    }
    if second > 59 {
        // Leap seconds cannot be represented in Unix time (RFC 3339 §5.7 allows 60).
        return Err(TimeError::Range("second (leap seconds are not accepted)"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let ts = Timestamp::new(secs, nanos).ok_or(TimeError::Range("year outside 0000-9999"))?;
    Ok((ts, noncanon))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-03-06T14:22:07.391Z",
            "2026-03-06T23:59:59Z",
            "2000-02-29T12:00:00.000000001Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(Timestamp::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn non_canonical_spellings_are_refused_but_parse_leniently() {
        for (s, canon) in [
            ("2026-03-06T14:22:07.390Z", "2026-03-06T14:22:07.39Z"),
            ("2026-03-06t14:22:07Z", "2026-03-06T14:22:07Z"),
            ("2026-03-06T14:22:07z", "2026-03-06T14:22:07Z"),
            ("2026-03-06T16:22:07+02:00", "2026-03-06T14:22:07Z"),
            ("2026-03-06T14:22:07+00:00", "2026-03-06T14:22:07Z"),
        ] {
            assert!(
                matches!(Timestamp::parse(s), Err(TimeError::NotCanonical(_))),
                "{s}"
            );
            assert_eq!(Timestamp::parse_lenient(s).unwrap().to_string(), canon);
        }
    }

    #[test]
    fn malformed_and_out_of_range() {
        for s in [
            "",
            "2026-03-06",
            "2026-03-06 14:22:07Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-03-06T24:00:00Z",
            "2026-03-06T23:59:60Z",
            "2026-03-06T23:59:59.Z",
            "2026-03-06T23:59:59.1234567891Z",
            "2026-03-06T23:59:59",
            "2026-03-06T23:59:59Zjunk",
            "+2026-03-06T23:59:59Z",
            "２026-03-06T23:59:59Z",
        ] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn nanos_and_arithmetic() {
        let t = Timestamp::from_unix_nanos(1_772_807_327_391_000_000);
        assert_eq!(t.to_string(), "2026-03-06T14:28:47.391Z");
        assert_eq!(t.unix_nanos(), Some(1_772_807_327_391_000_000));
        assert_eq!(
            t.add_millis(609).unwrap().to_string(),
            "2026-03-06T14:28:48Z"
        );
        assert_eq!(t.add_secs(-1).unwrap().nanos_since(t), -1_000_000_000);
        assert!(Timestamp::new(MAX_SECS + 1, 0).is_none());
    }
}
