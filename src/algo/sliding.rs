//! Sliding window counter (the "weighted previous window" estimate).
//!
//! Time is cut into consecutive windows of length `W`, the first one opening
//! at the first request. The number of units in the sliding window ending at
//! `now` is estimated as `curr + prev * (W - e) / W`, where `e` is the time
//! elapsed in the current window: the previous window's units are assumed to
//! have been spread evenly over it. The comparison is done exactly, on
//! `prev * (W - e) + curr * W` against `limit * W`, so there is no rounding.
//!
//! Error bound: the estimate equals the exact sliding count whenever the
//! previous window's units were evenly spread; otherwise the true number of
//! units admitted in any window of length `W` is at most `2 * limit` (all of
//! one window's units at its very end, then a full window's worth), and the
//! count in any *fixed* window never exceeds `limit`.

use std::ffi::CStr;

use super::limiter::{Algo, Argument, Decoder, Encoder};
use super::{div_ceil_u128, to_u64, Decision, Duration, Instant, WindowParams};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingState {
    pub params: WindowParams,
    /// Start of the current window; meaningless while both counts are zero.
    pub start: Instant,
    pub prev: u64,
    pub curr: u64,
}

/// The window in force at some instant.
struct Rolled {
    start: Instant,
    prev: u64,
    curr: u64,
}

impl SlidingState {
    pub(crate) fn new(params: WindowParams) -> Self {
        SlidingState {
            params,
            start: Instant::EPOCH,
            prev: 0,
            curr: 0,
        }
    }

    /// The window in force at `now`. When everything has rolled out the
    /// state is the same as an absent key, whose first window opens at `now`.
    fn roll(&self, w: Duration, now: Instant) -> Rolled {
        let fresh = Rolled {
            start: now,
            prev: 0,
            curr: 0,
        };
        if self.prev == 0 && self.curr == 0 {
            return fresh;
        }
        let now = now.max(self.start);
        match (now - self.start).as_micros() / w.as_micros() {
            0 => Rolled {
                start: self.start,
                prev: self.prev,
                curr: self.curr,
            },
            1 if self.curr > 0 => Rolled {
                start: self.start + w,
                prev: self.curr,
                curr: 0,
            },
            _ => fresh,
        }
    }

    /// Decides a request and returns the state it leaves when it writes:
    /// spent when allowed with a cost, else the same state under `p`.
    pub(crate) fn evaluate(
        &self,
        p: &WindowParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, SlidingState) {
        let limit = p.limit.get();
        let w = p.window.duration();
        let r = self.roll(w, now);
        let now = now.max(r.start);
        let e = (now - r.start).as_micros();
        let w128 = p.window.wide();
        let prev_part = r.prev as u128 * (w.as_micros() - e) as u128;
        let budget = p.limit.wide() * w128;
        let allowed = cost <= limit && prev_part + (r.curr as u128 + cost as u128) * w128 <= budget;
        let after = if allowed { r.curr + cost } else { r.curr };

        let retry_after = if allowed {
            Some(Duration::ZERO)
        } else if cost > limit {
            None
        } else {
            Some(Self::retry(p, &r, cost, now))
        };
        let used = prev_part + after as u128 * w128;
        let remaining = to_u64(budget.saturating_sub(used) / w128);
        // Units fade out of the estimate a window after their own window
        // closed.
        let empty_at = if after > 0 {
            r.start + w + w
        } else if r.prev > 0 {
            r.start + w
        } else {
            now
        };
        let next = if allowed && cost > 0 {
            SlidingState {
                params: *p,
                start: r.start,
                prev: r.prev,
                curr: after,
            }
        } else {
            SlidingState {
                params: *p,
                ..*self
            }
        };
        let d = Decision {
            allowed,
            limit,
            remaining,
            retry_after,
            reset_after: empty_at - now,
            at: now,
        };
        (d, next)
    }

    /// Gives back up to `n` units of the current window at `now`, never of
    /// the previous one (its units are already fading); answers how many.
    pub(crate) fn refund(&mut self, n: u64, now: Instant) -> u64 {
        let w = self.params.window.duration();
        let now = now.max(self.start);
        if self.curr == 0 || now - self.start >= w {
            return 0;
        }
        let given = n.min(self.curr);
        self.curr -= given;
        given
    }

    /// Exact time until `cost` more units fit (`cost <= limit`).
    fn retry(p: &WindowParams, r: &Rolled, cost: u64, now: Instant) -> Duration {
        let w = p.window.wide();
        let limit = p.limit.get();
        let start = r.start.as_micros() as u128;
        // Still in the current window: wait until enough of the previous
        // window's weight has slid out.
        if r.curr + cost <= limit && r.prev > 0 {
            let slack = (limit - r.curr - cost) as u128 * w;
            let keep = (slack / r.prev as u128).min(w);
            let at = start + w - keep;
            return Duration::capped(at.saturating_sub(now.as_micros() as u128));
        }
        // Otherwise the current window's units must fade as the previous
        // ones in the next window.
        let next = start + w;
        let wait_in_next = if r.curr == 0 {
            0
        } else {
            let slack = (limit - cost) as u128 * w;
            w - (slack / r.curr as u128).min(w)
        };
        Duration::capped((next + wait_in_next).saturating_sub(now.as_micros() as u128))
    }

    pub(crate) fn is_valid(&self) -> bool {
        // Both counts may exceed a limit lowered since they were counted:
        // they only fade out.
        self.prev <= super::MAX_COUNT && self.curr <= super::MAX_COUNT
    }
}

/// The sliding window counter (`RL.SLIDING`).
pub struct Sliding;

impl Algo for Sliding {
    const SUMMARY: &'static CStr =
        c"Sliding window counter: the current window plus the previous one weighted by its overlap.";
    const COMPLEXITY: &'static CStr = c"O(1)";

