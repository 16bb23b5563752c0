//! The RDB / `RESTORE` / `RL.SETSTATE` decoder (`ratelimit::codec::decode`):
//! any bytes in, either an error or a valid limiter that re-encodes to the
//! very same bytes and can then be used by every request without panicking.
//!
//! Input: one byte for the encoding version (so unsupported versions are
//! tried too), then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::value;
use ratelimit::algo::{
    Algorithm, BucketParams, Duration, Instant, LeaseState, Params, Value, WindowParams,
    MAX_DURATION_US, MAX_TIME_US,
};
use ratelimit::codec;

#[path = "common.rs"]
mod common;

/// A small configuration of the same algorithm, as a command could give.
fn other(p: &Params) -> Params {
    let w = WindowParams::new(3, 1_000_000);
    let b = BucketParams::new(3, 2, 1_000_000);
    let algo: Algorithm = p.algorithm();
    w.and_then(|w| Params::window(algo, w))
        .or_else(|| b.and_then(|b| Params::bucket(algo, b)))
        .unwrap_or(*p)
}

fuzz_target!(|data: &[u8]| {
    let Some((&v, bytes)) = data.split_first() else {
        return;
    };
    let version = v as i32 - 1;
    let Ok(value) = codec::decode_value(bytes, version) else {
        return;
    };
    assert!(value.is_valid());
    assert_eq!(codec::encode_value(&value), bytes, "decoding is not strict");
    if let Value::Leases(state) = &value {
        leases(state);
        return;
    }
    // Blocked or not, every request and refund computes.
    let Some(limiter) = value.limiter() else {
        return;
    };
    for now in [0, common::EPOCH, MAX_TIME_US] {
        let now = Instant::from_micros(now);
        let stored = limiter.params();
        for penalty in [
            None,
            Some(Duration::from_micros(1)),
            Some(Duration::from_micros(MAX_DURATION_US)),
        ] {
            if let Ok(g) = value::evaluate(Some(&value), &stored, 1, now, penalty) {
                let d = g.verdict.decision;
                assert!(d.allowed || d.remaining <= stored.limit());
            }
        }
        let mut refunded = value.clone();
        let given = match refunded.limiter_mut() {
            Some(l) => l.refund(u64::MAX, now),
            None => 0,
        };
        assert!(refunded.is_valid());
        if given == 0 {
            assert_eq!(refunded, value);
        }
    }
    limiter.describe(|_, _| {});
    let stored = limiter.params();
    let times: [u64; 5] = [0, 1, common::EPOCH, MAX_TIME_US - 1, MAX_TIME_US];
    for p in [stored, other(&stored)] {
        for now in times {
            for cost in [0, 1, 2, u64::MAX] {
                let cost = cost.min(p.limit() + 1);
                let mut l = limiter.clone();
                common::decide(&mut l, &p, cost, now);
            }
        }
    }
});

/// Decoded leases take every operation and stay valid; a denial or a miss
/// changes nothing.
fn leases(state: &LeaseState) {
    let ttl = Duration::from_micros(MAX_DURATION_US);
    let ids: Vec<Vec<u8>> = state
        .leases()
        .map(|l| l.id.to_vec())
        .chain([b"fresh".to_vec()])
        .collect();
    for now in [0, common::EPOCH, MAX_TIME_US] {
        let now = Instant::from_micros(now);
        for id in &ids {
            let mut s = state.clone();
            let a = s.acquire(state.limit, 1, ttl, id, now);
            if !(a.granted || a.renewed) {
                assert_eq!(&s, state);
            }
            assert!(s.is_valid());
            let mut s = state.clone();
            if !s.release(id, now) {
                assert_eq!(&s, state);
            }
            assert!(s.is_valid());
            let mut s = state.clone();
            if !s.renew(id, ttl, now) {
                assert_eq!(&s, state);
            }
            assert!(s.is_valid());
            let _ = state.peek(state.limit, 1, now);
        }
    }
}
