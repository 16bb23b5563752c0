//! Property tests of what came after the decision: refunds, the penalty box,
//! concurrency leases, and the encodings of what they leave. Pure Rust
//! against the `ratelimit` crate, no server. Each property runs random
//! sequences against a brute-force reference model written here:
//!
//! - refunds: per algorithm, spends, refunds, peeks and "denied, refund,
//!   retry" at nondecreasing times, against a model of the algorithm's own
//!   state (window counts, the log's entries, the bucket's level as an exact
//!   rational in integers: tokens, a queue, or GCRA's theoretical arrival
//!   time). Waits are found by scanning the model forward one µs at a time,
//!   remaining by trying every cost;
//! - the penalty box: random calls with and without `PENALTY` and refunds
//!   on one key, against the model of the limiter plus a `blocked_until`;
//!   and, under parameters that change and a clock that goes back, the
//!   box's rules checked against the bare limiter's own decisions;
//! - leases: acquire, release, renew, peek, reclaim and held at random times
//!   (the clock may go back), ids from a small set, against a list of
//!   `(id, units, expires)`;
//! - codec: random valid blocked limiters and lease states, and random
//!   refund, penalty and lease ops, round-trip byte for byte.
//!
//! A last test checks that the generated runs reach what the properties are
//! about (refunds that give back, retries after them, blocks, lifts, lease
//! renewals, waits, a clock going back). Case counts are small so the file
//! runs in well under a second in release and in seconds in debug; set
//! `PROPTEST_CASES` to dig deeper.

use super::{bucket_params, config, t, window_params, Us, EPOCH};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use ratelimit::algo::bucket::Wide;
use ratelimit::algo::value::{self, latest_block_end};
use ratelimit::algo::{
    Algorithm, BlockChange, Blocked, BucketParams, BucketState, Count, Decision, Duration,
    FixedState, FixedWindow, GcraParams, Instant, Lease, LeaseState, Limiter, LogState, Params,
    SlidingState, UnixMs, Value, WindowParams, MAX_COUNT, MAX_DURATION_US, MAX_LEASE_ID_LEN,
    MAX_TIME_US,
};
use ratelimit::codec::{self, AnyOp, LeaseAction, LeaseOp, Op, RefundOp};

fn d(us: Us) -> Duration {
    Duration::from_micros(us)
}

fn count(n: u64) -> Count {
    Count::new(n).expect("a count in bounds")
}

/// The parameters of `Algorithm::ALL[algo]` from window or bucket figures
/// (GCRA's capacity is `max_burst + 1`).
fn params_of(algo: usize, w: WindowParams, b: BucketParams) -> Params {
    let a = Algorithm::ALL[algo];
    Params::window(a, w)
        .or_else(|| Params::bucket(a, b))
        .expect("every algorithm is a window or a bucket one")
}

/// A decision's four figures, in µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Answer {
    allowed: bool,
    remaining: u64,
    retry_after: Option<Us>,
    reset_after: Us,
}

