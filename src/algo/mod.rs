//! The rate-limit algorithms, as pure functions of (state, parameters, cost, now).
//!
//! Nothing in here knows about Redis. Every algorithm is a state type that
//! answers in two steps, in the style of governor's "decide on a snapshot,
//! then install":
//! - `evaluate(&self, params, cost, now)` decides from a borrowed state and
//!   returns the [`Decision`] plus the next state (small and `Copy`, or for
//!   the log a description of the change), without touching anything;
//! - `apply(next)` installs it, which the caller does only when the request
//!   writes (see [`Verdict::writes`]).
//!
//! A refund takes the same two steps (`evaluate_refund`, then `apply` when
//! it gives something back), and so do leases ([`LeaseState::evaluate`]
//! answers and describes the [`LeaseChange`], [`LeaseState::apply`]
//! installs it), so a replayed refund or lease op is checked on the
//! snapshot before anything changes. The algorithms are listed once, in
//! [`limiter`]'s table; each implements [`Algo`].
//!
//! Whatever writes, a decision, a refund or a lease op (and its replay),
//! installs through one step, [`value::install`]: the [`value::Change`] the
//! evaluation decided on the key's snapshot, carried out on the value the
//! key holds (in place, or a new value to store: a block that starts or is
//! lifted, a key that held nothing), so the Redis layer only stores,
//! expires and signals.
//!
//! So a denial, a peek or one limit of a denied `RL.ALL` never copies or
//! allocates a state, and a missing key is evaluated as a fresh state on the
//! stack.
//!
//! Time and quotas are typed ([`units`]): microsecond [`Instant`]s and
//! [`Duration`]s, positive [`Count`]s and [`Period`]s. All products are done
//! in `u128` on values bounded by those types, so none can overflow.

pub mod bucket;
pub mod calendar;
pub(crate) mod fixed;
pub mod lease;
pub mod limiter;
pub(crate) mod log;
pub mod sliding;
pub(crate) mod units;
pub mod value;

pub use bucket::{BucketParams, BucketState, GcraParams};
pub use calendar::{window_at, Months, Offset, Span, MAX_MONTHS};
pub use fixed::{FixedParams, FixedState, FixedWindow, MAX_ALIGNED_US};
pub use lease::{
    Acquired, Lease, LeaseAction, LeaseChange, LeaseState, LeaseVerdict, MAX_LEASES,
    MAX_LEASE_ID_LEN,
};
pub use limiter::{Algo, Algorithm, Kind, Limiter, Mismatch, Next, Params, Refund, Verdict};
pub use log::LogState;
pub use sliding::SlidingState;
pub(crate) use units::{Burst, MAX_LOG_ENTRIES, MAX_WAIT_US};
pub use units::{
    Count, Duration, Instant, Period, UnixMs, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US,
};
pub use value::{BlockChange, Blocked, Guarded, Value};

/// Parameters shared by the three window algorithms: at most `limit` units in
/// any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowParams {
    pub limit: Count,
    pub window: Period,
}

impl WindowParams {
    /// From raw figures (µs for the window), if they are in bounds.
    pub fn new(limit: u64, window_us: u64) -> Option<WindowParams> {
        Some(WindowParams {
            limit: Count::new(limit)?,
            window: Period::from_micros(window_us)?,
        })
    }
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
    pub retry_after: Option<Duration>,
    /// Time from `at` until the limiter is back to its initial state, as it
    /// stands after this request.
    pub reset_after: Duration,
    /// The instant the decision was made at: the request's time, or the
    /// latest time the limiter has seen if that is later (a clock that went
    /// back never makes a limiter forget).
    pub at: Instant,
}

impl Decision {
    /// When the limiter, as it stands after this request, is equivalent to
    /// an absent one.
    #[cfg(test)]
    pub(crate) fn empty_at(&self) -> Instant {
        self.at + self.reset_after
    }

    /// How a denial is answered in shadow mode: allowed, with the real
    /// `remaining` and reset, and no wait.
    pub(crate) fn shadowed(&self) -> Decision {
        Decision {
            allowed: true,
            retry_after: Some(Duration::ZERO),
            ..*self
        }
    }

    /// The answer of several limits decided together (`RL.ALL`): allowed
    /// only if all allow; limit, remaining and reset of the tightest one (the
    /// least remaining, then the longest reset); the longest wait, "never"
    /// outweighing any wait. `None` for no decisions.
    pub(crate) fn combine(decisions: &[Decision]) -> Option<Decision> {
        let allowed = decisions.iter().all(|d| d.allowed);
        let tightest = decisions.iter().min_by(|a, b| {
            a.remaining
                .cmp(&b.remaining)
                .then(b.reset_after.cmp(&a.reset_after))
        })?;
        // Denied: only the denying limits say how long to wait; allowed: the
        // waits are the leaky buckets' queueing delays.
        let mut waits = decisions.iter().filter(|d| allowed || !d.allowed);
        let retry_after = waits.try_fold(Duration::ZERO, |acc, d| Some(acc.max(d.retry_after?)));
        Some(Decision {
            allowed,
            retry_after,
            ..*tightest
        })
    }
}

