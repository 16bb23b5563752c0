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

use std::ffi::CStr;

use super::limiter::{Algo, Argument, Decoder, Encoder};
use std::collections::VecDeque;

use super::{Decision, Duration, Instant, WindowParams};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    pub(crate) params: WindowParams,
    /// Times of the accepted units, oldest first.
    pub entries: VecDeque<Instant>,
}

/// How a write changes a log: drop the oldest `drop` entries (expired) and
/// the newest `pop` (refunded), then log `push` units at `at`, under
/// `params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogNext {
    pub(crate) params: WindowParams,
    pub(crate) drop: usize,
    pub(crate) pop: usize,
    pub(crate) push: u64,
    pub(crate) at: Instant,
}

impl LogState {
    pub fn new(params: WindowParams) -> Self {
        LogState {
            params,
            entries: VecDeque::new(),
        }
    }

    /// Decides a request and returns the change it makes when it writes:
    /// spent when allowed with a cost, else only the parameters change.
    pub(crate) fn evaluate(
        &self,
        p: &WindowParams,
        cost: u64,
        now: Instant,
    ) -> (Decision, LogNext) {
        let limit = p.limit.get();
        let w = p.window.duration();
        // Entries are never in the future of the log's own time: a clock
        // that went back is treated as the newest entry's time.
        let now = match self.entries.back() {
            Some(&last) => now.max(last),
            None => now,
        };
        let expired = self.entries.partition_point(|&t| t + w <= now);
        // Under a lowered limit only the newest `limit` entries count; the
        // others stay, so raising the limit again grants nothing that was
        // already spent.
        let live = ((self.entries.len() - expired) as u64).min(limit);
        let first_live = self.entries.len() - live as usize;

        let allowed = cost <= limit && live <= limit - cost;
        let retry_after = if allowed {
            Some(Duration::ZERO)
        } else if cost > limit {
            None
        } else {
            // The entry whose expiry makes room for `cost` more units.
            let must_leave = (live - (limit - cost)) as usize;
            let t = self.entries[first_live + must_leave - 1];
            Some(t + w - now)
        };
        let spends = allowed && cost > 0;
        let push = if spends { cost } else { 0 };
        let newest = if push > 0 {
            Some(now)
        } else if live > 0 {
            self.entries.back().copied()
        } else {
            None
        };
        let empty_at = newest.map_or(now, |t| t + w);
        let d = Decision {
            allowed,
            limit,
            remaining: limit - (live + push),
            retry_after,
            reset_after: empty_at - now,
            at: now,
        };
        let next = LogNext {
            params: *p,
            // Entries expired under `p` may still count under other
            // parameters: only a spending request drops them.
            drop: if spends { expired } else { 0 },
            pop: 0,
            push,
            at: now,
        };
        (d, next)
    }

    pub(crate) fn apply(&mut self, next: &LogNext) {
        let drop = next.drop.min(self.entries.len());
        self.entries.drain(..drop);
        let pop = next.pop.min(self.entries.len());
        self.entries.truncate(self.entries.len() - pop);
        let after = self.entries.len() as u64 + next.push;
        self.reserve_for(after, next.params.limit.get());
        // `push <= limit`, which the parser bounds by `log-max`.
        self.entries
            .extend(std::iter::repeat_n(next.at, next.push as usize));
        self.params = next.params;
    }

    /// Removes up to `n` of the newest entries still counting at `now` (under
    /// a lowered limit, only the newest `limit` count); answers how many.
    /// Decided on the log as it stands: answers how many, and the change
    /// that gives them back.
    pub(crate) fn refund(&self, n: u64, now: Instant) -> (u64, LogNext) {
        let w = self.params.window.duration();
        let given = match self.entries.back() {
            Some(&last) => {
                let now = now.max(last);
                let expired = self.entries.partition_point(|&t| t + w <= now);
                let live = ((self.entries.len() - expired) as u64).min(self.params.limit.get());
                n.min(live)
            }
            None => 0,
        };
        let next = LogNext {
            params: self.params,
            drop: 0,
            // At most the entries held.
            pop: given as usize,
            push: 0,
            at: now,
        };
        (given, next)
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

    pub(crate) fn is_valid(&self) -> bool {
        self.entries.len() as u64 <= super::MAX_LOG_ENTRIES
            && self
                .entries
                .iter()
                .zip(self.entries.iter().skip(1))
                .all(|(a, b)| a <= b)
    }
}

/// The sliding log (`RL.LOG`).
pub struct Log;

impl Algo for Log {
    const SUMMARY: &'static CStr =
        c"Sliding window log: exactly at most limit units in any window.";
    const COMPLEXITY: &'static CStr =
        c"O(log N) where N is the limit, plus O(M) where M is the cost when allowed";

