//! What the refunds, penalty box and leases properties share: the
//! parameters of each algorithm, a decision's figures in µs, the reference
//! model of one limiter (refunds and the penalty box are checked against
//! it), the codec's generators of wide figures and its byte checks, and
//! sampling a strategy from a fixed seed.

use super::{Us, EPOCH};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use ratelimit::algo::{
    Algorithm, BucketParams, Count, Decision, Duration, FixedWindow, Params, Value, WindowParams,
    MAX_COUNT, MAX_DURATION_US, MAX_TIME_US,
};
use ratelimit::codec;

pub(super) fn d(us: Us) -> Duration {
    Duration::from_micros(us)
}

pub(super) fn count(n: u64) -> Count {
    Count::new(n).expect("a count in bounds")
}

/// The parameters of `Algorithm::ALL[algo]` from window or bucket figures
/// (GCRA's capacity is `max_burst + 1`).
pub(super) fn params_of(algo: usize, w: WindowParams, b: BucketParams) -> Params {
    let a = Algorithm::ALL[algo];
    Params::window(a, w)
        .or_else(|| Params::bucket(a, b))
        .expect("every algorithm is a window or a bucket one")
}

/// A decision's four figures, in µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) allowed: bool,
    pub(super) remaining: u64,
    pub(super) retry_after: Option<Us>,
    pub(super) reset_after: Us,
}

pub(super) fn answer_of(d: &Decision) -> Answer {
    Answer {
        allowed: d.allowed,
        remaining: d.remaining,
        retry_after: d.retry_after.map(Duration::as_micros),
        reset_after: d.reset_after.as_micros(),
    }
}

// ------------------------------------------------------------- models ---

/// How far forward the models look for a wait (the parameters above never
/// need more than 2 * 40 µs for a window, 8 * 40 µs for a bucket).
const SCAN: Us = 1_000;

/// A reference model of one limiter under constant parameters, at times
/// that never go back. Only its own rules are written here; every figure of
/// a decision is derived from them by brute force (see [`Model::answer`]).
#[derive(Clone, Debug)]
pub(super) enum Model {
    /// Every window opened so far, `(start, count)`; the last one counts
    /// while it holds something and `now < start + w`.
    Fixed {
        limit: u64,
        w: Us,
        windows: Vec<(Us, u64)>,
    },
    /// Consecutive windows, `(start, count)`; the estimate at `now` weighs
    /// the previous adjacent window by the part of it still inside the
    /// sliding window. A state where nothing counts is as if absent.
    Sliding {
        limit: u64,
        w: Us,
        windows: Vec<(Us, u64)>,
    },
    /// One timestamp per unit accepted.
    Log { limit: u64, w: Us, units: Vec<Us> },
    /// Tokens available times the period, refilled at `rate` per µs up to
    /// `cap * per`, as of `at`.
    Token {
        b: BucketParams,
        tokens: u128,
        at: Us,
    },
    /// Units queued times the period, draining at `rate` per µs, as of `at`.
    Leaky {
        b: BucketParams,
        queue: u128,
        at: Us,
    },
    /// The textbook GCRA: the theoretical arrival time times the rate.
    Gcra { b: BucketParams, tat: u128 },
}

impl Model {
    pub(super) fn new(p: &Params) -> Model {
        match *p {
            // The models here are of first-hit windows; aligned ones have
            // their own properties (calendar.rs, beside this file).
            Params::Fixed(f) => match f.window() {
                FixedWindow::FirstHit(w) => Model::Fixed {
                    limit: f.limit.get(),
                    w: w.micros(),
                    windows: Vec::new(),
                },
                FixedWindow::Aligned(..) => unreachable!("not generated here"),
            },
            Params::Sliding(w) => Model::Sliding {
                limit: w.limit.get(),
                w: w.window.micros(),
                windows: Vec::new(),
            },
            Params::Log(w) => Model::Log {
                limit: w.limit.get(),
                w: w.window.micros(),
                units: Vec::new(),
            },
            Params::Token(b) => Model::Token {
                b,
                tokens: b.capacity.wide() * b.period.wide(),
                at: 0,
            },
            Params::Leaky(b) => Model::Leaky { b, queue: 0, at: 0 },
            Params::Gcra(g) => Model::Gcra {
                b: g.bucket(),
                tat: 0,
            },
        }
    }

    fn limit(&self) -> u64 {
        match self {
            Model::Fixed { limit, .. }
            | Model::Sliding { limit, .. }
            | Model::Log { limit, .. } => *limit,
            Model::Token { b, .. } | Model::Leaky { b, .. } | Model::Gcra { b, .. } => {
                b.capacity.get()
            }
        }
    }

    /// Fixed: the index of the window open at `now`.
    fn open_window(windows: &[(Us, u64)], w: Us, now: Us) -> Option<usize> {
        let i = windows.len().checked_sub(1)?;
        let (s, n) = windows[i];
        (n > 0 && now < s + w).then_some(i)
    }