fn answer_of(d: &Decision) -> Answer {
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
enum Model {
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
    fn new(p: &Params) -> Model {
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

    fn spend(&mut self, cost: u64, now: Us) {
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
    fn refund(&mut self, n: u64, now: Us) -> u64 {
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
    fn answer(&self, cost: u64, now: Us) -> (Answer, Model) {
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

// ------------------------------------------------------------- refunds ---

#[derive(Clone, Debug)]
enum Act {
    Spend(u64),
    Peek,
    Refund(u64),
    /// A request of `1 + cost % limit`; if denied, a refund of that plus
    /// `extra` at the same instant, then the same request again.
    Retry {
        cost: u64,
        extra: u64,
    },
}

#[derive(Clone, Debug)]
struct RefundStep {
    dt: Us,
    op: Act,
}

fn refund_steps() -> impl Strategy<Value = Vec<RefundStep>> {
    let dt = prop_oneof![
        4 => Just(0u64),
        5 => 1u64..=20,
        2 => 20u64..=120,
    ];
    let op = prop_oneof![
        4 => (0u64..100).prop_map(Act::Spend),
        1 => Just(Act::Peek),
        3 => (0u64..100).prop_map(Act::Refund),
        3 => (0u64..100, 0u64..3).prop_map(|(cost, extra)| Act::Retry { cost, extra }),
    ];
    prop::collection::vec((dt, op).prop_map(|(dt, op)| RefundStep { dt, op }), 1..50)
}

/// What the runs reached, so a test can check they are not vacuous.
#[derive(Clone, Copy, Debug, Default)]
struct RefundStats {
    refunds_given: u64,
    refunds_of_nothing: u64,
    retries_after_refund: u64,
}

/// One limiter and its model, checked on every call.
struct RefundRun {
    p: Params,
    limiter: Limiter,
    model: Model,
    stats: RefundStats,
}

impl RefundRun {
    fn new(p: Params) -> Self {
        RefundRun {
            p,
            limiter: Limiter::new(&p),
            model: Model::new(&p),
            stats: RefundStats::default(),
        }
    }

    fn check_state(&self) {
        assert!(self.limiter.is_valid(), "{:?}", self.limiter);
        let bytes = codec::encode(&self.limiter);
        assert_eq!(
            codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
            Ok(&self.limiter)
        );
    }

    fn decide(&mut self, cost: u64, now: Us) -> Answer {
        let before = self.limiter.clone();
        let v = before.evaluate(&self.p, cost, t(now)).unwrap();
        let got = self.limiter.decide(&self.p, cost, t(now)).unwrap();
        assert_eq!(got, v.decision);
        assert_eq!(got.at, t(now), "times never go back here");
        assert_eq!(got.limit, self.p.limit());
        let (want, after) = self.model.answer(cost, now);
        assert_eq!(
            answer_of(&got),
            want,
            "cost {cost} at +{}: {:?}\nmodel {:?}",
            now - EPOCH,
            before,
            self.model
        );
        self.model = after;
        if !(got.allowed && cost > 0) {
            assert_eq!(self.limiter, before, "only a spend changes the state");
        }
        self.check_state();
        want
    }

    fn refund(&mut self, n: u64, now: Us) -> u64 {
        let before = self.limiter.clone();
        let peek_before = before.clone().decide(&self.p, 0, t(now)).unwrap();
        let given = self.limiter.refund(n, t(now));
        let want = self.model.refund(n, now);
        assert_eq!(
            given,
            want,
            "refund {n} at +{}: {before:?}\nmodel {:?}",
            now - EPOCH,
            self.model
        );
        assert!(given <= n);
        if given == 0 {
            assert_eq!(self.limiter, before, "a refund of nothing changes nothing");
            self.stats.refunds_of_nothing += 1;
        } else {
            self.stats.refunds_given += 1;
        }
        self.check_state();
        // A refund never shows more room than the limit, and never more than
        // it gave back; a window algorithm shows exactly that much more.
        let peek = self.decide(0, now);
        assert!(peek.remaining <= self.p.limit());
        assert!(
            peek.remaining >= peek_before.remaining,
            "less room after a refund"
        );
        let more = peek.remaining - peek_before.remaining;
        assert!(
            more <= given,
            "{more} more remaining after a refund of {given}"
        );
        if matches!(
            self.p,
            Params::Fixed(_) | Params::Sliding(_) | Params::Log(_)
        ) {
            assert_eq!(
                peek.remaining,
                (peek_before.remaining + given).min(self.p.limit())
            );
        }
        given
    }

    fn step(&mut self, now: Us, op: &Act) {
        let limit = self.p.limit();
        match *op {
            Act::Spend(c) => {
                self.decide(c % (limit + 2), now);
            }
            Act::Peek => {
                self.decide(0, now);
            }
            Act::Refund(n) => {
                self.refund(n % (limit + 3), now);
            }
            Act::Retry { cost, extra } => {
                let c = 1 + cost % limit;
                if self.decide(c, now).allowed {
                    return;
                }
                // Denied for lack of room only (c <= limit): once at least c
                // units are back, at the same instant, the retry passes.
                let given = self.refund(c + extra, now);
                if given >= c {
                    let again = self.decide(c, now);
                    assert!(
                        again.allowed,
                        "cost {c} still denied after a refund of {given}: {again:?}"
                    );
                    self.stats.retries_after_refund += 1;
                }
            }
        }
    }
}

fn run_refunds(p: Params, steps: &[RefundStep]) -> RefundStats {
    let mut run = RefundRun::new(p);
    let mut now = EPOCH;
    for s in steps {
        now += s.dt;
        run.step(now, &s.op);
    }
    run.stats
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn refunds_match_the_models(
        algo in 0usize..6,
        w in window_params(),
        b in bucket_params(),
        s in refund_steps(),
    ) {
        run_refunds(params_of(algo, w, b), &s);
    }
}

// ---------------------------------------------------------- penalty box ---

#[derive(Clone, Debug)]
enum CallOp {
    /// `cost` (taken modulo `limit + 2`), with `PENALTY` when given.
    Call {
        cost: u64,
        penalty: Option<Us>,
    },
    Refund(u64),
}

#[derive(Clone, Debug)]
struct CallStep {
    dt: Us,
    op: CallOp,
}

fn call_steps() -> impl Strategy<Value = Vec<CallStep>> {
    let dt = prop_oneof![
        3 => Just(0u64),
        5 => 1u64..=20,
        2 => 20u64..=150,
    ];
    let penalty = prop_oneof![
        2 => Just(None),
        3 => (1u64..=120).prop_map(Some),
        1 => Just(Some(MAX_DURATION_US)),
    ];
    let op = prop_oneof![
        6 => (0u64..100, penalty).prop_map(|(cost, penalty)| CallOp::Call { cost, penalty }),
        1 => (0u64..100).prop_map(CallOp::Refund),
    ];
    prop::collection::vec((dt, op).prop_map(|(dt, op)| CallStep { dt, op }), 1..50)
}

/// One key as the module keeps it: evaluate, install the next state when
/// the verdict writes, then apply the block change.
#[derive(Default)]
struct Key {
    held: Option<Value>,
}

impl Key {
    fn call(&mut self, p: &Params, cost: u64, now: Us, penalty: Option<Us>) -> value::Guarded {
        let g = value::evaluate(self.held.as_ref(), p, cost, t(now), penalty.map(d)).unwrap();
        if g.verdict.writes {
            let old_block = self.held.as_ref().and_then(Value::block);
            let mut l = match self.held.take() {
                Some(v) => v.limiter().unwrap().clone(),
                None => Limiter::new(p),
            };
            l.apply(&g.verdict.next);
            let block = match g.block {
                BlockChange::Keep => old_block,
                BlockChange::Start(u) => Some(u),
                BlockChange::Lift => None,
            };
            self.held = Some(match block {
                Some(until) => Value::Blocked(Box::new(Blocked { until, limiter: l })),
                None => Value::Limiter(l),
            });
        } else {
            assert_eq!(g.block, BlockChange::Keep, "a call that writes nothing");
        }
        g
    }

    fn refund(&mut self, n: u64, now: Us) -> u64 {
        self.held
            .as_mut()
            .and_then(Value::limiter_mut)
            .map_or(0, |l| l.refund(n, t(now)))
    }

    fn limiter(&self) -> Option<&Limiter> {
        self.held.as_ref().and_then(Value::limiter)
    }
}

/// The penalty box by its rules, over the limiter's model.
struct BoxModel {
    model: Model,
    blocked_until: Option<Us>,
}

#[derive(Clone, Copy, Debug, Default)]
struct BoxStats {
    blocks: u64,
    blocked_calls: u64,
    lifts: u64,
    refunds_while_blocked: u64,
}

impl BoxModel {
    /// The answer to a call and the block change it makes, without changing
    /// anything; the model after it.
    fn call(&self, cost: u64, now: Us, penalty: Option<Us>) -> (Answer, BlockChange, BoxModel) {
        let (own, after) = self.model.answer(cost, now);
        if let Some(until) = self.blocked_until.filter(|&u| u > now) {
            // Blocked: denied, nothing spent; the wait is the longer of the
            // block's and the algorithm's own (none if it says never); the
            // key lives at least until the block ends.
            let left = until - now;
            let (unspent, _) = self.model.answer(0, now);
            let own_wait = if own.allowed {
                Some(0)
            } else {
                own.retry_after
            };
            let a = Answer {
                allowed: false,
                remaining: 0,
                retry_after: own_wait.map(|w| w.max(left)),
                reset_after: unspent.reset_after.max(left),
            };
            let same = BoxModel {
                model: self.model.clone(),
                blocked_until: self.blocked_until,
            };
            return (a, BlockChange::Keep, same);
        }
        match (penalty, own.retry_after) {
            (Some(p), Some(wait)) if !own.allowed && cost > 0 => {
                let a = Answer {
                    allowed: false,
                    remaining: 0,
                    retry_after: Some(wait.max(p)),
                    reset_after: own.reset_after.max(p),
                };
                let blocked = BoxModel {
                    model: self.model.clone(),
                    blocked_until: Some(now + p),
                };
                (a, BlockChange::Start(t(now + p)), blocked)
            }
            _ => {
                let spends = own.allowed && cost > 0;
                let lift = spends && self.blocked_until.is_some();
                let next = BoxModel {
                    model: after,
                    blocked_until: if lift { None } else { self.blocked_until },
                };
                let change = if lift {
                    BlockChange::Lift
                } else {
                    BlockChange::Keep
                };
                (own, change, next)
            }
        }
    }
}

fn run_penalties(p: Params, steps: &[CallStep]) -> BoxStats {
    let mut key = Key::default();
    let mut m = BoxModel {
        model: Model::new(&p),
        blocked_until: None,
    };
    let mut stats = BoxStats::default();
    let limit = p.limit();
    let mut now = EPOCH;
    for s in steps {
        now += s.dt;
        match s.op {
            CallOp::Call { cost, penalty } => {
                let cost = cost % (limit + 2);
                let before = key.limiter().cloned();
                let blocked = m.blocked_until.is_some_and(|u| u > now);
                let g = key.call(&p, cost, now, penalty);
                let (want, change, next) = m.call(cost, now, penalty);
                let got = answer_of(&g.verdict.decision);
                assert_eq!(
                    got,
                    want,
                    "cost {cost} penalty {penalty:?} at +{}, blocked until {:?}",
                    now - EPOCH,
                    m.blocked_until.map(|u| u as i128 - now as i128)
                );
                assert_eq!(g.verdict.decision.at, t(now));
                assert_eq!(g.block, change, "block change at +{}", now - EPOCH);
                if blocked {
                    stats.blocked_calls += 1;
                    assert!(!g.verdict.spends, "spent while blocked");
                    assert!(!g.verdict.writes, "constant parameters: nothing to keep");
                    assert_eq!(key.limiter(), before.as_ref(), "changed while blocked");
                }
                match change {
                    BlockChange::Start(_) => stats.blocks += 1,
                    BlockChange::Lift => stats.lifts += 1,
                    BlockChange::Keep => {}
                }
                m = next;
            }
            CallOp::Refund(n) => {
                let n = n % (limit + 3);
                let blocked_before = key.held.as_ref().and_then(Value::block);
                let given = key.refund(n, now);
                assert_eq!(
                    given,
                    m.model.refund(n, now),
                    "refund {n} at +{}",
                    now - EPOCH
                );
                assert_eq!(key.held.as_ref().and_then(Value::block), blocked_before);
                if m.blocked_until.is_some_and(|u| u > now) {
                    stats.refunds_while_blocked += 1;
                }
            }
        }
        // The key's block is the model's (a key that was never written
        // holds none).
        let block = key.held.as_ref().and_then(Value::block);
        assert_eq!(block, m.blocked_until.map(t));
        if let Some(v) = &key.held {
            assert!(v.is_valid());
            let bytes = codec::encode_value(v);
            assert_eq!(codec::decode_value(&bytes, 2).as_ref(), Ok(v));
        }
        // The block ends exactly at its end: 1 µs before, still blocked;
        // then, the limiter's own answer.
        if let Some(until) = m.blocked_until.filter(|&u| u > now) {
            for cost in [0, 1] {
                let at_end = |at: Us| {
                    value::evaluate(key.held.as_ref(), &p, cost, t(at), None)
                        .unwrap()
                        .verdict
                        .decision
                };
                let early = at_end(until - 1);
                assert!(!early.allowed && early.remaining == 0, "{early:?}");
                assert!(early.retry_after.is_some_and(|r| r.as_micros() >= 1));
                assert_eq!(answer_of(&at_end(until)), m.model.answer(cost, until).0);
            }
        }
    }
    stats
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_penalty_box_matches_its_model(
        algo in 0usize..6,
        w in window_params(),
        b in bucket_params(),
        s in call_steps(),
    ) {
        run_penalties(params_of(algo, w, b), &s);
    }
}

/// The rules of the box that hold whatever the parameters and the clock
/// do: a call on a key blocked at its instant `at` is denied with nothing
/// spent (every later request under its parameters is decided as if it had
/// not happened, though it keeps its parameters, as any denial does) and
/// leaves the block as it was; a call on a key not blocked is decided by the
/// limiter alone, and starts a block only when it is denied with a cost, a
/// `PENALTY` and a wait, until `at + PENALTY`.
/// Answers how many calls were blocked and how many blocks started.
fn run_penalties_changing(
    sets: &[Params; 3],
    steps: &[(i64, usize, u64, Option<Us>)],
) -> (u64, u64) {
    let (mut blocked, mut started) = (0, 0);
    let mut key = Key::default();
    let mut now = EPOCH;
    for &(dt, which, cost, penalty) in steps {
        now = now.saturating_add_signed(dt);
        let p = sets[which];
        let limit = p.limit();
        let cost = cost % (limit + 2);
        let before = key.held.clone();
        let plain = match before.as_ref().and_then(Value::limiter) {
            Some(l) => l.evaluate(&p, cost, t(now)).unwrap(),
            None => Limiter::evaluate_fresh(&p, cost, t(now)),
        };
        let g = key.call(&p, cost, now, penalty);
        let got = g.verdict.decision;
        let at = got.at;
        assert_eq!(at, plain.decision.at);
        let old_block = before.as_ref().and_then(Value::block);
        let new_block = key.held.as_ref().and_then(Value::block);
        let ctx = format!("{p:?} cost {cost} penalty {penalty:?} at {at:?}, block {old_block:?}");
        if let Some(until) = old_block.filter(|&u| u > at) {
            let left = until - at;
            assert!(!got.allowed && got.remaining == 0, "{ctx}: {got:?}");
            let own = if plain.decision.allowed {
                Some(Duration::ZERO)
            } else {
                plain.decision.retry_after
            };
            assert_eq!(got.retry_after, own.map(|w| w.max(left)), "{ctx}");
            assert!(got.reset_after >= left, "{ctx}: {got:?}");
            assert!(!g.verdict.spends, "{ctx}");
            assert_eq!(new_block, old_block, "{ctx}: a block is never extended");
            let (was, is) = (
                before.as_ref().and_then(Value::limiter).unwrap(),
                key.limiter().unwrap(),
            );
            for c in 0..=limit + 1 {
                assert_eq!(
                    is.evaluate(&p, c, at).unwrap().decision,
                    was.evaluate(&p, c, at).unwrap().decision,
                    "{ctx}: spent while blocked"
                );
            }
            blocked += 1;
            continue;
        }
        let starts = penalty.is_some()
            && cost > 0
            && !plain.decision.allowed
            && plain.decision.retry_after.is_some()
            && before.is_some();
        if starts {
            started += 1;
            let pd = d(penalty.unwrap());
            assert_eq!(g.block, BlockChange::Start(at + pd), "{ctx}");
            assert_eq!(new_block, Some(at + pd), "{ctx}");
            assert!(!got.allowed && got.remaining == 0, "{ctx}");
            assert_eq!(
                got.retry_after,
                plain.decision.retry_after.map(|w| w.max(pd)),
                "{ctx}"
            );
            assert_eq!(got.reset_after, plain.decision.reset_after.max(pd), "{ctx}");
            assert_eq!(key.limiter().unwrap().params(), p);
        } else {
            assert_eq!(got, plain.decision, "{ctx}");
            assert_eq!(g.verdict.writes, plain.writes, "{ctx}");
            let lifts = plain.writes && old_block.is_some();
            assert_eq!(g.block == BlockChange::Lift, lifts, "{ctx}");
            assert_eq!(new_block, if lifts { None } else { old_block }, "{ctx}");
        }
        if let Some(v) = &key.held {
            assert!(v.is_valid(), "{v:?}");
        }
    }
    (blocked, started)
}

/// `(dt, parameter set, cost, penalty)`; the clock may go back.
fn changing_calls() -> impl Strategy<Value = Vec<(i64, usize, u64, Option<Us>)>> {
    let dt = prop_oneof![3 => Just(0i64), 5 => 1i64..=30, 1 => 30i64..=150, 2 => -40i64..=-1];
    let call = (dt, 0usize..3, 0u64..100, prop::option::of(1u64..=100));
    prop::collection::vec(call, 1..50)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_penalty_box_rules_hold_under_changing_parameters(
        algo in 0usize..6,
        w in prop::array::uniform3(window_params()),
        b in prop::array::uniform3(bucket_params()),
        s in changing_calls(),
    ) {
        let sets = [0, 1, 2].map(|i| params_of(algo, w[i], b[i]));
        run_penalties_changing(&sets, &s);
    }
}

// -------------------------------------------------------------- leases ---

/// Ids from a small set, and two a parser refuses (empty, too long).
const IDS: [&[u8]; 6] = [
    b"a",
    b"b",
    b"c",
    &[0, 255],
    b"",
    &[b'x'; MAX_LEASE_ID_LEN + 1],
];

fn lease_id() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0usize..4, 1 => 4usize..6]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0u64), 12 => 1u64..=80, 1 => Just(u64::MAX)]
}

#[derive(Clone, Debug)]
enum LeaseStep {
    Acquire {
        limit: u64,
        units: u64,
        ttl: u64,
        id: usize,
    },
    Release(usize),
    Renew(usize, u64),
    Peek {
        limit: u64,
        units: u64,
    },
    Reclaim,
    Held,
}

fn lease_steps() -> impl Strategy<Value = Vec<(i64, LeaseStep)>> {
    let dt = prop_oneof![
        3 => Just(0i64),
        6 => 1i64..=30,
        1 => 30i64..=150,
        2 => -40i64..=-1,
    ];
    let limit = prop_oneof![4 => Just(4u64), 1 => 1u64..=6];
    let step = prop_oneof![
        8 => (limit.clone(), 0u64..8, ttl(), lease_id())
            .prop_map(|(limit, units, ttl, id)| LeaseStep::Acquire { limit, units, ttl, id }),
        3 => lease_id().prop_map(LeaseStep::Release),
        3 => (lease_id(), ttl()).prop_map(|(id, ttl)| LeaseStep::Renew(id, ttl)),
        1 => (limit, 0u64..8).prop_map(|(limit, units)| LeaseStep::Peek { limit, units }),
        1 => Just(LeaseStep::Reclaim),
        1 => Just(LeaseStep::Held),
    ];
    prop::collection::vec((dt, step), 1..60)
}

/// The leases as a plain list: `(id, units, expires, placed)`, where
/// `placed` orders leases that expire together.
#[derive(Clone, Debug)]
struct LeaseModel {
    limit: u64,
    last: Us,
    leases: Vec<(Vec<u8>, u64, Us, u64)>,
    placements: u64,
}

fn ttl_of(ttl: u64) -> Us {
    ttl.clamp(1, MAX_DURATION_US)
}

impl LeaseModel {
    fn clock(&self, now: Us) -> Us {
        now.min(MAX_TIME_US).max(self.last)
    }

    fn live(&self, c: Us) -> impl Iterator<Item = &(Vec<u8>, u64, Us, u64)> {
        self.leases.iter().filter(move |l| l.2 > c)
    }

    fn held_at(&self, c: Us) -> u64 {
        self.live(c).map(|l| l.1).sum()
    }

    fn holds(&self, id: &[u8], c: Us) -> Option<usize> {
        self.leases.iter().position(|l| l.0 == id && l.2 > c)
    }

    /// A write at `c`: the dead leases go, the clock moves to `c`.
    fn write(&mut self, c: Us) {
        self.leases.retain(|l| l.2 > c);
        self.last = c;
    }

    fn place(&mut self, id: &[u8], units: u64, expires: Us) {
        self.placements += 1;
        self.leases
            .push((id.to_vec(), units, expires, self.placements));
    }

    /// The answer to `units` more under `limit` at `c`, by brute force: the
    /// wait is to the first expiry after which they fit.
    fn answer(&self, limit: u64, units: u64, c: Us) -> Answer {
        let held = self.held_at(c);
        let allowed = units <= limit && held + units <= limit;
        let retry_after = if allowed {
            Some(0)
        } else if units > limit {
            None
        } else {
            let mut ends: Vec<Us> = self.live(c).map(|l| l.2).collect();
            ends.sort_unstable();
            let e = ends
                .into_iter()
                .find(|&e| self.held_at(e) + units <= limit)
                .expect("all leases gone, the units fit");
            Some(e - c)
        };
        Answer {
            allowed,
            remaining: limit.saturating_sub(if allowed { held + units } else { held }),
            retry_after,
            reset_after: self.live(c).map(|l| l.2 - c).max().unwrap_or(0),
        }
    }

    fn reset_all(&self, c: Us) -> Us {
        self.leases.iter().map(|l| l.2 - c).max().unwrap_or(0)
    }

    /// `(answer, granted, renewed)`
    fn acquire(
        &mut self,
        limit: u64,
        units: u64,
        ttl: u64,
        id: &[u8],
        now: Us,
    ) -> (Answer, bool, bool) {
        let c = self.clock(now);
        if units == 0 {
            return (self.answer(limit, 0, c), false, false);
        }
        if !(1..=MAX_LEASE_ID_LEN).contains(&id.len()) {
            let a = Answer {
                allowed: false,
                retry_after: None,
                ..self.answer(limit, 0, c)
            };
            return (a, false, false);
        }
        if let Some(i) = self.holds(id, c) {
            let (_, held_units, _, _) = self.leases.remove(i);
            self.write(c);
            self.place(id, held_units, c + ttl_of(ttl));
            self.limit = limit;
            let a = Answer {
                allowed: true,
                remaining: limit.saturating_sub(self.held_at(c)),
                retry_after: Some(0),
                reset_after: self.reset_all(c),
            };
            return (a, false, true);
        }
        let a = self.answer(limit, units, c);
        if !a.allowed {
            return (a, false, false);
        }
        self.write(c);
        self.place(id, units, c + ttl_of(ttl));
        self.limit = limit;
        let a = Answer {
            reset_after: self.reset_all(c),
            ..a
        };
        (a, true, false)
    }

    fn release(&mut self, id: &[u8], now: Us) -> bool {
        let c = self.clock(now);
        let Some(i) = self.holds(id, c) else {
            return false;
        };
        self.leases.remove(i);
        self.write(c);
        true
    }

    fn renew(&mut self, id: &[u8], ttl: u64, now: Us) -> bool {
        let c = self.clock(now);
        let Some(i) = self.holds(id, c) else {
            return false;
        };
        let (_, units, _, _) = self.leases.remove(i);
        self.write(c);
        self.place(id, units, c + ttl_of(ttl));
        true
    }

    fn reclaim(&mut self, now: Us) -> usize {
        let c = self.clock(now);
        let dead = self.leases.iter().filter(|l| l.2 <= c).count();
        if dead > 0 {
            self.write(c);
        }
        dead
    }

    /// The leases in the state's order: by expiry, then as placed.
    fn sorted(&self) -> Vec<(Vec<u8>, u64, Us)> {
        let mut v = self.leases.clone();
        v.sort_by_key(|l| (l.2, l.3));
        v.into_iter().map(|(id, u, e, _)| (id, u, e)).collect()
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct LeaseStats {
    granted: u64,
    renewed: u64,
    denied_waits: u64,
    released: u64,
    renew_true: u64,
    reclaimed: u64,
    clock_back: u64,
}

fn run_leases(steps: &[(i64, LeaseStep)]) -> LeaseStats {
    let first = count(4);
    let mut st = LeaseState::new(first);
    let mut m = LeaseModel {
        limit: 4,
        last: 0,
        leases: Vec::new(),
        placements: 0,
    };
    let mut stats = LeaseStats::default();
    let mut now = EPOCH;
    for (dt, step) in steps {
        now = now.saturating_add_signed(*dt);
        if now < m.last {
            stats.clock_back += 1;
        }
        let c = m.clock(now);
        let ctx = || {
            format!(
                "{step:?} at +{} (clock +{})",
                now as i128 - EPOCH as i128,
                c - EPOCH
            )
        };
        match *step {
            LeaseStep::Acquire {
                limit,
                units,
                ttl,
                id,
            } => {
                let id = IDS[id];
                let a = st.acquire(count(limit), units, d(ttl), id, t(now));
                let (want, granted, renewed) = m.acquire(limit, units, ttl, id, now);
                assert_eq!(answer_of(&a.decision), want, "{}", ctx());
                assert_eq!((a.granted, a.renewed), (granted, renewed), "{}", ctx());
                // A zero-unit acquire is a peek: allowed, nothing placed.
                assert_eq!(a.decision.allowed && units > 0, granted || renewed);
                assert_eq!(a.decision.at, t(c));
                assert_eq!(a.decision.limit, limit);
                if granted {
                    assert!(st.held(t(now)) <= limit, "held above the granting limit");
                    stats.granted += 1;
                }
                stats.renewed += renewed as u64;
                stats.denied_waits += want.retry_after.is_some_and(|r| r > 0) as u64;
            }
            LeaseStep::Release(id) => {
                let done = st.release(IDS[id], t(now));
                assert_eq!(done, m.release(IDS[id], now), "{}", ctx());
                stats.released += done as u64;
            }
            LeaseStep::Renew(id, ttl) => {
                let done = st.renew(IDS[id], d(ttl), t(now));
                assert_eq!(done, m.renew(IDS[id], ttl, now), "{}", ctx());
                stats.renew_true += done as u64;
            }
            LeaseStep::Peek { limit, units } => {
                let p = st.peek(count(limit), units, t(now));
                assert_eq!(answer_of(&p), m.answer(limit, units, c), "{}", ctx());
                assert_eq!(p.at, t(c));
            }
            LeaseStep::Reclaim => {
                let n = st.reclaim(t(now));
                assert_eq!(n, m.reclaim(now), "{}", ctx());
                stats.reclaimed += n as u64;
            }
            LeaseStep::Held => {}
        }
        // Every step: the same leases, in the same order; the same held
        // units; a valid state that round-trips byte for byte.
        assert!(st.is_valid(), "{st:?}");
        let got: Vec<(Vec<u8>, u64, Us)> = st
            .leases()
            .map(|l: &Lease| (l.id.to_vec(), l.units, l.expires.as_micros()))
            .collect();
        assert_eq!(got, m.sorted(), "after {}", ctx());
        assert_eq!((st.limit.get(), st.last.as_micros()), (m.limit, m.last));
        assert_eq!(st.held(t(now)), m.held_at(m.clock(now)));
        assert_eq!(
            st.empty_at().map(Instant::as_micros),
            m.leases.iter().map(|l| l.2).max()
        );
        let value = Value::Leases(Box::new(st.clone()));
        let bytes = codec::encode_value(&value);
        assert_eq!(codec::decode_value(&bytes, 2).as_ref(), Ok(&value));
    }
    stats
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn leases_match_their_model(s in lease_steps()) {
        run_leases(&s);
    }
}

// --------------------------------------------------------------- codec ---

fn wide_count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(MAX_COUNT), 1..=8u64, 1..=MAX_COUNT]
}

fn wide_period() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1u64),
        Just(MAX_DURATION_US),
        1..=1_000_000u64,
        1..=MAX_DURATION_US
    ]
}

