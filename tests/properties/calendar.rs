//! Property tests of the calendar windows (`ratelimit::algo::calendar`)
//! against a reference that knows nothing of its date arithmetic: the first
//! day of every month from 1870 to 10102, found by adding up month lengths
//! one month at a time from the leap-year rule.
//!
//! For any instant of the module's range, any offset and any span, the
//! window contains the instant; a month window's start and end are the
//! reference's; a window ends where the next one starts; a microsecond
//! window is `w` long and starts on a multiple of `w` in local time, unless
//! the epoch cut it short. Instants are drawn from the whole range and, as
//! often, from a few µs around a month boundary or the epoch.
//!
//! An aligned `FIXED` limiter, fed requests over months of random steps,
//! counts exactly the units of the reference window each request falls in,
//! and answers `retry_after`/`reset_after` up to that window's end; its
//! state survives the codec at every step.
//!
//! `PROPTEST_CASES` sets the case count (e.g. `PROPTEST_CASES=100000`).

use std::sync::LazyLock;

use super::config;
use proptest::prelude::*;

use ratelimit::algo::calendar::{civil_from_days, days_from_civil, days_in_month};
use ratelimit::algo::{
    window_at, Count, FixedParams, FixedWindow, Instant, Limiter, Months, Offset, Params, Period,
    Span, MAX_DURATION_US, MAX_MONTHS, MAX_TIME_US,
};
use ratelimit::codec;

const DAY: i64 = 86_400_000_000;

/// First year of the reference: 1970 less the longest span, so that any
/// aligned start of a month window is in the table.
const FIRST_YEAR: i64 = 1870;

/// Month index (months since January 1970) of the table's first entry.
const FIRST_INDEX: i64 = (FIRST_YEAR - 1970) * 12;

fn leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn month_len(year: i64, month: usize) -> i64 {
    const LEN: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    LEN[month] + i64::from(month == 1 && leap(year))
}

/// Days since 1970-01-01 of the 1st of every month from January 1870 to
/// January 10102 (so that a year-10000 instant plus 1200 months fits).
static MONTH_STARTS: LazyLock<Vec<i64>> = LazyLock::new(|| {
    let before_1970: i64 = (FIRST_YEAR..1970)
        .map(|y| if leap(y) { 366 } else { 365 })
        .sum();
    let mut day = -before_1970;
    let mut starts = Vec::new();
    for year in FIRST_YEAR..10_102 {
        for month in 0..12 {
            starts.push(day);
            day += month_len(year, month);
        }
    }
    starts.push(day);
    starts
});

fn month_start(index: i64) -> i64 {
    MONTH_STARTS[usize::try_from(index - FIRST_INDEX).unwrap()]
}

/// The reference month window containing `now`: `(start, end)` in µs.
fn reference_months(n: u32, offset: Offset, now: u64) -> (u64, u64) {
    let off = offset.micros();
    let local = i64::try_from(now).unwrap() + off;
    let day = local.div_euclid(DAY);
    let index = MONTH_STARTS.partition_point(|&s| s <= day) as i64 - 1 + FIRST_INDEX;
    let n = i64::from(n);
    let first = index.div_euclid(n) * n;
    let utc = |index: i64| month_start(index) * DAY - off;
    let start = utc(first).max(0);
    (start as u64, utc(first + n) as u64)
}

fn offsets() -> impl Strategy<Value = Offset> {
    let m = Offset::MAX_MINUTES;
    prop_oneof![
        (-m..=m).prop_map(|m| Offset::from_minutes(m).unwrap()),
        prop::sample::select(vec![0, -300, 330, 345, 840, -720, m, -m])
            .prop_map(|m| Offset::from_minutes(m).unwrap()),
    ]
}

fn month_counts() -> impl Strategy<Value = u32> {
    prop_oneof![
        1..=MAX_MONTHS,
        prop::sample::select(vec![1, 2, 3, 4, 6, 12, 24, 120, MAX_MONTHS - 1, MAX_MONTHS]),
    ]
}

fn micro_windows() -> impl Strategy<Value = u64> {
    const S: u64 = 1_000_000;
    prop_oneof![
        1..=MAX_DURATION_US,
        1..=10 * 86_400 * S,
        1u64..=1000,
        prop::sample::select(vec![S, 60 * S, 3600 * S, 86_400 * S, 7 * 86_400 * S]),
    ]
}

/// An instant of the module's range: anywhere, near the epoch or its end,
/// or a few µs from the UTC start of a month in some offset.
fn instants() -> impl Strategy<Value = u64> {
    let near = |at: i64, by: i64| (at - by..=at + by).prop_map(clamp);
    let last_month: i64 = (9999 - 1970) * 12 + 12;
    prop_oneof![
        0..=MAX_TIME_US,
        near(0, 3 * DAY),
        near(MAX_TIME_US as i64, 3 * DAY),
        (0..=last_month, -1439i64..=1439, -3i64..=3)
            .prop_map(|(i, m, d)| clamp(month_start(i) * DAY - m * 60_000_000 + d)),
    ]
}

