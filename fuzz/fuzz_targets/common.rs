//! Checks shared by the fuzz targets.
#![allow(dead_code)]

use ratelimit::algo::{
    BucketParams, Limiter, Micros, Params, WindowParams, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US,
};
use ratelimit::codec;

/// A present-day instant, in µs.
pub const EPOCH: Micros = 1_700_000_000_000_000;

/// The log holds one entry per unit; the module never lets a command ask for
/// more than its `log-max` ceiling, so neither do the targets.
pub const LOG_COST_CAP: u64 = 10_000;

/// Parameters are within the bounds every algorithm relies on.
pub fn check_params(p: &Params) {
    let window = |w: &WindowParams| {
        assert!((1..=MAX_COUNT).contains(&w.limit), "{p:?}");
        assert!((1..=MAX_DURATION_US).contains(&w.window), "{p:?}");
    };
    let bucket = |b: &BucketParams| {
        assert!((1..=MAX_COUNT).contains(&b.capacity), "{p:?}");
        assert!((1..=MAX_COUNT).contains(&b.rate), "{p:?}");
        assert!((1..=MAX_DURATION_US).contains(&b.period), "{p:?}");
    };
    match p {
        Params::Fixed(w) | Params::Sliding(w) | Params::Log(w) => window(w),
        Params::Token(b) | Params::Leaky(b) | Params::Gcra(b) => bucket(b),
    }
}

fn limit_of(p: &Params) -> u64 {
    match p {
        Params::Fixed(w) | Params::Sliding(w) | Params::Log(w) => w.limit,
        Params::Token(b) | Params::Leaky(b) | Params::Gcra(b) => b.capacity,
    }
}

/// Decides `cost` at `now` on `limiter` and checks what must always hold:
/// no panic (overflow checks are on), a denial changes nothing, the state
/// stays valid and round-trips through the codec.
pub fn decide(limiter: &mut Limiter, p: &Params, cost: u64, now: Micros) {
    let cost = match p {
        Params::Log(_) => cost.min(LOG_COST_CAP),
        _ => cost,
    };
    let now = now.min(MAX_TIME_US);
    let before = limiter.clone();
    let Ok(d) = limiter.decide(p, cost, now) else {
        assert_eq!(*limiter, before);
        return;
    };
    assert_eq!(d.changed, d.allowed && cost > 0);
    assert!(d.remaining <= limit_of(p));
    if !d.changed {
        assert_eq!(*limiter, before);
    }
    assert!(limiter.is_valid(), "{limiter:?}");
    let bytes = codec::encode(limiter);
    assert_eq!(
        codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(&*limiter)
    );
}