fn wide_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(MAX_TIME_US),
        EPOCH..=EPOCH + 10_000_000,
        0..=MAX_TIME_US
    ]
}

fn any_params() -> impl Strategy<Value = Params> {
    (0usize..6, wide_count(), wide_count(), wide_period()).prop_map(|(algo, n, rate, per)| {
        let w = WindowParams::new(n, per).unwrap();
        let b = BucketParams::new(n, rate, per).unwrap();
        params_of(algo, w, b)
    })
}

/// Any state `is_valid` accepts under `p`, reachable or not: the decoder
/// accepts exactly those.
fn any_limiter() -> impl Strategy<Value = Limiter> {
    (
        any_params(),
        wide_time(),
        (0..=MAX_COUNT, 0..=MAX_COUNT),
        prop::collection::vec(wide_time(), 0..8),
        any::<u128>(),
    )
        .prop_map(|(p, start, (x, y), mut times, raw)| {
            times.sort_unstable();
            let bucket = |b: BucketParams| {
                let max = MAX_COUNT as u128 * b.period.wide();
                Box::new(BucketState {
                    params: b,
                    scaled: Wide::new(raw % (max + 1)),
                    last: t(start),
                })
            };
            let l = match p {
                Params::Fixed(params) => Limiter::Fixed(Box::new(FixedState {
                    params,
                    start: t(start),
                    count: x,
                })),
                Params::Sliding(params) => Limiter::Sliding(Box::new(SlidingState {
                    params,
                    start: t(start),
                    prev: x,
                    curr: y,
                })),
                Params::Log(params) => {
                    let mut s = LogState::new(params);
                    s.entries.extend(times.into_iter().map(t));
                    Limiter::Log(Box::new(s))
                }
                Params::Token(b) => Limiter::Token(bucket(b)),
                Params::Leaky(b) => Limiter::Leaky(bucket(b)),
                Params::Gcra(g) => Limiter::Gcra(bucket(g.bucket())),
            };
            assert!(l.is_valid(), "{l:?}");
            l
        })
}

