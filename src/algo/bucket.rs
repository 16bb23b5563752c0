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

use super::{div_ceil_u128, to_u64, Decision, Micros};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketParams {
    pub capacity: u64,
    pub rate: u64,
    pub period: Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Token,
    Leaky,
    Gcra,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketState {
    pub params: BucketParams,
    /// Level times the period (units·µs); at most `capacity * period`.
    pub scaled: u128,
    /// When `scaled` was last computed; the latest time this limiter saw.
    pub last: Micros,
}

impl BucketParams {
    fn full(&self) -> u128 {
        self.capacity as u128 * self.period as u128
    }
}

impl BucketState {
    pub fn new(params: BucketParams) -> Self {
        BucketState {
            params,
            scaled: 0,
            last: 0,
        }
    }

    /// The stored level expressed with the period of `p`, rounded up so that
    /// a parameter change never frees capacity that was not drained; capped
    /// at `p`'s capacity (a bucket is never more than full).
    fn level_for(&self, p: &BucketParams) -> u128 {
        let old = self.params.period as u128;
        let new = p.period as u128;
        let scaled = if old == new {
            self.scaled
        } else {
            // Split to keep every product within u128 for the largest inputs.
            let (q, r) = (self.scaled / old, self.scaled % old);
            q * new + div_ceil_u128(r * new, old)
        };
        scaled.min(p.full())
    }

    pub fn decide(&mut self, flavor: Flavor, p: &BucketParams, cost: u64, now: Micros) -> Decision {
        let now = now.max(self.last);
        let rate = p.rate as u128;
        let period = p.period as u128;
        let drained = (now - self.last) as u128 * rate;
        let level = self.level_for(p).saturating_sub(drained);
        let need = cost as u128 * period;
        let full = p.full();
        let allowed = cost <= p.capacity && level + need <= full;
        let after = if allowed { level + need } else { level };

        let retry_after = if !allowed {
            (cost <= p.capacity).then(|| to_u64(div_ceil_u128(level + need - full, rate)))
        } else if flavor == Flavor::Leaky {
            Some(to_u64(div_ceil_u128(level, rate)))
        } else {
            Some(0)
        };
        let empty_in = to_u64(div_ceil_u128(after, rate));
        let changed = allowed && cost > 0;
        if changed {
            *self = BucketState {
                params: *p,
                scaled: after,
                last: now,
            };
        }
        Decision {
            allowed,
            limit: p.capacity,
            remaining: to_u64((full - after) / period),
            retry_after,
            reset_after: empty_in,
            changed,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.scaled <= self.params.full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{MAX_COUNT, MAX_DURATION_US, MAX_TIME_US};

    const S: Micros = 1_000_000;

    fn p(capacity: u64, rate: u64, period: Micros) -> BucketParams {
        BucketParams {
            capacity,
            rate,
            period,
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
            st.clone()
                .decide(Flavor::Token, &params, 0, 1000 * S - 1)
                .remaining,
            2999
        );
        assert_eq!(
            st.clone()
                .decide(Flavor::Token, &params, 0, 1000 * S)
                .remaining,
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
        // A smaller capacity caps the level: the bucket is never over-full.
        let c = p(3, 10, S);
        let d = st.decide(Flavor::Token, &c, 0, 0);
        assert_eq!((d.remaining, d.reset_after), (0, 300_000));
    }

    #[test]
    fn largest_values_compute() {
        let params = p(MAX_COUNT, 1, MAX_DURATION_US);
        let mut st = BucketState::new(params);
        let d = st.decide(Flavor::Token, &params, MAX_COUNT, MAX_TIME_US);
        assert!(d.allowed);
        assert_eq!(d.reset_after, u64::MAX);
        let fast = p(MAX_COUNT, MAX_COUNT, 1);
        assert!(!st.decide(Flavor::Token, &fast, 1, MAX_TIME_US).allowed);
        let d = st.decide(Flavor::Token, &fast, MAX_COUNT, MAX_TIME_US + 1);
        assert!(d.allowed);
    }
}
