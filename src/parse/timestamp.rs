//! Timestamps to microseconds since the Unix epoch, UTC. Hand-written for the hot path: no
//! allocation, no locale, and exact about what it accepts.

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Microseconds per day, for deriving `dt` from `ts`.
pub const MICROS_PER_DAY: i64 = SECS_PER_DAY * MICROS_PER_SEC;

/// Days since 1970-01-01 of a proleptic Gregorian date, or `None` if the date does not exist.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// A cursor over ASCII bytes with the few reads a timestamp needs.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    /// `HH:MM[:SS[.fraction]]` as microseconds into the day.
    fn time_of_day(&mut self, seconds_required: bool) -> Option<i64> {
        let h = self.digits(2)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.digits(2)?;
        let mut s = 0;
        let mut frac = 0i64;
        if self.eat(b':') {
            s = self.digits(2)?;
            if self.eat(b'.') || self.eat(b',') {
                let start = self.i;
                let mut scale = 100_000i64;
                while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
                    frac += i64::from(c - b'0') * scale;
                    scale /= 10;
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        } else if seconds_required {
            return None;
        }
        Some(micros_of_day(h, m, s)? + frac)
    }

    fn date(&mut self) -> Option<i64> {
        let y = self.digits(4)?;
        if !self.eat(b'-') {
            return None;
        }
        let mo = self.digits(2)?;
        if !self.eat(b'-') {
            return None;
        }
        let d = self.digits(2)?;
        days_from_civil(i64::from(y), mo, d)
    }
}

/// `h:m:s` as microseconds into the day, or `None` out of range. 60 seconds admits a leap
/// second, folded into the next second as most systems do.
fn micros_of_day(h: u32, m: u32, s: u32) -> Option<i64> {
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)) * MICROS_PER_SEC)
}

/// A CloudFront `date` (`YYYY-MM-DD`) as days since 1970-01-01.
pub fn parse_date(date: &[u8]) -> Option<i64> {
    let mut d = Cursor { b: date, i: 0 };
    let days = d.date()?;
    d.done().then_some(days)
}

/// A CloudFront `time` (`HH:MM:SS`, UTC, an optional fraction) as microseconds into the day.
pub fn parse_time(time: &[u8]) -> Option<i64> {
    let mut t = Cursor { b: time, i: 0 };
    let tod = t.time_of_day(true)?;
    t.done().then_some(tod)
}

/// An audit `timestamp`: ISO 8601 (`T` or space, optional seconds and fraction, `Z`, `±HH:MM`,
/// `±HHMM`, `±HH`, or no offset meaning UTC; a bare date means midnight UTC) or epoch seconds or
/// milliseconds (an integer of 12 or more digits is milliseconds; a fraction is allowed).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    Timestamps::default().parse(s.as_bytes())
}

/// [`parse_timestamp`] over a column of timestamps, its bytes not checked as UTF-8 first (the
/// forms it accepts are ASCII), remembering the last date of the common form: an audit file's
/// rows share a few days, and the calendar arithmetic was 2% of an audit run.
#[derive(Debug, Default)]
pub struct Timestamps {
    /// The last `YYYY-MM-DD` read (as `YYYYMMDD`) and its days since 1970-01-01.
    last_day: Option<(u32, Option<i64>)>,
}

impl Timestamps {
    /// What [`parse_timestamp`] makes of `b`; `None` for bytes that are not UTF-8.
    pub fn parse(&mut self, b: &[u8]) -> Option<i64> {
        if let Some(parsed) = self.utc_seconds(b) {
            return parsed;
        }
        parse_general(std::str::from_utf8(b).ok()?)
    }

