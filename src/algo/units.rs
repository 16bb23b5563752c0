//! Typed time and quotas. Instants and durations are distinct types, both
//! whole microseconds; counts that must be positive can't hold zero, and a
//! GCRA burst is not a capacity. Every constructor checks the module's bounds,
//! so a value of these types is always one the algorithms can compute with.

use std::num::NonZeroU64;
use std::ops::{Add, Sub};

/// Largest limit, capacity, rate or cost accepted (10^15). With durations
/// bounded by [`MAX_DURATION_US`] and instants by [`MAX_TIME_US`], every
/// intermediate product stays far below `u128::MAX`.
pub const MAX_COUNT: u64 = 1_000_000_000_000_000;

/// Longest window or period accepted: 10^17 µs, a little over 3,000 years.
pub const MAX_DURATION_US: u64 = 100_000_000_000_000_000;

/// Most entries a sliding log may hold: the ceiling of `log-max`, so one
/// key stays under 8 MB.
pub(crate) const MAX_LOG_ENTRIES: u64 = 1_000_000;

/// Latest instant accepted (the last millisecond of year 9999), in µs.
pub const MAX_TIME_US: u64 = 253_402_300_799_999_000;

/// Longest wait or reset a decision reports: two of the longest windows
/// (a sliding window counter needs two to forget). Every window algorithm
/// fits; only a bucket whose full drain takes longer (capacity 10^15
/// refilled one per century, say) is reported as this, and its key expires
/// then.
pub(crate) const MAX_WAIT_US: u64 = 2 * MAX_DURATION_US;

/// A day in µs.
pub(crate) const DAY_US: u64 = 86_400_000_000;

/// The units a duration is written in on a command line, largest first,
/// with their length in µs: what the parser reads (a number without a unit
/// is in seconds) and `RL.POLICY GET` writes back.
pub(crate) const DURATION_UNITS: [(&str, u64); 6] = [
    ("d", DAY_US),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
];

/// The length in µs of a unit of [`DURATION_UNITS`] written in lower case,
/// or of none (seconds). The parser's every-call path, spelled as a
/// `match` for speed; a test holds it to the table.
#[inline]
pub(crate) fn unit_scale(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"" | b"s" => 1_000_000,
        b"ms" => 1_000,
        b"us" => 1,
        b"m" => 60_000_000,
        b"h" => 3_600_000_000,
        b"d" => DAY_US,
        _ => return None,
    })
}