fn clamp(us: i64) -> u64 {
    us.clamp(0, MAX_TIME_US as i64) as u64
}

fn raw(w: (Instant, Instant)) -> (u64, u64) {
    (w.0.as_micros(), w.1.as_micros())
}

/// What every window satisfies, whatever its span.
fn check_window(span: Span, offset: Offset, now: u64) -> Result<(u64, u64), TestCaseError> {
    let (start, end) = raw(window_at(span, offset, Instant::from_micros(now)));
    prop_assert!(start <= now && now < end, "{start} <= {now} < {end}");
    prop_assert!(end <= MAX_TIME_US + MAX_DURATION_US);
    // Windows tile time: the next starts where this one ends, the previous
    // ends where this one starts.
    if end <= MAX_TIME_US {
        let next = raw(window_at(span, offset, Instant::from_micros(end)));
        prop_assert_eq!(next.0, end);
    }
    if start > 0 {
        let prev = raw(window_at(span, offset, Instant::from_micros(start - 1)));
        prop_assert_eq!(prev.1, start);
    }
    // Every instant of the window is in the same window.
    for at in [start, end - 1, start + (end - start) / 2] {
        prop_assert_eq!(
            raw(window_at(span, offset, Instant::from_micros(at))),
            (start, end)
        );
    }
    Ok((start, end))
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn month_windows_match_the_reference(
        n in month_counts(),
        offset in offsets(),
        now in instants(),
    ) {
        let span = Span::Months(Months::new(n).unwrap());
        let got = check_window(span, offset, now)?;
        prop_assert_eq!(got, reference_months(n, offset, now));
        // Never longer than n months of 31 days.
        prop_assert!(got.1 - got.0 <= u64::from(n) * 31 * DAY as u64);
    }

    #[test]
    fn microsecond_windows_are_aligned_in_local_time(
        w in micro_windows(),
        offset in offsets(),
        now in instants(),
    ) {
        let span = Span::Micros(Period::from_micros(w).unwrap());
        let (start, end) = check_window(span, offset, now)?;
        let off = i128::from(offset.micros());
        let w = i128::from(w);
        // The end is always aligned; the start unless the epoch cut it.
        prop_assert_eq!((i128::from(end) + off).rem_euclid(w), 0);
        if i128::from(end) - w >= 0 {
            prop_assert_eq!(i128::from(end - start), w);
        } else {
            prop_assert_eq!(start, 0);
        }
        // The arithmetic the doc promises, in i128.
        let local = i128::from(now) + off;
        prop_assert_eq!(i128::from(end), local.div_euclid(w) * w + w - off);
    }

    #[test]
    fn civil_days_count_one_by_one(days in -365_000_000_000i64..=365_000_000_000) {
        let (y, m, d) = civil_from_days(days);
        prop_assert!((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d));
        prop_assert_eq!(days_from_civil(y, m, d), Some(days));
        // The next day is the next date.
        let next = if d < days_in_month(y, m) {
            (y, m, d + 1)
        } else if m < 12 {
            (y, m + 1, 1)
        } else {
            (y + 1, 1, 1)
        };
        prop_assert_eq!(civil_from_days(days + 1), next);
    }

    #[test]
    fn civil_days_match_the_month_table(index in FIRST_INDEX..(10_101 - 1970) * 12) {
        let days = month_start(index);
        let year = 1970 + index.div_euclid(12);
        let month = index.rem_euclid(12) as u32 + 1;
        prop_assert_eq!(civil_from_days(days), (year, month, 1));
        prop_assert_eq!(days_from_civil(year, month, 1), Some(days));
        let (py, pm, pd) = civil_from_days(days - 1);
        prop_assert_eq!(pd, days_in_month(py, pm));
    }
}

/// The reference window of an aligned span: months from the table, µs
/// windows from local-time arithmetic in `i128`, cut at the epoch.
fn reference_window(span: Span, offset: Offset, now: u64) -> (u64, u64) {
    match span {
        Span::Months(n) => reference_months(n.get(), offset, now),
        Span::Micros(w) => {
            let (off, w) = (i128::from(offset.micros()), i128::from(w.micros()));
            let start = (i128::from(now) + off).div_euclid(w) * w - off;
            let raw = |t: i128| u64::try_from(t.max(0)).unwrap();
            (raw(start), raw(start + w))
        }
    }
}