    /// Sliding: `(start, prev, curr)` in force at `now`, `None` when nothing
    /// counts any more.
    fn sliding_view(windows: &[(Us, u64)], w: Us, now: Us) -> Option<(Us, u64, u64)> {
        let k = windows.len();
        let &(s, n) = windows.last()?;
        let prev = match k {
            2.. if windows[k - 2].0 + w == s => windows[k - 2].1,
            _ => 0,
        };
        let v = match (now - s) / w {
            0 => (s, prev, n),
            1 => (s + w, n, 0),
            _ => return None,
        };
        (v.1 + v.2 > 0).then_some(v)
    }

    /// Bucket level at `now`, times the period.
    fn level(&self, now: Us) -> u128 {
        match *self {
            Model::Token { b, tokens, at } => {
                let full = b.capacity.wide() * b.period.wide();
                full - (tokens + (now - at) as u128 * b.rate.wide()).min(full)
            }
            Model::Leaky { b, queue, at } => {
                queue.saturating_sub((now - at) as u128 * b.rate.wide())
            }
            Model::Gcra { b, tat } => tat.saturating_sub(now as u128 * b.rate.wide()),
            _ => unreachable!(),
        }
    }

    /// Whether `cost` more units fit at `now` (the limit aside).
    fn fits(&self, cost: u64, now: Us) -> bool {
        match self {
            Model::Fixed { limit, w, windows } => {
                let n = Self::open_window(windows, *w, now).map_or(0, |i| windows[i].1);
                n + cost <= *limit
            }
            Model::Sliding { limit, w, windows } => {
                let view = Self::sliding_view(windows, *w, now);
                let (w, l) = (*w as u128, *limit as u128);
                let used = match view {
                    Some((s, prev, curr)) => {
                        prev as u128 * (w - (now - s) as u128) + curr as u128 * w
                    }
                    None => 0,
                };
                used + cost as u128 * w <= l * w
            }
            Model::Log { limit, w, units } => {
                let live = units.iter().filter(|&&u| u + w > now).count() as u64;
                live + cost <= *limit
            }
            Model::Token { b, tokens, at } => {
                let full = b.capacity.wide() * b.period.wide();
                let have = (tokens + (now - at) as u128 * b.rate.wide()).min(full);
                have >= cost as u128 * b.period.wide()
            }
            Model::Leaky { b, .. } => {
                self.level(now) + cost as u128 * b.period.wide()
                    <= b.capacity.wide() * b.period.wide()
            }
            Model::Gcra { b, tat } => {
                let now_r = now as u128 * b.rate.wide();
                let new_tat = (*tat).max(now_r) + cost as u128 * b.period.wide();
                new_tat.saturating_sub(b.capacity.wide() * b.period.wide()) <= now_r
            }
        }
    }

    pub(super) fn spend(&mut self, cost: u64, now: Us) {
        match self {
            Model::Fixed { w, windows, .. } => match Self::open_window(windows, *w, now) {
                Some(i) => windows[i].1 += cost,
                None => windows.push((now, cost)),
            },
            Model::Sliding { w, windows, .. } => match Self::sliding_view(windows, *w, now) {
                Some((s, _, _)) if s == windows.last().unwrap().0 => {
                    windows.last_mut().unwrap().1 += cost
                }
                Some((s, _, _)) => windows.push((s, cost)),
                None => windows.push((now, cost)),
            },
            Model::Log { units, .. } => units.extend(std::iter::repeat_n(now, cost as usize)),
            Model::Token { b, tokens, at } => {
                let full = b.capacity.wide() * b.period.wide();
                let have = (*tokens + (now - *at) as u128 * b.rate.wide()).min(full);
                *tokens = have - cost as u128 * b.period.wide();
                *at = now;
            }
            Model::Leaky { b, queue, at } => {
                let q = queue.saturating_sub((now - *at) as u128 * b.rate.wide());
                *queue = q + cost as u128 * b.period.wide();
                *at = now;
            }
            Model::Gcra { b, tat } => {
                *tat = (*tat).max(now as u128 * b.rate.wide()) + cost as u128 * b.period.wide()
            }
        }
    }

    /// The refund rule of each algorithm; answers the units given back.
    pub(super) fn refund(&mut self, n: u64, now: Us) -> u64 {
        match self {
            // The open window's count goes down, never a closed window's.
            Model::Fixed { w, windows, .. } => match Self::open_window(windows, *w, now) {
                Some(i) => {
                    let g = n.min(windows[i].1);
                    windows[i].1 -= g;
                    g
                }
                None => 0,
            },
            // The current window's count, never the previous one's.
            Model::Sliding { w, windows, .. } => match Self::sliding_view(windows, *w, now) {
                Some((s, _, curr)) if s == windows.last().unwrap().0 => {
                    let g = n.min(curr);
                    windows.last_mut().unwrap().1 -= g;
                    g
                }
                _ => 0,
            },
            // The newest units still counting.
            Model::Log { w, units, .. } => {
                let live = units.iter().filter(|&&u| u + *w > now).count() as u64;
                let g = n.min(live);
                units.truncate(units.len() - g as usize);
                g
            }
            // Tokens come back up to the capacity; a part unit is one.
            Model::Token { b, tokens, at } => {
                let (per, full) = (b.period.wide(), b.capacity.wide() * b.period.wide());
                let have = (*tokens + (now - *at) as u128 * b.rate.wide()).min(full);
                let g = (n as u128 * per).min(full - have);
                if g == 0 {
                    return 0;
                }
                *tokens = have + g;
                *at = now;
                g.div_ceil(per) as u64
            }
            // The queue shortens, never below empty.
            Model::Leaky { b, queue, at } => {
                let per = b.period.wide();
                let q = queue.saturating_sub((now - *at) as u128 * b.rate.wide());
                let g = (n as u128 * per).min(q);
                if g == 0 {
                    return 0;
                }
                *queue = q - g;
                *at = now;
                g.div_ceil(per) as u64
            }
            // The arrival time moves back, never before now.
            Model::Gcra { b, tat } => {
                let per = b.period.wide();
                let now_r = now as u128 * b.rate.wide();
                if *tat <= now_r {
                    return 0;
                }
                let back = tat.saturating_sub(n as u128 * per).max(now_r);
                let g = *tat - back;
                *tat = back;
                g.div_ceil(per) as u64
            }
        }
    }

