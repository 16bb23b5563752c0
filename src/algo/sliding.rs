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

use super::{div_ceil_u128, to_u64, Decision, Micros, WindowParams};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingState {
    pub params: WindowParams,
    /// Start of the current window; meaningless while both counts are zero.
    pub start: Micros,
    pub prev: u64,
    pub curr: u64,
}

impl SlidingState {
    pub fn new(params: WindowParams) -> Self {
        SlidingState {
            params,
            start: 0,
            prev: 0,
            curr: 0,
        }
    }

    /// (start, prev, curr) of the window in force at `now`. When everything
    /// has rolled out the state is the same as an absent key, whose first
    /// window opens at `now`.
    fn roll(&self, w: Micros, now: Micros) -> (Micros, u64, u64) {
        if self.prev == 0 && self.curr == 0 {
            return (now, 0, 0);
        }
        let now = now.max(self.start);
        let k = (now - self.start) / w;
        match k {
            0 => (self.start, self.prev, self.curr),
            1 if self.curr > 0 => (self.start + w, self.curr, 0),
            _ => (now, 0, 0),
        }
    }

    pub fn decide(&mut self, p: &WindowParams, cost: u64, now: Micros) -> Decision {
        let w = p.window;
        let (start, prev, curr) = self.roll(w, now);
        let now = now.max(start);
        let e = now - start;
        let w128 = w as u128;
        // prev's weighted share, scaled by W.
        let prev_part = prev as u128 * (w - e) as u128;
        let budget = p.limit as u128 * w128;
        let allowed = cost <= p.limit && prev_part + (curr as u128 + cost as u128) * w128 <= budget;
        let after = if allowed { curr + cost } else { curr };

        let retry_after = if allowed {
            Some(0)
        } else if cost > p.limit {
            None
        } else {
            Some(Self::retry(p, start, prev, curr, cost, now))
        };
        let used = prev_part + after as u128 * w128;
        let remaining = to_u64(budget.saturating_sub(used) / w128);
        let empty_at = if after > 0 {
            start + 2 * w
        } else if prev > 0 {
            start + w
        } else {
            now
        };
        let changed = allowed && cost > 0;
        if changed {
            *self = SlidingState {
                params: *p,
                start,
                prev,
                curr: after,
            };
        }
        Decision {
            allowed,
            limit: p.limit,
            remaining,
            retry_after,
            reset_after: empty_at - now,
            changed,
        }
    }

    /// Earliest wait after which `cost` (at most the limit) fits, given the
    /// request is denied at `now`.
    fn retry(
        p: &WindowParams,
        start: Micros,
        prev: u64,
        curr: u64,
        cost: u64,
        now: Micros,
    ) -> Micros {
        let w = p.window as u128;
        let limit = p.limit;
        // Inside the current window the previous window's weight shrinks
        // linearly: we need prev * (W - e) <= (limit - curr - cost) * W.
        if curr + cost <= limit && prev > 0 {
            let slack = (limit - curr - cost) as u128 * w;
            let keep = (slack / prev as u128).min(w);
            let at = start as u128 + w - keep;
            return to_u64(at).saturating_sub(now);
        }
        // Otherwise wait for the next window, where curr becomes the previous
        // one: curr * (W - e') <= (limit - cost) * W.
        let next = start as u128 + w;
        let wait_in_next = if curr == 0 {
            0
        } else {
            let slack = (limit - cost) as u128 * w;
            w - (slack / curr as u128).min(w)
        };
        to_u64(next + wait_in_next).saturating_sub(now)
    }

    pub fn is_valid(&self) -> bool {
        // `prev` may exceed a limit lowered since it was counted: it only fades out.
        self.prev <= super::MAX_COUNT && self.curr <= self.params.limit
    }
}

/// Units the estimate attributes to the sliding window at `now`, rounded up;
/// exposed for the property tests' error-bound check.
pub fn estimate(state: &SlidingState, now: Micros) -> u64 {
    let w = state.params.window;
    let (start, prev, curr) = state.roll(w, now);
    let e = now.max(start) - start;
    curr + to_u64(div_ceil_u128(prev as u128 * (w - e) as u128, w as u128))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn p(limit: u64, window: Micros) -> WindowParams {
        WindowParams { limit, window }
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
            let mut probe = st.clone();
            let d = probe.decide(&params, 3, now);
            if d.allowed {
                continue;
            }
            let wait = d.retry_after.unwrap();
            assert!(
                st.clone().decide(&params, 3, now + wait).allowed,
                "now={now}"
            );
            assert!(
                !st.clone().decide(&params, 3, now + wait - 1).allowed,
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
        assert_eq!(st.start, 26 * S);
    }

    #[test]
    fn cost_above_limit_never_fits() {
        let params = p(2, 10 * S);
        let mut st = SlidingState::new(params);
        let d = st.decide(&params, 3, 0);
        assert_eq!((d.allowed, d.retry_after, d.changed), (false, None, false));
    }
}