/// The rule for when a request writes its limiter: it spends something, or
/// (with a cost) it carries other parameters than the stored ones; see
/// [`Verdict::writes`].
#[inline]
pub(crate) fn writes(allowed: bool, cost: u64, other_params: bool) -> bool {
    cost > 0 && (allowed || other_params)
}

/// Integer ceiling division on `u128`; `d` must not be zero.
#[inline]
pub(crate) fn div_ceil_u128(n: u128, d: u128) -> u128 {
    n.div_ceil(d)
}

/// Narrows a figure to `i64` for a reply, saturating (every figure the
/// module reports is bounded far below `i64::MAX`).
#[inline]
pub(crate) fn saturating_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Narrows a count known to be bounded by the module's limits to `u64`.
#[inline]
pub(crate) fn to_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(allowed: bool, limit: u64, remaining: u64, retry: Option<u64>, reset: u64) -> Decision {
        Decision {
            allowed,
            limit,
            remaining,
            retry_after: retry.map(Duration::from_micros),
            reset_after: Duration::from_micros(reset),
            at: Instant::EPOCH,
        }
    }

    #[test]
    fn combine_takes_the_tightest_limit_and_the_longest_wait() {
        let c = Decision::combine(&[
            d(true, 10, 4, Some(0), 900),
            d(true, 1000, 2, Some(0), 5000),
        ]);
        assert_eq!(c, Some(d(true, 1000, 2, Some(0), 5000)));

        let c = Decision::combine(&[
            d(false, 10, 0, Some(300), 900),
            d(true, 1000, 7, Some(0), 5000),
            d(false, 5, 0, Some(700), 400),
        ])
        .unwrap();
        assert!(!c.allowed);
        assert_eq!(c.retry_after, Some(Duration::from_micros(700)));
        assert_eq!(
            (c.limit, c.remaining, c.reset_after.as_micros()),
            (10, 0, 900)
        );

        let c = Decision::combine(&[d(false, 10, 0, Some(300), 900), d(false, 3, 3, None, 0)]);
        assert_eq!(c.unwrap().retry_after, None);

        // Allowed: a leaky bucket's queueing delay is the wait to report.
        let c = Decision::combine(&[d(true, 10, 4, Some(0), 900), d(true, 5, 3, Some(250), 800)]);
        assert_eq!(c.unwrap().retry_after, Some(Duration::from_micros(250)));
        assert_eq!(Decision::combine(&[]), None);
    }
}

/// What the unit tables of each algorithm compare: a decision in raw µs, and
/// whether the request wrote the state (by the module's rule,
/// [`Verdict::writes`]).
#[cfg(test)]
pub(crate) mod testing {
    use super::{Decision, Instant};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Raw {
        pub allowed: bool,
        pub limit: u64,
        pub remaining: u64,
        pub retry_after: Option<u64>,
        pub reset_after: u64,
        pub changed: bool,
    }

    pub fn raw(d: &Decision, changed: bool) -> Raw {
        Raw {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            retry_after: d.retry_after.map(|r| r.as_micros()),
            reset_after: d.reset_after.as_micros(),
            changed,
        }
    }

    pub fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    /// Window parameters from raw figures (µs), known to be in bounds.
    pub fn window(limit: u64, window_us: u64) -> super::WindowParams {
        super::WindowParams::new(limit, window_us).unwrap()
    }

    /// One parameter set per algorithm, window ones from `w`, bucket ones
    /// from `b` (GCRA's capacity `b.capacity`).
    pub fn every_algorithm(w: super::WindowParams, b: super::BucketParams) -> [super::Params; 6] {
        use super::Params;
        [
            Params::Fixed(w.into()),
            Params::Sliding(w),
            Params::Log(w),
            Params::Token(b),
            Params::Leaky(b),
            Params::Gcra(super::GcraParams::of_bucket(&b)),
        ]
    }

    /// Evaluates, then installs when the request writes, like the module.
    pub fn step<S: Copy, P: PartialEq>(
        state: &mut S,
        params_of: impl Fn(&S) -> P,
        p: P,
        cost: u64,
        eval: impl Fn(&S) -> (Decision, S),
    ) -> Raw {
        let (d, next) = eval(state);
        let changed = super::writes(d.allowed, cost, params_of(state) != p);
        if changed {
            *state = next;
        }
        raw(&d, changed)
    }
}