/// A point in time: microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Instant {
    pub(crate) const EPOCH: Instant = Instant(0);
    pub(crate) const MAX: Instant = Instant(MAX_TIME_US);

    pub const fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    /// A Unix time in ms; negative clocks read as the epoch.
    pub const fn from_millis(ms: i64) -> Instant {
        if ms <= 0 {
            return Instant(0);
        }
        Instant((ms as u64).saturating_mul(1000))
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole Unix milliseconds, rounded up (an expiry is never early).
    pub const fn ceil_millis(self) -> u64 {
        self.0.div_ceil(1000)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) const fn since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: instants and durations are bounded far below `u64::MAX`.
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.since(earlier)
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const MAX_WAIT: Duration = Duration(MAX_WAIT_US);

    pub const fn from_micros(us: u64) -> Duration {
        Duration(us)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// A computed wait, capped at [`MAX_WAIT_US`] (see there).
    pub(crate) fn capped(us: u128) -> Duration {
        Duration(u64::try_from(us).unwrap_or(u64::MAX).min(MAX_WAIT_US))
    }

    /// Whole milliseconds, rounded up, so a client that waits this long is
    /// never early.
    pub const fn ceil_millis(self) -> u64 {
        self.0.div_ceil(1000)
    }
}

/// A point in time in whole Unix milliseconds: how Redis keeps a key's
/// expiry, and how a replicated op carries the expiry its master set. An op
/// writes the epoch for no expiry (a key the master did not write, or
/// deleted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMs(u64);

impl UnixMs {
    pub(crate) const EPOCH: UnixMs = UnixMs(0);

    pub const fn from_millis(ms: u64) -> UnixMs {
        UnixMs(ms)
    }

    pub(crate) const fn as_millis(self) -> u64 {
        self.0
    }

    /// The millisecond `at` falls in, rounded up: an expiry is never early.
    #[inline]
    pub(crate) const fn ceil(at: Instant) -> UnixMs {
        UnixMs(at.ceil_millis())
    }

    /// The millisecond after this one (saturating).
    #[inline]
    pub(crate) const fn next(self) -> UnixMs {
        UnixMs(self.0.saturating_add(1))
    }
}

/// A positive count up to [`MAX_COUNT`]: a limit, a capacity or a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count(NonZeroU64);

impl Count {
    pub const fn new(v: u64) -> Option<Count> {
        match NonZeroU64::new(v) {
            Some(n) if v <= MAX_COUNT => Some(Count(n)),
            _ => None,
        }
    }

    pub const fn get(self) -> u64 {
        self.0.get()
    }

    pub const fn wide(self) -> u128 {
        self.0.get() as u128
    }
}

/// A window or a refill period: 1 µs up to [`MAX_DURATION_US`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(NonZeroU64);

impl Period {
    /// The shortest: 1 µs.
    pub(crate) const MIN: Period = Period(NonZeroU64::MIN);
    pub const fn from_micros(us: u64) -> Option<Period> {
        match NonZeroU64::new(us) {
            Some(n) if us <= MAX_DURATION_US => Some(Period(n)),
            _ => None,
        }
    }

    pub const fn duration(self) -> Duration {
        Duration(self.0.get())
    }

    pub const fn micros(self) -> u64 {
        self.0.get()
    }

    pub const fn wide(self) -> u128 {
        self.0.get() as u128
    }
}

/// GCRA's `max_burst` in redis-cell's meaning: `max_burst + 1` requests may
/// pass at once. Below [`MAX_COUNT`], so the capacity it stands for is a
/// valid [`Count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Burst(u64);

impl Burst {
    pub(crate) const fn new(v: u64) -> Option<Burst> {
        if v < MAX_COUNT {
            Some(Burst(v))
        } else {
            None
        }
    }

    /// The bucket capacity this burst means: `max_burst + 1`.
    pub(crate) const fn capacity(self) -> Count {
        // `self.0 < MAX_COUNT`, so `self.0 + 1` is always a valid count.
        match Count::new(self.0 + 1) {
            Some(c) => c,
            None => Count(NonZeroU64::MIN),
        }
    }

    /// The burst a bucket of `capacity` stands for.
    pub(crate) const fn of_capacity(capacity: Count) -> Burst {
        Burst(capacity.get() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_of_duration_units() {
        for (unit, us) in DURATION_UNITS {
            assert_eq!(unit_scale(unit.as_bytes()), Some(us), "{unit}");
        }
        assert_eq!(unit_scale(b""), Some(1_000_000));
        for other in [&b"S"[..], b"mo", b"y", b"sec", b"M"] {
            assert_eq!(unit_scale(other), None);
        }
    }

    #[test]
    fn bounds_are_enforced_by_construction() {
        assert!(Count::new(0).is_none());
        assert!(Count::new(MAX_COUNT + 1).is_none());
        assert_eq!(Count::new(MAX_COUNT).map(Count::get), Some(MAX_COUNT));
        assert!(Period::from_micros(0).is_none());
        assert!(Period::from_micros(MAX_DURATION_US + 1).is_none());
        assert!(Burst::new(MAX_COUNT).is_none());
        let b = Burst::new(MAX_COUNT - 1).unwrap();
        assert_eq!(b.capacity().get(), MAX_COUNT);
        assert_eq!(Burst::of_capacity(b.capacity()), b);
    }

    #[test]
    fn waits_are_capped_not_saturated() {
        assert_eq!(Duration::capped(5).as_micros(), 5);
        assert_eq!(Duration::capped(u128::MAX), Duration::MAX_WAIT);
        assert_eq!(Duration::from_micros(1).ceil_millis(), 1);
        assert_eq!(Duration::from_micros(1000).ceil_millis(), 1);
        assert_eq!(Instant::from_millis(-5), Instant::EPOCH);
        assert_eq!(
            UnixMs::ceil(Instant::from_micros(1)),
            UnixMs::from_millis(1)
        );
        assert_eq!(
            UnixMs::ceil(Instant::from_millis(7)),
            UnixMs::from_millis(7)
        );
        assert_eq!(UnixMs::from_millis(u64::MAX).next().as_millis(), u64::MAX);
        assert_eq!(
            Instant::from_micros(10) - Instant::from_micros(20),
            Duration::ZERO
        );
    }
}