    /// The common form, `YYYY-MM-DDTHH:MM:SSZ`, read at fixed places: what [`parse_general`]
    /// makes of it, or `None` (outer) when `b` is not of that form.
    fn utc_seconds(&mut self, b: &[u8]) -> Option<Option<i64>> {
        let b: &[u8; 20] = b.try_into().ok()?;
        let separators = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'Z'),
        ];
        if separators.iter().any(|&(at, c)| b[at] != c) {
            return None;
        }
        // Straight-line reads: an array `map` over the fields was not inlined, and cost more
        // than the general parser.
        #[inline(always)]
        fn digit(b: &[u8; 20], at: usize) -> Option<u32> {
            let d = b[at].wrapping_sub(b'0');
            (d < 10).then_some(u32::from(d))
        }
        #[inline(always)]
        fn two(b: &[u8; 20], at: usize) -> Option<u32> {
            Some(digit(b, at)? * 10 + digit(b, at + 1)?)
        }
        let year = two(b, 0)? * 100 + two(b, 2)?;
        let (month, day) = (two(b, 5)?, two(b, 8)?);
        let (h, m, s) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
        let key = year * 10_000 + month * 100 + day;
        let days = match self.last_day {
            Some((last, days)) if last == key => days,
            _ => {
                let days = days_from_civil(i64::from(year), month, day);
                self.last_day = Some((key, days));
                days
            }
        };
        Some(
            days.zip(micros_of_day(h, m, s))
                .map(|(days, tod)| days * MICROS_PER_DAY + tod),
        )
    }
}

/// Every form [`parse_timestamp`] accepts, read step by step.
fn parse_general(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.len() >= 10 && b[4] == b'-' {
        return parse_iso(b);
    }
    parse_epoch(b)
}

