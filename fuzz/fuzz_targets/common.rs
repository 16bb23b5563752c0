//! Checks shared by the fuzz targets.
#![allow(dead_code)]

use ratelimit::algo::value::{self, latest_block_end, Installed};
use ratelimit::algo::{
    BlockChange, Duration, FixedWindow, Instant, Limiter, Offset, Params, Span, Value,
    MAX_ALIGNED_US, MAX_COUNT, MAX_DURATION_US, MAX_MONTHS, MAX_TIME_US,
};
use ratelimit::codec;

/// A present-day instant, in µs.
pub const EPOCH: u64 = 1_700_000_000_000_000;

/// The log holds one entry per unit; the module never lets a command ask for
/// more than its `log-max` ceiling, so neither do the targets.
pub const LOG_COST_CAP: u64 = 10_000;

/// Parameters are within the bounds every algorithm relies on (the types
/// make others unrepresentable; this checks the figures they report).
pub fn check_params(p: &Params) {
    assert!((1..=MAX_COUNT).contains(&p.limit()), "{p:?}");
    let period = match p {
        Params::Fixed(f) => match f.window() {
            FixedWindow::FirstHit(w) => w,
            FixedWindow::Aligned(Span::Micros(w), offset) => {
                assert!(w.micros() <= MAX_ALIGNED_US, "{p:?}");
                assert!(offset.minutes().abs() <= Offset::MAX_MINUTES, "{p:?}");
                w
            }
            FixedWindow::Aligned(Span::Months(n), offset) => {
                assert!((1..=MAX_MONTHS).contains(&n.get()), "{p:?}");
                assert!(offset.minutes().abs() <= Offset::MAX_MINUTES, "{p:?}");
                return;
            }
        },
        Params::Sliding(w) | Params::Log(w) => w.window,
        Params::Token(b) | Params::Leaky(b) => b.period,
        Params::Gcra(g) => g.period,
    };
    assert!((1..=MAX_DURATION_US).contains(&period.micros()), "{p:?}");
}

/// Decides `cost` at `now` on `limiter` and checks what must always hold:
/// no panic (overflow checks are on), a request that does not write changes
/// nothing, the state stays valid and round-trips through the codec.
pub fn decide(limiter: &mut Limiter, p: &Params, cost: u64, now: u64) {
    let cost = match p {
        Params::Log(_) => cost.min(LOG_COST_CAP),
        _ => cost,
    };
    let now = Instant::from_micros(now.min(MAX_TIME_US));
    let before = limiter.clone();
    let Ok(v) = limiter.evaluate(p, cost, now) else {
        return;
    };
    let d = v.decision;
    assert_eq!(
        v.writes,
        cost > 0 && (d.allowed || before.params() != *p),
        "{d:?}"
    );
    assert!(d.remaining <= p.limit());
    assert!(d.at >= now);
    if v.writes {
        limiter.apply(&v.next);
        assert_eq!(limiter.params(), *p);
    }
    // A peek never writes.
    let peeked = limiter.clone();
    let _ = limiter.decide(p, 0, now);
    assert_eq!(*limiter, peeked);
    if !v.writes {
        assert_eq!(*limiter, before);
    }
    assert!(limiter.is_valid(), "{limiter:?}");
    let bytes = codec::encode(limiter);
    assert_eq!(
        codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(&*limiter)
    );
}

/// One call on a key as the module makes it, with the penalty box: evaluate
/// on what `held` holds, install the next state when the verdict writes, then
/// apply the block change. Checks what a block must respect: a blocked call
/// is denied with nothing left and spends nothing, a block starts only on a
/// denial that could pass later and ends within the bounds the decoder
/// accepts, and the value stays valid and round-trips.
pub fn call(held: &mut Option<Value>, p: &Params, cost: u64, now: u64, penalty: Option<Duration>) {
    let cost = match p {
        Params::Log(_) => cost.min(LOG_COST_CAP),
        _ => cost,
    };
    let now = Instant::from_micros(now.min(MAX_TIME_US));
    let Ok(g) = value::evaluate(held.as_ref(), p, cost, now, penalty) else {
        return;
    };
    let d = g.verdict.decision;
    let old_block = held.as_ref().and_then(Value::block);
    if old_block.is_some_and(|u| u > d.at) {
        assert!(!d.allowed && d.remaining == 0 && !g.verdict.spends, "{d:?}");
        assert_eq!(g.block, BlockChange::Keep);
    }
    if let BlockChange::Start(until) = g.block {
        assert!(!d.allowed && cost > 0 && penalty.is_some(), "{d:?}");
        assert!(d.retry_after.is_some(), "{d:?}");
        assert!(until <= latest_block_end(), "{until:?}");
        assert!(d.reset_after >= until - d.at, "{d:?}");
    }
    if !g.verdict.writes {
        assert_eq!(g.block, BlockChange::Keep);
        return;
    }
    // The module's own install step, on the snapshot the decision saw.
    match value::install(held.as_mut(), g.change(p)).expect("installs on its snapshot") {
        Installed::InPlace => {}
        Installed::Store(v) => *held = Some(v),
        Installed::Empty => panic!("a decision that writes leaves a limiter"),
    }
    let v = held.take().expect("a limiter after a write");
    assert!(v.is_valid(), "{v:?}");
    let bytes = codec::encode_value(&v);
    assert_eq!(
        codec::decode_value(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(&v)
    );
    *held = Some(v);
}