    type Params = WindowParams;
    type State = SlidingState;
    type Next = SlidingState;

    fn new(p: WindowParams) -> SlidingState {
        SlidingState::new(p)
    }
    fn params(s: &SlidingState) -> WindowParams {
        s.params
    }
    fn limit(p: &WindowParams) -> u64 {
        p.limit.get()
    }
    #[inline]
    fn evaluate(
        s: &SlidingState,
        p: &WindowParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, SlidingState) {
        s.evaluate(p, cost, now)
    }
    #[inline]
    fn apply(s: &mut SlidingState, next: &SlidingState) {
        *s = *next;
    }
    fn refund(s: &SlidingState, n: u64, now: Instant) -> (u64, SlidingState) {
        let mut next = *s;
        let given = next.refund(n, now);
        (given, next)
    }
    fn describe(s: &SlidingState, field: &mut impl FnMut(&'static str, i128)) {
        field("limit", s.params.limit.get().into());
        field("window_us", s.params.window.micros().into());
        field("window_start_us", s.start.as_micros().into());
        field("previous", s.prev.into());
        field("current", s.curr.into());
    }
    fn is_valid(s: &SlidingState) -> bool {
        s.is_valid()
    }
    fn from_window(w: WindowParams) -> Option<WindowParams> {
        Some(w)
    }

    fn arguments(p: &WindowParams, out: &mut impl FnMut(Argument)) {
        out(Argument::Count(p.limit.get()));
        out(Argument::Duration(p.window.duration()));
    }

    /// Limit, window in µs.
    fn write_params(p: &WindowParams, w: &mut impl Encoder) {
        w.u64(p.limit.get());
        w.u64(p.window.micros());
    }

    fn read_params<D: Decoder>(_tag: u8, r: &mut D) -> Result<WindowParams, D::Error> {
        Ok(WindowParams {
            limit: r.count()?,
            window: r.period()?,
        })
    }

    /// The current window's start, the previous window's count, the
    /// current one's.
    fn write_state(s: &SlidingState, w: &mut impl Encoder) {
        w.time(s.start);
        w.u64(s.prev);
        w.u64(s.curr);
    }

    fn read_state<D: Decoder>(params: WindowParams, r: &mut D) -> Result<SlidingState, D::Error> {
        Ok(SlidingState {
            params,
            start: r.time()?,
            prev: r.u64()?,
            curr: r.u64()?,
        })
    }
}

/// Units the estimate attributes to the sliding window at `now`, rounded up;
/// exposed for the property tests' error-bound check.
pub fn estimate(state: &SlidingState, now: Instant) -> u64 {
    let w = state.params.window;
    let r = state.roll(w.duration(), now);
    let e = (now.max(r.start) - r.start).as_micros();
    r.curr
        + to_u64(div_ceil_u128(
            r.prev as u128 * (w.micros() - e) as u128,
            w.wide(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::{step, t, window as p, Raw};

    const S: u64 = 1_000_000;

    impl SlidingState {
        fn decide(&mut self, p: &WindowParams, cost: u64, now: u64) -> Raw {
            step(
                self,
                |s| s.params,
                *p,
                cost,
                |s| s.evaluate(p, cost, t(now)),
            )
        }
    }

    #[test]
    fn previous_window_weight_decays_linearly() {
        let params = p(10, 10 * S);
        let mut st = SlidingState::new(params);
        // Window [0, 10s): 10 units.
        let d = st.decide(&params, 10, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 0, 20 * S));
        let d = st.decide(&params, 1, 5 * S);
        assert_eq!((d.allowed, d.retry_after), (false, Some(6 * S)));
        // At 11s: prev=10 weighted 0.9 -> 9; one unit fits.
        let d = st.decide(&params, 1, 11 * S);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        // Now curr=1, prev=10 at e=1s: 9 + 1 = 10. Next unit needs prev
        // weight <= 8, i.e. e >= 2s.
        let d = st.decide(&params, 1, 11 * S + 500_000);
        assert_eq!(d.retry_after, Some(500_000));
        let d = st.decide(&params, 1, 12 * S);
        assert!(d.allowed);
    }

    #[test]
    fn retry_after_is_exact() {
        let params = p(7, 3 * S);
        let mut st = SlidingState::new(params);
        st.decide(&params, 5, 0);
        st.decide(&params, 2, 2 * S);
        // In window 2 (3s..6s) prev=7.
        for now in [3 * S, 3 * S + 1, 4 * S + 123_457, 7 * S] {
            let mut probe = st;
            let d = probe.decide(&params, 3, now);
            if d.allowed {
                continue;
            }
            let wait = d.retry_after.unwrap();
            assert!({ st }.decide(&params, 3, now + wait).allowed, "now={now}");
            assert!(
                !{ st }.decide(&params, 3, now + wait - 1).allowed,
                "now={now}"
            );
        }
    }

    #[test]
    fn everything_rolls_out_after_two_windows() {
        let params = p(2, 10 * S);
        let mut st = SlidingState::new(params);
        st.decide(&params, 2, 5 * S);
        let d = st.decide(&params, 0, 25 * S);
        assert_eq!((d.remaining, d.reset_after), (2, 0));
        // A new first window opens at the next request.
        let d = st.decide(&params, 1, 26 * S);
        assert_eq!(d.reset_after, 20 * S);
        assert_eq!(st.start, t(26 * S));
    }

    #[test]
    fn cost_above_limit_never_fits() {
        let params = p(2, 10 * S);
        let mut st = SlidingState::new(params);
        let d = st.decide(&params, 3, 0);
        assert_eq!((d.allowed, d.retry_after, d.changed), (false, None, false));
    }
}
