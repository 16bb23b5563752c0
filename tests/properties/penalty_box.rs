//! Property tests of the penalty box: random calls with and without
//! `PENALTY` and refunds on one key, against the model of the limiter in
//! `common.rs` plus a `blocked_until`; and, under parameters that change and
//! a clock that goes back, the box's rules checked against the bare
//! limiter's own decisions. Random valid blocked limiters round-trip byte
//! for byte. Case counts are small so the file runs in well under a second
//! in release and in seconds in debug; set `PROPTEST_CASES` to dig deeper.

use super::common::{
    answer_of, any_params, check_value_bytes, d, params_of, sample, wide_time, Answer, Model,
};
use super::{bucket_params, config, t, window_params, Us, EPOCH};
use proptest::prelude::*;

use ratelimit::algo::bucket::Wide;
use ratelimit::algo::value::{self, latest_block_end};
use ratelimit::algo::{
    BlockChange, Blocked, BucketParams, BucketState, Duration, FixedState, Limiter, LogState,
    Params, SlidingState, Value, MAX_COUNT, MAX_DURATION_US,
};
use ratelimit::codec;

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
            // The module's own install step: the model checked against is
            // `BoxModel`, not a second copy of it.
            match value::install(self.held.as_mut(), g.change(p)).unwrap() {
                value::Installed::InPlace => {}
                value::Installed::Store(v) => self.held = Some(v),
                value::Installed::Empty => panic!("a decision that writes leaves a limiter"),
            }
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

// --------------------------------------------------------------- codec ---

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
}

/// The generated runs reach blocks started, calls while blocked, lifted
/// blocks and refunds while blocked, with constant parameters and with
/// changing ones (see `the_generated_runs_reach_every_case`).
pub(super) fn check_the_runs_reach_every_case() {
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
}