    /// Nothing counts at `now`: as good as a new limiter.
    fn empty(&self, now: Us) -> bool {
        match self {
            Model::Fixed { w, windows, .. } => Self::open_window(windows, *w, now).is_none(),
            Model::Sliding { w, windows, .. } => Self::sliding_view(windows, *w, now).is_none(),
            Model::Log { w, units, .. } => units.iter().all(|&u| u + w <= now),
            _ => self.level(now) == 0,
        }
    }

    /// The first instant from `now + from` where `pred` holds, as a wait.
    fn scan(now: Us, from: Us, pred: impl Fn(Us) -> bool) -> Us {
        (from..=SCAN)
            .find(|&dt| pred(now + dt))
            .unwrap_or_else(|| panic!("nothing within {SCAN} µs"))
    }

    /// What a request of `cost` at `now` is answered, and the model after it,
    /// all by brute force from the rules above: remaining is the largest
    /// cost that still fits; a wait is the first µs at which the same
    /// request fits (for the leaky bucket's allowed request, at which the
    /// queue ahead has drained); reset is the first µs at which nothing
    /// counts.
    pub(super) fn answer(&self, cost: u64, now: Us) -> (Answer, Model) {
        let limit = self.limit();
        let allowed = cost <= limit && self.fits(cost, now);
        let mut after = self.clone();
        if allowed && cost > 0 {
            after.spend(cost, now);
        }
        let remaining = (0..=limit)
            .rev()
            .find(|&c| after.fits(c, now))
            .expect("a peek always fits under constant parameters");
        let retry_after = if allowed {
            Some(match self {
                Model::Leaky { .. } => Self::scan(now, 0, |t| self.empty(t)),
                _ => 0,
            })
        } else if cost > limit {
            None
        } else {
            Some(Self::scan(now, 1, |t| self.fits(cost, t)))
        };
        let reset_after = Self::scan(now, 0, |t| after.empty(t));
        let a = Answer {
            allowed,
            remaining,
            retry_after,
            reset_after,
        };
        (a, after)
    }
}

// --------------------------------------------------------------- codec ---

pub(super) fn wide_count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(MAX_COUNT), 1..=8u64, 1..=MAX_COUNT]
}

pub(super) fn wide_period() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1u64),
        Just(MAX_DURATION_US),
        1..=1_000_000u64,
        1..=MAX_DURATION_US
    ]
}

pub(super) fn wide_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(MAX_TIME_US),
        EPOCH..=EPOCH + 10_000_000,
        0..=MAX_TIME_US
    ]
}

pub(super) fn any_params() -> impl Strategy<Value = Params> {
    (0usize..6, wide_count(), wide_count(), wide_period()).prop_map(|(algo, n, rate, per)| {
        let w = WindowParams::new(n, per).unwrap();
        let b = BucketParams::new(n, rate, per).unwrap();
        params_of(algo, w, b)
    })
}

/// `bytes` decode to `value` and back to the same bytes; no prefix and no
/// extension decodes.
pub(super) fn check_value_bytes(value: &Value, bytes: &[u8]) {
    assert_eq!(codec::decode_value(bytes, 2).as_ref(), Ok(value));
    assert_eq!(
        codec::encode_value(&codec::decode_value(bytes, 2).unwrap()),
        bytes
    );
    for n in 0..bytes.len() {
        assert!(codec::decode_value(&bytes[..n], 2).is_err(), "cut at {n}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(codec::decode_value(&longer, 2).is_err());
    // Version 1 knew neither blocks nor leases.
    if !matches!(value, Value::Limiter(_)) {
        assert!(codec::decode_value(bytes, 1).is_err());
    }
}

pub(super) fn check_op_bytes(bytes: &[u8], decode_ok: impl Fn(&[u8]) -> bool) {
    for n in 0..bytes.len() {
        assert!(!decode_ok(&bytes[..n]), "cut at {n}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(!decode_ok(&longer), "one byte more");
}

/// Generates `n` cases of `strategy` from a fixed seed.
pub(super) fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}
