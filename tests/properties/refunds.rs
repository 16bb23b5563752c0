//! Property tests of refunds. Per algorithm, spends, refunds, peeks and
//! "denied, refund, retry" at nondecreasing times, against the model of the
//! algorithm's own state in `common.rs` (window counts, the log's entries,
//! the bucket's level as an exact rational in integers: tokens, a queue, or
//! GCRA's theoretical arrival time). Waits are found by scanning the model
//! forward one µs at a time, remaining by trying every cost. Random refund
//! and decision ops (with and without `PENALTY`) round-trip byte for byte.
//! Case counts are small so the file runs in well under a second in release
//! and in seconds in debug; set `PROPTEST_CASES` to dig deeper.

use super::common::{
    answer_of, any_params, check_op_bytes, d, params_of, sample, wide_count, wide_period,
    wide_time, Answer, Model,
};
use super::{bucket_params, config, t, window_params, Us, EPOCH};
use proptest::prelude::*;

use ratelimit::algo::{BucketParams, GcraParams, Limiter, Params, UnixMs, WindowParams};
use ratelimit::codec::{self, AnyOp, Op, RefundOp};

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

    /// `ratelimit.compact-ops`: a bucket's op whose cost and expiry fit in 4
    /// bytes each is 8 bytes shorter and decodes to the same op, as strictly;
    /// any other op is written exactly as `encode_op` writes it.
    #[test]
    fn compact_ops_round_trip(
        p in any_params(),
        cost in prop_oneof![Just(0u64), Just(u64::from(u32::MAX)), Just(u64::from(u32::MAX) + 1), wide_count()],
        now in wide_time(),
        after in prop_oneof![Just(0u64), Just(u64::from(u32::MAX)), Just(u64::from(u32::MAX) + 1), 0..=3_600_000u64],
        before in any::<bool>(),
        penalty in prop::option::of(wide_period()),
    ) {
        // An expiry before the op's time (a client's AT after its clock) too.
        let ms = now / 1000;
        let exp = if before { ms.saturating_sub(after + 1) } else { ms + after };
        let expire_at_ms = UnixMs::from_millis(exp);
        let op = Op { params: p, cost, now: t(now), expire_at_ms, penalty: penalty.map(d) };
        let full = codec::encode_op(&op);
        let compact = codec::encode_op_compact(&op);
        assert_eq!(codec::decode_any_op(&compact), Ok(AnyOp::Decide(op)));
        assert_eq!(codec::decode_op(&compact), Ok(op));
        let bucket = matches!(p, Params::Token(_) | Params::Leaky(_) | Params::Gcra(_));
        let delta = exp.checked_sub(ms);
        let fits = cost <= u64::from(u32::MAX) && delta.is_some_and(|d| d <= u64::from(u32::MAX));
        assert_eq!(codec::is_compact_op(&compact), bucket && fits);
        assert!(!codec::is_compact_op(&full));
        if bucket && fits {
            assert_eq!(compact.len() + 8, full.len());
            assert!(compact.len() <= 44 || penalty.is_some(), "{} bytes", compact.len());
            check_op_bytes(&compact, |b| codec::decode_any_op(b).is_ok());
        } else {
            assert_eq!(&*compact, &*full);
        }
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
}

/// The generated runs reach refunds that give and that give nothing, and
/// retries after a refund (see `the_generated_runs_reach_every_case`).
pub(super) fn check_the_runs_reach_every_case() {
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
