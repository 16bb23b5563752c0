//! Windows aligned to the clock and the calendar.
//!
//! A plain fixed window opens at the first request; an aligned one is a slot
//! of a grid fixed in advance, so every client sees the same reset time and
//! `reset_after` can be told exactly. The grid starts at the Unix epoch in
//! the local time of a fixed UTC [`Offset`]: a window of `w` µs starts at the
//! multiples of `w` since 1970-01-01T00:00 local time, a window of `n`
//! months at the first of every `n`-th month since January 1970, local
//! midnight (so 3 months are the quarters, 12 the years).
//!
//! Dates are proleptic Gregorian and computed with integers only. Local
//! times are signed (an offset can move the epoch itself back into 1969),
//! while [`Instant`]s are not, so a window that would start before the epoch
//! is reported from the epoch.

use std::fmt;
use std::num::NonZeroU16;

use super::{Instant, Period, MAX_DURATION_US, MAX_TIME_US};

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 86_400_000_000;

/// A fixed offset from UTC in whole minutes, from -23:59 to +23:59 (the
/// range RFC 3339 can write; real zones use -12:00 to +14:00).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(i16);

impl Offset {
    /// UTC itself, the offset of a window given none.
    pub(crate) const UTC: Offset = Offset(0);

    /// Largest offset either way, in minutes (23:59).
    pub const MAX_MINUTES: i32 = 23 * 60 + 59;

    /// An offset of `minutes` east of UTC (negative: west), if within
    /// ±23:59.
    pub const fn from_minutes(minutes: i32) -> Option<Offset> {
        if minutes < -Self::MAX_MINUTES || minutes > Self::MAX_MINUTES {
            return None;
        }
        // In range, so it fits an `i16`.
        Some(Offset(minutes as i16))
    }

    /// Minutes east of UTC.
    pub const fn minutes(self) -> i32 {
        self.0 as i32
    }

    /// Microseconds east of UTC: local time is UTC plus this.
    pub const fn micros(self) -> i64 {
        self.0 as i64 * MINUTE_US
    }

    /// Reads `+hh:mm` or `-hh:mm` (exactly two digits each, hours up to 23,
    /// minutes up to 59), or `Z` / `z` for UTC as RFC 3339 allows. `-00:00`
    /// is UTC too. Nothing else: no `+hhmm`, `+h:mm` or `UTC`, so one offset
    /// has few spellings and a typo can't pass as another offset.
    pub(crate) fn parse(s: &[u8]) -> Option<Offset> {
        if s.eq_ignore_ascii_case(b"z") {
            return Some(Offset::UTC);
        }
        let &[sign, h1, h2, b':', m1, m2] = s else {
            return None;
        };
        let digit = |c: u8| c.is_ascii_digit().then(|| i32::from(c - b'0'));
        let hours = digit(h1)? * 10 + digit(h2)?;
        let minutes = digit(m1)? * 10 + digit(m2)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        let total = hours * 60 + minutes;
        match sign {
            b'+' => Offset::from_minutes(total),
            b'-' => Offset::from_minutes(-total),
            _ => None,
        }
    }
}

impl fmt::Display for Offset {
    /// Always `+hh:mm` or `-hh:mm` (UTC is `+00:00`), which [`Offset::parse`]
    /// reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

/// Most months a calendar window may span: 100 years. Far more than any
/// quota period needs, and it keeps every window short of
/// [`MAX_DURATION_US`] (100 years are at most 36,525 days, about
/// 3.2 × 10^15 µs) and every end before year 10100.
pub const MAX_MONTHS: u32 = 1200;

/// A number of calendar months, 1 to [`MAX_MONTHS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Months(NonZeroU16);

impl Months {
    pub(crate) const ONE: Months = Months(NonZeroU16::MIN);