fn spans() -> impl Strategy<Value = Span> {
    const S: u64 = 1_000_000;
    prop_oneof![
        prop::sample::select(vec![1u32, 1, 1, 2, 3, 12])
            .prop_map(|n| Span::Months(Months::new(n).unwrap())),
        prop::sample::select(vec![
            60 * S,
            3600 * S,
            86_400 * S,
            7 * 86_400 * S,
            1_500_000
        ])
        .prop_map(|w| Span::Micros(Period::from_micros(w).unwrap())),
    ]
}

/// Steps between requests: often none or little, sometimes days or more
/// than a month, so windows fill, end and get skipped.
fn steps() -> impl Strategy<Value = Vec<(u64, u64)>> {
    const S: u64 = 1_000_000;
    let dt = prop_oneof![
        Just(0u64),
        0..=10 * S,
        0..=2 * 86_400 * S,
        0..=40 * 86_400 * S,
    ];
    prop::collection::vec((dt, 0u64..=3), 1..60)
}

/// Instants of months that end in the different ways: a leap February,
/// 30- and 31-day months, a year's end, and anywhere.
fn starts() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            (2024 - 1970) * 12 + 1,
            (2023 - 1970) * 12 + 1,
            (2000 - 1970) * 12 + 1,
            (2100 - 1970) * 12 + 1,
            (2025 - 1970) * 12 + 3,
            (2025 - 1970) * 12 + 11,
        ])
        .prop_map(|i| clamp(month_start(i) * DAY - 3 * DAY)),
        0..=MAX_TIME_US - 100 * 365 * DAY as u64,
    ]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn an_aligned_fixed_window_counts_each_calendar_window(
        span in spans(),
        offset in offsets(),
        limit in 1u64..=5,
        start in starts(),
        steps in steps(),
    ) {
        let params = Params::Fixed(
            FixedParams::new(Count::new(limit).unwrap(), FixedWindow::Aligned(span, offset))
                .unwrap(),
        );
        let mut limiter = Limiter::new(&params);
        // The model: the reference window last spent in, and its count.
        let mut spent: Option<((u64, u64), u64)> = None;
        let mut now = start;
        for (dt, cost) in steps {
            now += dt;
            let window = reference_window(span, offset, now);
            let count = match spent {
                Some((w, c)) if w == window => c,
                _ => 0,
            };
            let allowed = count + cost <= limit;
            let after = if allowed { count + cost } else { count };
            let d = limiter.decide(&params, cost, Instant::from_micros(now)).unwrap();
            prop_assert_eq!(d.allowed, allowed, "at {} in {:?}", now, window);
            prop_assert_eq!(d.remaining, limit - after.min(limit));
            let left = window.1 - now;
            let retry = if allowed { Some(0) } else if cost > limit { None } else { Some(left) };
            prop_assert_eq!(d.retry_after.map(|r| r.as_micros()), retry);
            prop_assert_eq!(d.reset_after.as_micros(), if after > 0 { left } else { 0 });
            if allowed && cost > 0 {
                spent = Some((window, after));
            }
            let bytes = codec::encode(&limiter);
            prop_assert_eq!(&codec::decode(&bytes, codec::ENCODING_VERSION).unwrap(), &limiter);
        }
    }
}

#[test]
fn the_reference_agrees_with_known_dates() {
    // From `date -u -d ... +%s`, divided by 86,400.
    for (index, days) in [
        (0, 0),
        (-1, -31),
        ((2000 - 1970) * 12 + 2, 11_017),
        ((2024 - 1970) * 12 + 1, 19_754),
        ((10_000 - 1970) * 12, 2_932_897),
        ((1900 - 1970) * 12 + 2, -25_508),
    ] {
        assert_eq!(month_start(index), days, "month {index}");
    }
}

#[test]
fn every_offset_and_span_survives_the_extremes() {
    let spans = [
        Span::Months(Months::new(1).unwrap()),
        Span::Months(Months::new(7).unwrap()),
        Span::Months(Months::new(MAX_MONTHS).unwrap()),
        Span::Micros(Period::from_micros(1).unwrap()),
        Span::Micros(Period::from_micros(86_400_000_000).unwrap()),
        Span::Micros(Period::from_micros(MAX_DURATION_US).unwrap()),
    ];
    for minutes in -Offset::MAX_MINUTES..=Offset::MAX_MINUTES {
        let offset = Offset::from_minutes(minutes).unwrap();
        for span in spans {
            for now in [0, 1, MAX_TIME_US - 1, MAX_TIME_US] {
                let (start, end) = raw(window_at(span, offset, Instant::from_micros(now)));
                assert!(start <= now && now < end, "{span:?} {offset} {now}");
                if let Span::Months(n) = span {
                    assert_eq!((start, end), reference_months(n.get(), offset, now));
                }
            }
        }
    }
}
