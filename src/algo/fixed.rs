//! Fixed window counter.
//!
//! A window opens at the first request after the previous one has closed
//! (like the classic `INCR` + `EXPIRE` recipe) and counts at most `limit`
//! units. Any instant inside one window gives the same decision, so a clock
//! that steps back inside the window changes nothing; one that steps back
//! before the window's start is treated as the start.

use super::{Decision, Micros, WindowParams};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedState {
    pub params: WindowParams,
    /// Start of the current window; meaningless while `count == 0`.
    pub start: Micros,
    pub count: u64,
}

impl FixedState {
    pub fn new(params: WindowParams) -> Self {
        FixedState {
            params,
            start: 0,
            count: 0,
        }
    }

    /// Start and count of the window in force at `now` (a new, empty window
    /// starting at `now` when the stored one has closed).
    fn window_at(&self, p: &WindowParams, now: Micros) -> (Micros, u64) {
        if self.count > 0 {
            let now = now.max(self.start);
            if now < self.start + p.window {
                return (self.start, self.count);
            }
        }
        (now, 0)
    }

    pub fn decide(&mut self, p: &WindowParams, cost: u64, now: Micros) -> Decision {
        let (start, count) = self.window_at(p, now);
        let now = now.max(start);
        let end = start + p.window;
        let allowed = cost <= p.limit && count <= p.limit - cost;
        let after = if allowed { count + cost } else { count };
        let retry_after = if allowed {
            Some(0)
        } else if cost > p.limit {
            None
        } else {
            Some(end - now)
        };
        let changed = allowed && cost > 0;
        if changed {
            *self = FixedState {
                params: *p,
                start,
                count: after,
            };
        }
        Decision {
            allowed,
            limit: p.limit,
            remaining: p.limit.saturating_sub(after),
            retry_after,
            reset_after: if after > 0 { end - now } else { 0 },
            changed,
        }
    }

    /// Whether the stored fields satisfy the invariants `decide` keeps.
    pub fn is_valid(&self) -> bool {
        self.count <= self.params.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn p(limit: u64, window: Micros) -> WindowParams {
        WindowParams { limit, window }
    }

    /// (now, cost, allowed, remaining, retry_after, reset_after)
    type Row = (Micros, u64, bool, u64, Option<Micros>, Micros);

    fn run(params: WindowParams, rows: &[Row]) -> FixedState {
        let mut st = FixedState::new(params);
        for (i, &(now, cost, allowed, remaining, retry, reset)) in rows.iter().enumerate() {
            let d = st.decide(&params, cost, now);
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after, d.reset_after),
                (allowed, remaining, retry, reset),
                "row {i}: now={now} cost={cost}"
            );
        }
        st
    }

    #[test]
    fn counts_exactly_to_the_limit_then_resets_at_window_end() {
        run(
            p(3, 10 * S),
            &[
                (100 * S, 1, true, 2, Some(0), 10 * S),
                (101 * S, 1, true, 1, Some(0), 9 * S),
                (102 * S, 1, true, 0, Some(0), 8 * S),
                (103 * S, 1, false, 0, Some(7 * S), 7 * S),
                (110 * S - 1, 1, false, 0, Some(1), 1),
                (110 * S, 1, true, 2, Some(0), 10 * S),
            ],
        );
    }

    #[test]
    fn cost_and_peek() {
        let st = run(
            p(10, 60 * S),
            &[
                (0, 0, true, 10, Some(0), 0),
                (S, 7, true, 3, Some(0), 60 * S),
                (2 * S, 4, false, 3, Some(59 * S), 59 * S),
                (2 * S, 0, true, 3, Some(0), 59 * S),
                (3 * S, 11, false, 3, None, 58 * S),
                (3 * S, 3, true, 0, Some(0), 58 * S),
            ],
        );
        assert_eq!(st.count, 10);
    }

    #[test]
    fn denied_and_peek_change_nothing() {
        let params = p(1, 10 * S);
        let mut st = FixedState::new(params);
        assert!(st.decide(&params, 1, 0).changed);
        let before = st.clone();
        let d = st.decide(&params, 1, S);
        assert!(!d.allowed && !d.changed);
        assert!(!st.decide(&params, 0, S).changed);
        assert_eq!(st, before);
    }

    #[test]
    fn clock_going_back_is_treated_as_the_window_start() {
        let params = p(2, 10 * S);
        let mut st = FixedState::new(params);
        st.decide(&params, 1, 50 * S);
        let d = st.decide(&params, 1, 40 * S);
        assert_eq!((d.allowed, d.reset_after), (true, 10 * S));
        assert!(!st.decide(&params, 1, 45 * S).allowed);
    }

    #[test]
    fn new_parameters_apply_to_the_current_window() {
        let small = p(2, 10 * S);
        let big = p(5, 10 * S);
        let mut st = FixedState::new(small);
        st.decide(&small, 2, 0);
        assert!(!st.decide(&small, 1, S).allowed);
        let d = st.decide(&big, 1, S);
        assert_eq!((d.allowed, d.remaining), (true, 2));
        assert_eq!(st.params, big);
        // A shorter window closes the current one earlier.
        let short = p(5, 2 * S);
        let d = st.decide(&short, 1, 2 * S);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 4, 2 * S));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let params = p(super::super::MAX_COUNT, super::super::MAX_DURATION_US);
        let mut st = FixedState::new(params);
        let now = super::super::MAX_TIME_US;
        let d = st.decide(&params, super::super::MAX_COUNT, now);
        assert!(d.allowed);
        assert_eq!(d.reset_after, super::super::MAX_DURATION_US);
        let d = st.decide(&params, 1, now);
        assert_eq!(d.retry_after, Some(super::super::MAX_DURATION_US));
    }
}