fn parse_iso(b: &[u8]) -> Option<i64> {
    let mut c = Cursor { b, i: 0 };
    let days = c.date()?;
    if c.done() {
        return Some(days * MICROS_PER_DAY);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let tod = c.time_of_day(false)?;
    let offset_secs = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(2)?;
            let m = if c.eat(b':') {
                c.digits(2)?
            } else if c.done() {
                0
            } else {
                c.digits(2)?
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = i64::from(h * 3600 + m * 60);
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        Some(_) => return None,
    };
    if !c.done() {
        return None;
    }
    Some(days * MICROS_PER_DAY + tod - offset_secs * MICROS_PER_SEC)
}

fn parse_epoch(b: &[u8]) -> Option<i64> {
    let (neg, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], &b[p + 1..]),
        None => (b, &b[..0]),
    };
    if int.is_empty() || int.len() > 16 || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() != int.len() && frac.is_empty() {
        return None;
    }
    let whole: i64 = std::str::from_utf8(int).ok()?.parse().ok()?;
    let millis = int.len() >= 12;
    let unit = if millis { 1_000 } else { MICROS_PER_SEC };
    let mut micros = whole.checked_mul(unit)?;
    let mut scale = unit / 10;
    for &c in frac.iter().take(if millis { 3 } else { 6 }) {
        micros += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(if neg { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_parser_over_a_column_reads_each_value_as_a_fresh_one_does() {
        let column: &[&[u8]] = &[
            b"2024-03-01T13:00:37Z",
            b"2024-03-01T04:12:26Z",
            b"2024-02-30T04:12:26Z",
            b"2024-02-30T04:12:27Z",
            b"2024-03-01T23:59:60Z",
            b"2024-03-02T00:00:00Z",
            b"2024-03-02 00:00:00+01:00",
            b"2024-03-01T25:00:00Z",
            b"\xff024-03-01T00:00:00Z",
            b"1709251200",
            b"2024-03-01T13:00:37Z",
        ];
        let mut parser = Timestamps::default();
        for &value in column {
            let fresh = std::str::from_utf8(value).ok().and_then(parse_timestamp);
            assert_eq!(
                parser.parse(value),
                fresh,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    proptest! {
        #[test]
        fn the_common_form_reads_as_the_general_parser_reads_it(
            chars in proptest::collection::vec(
                prop_oneof![
                    4 => proptest::char::range('0', '9'),
                    1 => Just('-'), 1 => Just(':'), 1 => Just('T'), 1 => Just('Z'),
                    1 => Just('t'), 1 => Just(' '),
                ],
                20,
            ),
            digits in proptest::collection::vec(0u32..10, 14),
            shape in any::<bool>(),
        ) {
            // Half the cases are the exact shape with random digits (out-of-range fields
            // included), half any 20 characters of the alphabet.
            let text: String = if shape {
                let d: Vec<char> = digits.iter().map(|&d| char::from_digit(d, 10).unwrap()).collect();
                format!(
                    "{}{}{}{}-{}{}-{}{}T{}{}:{}{}:{}{}Z",
                    d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13]
                )
            } else {
                chars.into_iter().collect()
            };
            prop_assert_eq!(parse_timestamp(&text), parse_general(&text), "{}", text);
        }
    }

    #[test]
    fn the_common_form_takes_the_fixed_path() {
        assert_eq!(
            Timestamps::default().utc_seconds(b"2019-12-04T21:02:31Z"),
            Some(Some(T2019))
        );
        assert_eq!(
            Timestamps::default().utc_seconds(b"2019-12-04T24:02:31Z"),
            Some(None)
        );
        let leap = "2016-12-31T23:59:60Z";
        assert!(parse_general(leap).is_some());
        assert_eq!(
            Timestamps::default().utc_seconds(leap.as_bytes()),
            Some(parse_general(leap))
        );
        assert_eq!(
            Timestamps::default().utc_seconds(b"2019-02-30T21:02:31Z"),
            Some(None)
        );
        assert_eq!(
            Timestamps::default().utc_seconds(b"2019-12-04 21:02:31Z"),
            None
        );
        assert_eq!(
            Timestamps::default().utc_seconds(b"2019-12-04T21:02:31.5Z"),
            None
        );
    }

    const T2019: i64 = 1_575_493_351_000_000; // 2019-12-04T21:02:31Z

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2023, 13, 1), None);
        assert_eq!(days_from_civil(2023, 4, 31), None);
    }

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 1, 11_016, 18_234, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days), "{days}");
        }
        assert_eq!(civil_from_days(18_234), (2019, 12, 4));
    }

    #[test]
    fn cloudfront_date_time() {
        let parse_date_time =
            |date, time| Some(parse_date(date)? * MICROS_PER_DAY + parse_time(time)?);
        assert_eq!(parse_date_time(b"2019-12-04", b"21:02:31"), Some(T2019));
        assert_eq!(parse_date_time(b"2019-12-04", b"21:02"), None);
        assert_eq!(parse_date_time(b"2019-12-32", b"21:02:31"), None);
        assert_eq!(parse_date_time(b"2019-12-04", b"24:00:00"), None);
        assert_eq!(parse_date_time(b"-", b"21:02:31"), None);
        assert_eq!(parse_date_time(b"2019-12-04x", b"21:02:31"), None);
    }

    #[test]
    fn iso_forms() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2019-12-04T21:02:31Z", Some(T2019)),
            ("2019-12-04T21:02:31z", Some(T2019)),
            ("2019-12-04 21:02:31", Some(T2019)),
            ("2019-12-04T21:02:31+00:00", Some(T2019)),
            ("2019-12-04T23:02:31+02:00", Some(T2019)),
            ("2019-12-04T23:02:31+0200", Some(T2019)),
            ("2019-12-04T23:02:31+02", Some(T2019)),
            ("2019-12-04T16:02:31-05:00", Some(T2019)),
            ("2019-12-04T21:02:31.5Z", Some(T2019 + 500_000)),
            ("2019-12-04T21:02:31.123456789Z", Some(T2019 + 123_456)),
            ("2019-12-04T21:02Z", Some(T2019 - 31_000_000)),
            ("2019-12-04", Some(T2019 - 75_751_000_000)),
            ("  2019-12-04T21:02:31Z ", Some(T2019)),
            ("2019-12-04T21:02:31.Z", None),
            ("2019-12-04T21:02:31Zjunk", None),
            ("2019-12-04X21:02:31", None),
            ("2019-02-30T00:00:00Z", None),
            ("2019-12-04T21:02:31+25:00", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_timestamp(s), *want, "{s}");
        }
    }

    #[test]
    fn epoch_forms() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1575493351", Some(T2019)),
            ("1575493351000", Some(T2019)),
            ("1575493351.25", Some(T2019 + 250_000)),
            ("1575493351123.9", Some(T2019 + 123_900)),
            ("0", Some(0)),
            ("-1", Some(-1_000_000)),
            ("", None),
            ("abc", None),
            ("15754x3351", None),
            ("1575493351.", None),
            (".5", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_timestamp(s), *want, "{s}");
        }
    }
}
