//! The rate-limit algorithms, as pure functions of (state, parameters, cost, now).
//!
//! Nothing in here knows about Redis: every algorithm is a state type with a
//! `decide` method that takes the parameters in force, the cost and the time,
//! and answers a [`Decision`]. The state is changed only when the request is
//! allowed with a non-zero cost, so a denied request or a peek (`cost == 0`)
//! leaves it bit-for-bit identical: that is what lets the Redis layer skip
//! writing and replicating in those cases.
//!
//! Time is an integer number of microseconds since the Unix epoch. Durations
//! are microseconds too. All products are done in `u128` on values bounded by
//! [`MAX_COUNT`] and [`MAX_DURATION_US`], so none of them can overflow; the
//! bounds are checked once, when arguments are parsed or state is decoded.

pub mod bucket;
pub mod fixed;
pub mod limiter;
pub mod log;
pub mod sliding;

pub use bucket::{BucketParams, BucketState};
pub use fixed::FixedState;
pub use limiter::{Algorithm, Limiter, Params};
pub use log::LogState;
pub use sliding::SlidingState;

/// Microseconds, used both for instants (since the Unix epoch) and durations.
pub type Micros = u64;

/// Largest limit, capacity, rate or cost accepted (10^15). With durations
/// bounded by [`MAX_DURATION_US`] and instants by [`MAX_TIME_US`], every
/// intermediate product stays far below `u128::MAX`.
pub const MAX_COUNT: u64 = 1_000_000_000_000_000;

/// Longest window or period accepted: 10^17 µs, a little over 3,000 years.
pub const MAX_DURATION_US: Micros = 100_000_000_000_000_000;

/// Latest instant accepted (the last millisecond of year 9999), in µs.
pub const MAX_TIME_US: Micros = 253_402_300_799_999_000;

/// Parameters shared by the three window algorithms: at most `limit` units in
/// any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowParams {
    pub limit: u64,
    pub window: Micros,
}

/// What an algorithm answers for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The limit as the user understands it (limit, capacity, burst + 1).
    pub limit: u64,
    /// Units that could still be spent right now (after this request if allowed).
    pub remaining: u64,
    /// Denied: time until the same request would be allowed, `None` if never.
    /// Allowed: zero, except for the leaky bucket, where it is the wait before
    /// this request's turn.
    pub retry_after: Option<Micros>,
    /// Time until the limiter is back to its initial (empty/full) state.
    pub reset_after: Micros,
    /// Whether the state was changed (allowed and cost > 0); when it was,
    /// `reset_after` is also when the new state becomes equivalent to an
    /// absent key, which is when the key should expire.
    pub changed: bool,
}

impl Decision {
    /// The answer of several limits decided together (`RL.ALL`): allowed
    /// only if all allow; limit, remaining and reset of the tightest one (the
    /// least remaining, then the longest reset); the longest wait, "never"
    /// outweighing any wait. `decisions` must not be empty.
    pub fn combine(decisions: &[Decision]) -> Decision {
        let allowed = decisions.iter().all(|d| d.allowed);
        let tightest = decisions
            .iter()
            .min_by(|a, b| {
                a.remaining
                    .cmp(&b.remaining)
                    .then(b.reset_after.cmp(&a.reset_after))
            })
            .copied()
            .unwrap_or(Decision {
                allowed: true,
                limit: 0,
                remaining: 0,
                retry_after: Some(0),
                reset_after: 0,
                changed: false,
            });
        // Denied: only the denying limits say how long to wait; allowed: the
        // waits are the leaky buckets' queueing delays.
        let mut waits = decisions.iter().filter(|d| allowed || !d.allowed);
        let retry_after = waits.try_fold(0, |acc: Micros, d| Some(acc.max(d.retry_after?)));
        Decision {
            allowed,
            limit: tightest.limit,
            remaining: tightest.remaining,
            retry_after,
            reset_after: tightest.reset_after,
            changed: decisions.iter().any(|d| d.changed) && allowed,
        }
    }
}

/// Integer ceiling division on `u128`; `d` must not be zero.
#[inline]
pub(crate) fn div_ceil_u128(n: u128, d: u128) -> u128 {
    n.div_ceil(d)
}

/// Narrows a value known to be bounded by the module's limits to `u64`,
/// saturating instead of wrapping if an invariant were ever broken.
#[inline]
pub(crate) fn to_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        allowed: bool,
        limit: u64,
        remaining: u64,
        retry: Option<Micros>,
        reset: Micros,
    ) -> Decision {
        Decision {
            allowed,
            limit,
            remaining,
            retry_after: retry,
            reset_after: reset,
            changed: allowed,
        }
    }

    #[test]
    fn combine_takes_the_tightest_limit_and_the_longest_wait() {
        let c = Decision::combine(&[
            d(true, 10, 4, Some(0), 900),
            d(true, 1000, 2, Some(0), 5000),
        ]);
        assert_eq!(c, d(true, 1000, 2, Some(0), 5000));

        let c = Decision::combine(&[
            d(false, 10, 0, Some(300), 900),
            d(true, 1000, 7, Some(0), 5000),
            d(false, 5, 0, Some(700), 400),
        ]);
        assert!(!c.allowed && !c.changed);
        assert_eq!(c.retry_after, Some(700));
        assert_eq!((c.limit, c.remaining, c.reset_after), (10, 0, 900));

        let c = Decision::combine(&[d(false, 10, 0, Some(300), 900), d(false, 3, 3, None, 0)]);
        assert_eq!(c.retry_after, None);

        // Allowed: a leaky bucket's queueing delay is the wait to report.
        let c = Decision::combine(&[d(true, 10, 4, Some(0), 900), d(true, 5, 3, Some(250), 800)]);
        assert_eq!(c.retry_after, Some(250));
    }
}