    pub const fn new(n: u32) -> Option<Months> {
        if n > MAX_MONTHS {
            return None;
        }
        // At most 1200, so it fits an `u16`.
        match NonZeroU16::new(n as u16) {
            Some(n) => Some(Months(n)),
            None => None,
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get() as u32
    }
}

/// The length of an aligned window: a fixed number of microseconds, or of
/// calendar months (28 to 31 days each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    Micros(Period),
    Months(Months),
}

/// The aligned window containing `now`: `(start, end)` with
/// `start <= now < end`, so an instant on a boundary opens the next window.
///
/// - `Micros(w)`: the local start is `now + offset` rounded down to a
///   multiple of `w`; e.g. `1d` at `-05:00` starts at 05:00 UTC, `1h` at
///   `+05:45` at a quarter past every UTC hour. Multiples count from the
///   epoch, so a `7d` window starts on a Thursday, local time.
/// - `Months(n)`: the local start is 00:00 on the 1st of the month, counting
///   `n`-month steps from January 1970 (`n` dividing 12 aligns to January).
///
/// Near the epoch an offset can put the start before 1970-01-01T00:00 UTC,
/// which no `Instant` holds: the start is then the epoch, so that first
/// window is shorter than the others and not aligned; `end` is always exact
/// and aligned. An instant after [`MAX_TIME_US`] (which the module never
/// takes) is read as [`MAX_TIME_US`]. `end` is at most
/// `MAX_TIME_US + MAX_DURATION_US` (for months, before year 10100), and
/// `end - start` never exceeds the span's longest window.
pub fn window_at(span: Span, offset: Offset, now: Instant) -> (Instant, Instant) {
    // Every figure below stays within ±4 × 10^17 µs (a year 9999 instant,
    // a day of offset, a 10^17 µs window or 100 years of months), far inside
    // `i64`, so plain signed arithmetic is exact and floor division is
    // `div_euclid` by a positive divisor.
    let now = i64::try_from(now.as_micros().min(MAX_TIME_US)).unwrap_or(0);
    let local = now + offset.micros();
    let (start, end) = match span {
        Span::Micros(w) => {
            let w = i64::try_from(w.micros()).unwrap_or(1);
            let start = local.div_euclid(w) * w;
            (start, start + w)
        }
        Span::Months(n) => {
            let n = i64::from(n.get());
            let (year, month, _) = civil_from_days(local.div_euclid(DAY_US));
            let index = (year - 1970) * 12 + i64::from(month) - 1;
            let first = index.div_euclid(n) * n;
            (month_start(first) * DAY_US, month_start(first + n) * DAY_US)
        }
    };
    let utc =
        |local: i64| Instant::from_micros(u64::try_from(local - offset.micros()).unwrap_or(0));
    (utc(start), utc(end))
}

// The headroom `window_at` counts on: its extreme figures, even added
// together, are far from `i64::MAX`.
const _: () = assert!(MAX_TIME_US + MAX_DURATION_US < i64::MAX as u64 / 8);

/// Days since 1970-01-01 of the 1st of the month `index` months after
/// January 1970 (negative before). For the bounded indices of
/// [`window_at`].
fn month_start(index: i64) -> i64 {
    let year = 1970 + index.div_euclid(12);
    // `rem_euclid(12)` is 0..12.
    let month = index.rem_euclid(12) as u32 + 1;
    days_from_civil_raw(year, month, 1)
}

// ------------------------------------------------------- civil dates ---
//
// The calendar repeats every 400 years, exactly 146,097 days (400 × 365,
// plus a leap day every 4th year, less the 3 centuries that are not leap).
// Counted from March, the leap day is the last day of a year, so the
// months before it have the same lengths every year, and a year's start
// is 365 days per year plus one per leap day before it. Eras here start on
// 1 March of a multiple of 400.

/// Days in a 400-year era.
const ERA_DAYS: i64 = 146_097;

/// Days before each month of a March-based year (March first).
const BEFORE_MONTH: [i64; 12] = [0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337];

/// Days from the start of an era to the start of its `year`-th March-based
/// year (0..400): one leap day for every February that ends a year before,
/// those of the years 1 to `year` of the era.
const fn era_year_start(year: i64) -> i64 {
    365 * year + year / 4 - year / 100
}

/// Day of its era of 1970-01-01: the era starts 1600-03-01, 369 March years
/// before 1969-03-01, and January is 306 days after March.
const EPOCH_IN_ERA: i64 = era_year_start(369) + BEFORE_MONTH[10];

/// Whether `year` has a 29 February (proleptic Gregorian).
pub(crate) const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1 to 12) of `year`; 0 for another month.
pub const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Latest (and, negated, earliest) year [`days_from_civil`] takes: a
/// billion years, far beyond any instant yet small enough for `i64` days.
pub(crate) const MAX_CIVIL_YEAR: i64 = 1_000_000_000;

