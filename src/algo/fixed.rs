//! Fixed window counter.
//!
//! A window opens at the first request after the previous one has closed
//! (like the classic `INCR` + `EXPIRE` recipe) and counts at most `limit`
//! units. Any instant inside one window gives the same decision, so a clock
//! that steps back inside the window changes nothing; one that steps back
//! before the window's start is treated as the start.

use super::{Decision, Duration, Instant, WindowParams};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedState {
    pub params: WindowParams,
    /// Start of the current window; meaningless while `count == 0`.
    pub start: Instant,
    pub count: u64,
}

impl FixedState {
    pub fn new(params: WindowParams) -> Self {
        FixedState {
            params,
            start: Instant::EPOCH,
            count: 0,
        }
    }

    /// Start and count of the window in force at `now` (a new, empty window
    /// starting at `now` when the stored one has closed).
    fn window_at(&self, p: &WindowParams, now: Instant) -> (Instant, u64) {
        if self.count > 0 {
            let now = now.max(self.start);
            if now < self.start + p.window.duration() {
                return (self.start, self.count);
            }
        }
        (now, 0)
    }

    /// Decides a request and returns the state it leaves when it writes:
    /// spent when allowed with a cost, else the same state under `p`.
    pub fn evaluate(&self, p: &WindowParams, cost: u64, now: Instant) -> (Decision, FixedState) {
        let limit = p.limit.get();
        let (start, count) = self.window_at(p, now);
        let now = now.max(start);
        let end = start + p.window.duration();
        let allowed = cost <= limit && count <= limit - cost;
        let after = if allowed { count + cost } else { count };
        let retry_after = if allowed {
            Some(Duration::ZERO)
        } else if cost > limit {
            None
        } else {
            Some(end - now)
        };
        let next = if allowed && cost > 0 {
            FixedState {
                params: *p,
                start,
                count: after,
            }
        } else {
            FixedState {
                params: *p,
                ..*self
            }
        };
        let d = Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(after),
            retry_after,
            reset_after: if after > 0 { end - now } else { Duration::ZERO },
            at: now,
        };
        (d, next)
    }

    /// Gives back up to `n` units of the window in force at `now`, never
    /// into a closed one; answers how many. A window emptied this way is as
    /// if never opened: the next request opens a new one.
    pub fn refund(&mut self, n: u64, now: Instant) -> u64 {
        let (_, count) = self.window_at(&self.params, now);
        let given = n.min(count);
        // A closed window reads as empty: only an open one is written.
        if given > 0 {
            self.count -= given;
        }
        given
    }

    /// Whether the stored fields satisfy the invariants `evaluate` keeps.
    /// The count may exceed the limit: a denied request that lowered the
    /// limit keeps the count it found, so raising the limit again later
    /// grants nothing that was already spent.
    pub fn is_valid(&self) -> bool {
        self.count <= super::MAX_COUNT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::{step, t, window as p, Raw};
    use crate::algo::{MAX_COUNT, MAX_DURATION_US, MAX_TIME_US};

    const S: u64 = 1_000_000;

    impl FixedState {
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

    /// (now, cost, allowed, remaining, retry_after, reset_after)
    type Row = (u64, u64, bool, u64, Option<u64>, u64);

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
        let before = st;
        let d = st.decide(&params, 1, S);
        assert!(!d.allowed && !d.changed);
        assert!(!st.decide(&params, 0, S).changed);
        assert_eq!(st, before);
    }

    #[test]
    fn a_denial_under_new_parameters_persists_them() {
        let mut st = FixedState::new(p(1, S));
        assert!(st.decide(&p(1, S), 1, 0).changed);
        let d = st.decide(&p(1, 3600 * S), 1, S / 2);
        assert!(!d.allowed && d.changed);
        assert_eq!(d.retry_after, Some(3600 * S - S / 2));
        assert_eq!((st.params, st.count, st.start), (p(1, 3600 * S), 1, t(0)));
        // A peek never writes, even with other parameters.
        assert!(!st.decide(&p(1, 2 * S), 0, S).changed);
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
        let params = p(MAX_COUNT, MAX_DURATION_US);
        let mut st = FixedState::new(params);
        let now = MAX_TIME_US;
        let d = st.decide(&params, MAX_COUNT, now);
        assert!(d.allowed);
        assert_eq!(d.reset_after, MAX_DURATION_US);
        let d = st.decide(&params, 1, now);
        assert_eq!(d.retry_after, Some(MAX_DURATION_US));
    }
}