fn block_end() -> impl Strategy<Value = u64> {
    let latest = latest_block_end().as_micros();
    prop_oneof![
        Just(0u64),
        Just(latest),
        EPOCH..=EPOCH + 10_000_000,
        0..=latest
    ]
}

fn any_id() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=MAX_LEASE_ID_LEN)
}

/// Any lease state `is_valid` accepts: unique ids of any bytes, sorted
/// expiries, at most `MAX_COUNT` units in all.
fn any_leases() -> impl Strategy<Value = LeaseState> {
    let expires = prop_oneof![
        Just(MAX_TIME_US + MAX_DURATION_US),
        EPOCH..=EPOCH + 1_000,
        0..=MAX_TIME_US + MAX_DURATION_US
    ];
    (
        wide_count(),
        wide_time(),
        prop::collection::vec((any_id(), wide_count(), expires), 0..8),
    )
        .prop_map(|(limit, last, raw)| {
            let mut leases: Vec<Lease> = Vec::new();
            let mut total = 0u64;
            for (id, units, expires) in raw {
                let units = units.min(MAX_COUNT - total);
                if units == 0 || leases.iter().any(|l| *l.id == *id) {
                    continue;
                }
                total += units;
                leases.push(Lease {
                    id: id.into(),
                    units,
                    expires: t(expires),
                });
            }
            leases.sort_by_key(|l| l.expires);
            let s = LeaseState::from_parts(count(limit), t(last), leases);
            assert!(s.is_valid(), "{s:?}");
            s
        })
}

