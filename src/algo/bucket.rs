//! The continuous bucket shared by the token bucket, the leaky bucket and GCRA.
//!
//! The three are one meter seen from different sides. The state is a *level*
//! in units that drains continuously at `rate` units per `period`:
//! - token bucket: tokens available = `capacity - level` (a full bucket is
//!   level 0);
//! - leaky bucket as a queue: the level is the number of units waiting; an
//!   accepted request waits `level / rate` for the ones ahead of it;
//! - GCRA: the level is `(TAT - now) / T` with `T = period / rate` the
//!   emission interval, and `capacity = burst + 1`; this is exactly redis-cell's
//!   `CL.THROTTLE` without its nanosecond rounding of `T`.
//!
//! To stay exact for any rate and period, the level is kept multiplied by the
//! period in µs: `scaled = level * period`. Draining for `dt` µs then removes
//! exactly `dt * rate`, with no division and no rounding.

use std::ffi::CStr;

use super::limiter::{Algo, Argument, Decoder, Encoder};
use super::{div_ceil_u128, to_u64, Burst, Count, Decision, Duration, Instant, Period, MAX_COUNT};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketParams {
    pub capacity: Count,
    pub rate: Count,
    pub period: Period,
}

impl BucketParams {
    /// From raw figures (µs for the period), if they are in bounds.
    pub fn new(capacity: u64, rate: u64, period_us: u64) -> Option<BucketParams> {
        Some(BucketParams {
            capacity: Count::new(capacity)?,
            rate: Count::new(rate)?,
            period: Period::from_micros(period_us)?,
        })
    }

    fn full(&self) -> u128 {
        self.capacity.wide() * self.period.wide()
    }
}

/// GCRA's parameters as given (`RL.GCRA key max_burst rate period`); the
/// bucket they stand for has capacity `max_burst + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraParams {
    pub(crate) max_burst: Burst,
    pub(crate) rate: Count,
    pub period: Period,
}

impl GcraParams {
    pub fn bucket(&self) -> BucketParams {
        BucketParams {
            capacity: self.max_burst.capacity(),
            rate: self.rate,
            period: self.period,
        }
    }

