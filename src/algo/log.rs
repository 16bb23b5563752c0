//! Sliding window log, exact.
//!
//! The state is the timestamps of the accepted units still inside the
//! window, oldest first, one entry per unit (a request of cost `n` adds `n`
//! entries). A unit accepted at `t` counts while `now < t + W`. Since at most
//! `limit` units are ever inside a window, the log never holds more than
//! `limit` entries: memory is O(limit), whatever the request rate.
//!
//! A request of cost `n` fits iff the log holds at most `limit - n` entries
//! inside the window, so only the boundary between expired and live entries
//! matters; it is found by binary search, and expired entries are dropped
//! from the front when the state is written, so the amortised cost per unit
//! is O(1).

use std::collections::VecDeque;

use super::{Decision, Micros, WindowParams};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    pub params: WindowParams,
    /// Accepted units' timestamps, non-decreasing.
    pub entries: VecDeque<Micros>,
}

impl LogState {
    pub fn new(params: WindowParams) -> Self {
        LogState {
            params,
            entries: VecDeque::new(),
        }
    }

    pub fn decide(&mut self, p: &WindowParams, cost: u64, now: Micros) -> Decision {
        let w = p.window;
        // The newest entry is the latest time this limiter has seen.
        let now = match self.entries.back() {
            Some(&last) => now.max(last),
            None => now,
        };
        // Entries at or before `now - W` have left the window.
        let first_live = self.entries.partition_point(|&t| t + w <= now);
        let live = (self.entries.len() - first_live) as u64;
        // With a lowered limit only the newest `limit` entries still matter.
        let live = live.min(p.limit);
        let first_live = self.entries.len() - live as usize;

        let allowed = cost <= p.limit && live <= p.limit - cost;
        let retry_after = if allowed {
            Some(0)
        } else if cost > p.limit {
            None
        } else {
            // The oldest live entries must leave until `cost` fits: the
            // (live - (limit - cost))-th oldest one's expiry is the answer.
            let must_leave = (live - (p.limit - cost)) as usize;
            let t = self.entries[first_live + must_leave - 1];
            Some(t + w - now)
        };
        let after = if allowed { live + cost } else { live };
        let newest = if allowed && cost > 0 {
            Some(now)
        } else if live > 0 {
            self.entries.back().copied()
        } else {
            None
        };
        let empty_at = newest.map_or(now, |t| t + w);
        let changed = allowed && cost > 0;
        if changed {
            self.entries.drain(..first_live);
            self.reserve_for(after, p.limit);
            // `cost <= limit <= MAX_COUNT` and fits in the log, so this is
            // bounded by the log's own size limit.
            self.entries.extend(std::iter::repeat_n(now, cost as usize));
            self.params = *p;
        }
        Decision {
            allowed,
            limit: p.limit,
            remaining: p.limit - after,
            retry_after,
            reset_after: empty_at - now,
            changed,
        }
    }

    /// Grows the ring geometrically but never beyond `limit`, so a full log
    /// of `limit` units costs `8 * limit` bytes, not up to twice that.
    fn reserve_for(&mut self, len: u64, limit: u64) {
        let cap = self.entries.capacity() as u64;
        if len <= cap {
            return;
        }
        let target = cap.saturating_mul(2).max(len).max(4).min(limit.max(len));
        self.entries
            .reserve_exact((target - self.entries.len() as u64) as usize);
    }

    pub fn is_valid(&self) -> bool {
        self.entries.len() as u64 <= self.params.limit
            && self
                .entries
                .iter()
                .zip(self.entries.iter().skip(1))
                .all(|(a, b)| a <= b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn p(limit: u64, window: Micros) -> WindowParams {
        WindowParams { limit, window }
    }

    #[test]
    fn exact_window_boundaries() {
        let params = p(3, 10 * S);
        let mut st = LogState::new(params);
        for t in [0, 1, 2] {
            assert!(st.decide(&params, 1, t * S).allowed);
        }
        let d = st.decide(&params, 1, 5 * S);
        assert_eq!(
            (d.allowed, d.retry_after, d.reset_after),
            (false, Some(5 * S), 7 * S)
        );
        assert!(!st.decide(&params, 1, 10 * S - 1).allowed);
        let d = st.decide(&params, 1, 10 * S);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        // The expired entry was dropped: the log never exceeds the limit.
        assert_eq!(st.entries.len(), 3);
        let d = st.decide(&params, 2, 10 * S);
        assert_eq!(d.retry_after, Some(2 * S));
    }

    #[test]
    fn cost_adds_one_entry_per_unit() {
        let params = p(5, 60 * S);
        let mut st = LogState::new(params);
        assert!(st.decide(&params, 4, 0).allowed);
        assert_eq!(st.entries.len(), 4);
        let d = st.decide(&params, 2, S);
        assert_eq!(
            (d.allowed, d.remaining, d.retry_after),
            (false, 1, Some(59 * S))
        );
        let d = st.decide(&params, 6, S);
        assert_eq!(d.retry_after, None);
        let d = st.decide(&params, 0, S);
        assert_eq!((d.allowed, d.remaining, d.changed), (true, 1, false));
    }

    #[test]
    fn lowering_the_limit_keeps_the_newest_entries() {
        let big = p(5, 60 * S);
        let mut st = LogState::new(big);
        for t in 0..5 {
            st.decide(&big, 1, t * S);
        }
        let small = p(2, 60 * S);
        let d = st.decide(&small, 1, 10 * S);
        assert_eq!((d.allowed, d.retry_after), (false, Some(53 * S)));
        let d = st.decide(&small, 1, 63 * S);
        assert!(d.allowed);
        assert_eq!(st.entries, VecDeque::from([4 * S, 63 * S]));
    }

    #[test]
    fn capacity_never_exceeds_limit() {
        let params = p(1000, 3600 * S);
        let mut st = LogState::new(params);
        for t in 0..1000 {
            assert!(st.decide(&params, 1, t).allowed);
        }
        assert_eq!(st.entries.capacity(), 1000);
    }
}