    type Params = WindowParams;
    type State = LogState;
    type Next = LogNext;

    fn new(p: WindowParams) -> LogState {
        LogState::new(p)
    }
    fn params(s: &LogState) -> WindowParams {
        s.params
    }
    fn limit(p: &WindowParams) -> u64 {
        p.limit.get()
    }
    #[inline]
    fn evaluate(s: &LogState, p: &WindowParams, cost: u64, now: Instant) -> (Decision, LogNext) {
        s.evaluate(p, cost, now)
    }
    #[inline]
    fn apply(s: &mut LogState, next: &LogNext) {
        s.apply(next);
    }
    fn refund(s: &LogState, n: u64, now: Instant) -> (u64, LogNext) {
        s.refund(n, now)
    }
    fn describe(s: &LogState, field: &mut impl FnMut(&'static str, i128)) {
        field("limit", s.params.limit.get().into());
        field("window_us", s.params.window.micros().into());
        field("entries", (s.entries.len() as u64).into());
        let micros = |t: Option<&Instant>| t.map_or(0, |t| t.as_micros());
        field("oldest_us", micros(s.entries.front()).into());
        field("newest_us", micros(s.entries.back()).into());
    }
    fn is_valid(s: &LogState) -> bool {
        s.is_valid()
    }
    /// One entry per unit of the limit.
    fn entries(p: &WindowParams) -> Option<u64> {
        Some(p.limit.get())
    }
    fn memory(s: &LogState) -> usize {
        size_of::<LogState>() + s.entries.capacity() * size_of::<Instant>()
    }
    fn from_window(w: WindowParams) -> Option<WindowParams> {
        Some(w)
    }

    fn arguments(p: &WindowParams, out: &mut impl FnMut(Argument)) {
        super::sliding::Sliding::arguments(p, out);
    }

    /// As the sliding window's: limit, window in µs.
    fn write_params(p: &WindowParams, w: &mut impl Encoder) {
        super::sliding::Sliding::write_params(p, w);
    }

    fn read_params<D: Decoder>(tag: u8, r: &mut D) -> Result<WindowParams, D::Error> {
        super::sliding::Sliding::read_params(tag, r)
    }

    /// The number of entries, then each, oldest first.
    fn write_state(s: &LogState, w: &mut impl Encoder) {
        w.u64(s.entries.len() as u64);
        for &t in &s.entries {
            w.time(t);
        }
    }

    fn read_state<D: Decoder>(params: WindowParams, r: &mut D) -> Result<LogState, D::Error> {
        let n = r.times_len(super::MAX_LOG_ENTRIES)?;
        let mut entries = VecDeque::with_capacity(n);
        for _ in 0..n {
            entries.push_back(r.time()?);
        }
        Ok(LogState { params, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::algo::testing::{raw, t, Raw};

    const S: u64 = 1_000_000;

    impl LogState {
        fn decide(&mut self, p: &WindowParams, cost: u64, now: u64) -> Raw {
            let (d, next) = self.evaluate(p, cost, t(now));
            let changed = crate::algo::writes(d.allowed, cost, self.params != *p);
            if changed {
                self.apply(&next);
            }
            raw(&d, changed)
        }
    }

    fn p(limit: u64, window: u64) -> WindowParams {
        WindowParams::new(limit, window).unwrap()
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
        for i in 0..5 {
            st.decide(&big, 1, i * S);
        }
        let small = p(2, 60 * S);
        let d = st.decide(&small, 1, 10 * S);
        assert_eq!((d.allowed, d.retry_after), (false, Some(53 * S)));
        let d = st.decide(&small, 1, 63 * S);
        assert!(d.allowed);
        assert_eq!(st.entries, VecDeque::from([t(4 * S), t(63 * S)]));
    }

    #[test]
    fn capacity_never_exceeds_limit() {
        let params = p(1000, 3600 * S);
        let mut st = LogState::new(params);
        for i in 0..1000 {
            assert!(st.decide(&params, 1, i).allowed);
        }
        assert_eq!(st.entries.capacity(), 1000);
    }
}