    pub fn of_bucket(b: &BucketParams) -> GcraParams {
        GcraParams {
            max_burst: Burst::of_capacity(b.capacity),
            rate: b.rate,
            period: b.period,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    Token,
    Leaky,
    Gcra,
}

/// A `u128` stored as two words, so a bucket is 8-byte aligned and 48
/// bytes rather than 64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wide([u64; 2]);

impl Wide {
    pub fn new(v: u128) -> Wide {
        Wide([v as u64, (v >> 64) as u64])
    }

    pub(crate) fn get(self) -> u128 {
        (self.0[1] as u128) << 64 | self.0[0] as u128
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketState {
    pub params: BucketParams,
    /// Level times the period (units·µs); at most `MAX_COUNT * period`. It
    /// exceeds `capacity * period` only after a denied request lowered the
    /// capacity: the level is kept whole (it is seen capped at the capacity),
    /// so raising the capacity again grants nothing that was spent.
    pub scaled: Wide,
    /// When `scaled` was last computed; the latest time this limiter saw.
    pub last: Instant,
}

impl BucketState {
    pub(crate) fn new(params: BucketParams) -> Self {
        BucketState {
            params,
            scaled: Wide::default(),
            last: Instant::EPOCH,
        }
    }

    /// The stored level expressed with the period of `p`, rounded up so that
    /// a parameter change never frees capacity that was not drained.
    fn level_for(&self, p: &BucketParams) -> u128 {
        let old = self.params.period.wide();
        let new = p.period.wide();
        let scaled = self.scaled.get();
        let scaled = if old == new {
            scaled
        } else {
            // Split to keep every product within u128 for the largest inputs.
            let (q, r) = (scaled / old, scaled % old);
            q * new + div_ceil_u128(r * new, old)
        };
        scaled.min(MAX_COUNT as u128 * new)
    }

    /// Decides a request and returns the state it leaves when it writes:
    /// spent when allowed with a cost, else the same level (re-expressed in
    /// `p`'s period, rounded up) at the same time under `p`.
    pub(crate) fn evaluate(
        &self,
        flavor: Flavor,
        p: &BucketParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, BucketState) {
        let now = now.max(self.last);
        let rate = p.rate.wide();
        let period = p.period.wide();
        let drained = (now - self.last).as_micros() as u128 * rate;
        let stored = self.level_for(p);
        let whole = stored.saturating_sub(drained);
        let need = cost as u128 * period;
        let full = p.full();
        // A bucket is never seen more than full.
        let level = whole.min(full);
        let allowed = cost <= p.capacity.get() && level + need <= full;
        // Allowed with a cost, `whole == level`; a peek or a denial keeps
        // the whole level.
        let after = if allowed { whole + need } else { whole };

        let retry_after = if !allowed {
            // The whole level must drain to make room, not only the part
            // seen within a lowered capacity.
            (cost <= p.capacity.get())
                .then(|| Duration::capped(div_ceil_u128(whole + need - full, rate)))
        } else if flavor == Flavor::Leaky {
            Some(Duration::capped(div_ceil_u128(level, rate)))
        } else {
            Some(Duration::ZERO)
        };
        let next = if allowed && cost > 0 {
            BucketState {
                params: *p,
                scaled: Wide::new(after),
                last: now,
            }
        } else {
            BucketState {
                params: *p,
                scaled: Wide::new(stored),
                last: self.last,
            }
        };
        let d = Decision {
            allowed,
            limit: p.capacity.get(),
            remaining: to_u64(full.saturating_sub(after) / period),
            retry_after,
            // Until the whole level has drained, not just the part within
            // the capacity: only then is the bucket as good as new.
            reset_after: Duration::capped(div_ceil_u128(after, rate)),
            at: now,
        };
        (d, next)
    }

    /// Takes up to `n` units out of the level as it stands at `now`, never
    /// below empty: tokens come back (token bucket), the queue shortens
    /// (leaky bucket), or the theoretical arrival time moves back by `n`
    /// emission intervals but not before `now` (GCRA). Answers how many
    /// whole units went, a partly drained unit counting as one.
    pub(crate) fn refund(&mut self, n: u64, now: Instant) -> u64 {
        let now = now.max(self.last);
        let period = self.params.period.wide();
        let drained = (now - self.last).as_micros() as u128 * self.params.rate.wide();
        let whole = self.scaled.get().saturating_sub(drained);
        let given = (n as u128 * period).min(whole);
        if given == 0 {
            return 0;
        }
        self.scaled = Wide::new(whole - given);
        self.last = now;
        to_u64(given.div_ceil(period))
    }

    /// Whole units in the bucket, rounded up (the state keeps fractions).
    pub(crate) fn level(&self) -> u64 {
        to_u64(self.scaled.get().div_ceil(self.params.period.wide()))
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.scaled.get() <= MAX_COUNT as u128 * self.params.period.wide()
    }

    /// [`Algo::describe`] of the three flavours: GCRA's burst is
    /// `capacity - 1`.
    fn describe(&self, flavor: Flavor, field: &mut impl FnMut(&'static str, i128)) {
        let p = &self.params;
        if flavor == Flavor::Gcra {
            field("max_burst", (p.capacity.get() - 1).into());
        } else {
            field("capacity", p.capacity.get().into());
        }
        field("rate", p.rate.get().into());
        field("period_us", p.period.micros().into());
        field("level", self.level().into());
        field("updated_at_us", self.last.as_micros().into());
    }
}

/// The three buckets' parameters as stored: capacity, rate, period in µs
/// (GCRA's as the bucket's capacity, `max_burst + 1`, as the first release
/// wrote them). The state follows: the scaled level, the time it was
/// computed at.
fn write_bucket_params(p: &BucketParams, w: &mut impl Encoder) {
    w.u64(p.capacity.get());
    w.u64(p.rate.get());
    w.u64(p.period.micros());
}

fn read_bucket_params<D: Decoder>(r: &mut D) -> Result<BucketParams, D::Error> {
    Ok(BucketParams {
        capacity: r.count()?,
        rate: r.count()?,
        period: r.period()?,
    })
}

/// The three algorithms on the bucket: one state, a marker each, told
/// apart by their [`Flavor`] (and GCRA by its parameters).
macro_rules! bucket_algo {
    ($(#[$doc:meta])* $marker:ident, $flavor:ident, $params:ty, $to_bucket:expr, $of_bucket:expr, $summary:literal) => {
        $(#[$doc])*
        pub struct $marker;

        impl Algo for $marker {
            const SUMMARY: &'static CStr = $summary;
            const COMPLEXITY: &'static CStr = c"O(1)";

            type Params = $params;
            type State = BucketState;
            type Next = BucketState;

            fn new(p: $params) -> BucketState {
                BucketState::new($to_bucket(&p))
            }
            fn params(s: &BucketState) -> $params {
                $of_bucket(&s.params)
            }
            fn limit(p: &$params) -> u64 {
                $to_bucket(p).capacity.get()
            }
            #[inline]
            fn evaluate(
                s: &BucketState,
                p: &$params,
                cost: u64,
                now: Instant,
            ) -> (Decision, BucketState) {
                s.evaluate(Flavor::$flavor, &$to_bucket(p), cost, now)
            }
            #[inline]
            fn apply(s: &mut BucketState, next: &BucketState) {
                *s = *next;
            }
            fn refund(s: &BucketState, n: u64, now: Instant) -> (u64, BucketState) {
                let mut next = *s;
                let given = next.refund(n, now);
                (given, next)
            }
            fn describe(s: &BucketState, field: &mut impl FnMut(&'static str, i128)) {
                s.describe(Flavor::$flavor, field);
            }
            fn is_valid(s: &BucketState) -> bool {
                s.is_valid()
            }
            fn from_bucket(b: BucketParams) -> Option<$params> {
                Some($of_bucket(&b))
            }
            fn arguments(p: &$params, out: &mut impl FnMut(Argument)) {
                let b = $to_bucket(p);
                // GCRA's first is its burst, one less than the capacity.
                let first = match Flavor::$flavor {
                    Flavor::Gcra => b.capacity.get() - 1,
                    _ => b.capacity.get(),
                };
                out(Argument::Count(first));
                out(Argument::Count(b.rate.get()));
                out(Argument::Duration(b.period.duration()));
            }
            fn write_params(p: &$params, w: &mut impl Encoder) {
                write_bucket_params(&$to_bucket(p), w);
            }
            fn read_params<D: Decoder>(_tag: u8, r: &mut D) -> Result<$params, D::Error> {
                Ok($of_bucket(&read_bucket_params(r)?))
            }
            fn write_state(s: &BucketState, w: &mut impl Encoder) {
                w.u128(s.scaled.get());
                w.time(s.last);
            }
            fn read_state<D: Decoder>(p: $params, r: &mut D) -> Result<BucketState, D::Error> {
                Ok(BucketState {
                    params: $to_bucket(&p),
                    scaled: Wide::new(r.u128()?),
                    last: r.time()?,
                })
            }
        }
    };
}

bucket_algo!(
    /// The token bucket (`RL.TOKEN`).
    Token, Token, BucketParams, |p: &BucketParams| *p, |b: &BucketParams| *b,
    c"Token bucket: capacity tokens, refilled continuously at rate per period."
);
bucket_algo!(
    /// The leaky bucket as a queue (`RL.LEAKY`).
    Leaky, Leaky, BucketParams, |p: &BucketParams| *p, |b: &BucketParams| *b,
    c"Leaky bucket as a queue: up to capacity units waiting, drained at rate per period."
);
bucket_algo!(
    /// GCRA (`RL.GCRA`), parameters given as `max_burst rate period`.
    Gcra, Gcra, GcraParams, GcraParams::bucket, GcraParams::of_bucket,
    c"GCRA: max_burst + 1 at once, then rate per period."
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{MAX_COUNT, MAX_DURATION_US, MAX_TIME_US, MAX_WAIT_US};

    use crate::algo::testing::{raw, t, Raw};

    const S: u64 = 1_000_000;

    fn p(capacity: u64, rate: u64, period: u64) -> BucketParams {
        BucketParams::new(capacity, rate, period).unwrap()
    }

    impl BucketState {
        fn decide(&mut self, flavor: Flavor, p: &BucketParams, cost: u64, now: u64) -> Raw {
            let (d, next) = self.evaluate(flavor, p, cost, t(now));
            let changed = crate::algo::writes(d.allowed, cost, self.params != *p);
            if changed {
                *self = next;
            }
            raw(&d, changed)
        }
    }

    #[test]
    fn token_bucket_burst_then_refill() {
        let params = p(10, 5, S);
        let mut st = BucketState::new(params);
        let d = st.decide(Flavor::Token, &params, 10, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 0, 2 * S));
        let d = st.decide(Flavor::Token, &params, 1, 0);
        assert_eq!((d.allowed, d.retry_after), (false, Some(200_000)));
        assert!(!st.decide(Flavor::Token, &params, 1, 199_999).allowed);
        let d = st.decide(Flavor::Token, &params, 1, 200_000);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        let d = st.decide(Flavor::Token, &params, 0, S + 200_000);
        assert_eq!((d.remaining, d.reset_after), (5, S));
    }

    #[test]
    fn thirds_are_exact() {
        // 3 per second: an emission interval of 333333.33.. µs, which a
        // rounded interval would get wrong by 1 µs every 3 units.
        let params = p(3000, 3, S);
        let mut st = BucketState::new(params);
        assert!(st.decide(Flavor::Token, &params, 3000, 0).allowed);
        assert_eq!(
            { st }
                .decide(Flavor::Token, &params, 0, 1000 * S - 1)
                .remaining,
            2999
        );
        assert_eq!(
            { st }.decide(Flavor::Token, &params, 0, 1000 * S).remaining,
            3000
        );
        let d = st.decide(Flavor::Token, &params, 1, 1);
        assert_eq!(d.retry_after, Some(333_333));
        let d = st.decide(Flavor::Token, &params, 2, 1);
        assert_eq!(d.retry_after, Some(666_666));
        let d = st.decide(Flavor::Token, &params, 3, 1);
        assert_eq!(d.retry_after, Some(999_999));
    }

    #[test]
    fn one_per_day_is_exact() {
        let day = 86_400 * S;
        let params = p(1, 1, day);
        let mut st = BucketState::new(params);
        assert!(st.decide(Flavor::Gcra, &params, 1, 5).allowed);
        let d = st.decide(Flavor::Gcra, &params, 1, 5);
        assert_eq!(d.retry_after, Some(day));
        assert!(!st.decide(Flavor::Gcra, &params, 1, day + 4).allowed);
        assert!(st.decide(Flavor::Gcra, &params, 1, day + 5).allowed);
    }

    #[test]
    fn leaky_bucket_tells_the_wait_for_its_turn() {
        let params = p(3, 1, S);
        let mut st = BucketState::new(params);
        let waits: Vec<_> = (0..4)
            .map(|_| {
                let d = st.decide(Flavor::Leaky, &params, 1, 0);
                (d.allowed, d.retry_after)
            })
            .collect();
        assert_eq!(
            waits,
            vec![
                (true, Some(0)),
                (true, Some(S)),
                (true, Some(2 * S)),
                (false, Some(S))
            ]
        );
        let d = st.decide(Flavor::Leaky, &params, 1, 1_500_000);
        assert_eq!((d.allowed, d.retry_after), (true, Some(1_500_000)));
    }

    #[test]
    fn matches_redis_cell_figures() {
        // CL.THROTTLE key 15 30 60: limit 16, 30 per minute (T = 2s).
        let params = p(16, 30, 60 * S);
        let mut st = BucketState::new(params);
        let d = st.decide(Flavor::Gcra, &params, 1, 0);
        assert_eq!((d.limit, d.remaining, d.reset_after), (16, 15, 2 * S));
        for _ in 0..15 {
            assert!(st.decide(Flavor::Gcra, &params, 1, 0).allowed);
        }
        let d = st.decide(Flavor::Gcra, &params, 1, 0);
        assert_eq!(
            (d.allowed, d.remaining, d.retry_after, d.reset_after),
            (false, 0, Some(2 * S), 32 * S)
        );
        let d = st.decide(Flavor::Gcra, &params, 17, 0);
        assert_eq!(d.retry_after, None);
    }

    #[test]
    fn clock_going_back_grants_nothing_more() {
        let params = p(2, 1, S);
        let mut st = BucketState::new(params);
        st.decide(Flavor::Token, &params, 2, 10 * S);
        let d = st.decide(Flavor::Token, &params, 1, 5 * S);
        assert_eq!((d.allowed, d.retry_after), (false, Some(S)));
    }

    #[test]
    fn period_change_rescales_the_level_conservatively() {
        let a = p(10, 10, S);
        let mut st = BucketState::new(a);
        st.decide(Flavor::Token, &a, 10, 0);
        // Same rate expressed per minute: still empty, still 100 ms per token.
        let b = p(10, 600, 60 * S);
        let d = st.decide(Flavor::Token, &b, 1, 0);
        assert_eq!((d.allowed, d.retry_after), (false, Some(100_000)));
        // A smaller capacity caps the level as seen: the bucket is never
        // over-full. But all 10 units must drain (1 s) before it is as good
        // as new: after 300 ms it would still be full under capacity 3.
        let c = p(3, 10, S);
        let d = st.decide(Flavor::Token, &c, 0, 0);
        assert_eq!((d.remaining, d.reset_after), (0, S));
        assert_eq!(st.decide(Flavor::Token, &c, 0, 300_000).remaining, 0);
        assert_eq!(st.decide(Flavor::Token, &c, 0, 700_000).remaining, 0);
        assert_eq!(st.decide(Flavor::Token, &c, 0, 800_000).remaining, 1);
        assert_eq!(st.decide(Flavor::Token, &c, 0, S).remaining, 3);
        // Lowered then raised again: what was spent stays spent.
        assert!(!st.decide(Flavor::Token, &c, 1, 0).allowed);
        assert_eq!(st.params, c);
        assert_eq!(st.decide(Flavor::Token, &a, 0, 0).remaining, 0);
    }

    #[test]
    fn largest_values_compute() {
        let params = p(MAX_COUNT, 1, MAX_DURATION_US);
        let mut st = BucketState::new(params);
        let d = st.decide(Flavor::Token, &params, MAX_COUNT, MAX_TIME_US);
        assert!(d.allowed);
        // 10^32 µs to drain: reported capped, not saturated.
        assert_eq!(d.reset_after, MAX_WAIT_US);
        let fast = p(MAX_COUNT, MAX_COUNT, 1);
        assert!(!st.decide(Flavor::Token, &fast, 1, MAX_TIME_US).allowed);
        let d = st.decide(Flavor::Token, &fast, MAX_COUNT, MAX_TIME_US + 1);
        assert!(d.allowed);
    }
}