/// `bytes` decode to `value` and back to the same bytes; no prefix and no
/// extension decodes.
fn check_value_bytes(value: &Value, bytes: &[u8]) {
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

fn check_op_bytes(bytes: &[u8], decode_ok: impl Fn(&[u8]) -> bool) {
    for n in 0..bytes.len() {
        assert!(!decode_ok(&bytes[..n]), "cut at {n}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(!decode_ok(&longer), "one byte more");
}

fn lease_action() -> impl Strategy<Value = LeaseAction> {
    prop_oneof![
        (wide_count(), wide_count(), wide_period()).prop_map(|(limit, units, ttl)| {
            LeaseAction::Acquire {
                limit: count(limit),
                units,
                ttl: d(ttl),
            }
        }),
        Just(LeaseAction::Release),
        wide_period().prop_map(|ttl| LeaseAction::Renew { ttl: d(ttl) }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn blocked_limiters_round_trip(l in any_limiter(), until in block_end()) {
        let plain = Value::Limiter(l.clone());
        // A limiter outside the box is written as version 1 wrote it.
        assert_eq!(codec::encode_value(&plain), codec::encode(&l));
        check_value_bytes(&plain, &codec::encode_value(&plain));
        let blocked = Value::Blocked(Box::new(Blocked { until: t(until), limiter: l }));
        assert!(blocked.is_valid());
        check_value_bytes(&blocked, &codec::encode_value(&blocked));
    }

    #[test]
    fn lease_states_round_trip(s in any_leases()) {
        let v = Value::Leases(Box::new(s));
        check_value_bytes(&v, &codec::encode_value(&v));
    }

    #[test]
    fn refund_and_penalty_ops_round_trip(
        given in wide_count(),
        p in any_params(),
        cost in prop_oneof![Just(0u64), wide_count()],
        now in wide_time(),
        expire_at_ms in any::<u64>().prop_map(UnixMs::from_millis),
        penalty in prop::option::of(wide_period()),
        more in prop::collection::vec((any_params(), any::<u64>().prop_map(UnixMs::from_millis)), 0..4),
        many in any::<bool>(),
    ) {
        let refund = RefundOp { given, now: t(now), expire_at_ms };
        let bytes = codec::encode_refund_op(&refund);
        assert_eq!(codec::decode_any_op(&bytes), Ok(AnyOp::Refund(refund)));
        check_op_bytes(&bytes, |b| codec::decode_any_op(b).is_ok());

        let op = Op { params: p, cost, now: t(now), expire_at_ms, penalty: penalty.map(d) };
        let bytes = codec::encode_op(&op);
        assert_eq!(codec::decode_any_op(&bytes), Ok(AnyOp::Decide(op)));
        assert_eq!(codec::decode_op(&bytes), Ok(op));
        check_op_bytes(&bytes, |b| codec::decode_any_op(b).is_ok());

        let mut limits = vec![(p, expire_at_ms)];
        limits.extend(more);
        if many {
            limits.resize(codec::ALL_OP_MAX_LIMITS, (p, expire_at_ms));
        }
        let bytes = codec::encode_all_op(
            cost,
            t(now),
            penalty.map(d),
            limits.iter().map(|(p, e)| (p, *e)),
        );
        let all = codec::decode_all_op(&bytes).unwrap();
        assert_eq!((all.cost, all.now, all.penalty), (cost, t(now), penalty.map(d)));
        assert_eq!(all.limits, limits);
        check_op_bytes(&bytes, |b| codec::decode_all_op(b).is_ok());
    }

    #[test]
    fn lease_ops_round_trip(
        what in lease_action(),
        id in any_id(),
        now in wide_time(),
        expire_at_ms in any::<u64>().prop_map(UnixMs::from_millis),
    ) {
        let op = LeaseOp { what, id: &id, now: t(now), expire_at_ms };
        let bytes = codec::encode_lease_op(&op);
        assert_eq!(codec::decode_any_op(&bytes), Ok(AnyOp::Lease(op)));
        assert!(codec::decode_op(&bytes).is_err(), "not a decision");
        check_op_bytes(&bytes, |b| codec::decode_any_op(b).is_ok());
    }
}

// ------------------------------------------------ the runs reach things ---

/// Generates `n` cases of `strategy` from a fixed seed.
fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// The generated runs reach what the properties are about: refunds that give
/// and that give nothing, retries after a refund, blocks started, calls
/// while blocked, lifted blocks, grants, renewals, waits, expiries and a
/// clock going back.
#[test]
fn the_generated_runs_reach_every_case() {
    let mut r = RefundStats::default();
    let cases = (0usize..6, window_params(), bucket_params(), refund_steps());
    for (algo, w, b, s) in sample(cases, 120) {
        let s = run_refunds(params_of(algo, w, b), &s);
        r.refunds_given += s.refunds_given;
        r.refunds_of_nothing += s.refunds_of_nothing;
        r.retries_after_refund += s.retries_after_refund;
    }
    assert!(r.refunds_given > 100 && r.refunds_of_nothing > 100, "{r:?}");
    assert!(r.retries_after_refund > 20, "{r:?}");

    let mut b = BoxStats::default();
    let cases = (0usize..6, window_params(), bucket_params(), call_steps());
    for (algo, w, bp, s) in sample(cases, 120) {
        let s = run_penalties(params_of(algo, w, bp), &s);
        b.blocks += s.blocks;
        b.blocked_calls += s.blocked_calls;
        b.lifts += s.lifts;
        b.refunds_while_blocked += s.refunds_while_blocked;
    }
    assert!(b.blocks > 50 && b.blocked_calls > 100, "{b:?}");
    assert!(b.lifts > 10 && b.refunds_while_blocked > 10, "{b:?}");

    let (mut blocked, mut started) = (0, 0);
    let cases = (
        0usize..6,
        prop::array::uniform3(window_params()),
        prop::array::uniform3(bucket_params()),
        changing_calls(),
    );
    for (algo, w, bp, s) in sample(cases, 120) {
        let sets = [0, 1, 2].map(|i| params_of(algo, w[i], bp[i]));
        let (b, s) = run_penalties_changing(&sets, &s);
        blocked += b;
        started += s;
    }
    assert!(
        blocked > 100 && started > 50,
        "{blocked} blocked, {started} started"
    );

    let mut l = LeaseStats::default();
    for s in sample(lease_steps(), 120) {
        let s = run_leases(&s);
        l.granted += s.granted;
        l.renewed += s.renewed;
        l.denied_waits += s.denied_waits;
        l.released += s.released;
        l.renew_true += s.renew_true;
        l.reclaimed += s.reclaimed;
        l.clock_back += s.clock_back;
    }
    assert!(
        l.granted > 100 && l.renewed > 20 && l.denied_waits > 20,
        "{l:?}"
    );
    assert!(l.released > 20 && l.renew_true > 20, "{l:?}");
    assert!(l.reclaimed > 10 && l.clock_back > 20, "{l:?}");
}

/// The models themselves, on the rows of the unit tables.
#[test]
fn the_models_follow_the_documented_examples() {
    // A bucket of 5, one unit per 5 µs, emptied, then 2 units drained: 3
    // come back, not more (src/algo/limiter.rs, refunds_follow_each_...).
    let b = BucketParams::new(5, 1, 5).unwrap();
    for p in [
        Params::Token(b),
        Params::Leaky(b),
        Params::Gcra(GcraParams::of_bucket(&b)),
    ] {
        let mut m = Model::new(&p);
        assert!(m.answer(5, 0).0.allowed);
        m.spend(5, 0);
        assert_eq!(m.refund(10, 10), 3, "{p:?}");
        assert_eq!(m.refund(1, 10), 0, "{p:?}");
        assert_eq!(m.answer(0, 10).0.remaining, 5);
    }
    // A sliding window: the previous window's units are never refunded.
    let w = WindowParams::new(5, 10).unwrap();
    let mut m = Model::new(&Params::Sliding(w));
    m.spend(3, 0);
    assert_eq!(m.refund(1, 10), 0);
    assert_eq!(m.answer(0, 10).0.remaining, 2);
    assert_eq!(m.answer(0, 15).0.remaining, 3);
}