/// Days since 1970-01-01 (negative before) of a proleptic Gregorian date;
/// `None` unless `month` is 1 to 12, `day` is in that month and `|year|` is
/// at most [`MAX_CIVIL_YEAR`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    let real = (-MAX_CIVIL_YEAR..=MAX_CIVIL_YEAR).contains(&year)
        && (1..=days_in_month(year, month)).contains(&day);
    real.then(|| days_from_civil_raw(year, month, day))
}

/// [`days_from_civil`] without the checks: `month` must be 1 to 12, `day`
/// 1 to 31 (days past the month's end count on into the next one) and
/// `|year|` at most [`MAX_CIVIL_YEAR`].
fn days_from_civil_raw(year: i64, month: u32, day: u32) -> i64 {
    // January and February belong to the March year before.
    let (year, march_month) = if month >= 3 {
        (year, month - 3)
    } else {
        (year - 1, month + 9)
    };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_era =
        era_year_start(year_of_era) + BEFORE_MONTH[(march_month % 12) as usize] + i64::from(day)
            - 1;
    // Eras here count from year 0; 1970's is the 4th, of 1600.
    (era - 4) * ERA_DAYS + day_of_era - EPOCH_IN_ERA
}

/// The proleptic Gregorian date `(year, month, day)` of a day counted from
/// 1970-01-01 (negative before). Defined for every `i64`: nothing in it can
/// overflow.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Split first, then shift to the era's own count, so that even
    // `i64::MAX` days overflow nothing.
    let mut era = days.div_euclid(ERA_DAYS);
    let mut day_of_era = days.rem_euclid(ERA_DAYS) + EPOCH_IN_ERA;
    if day_of_era >= ERA_DAYS {
        era += 1;
        day_of_era -= ERA_DAYS;
    }
    // No year is longer than 366 days, so this guess is never past the
    // year sought (and, over a whole era, at most one short of it).
    let mut year_of_era = day_of_era / 366;
    while year_of_era < 399 && era_year_start(year_of_era + 1) <= day_of_era {
        year_of_era += 1;
    }
    let day_of_year = day_of_era - era_year_start(year_of_era);
    let mut march_month = 11;
    while BEFORE_MONTH[march_month] > day_of_year {
        march_month -= 1;
    }
    // `day_of_year - BEFORE_MONTH[m]` is 0..31, `march_month` 0..12.
    let day = (day_of_year - BEFORE_MONTH[march_month]) as u32 + 1;
    let (month, next_year) = if march_month < 10 {
        (march_month as u32 + 3, 0)
    } else {
        (march_month as u32 - 9, 1)
    };
    // `era` counts from the one starting in 1600, and is at most
    // ~6.3 × 10^13 either way.
    (1600 + era * 400 + year_of_era + next_year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const MIN: u64 = 60 * S;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;

    fn off(s: &str) -> Offset {
        Offset::parse(s.as_bytes()).unwrap()
    }

    fn micros(w: u64) -> Span {
        Span::Micros(Period::from_micros(w).unwrap())
    }

    fn months(n: u32) -> Span {
        Span::Months(Months::new(n).unwrap())
    }

    #[test]
    fn offsets_parse_and_display() {
        for (text, minutes) in [
            ("+00:00", 0),
            ("-00:00", 0),
            ("Z", 0),
            ("z", 0),
            ("-05:00", -300),
            ("+05:30", 330),
            ("+05:45", 345),
            ("+14:00", 840),
            ("-12:00", -720),
            ("+23:59", 1439),
            ("-23:59", -1439),
        ] {
            let o = Offset::parse(text.as_bytes());
            assert_eq!(o.map(Offset::minutes), Some(minutes), "{text}");
        }
        for bad in [
            "", "+", "05:00", "+5:00", "+0500", "+05:0", "+24:00", "+05:60", "+05:00 ", " +05:00",
            "*05:00", "+05-00", "+0a:00", "UTC", "ZZ", "+05:000",
        ] {
            assert_eq!(Offset::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(off("-05:00").to_string(), "-05:00");
        assert_eq!(off("+05:45").to_string(), "+05:45");
        assert_eq!(off("Z").to_string(), "+00:00");
        assert_eq!(off("-23:59").to_string(), "-23:59");
        assert_eq!(Offset::from_minutes(1440), None);
        assert_eq!(Offset::from_minutes(-1440), None);
        assert_eq!(Offset::from_minutes(-1).unwrap().to_string(), "-00:01");
        assert_eq!(off("-05:00").micros(), -5 * HOUR as i64);
        for m in -Offset::MAX_MINUTES..=Offset::MAX_MINUTES {
            let o = Offset::from_minutes(m).unwrap();
            assert_eq!(Offset::parse(o.to_string().as_bytes()), Some(o));
        }
    }

    #[test]
    fn months_are_bounded() {
        assert_eq!(Months::new(0), None);
        assert_eq!(Months::new(MAX_MONTHS + 1), None);
        assert_eq!(Months::new(u32::MAX), None);
        assert_eq!(Months::new(MAX_MONTHS).map(Months::get), Some(1200));
        assert_eq!(Months::new(1).map(Months::get), Some(1));
    }

    /// (span, offset, now, start, end) in seconds since the epoch (from
    /// `date -u -d`, not from this module), `now` plus `us` extra µs.
    type Row = (Span, &'static str, u64, u64, u64);

    fn check(rows: &[(Row, u64)]) {
        for (i, &((span, o, now, start, end), us)) in rows.iter().enumerate() {
            let got = window_at(span, off(o), Instant::from_micros(now * S + us));
            let got = (got.0.as_micros(), got.1.as_micros());
            assert_eq!(
                got,
                (start * S, end * S),
                "row {i}: {span:?} {o} at {now}s+{us}µs"
            );
        }
    }

    #[test]
    fn day_windows_reset_at_local_midnight() {
        let d = micros(DAY);
        let mid_march = 1_710_478_800; // 2024-03-15T05:00Z
        check(&[
            // Midnight in UTC-5 is 05:00 UTC: the boundary opens a new day.
            ((d, "-05:00", mid_march, 1_710_478_800, 1_710_565_200), 0),
            (
                (d, "-05:00", mid_march - 1, 1_710_392_400, 1_710_478_800),
                999_999,
            ),
            (
                (d, "-05:00", 1_710_565_199, 1_710_478_800, 1_710_565_200),
                999_999,
            ),
            ((d, "Z", mid_march, 1_710_460_800, 1_710_547_200), 0),
            // India: midnight is 18:30 UTC the day before.
            ((d, "+05:30", mid_march, 1_710_441_000, 1_710_527_400), 0),
            (
                (d, "+05:30", 1_710_441_000, 1_710_441_000, 1_710_527_400),
                0,
            ),
            (
                (d, "+05:30", 1_710_440_999, 1_710_354_600, 1_710_441_000),
                0,
            ),
            // Kiribati (+14) and Baker Island (-12): 10:00 and 12:00 UTC.
            ((d, "+14:00", mid_march, 1_710_410_400, 1_710_496_800), 0),
            ((d, "-12:00", mid_march, 1_710_417_600, 1_710_504_000), 0),
            ((d, "+23:59", mid_march, 1_710_460_860, 1_710_547_260), 0),
        ]);
    }

    #[test]
    fn hour_windows_follow_a_quarter_hour_offset() {
        // Nepal (+05:45): hours start at a quarter past the UTC hour.
        let h = micros(HOUR);
        check(&[
            (
                (h, "+05:45", 1_710_478_800, 1_710_476_100, 1_710_479_700),
                0,
            ),
            (
                (h, "+05:45", 1_710_479_700, 1_710_479_700, 1_710_483_300),
                0,
            ),
            (
                (h, "+05:45", 1_710_479_699, 1_710_476_100, 1_710_479_700),
                999_999,
            ),
            (
                (h, "-05:00", 1_710_478_800, 1_710_478_800, 1_710_482_400),
                0,
            ),
        ]);
    }

    #[test]
    fn month_windows_follow_the_calendar() {
        let mo = months(1);
        check(&[
            // 2023 is not leap: January 31st, then a 28-day February.
            ((mo, "Z", 1_675_123_200, 1_672_531_200, 1_675_209_600), 0),
            ((mo, "Z", 1_675_209_600, 1_675_209_600, 1_677_628_800), 0),
            // 2024 is: February has 29 days.
            ((mo, "Z", 1_706_745_600, 1_706_745_600, 1_709_251_200), 0),
            (
                (mo, "Z", 1_709_251_199, 1_706_745_600, 1_709_251_200),
                999_999,
            ),
            // 2100 is not (a century), 2000 is (a 400th year).
            ((mo, "Z", 4_105_123_200, 4_105_123_200, 4_107_542_400), 0),
            ((mo, "Z", 949_363_200, 949_363_200, 951_868_800), 0),
            // Local midnight of the 1st in UTC-5 is 05:00 UTC.
            (
                (mo, "-05:00", 1_706_763_599, 1_704_085_200, 1_706_763_600),
                0,
            ),
            (
                (mo, "-05:00", 1_706_763_600, 1_706_763_600, 1_709_269_200),
                0,
            ),
            (
                (mo, "-05:00", 1_706_745_600, 1_704_085_200, 1_706_763_600),
                0,
            ),
            // In UTC+14 February has begun at 10:00 UTC on 31 January.
            (
                (mo, "+14:00", 1_706_695_200, 1_706_695_200, 1_709_200_800),
                0,
            ),
        ]);
    }

    #[test]
    fn quarters_and_years() {
        let (q, y) = (months(3), months(12));
        check(&[
            // 2024-03-15: Q1 2024 (January to March).
            ((q, "Z", 1_710_460_800, 1_704_067_200, 1_711_929_600), 0),
            // 2024-04-01 opens Q2, to 2024-07-01.
            ((q, "Z", 1_711_929_600, 1_711_929_600, 1_719_792_000), 0),
            // 2024-11-30: Q4, to 2025-01-01.
            ((q, "Z", 1_732_924_800, 1_727_740_800, 1_735_689_600), 0),
            (
                (q, "-05:00", 1_711_929_600, 1_704_085_200, 1_711_947_600),
                0,
            ),
            // 2024 (leap) and 2023.
            ((y, "Z", 1_710_460_800, 1_704_067_200, 1_735_689_600), 0),
            (
                (y, "Z", 1_704_067_199, 1_672_531_200, 1_704_067_200),
                999_999,
            ),
            (
                (y, "+05:30", 1_704_047_400, 1_704_047_400, 1_735_669_800),
                0,
            ),
            // Six months: January and July; two years: even years from 1970.
            (
                (months(6), "Z", 1_710_460_800, 1_704_067_200, 1_719_792_000),
                0,
            ),
            (
                (months(24), "Z", 1_710_460_800, 1_704_067_200, 1_767_225_600),
                0,
            ),
            (
                (months(24), "Z", 1_672_531_200, 1_640_995_200, 1_704_067_200),
                0,
            ),
        ]);
    }

    #[test]
    fn the_epoch_clamps_starts_and_year_9999_ends() {
        let last = MAX_TIME_US / S; // 9999-12-31T23:59:59.999Z
        let ms = MAX_TIME_US % S;
        assert_eq!(ms, 999_000);
        check(&[
            // West of UTC the epoch is still 31 December locally.
            ((micros(DAY), "-05:00", 0, 0, 18_000), 0),
            ((months(1), "-05:00", 0, 0, 18_000), 0),
            ((months(12), "-05:00", 0, 0, 18_000), 0),
            ((months(1200), "-05:00", 0, 0, 18_000), 0),
            ((months(1), "-05:00", 18_000, 18_000, 2_696_400), 0),
            // East of it the first local day started at 19:00Z on the 31st:
            // reported from the epoch, the end is exact.
            ((micros(DAY), "+05:00", 0, 0, 68_400), 0),
            ((months(1), "+05:00", 0, 0, 2_660_400), 0),
            ((micros(DAY), "Z", 0, 0, 86_400), 0),
            ((months(12), "Z", 0, 0, 31_536_000), 0),
            // Year 9999 ends at 10000-01-01.
            ((months(1), "Z", last, 253_399_622_400, 253_402_300_800), ms),
            (
                (micros(DAY), "Z", last, 253_402_214_400, 253_402_300_800),
                ms,
            ),
            // In UTC+14 year 10000 has begun, and lasts (leap) 366 days.
            (
                (months(12), "+14:00", last, 253_402_250_400, 253_433_872_800),
                ms,
            ),
            // 100 years from 9970 (8,000 years after 1970).
            (
                (months(1200), "Z", last, 252_455_616_000, 255_611_376_000),
                ms,
            ),
            // The longest microsecond window.
            (
                (
                    micros(MAX_DURATION_US),
                    "Z",
                    last,
                    200_000_000_000,
                    300_000_000_000,
                ),
                ms,
            ),
        ]);
        // Later instants are read as the last one.
        for now in [MAX_TIME_US + 1, u64::MAX] {
            let span = months(1200);
            let o = off("+23:59");
            assert_eq!(
                window_at(span, o, Instant::from_micros(now)),
                window_at(span, o, Instant::MAX)
            );
        }
    }

    #[test]
    fn civil_dates_match_a_day_by_day_walk() {
        // From 1 January 1600 to the end of 2401, a day at a time, by the
        // month-length table: three non-leap centuries and two leap ones.
        let mut days = days_from_civil(1600, 1, 1).unwrap();
        for year in 1600..=2401 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(civil_from_days(days), (year, month, day));
                    assert_eq!(days_from_civil(year, month, day), Some(days));
                    days += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(10_000, 1, 1), Some(2_932_897));
        assert_eq!(days_from_civil(0, 3, 1), Some(-719_468));
        assert_eq!(civil_from_days(-719_469), (0, 2, 29));
    }

    #[test]
    fn civil_dates_reject_what_is_not_a_date() {
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2100, 2, 29), None);
        assert!(days_from_civil(2000, 2, 29).is_some());
        assert_eq!(days_from_civil(2024, 4, 31), None);
        assert_eq!(days_from_civil(2024, 0, 1), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
        assert_eq!(days_from_civil(2024, 1, 0), None);
        assert_eq!(days_from_civil(MAX_CIVIL_YEAR + 1, 1, 1), None);
        assert_eq!(days_from_civil(-MAX_CIVIL_YEAR - 1, 1, 1), None);
        for y in [MAX_CIVIL_YEAR, -MAX_CIVIL_YEAR] {
            for (m, d) in [(1, 1), (12, 31)] {
                let days = days_from_civil(y, m, d).unwrap();
                assert_eq!(civil_from_days(days), (y, m, d));
            }
        }
        // Any day has a date, however far.
        for days in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let (_, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
        }
    }
}
