//! The RDB / `RESTORE` / `RL.SETSTATE` decoder (`ratelimit::codec::decode`):
//! any bytes in, either an error or a valid limiter that re-encodes to the
//! very same bytes and can then be used by every request without panicking.
//!
//! Input: one byte for the encoding version (so unsupported versions are
//! tried too), then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{BucketParams, Micros, Params, WindowParams, MAX_TIME_US};
use ratelimit::codec;

#[path = "common.rs"]
mod common;

/// A small configuration of the same algorithm, as a command could give.
fn other(p: &Params) -> Params {
    let w = WindowParams {
        limit: 3,
        window: 1_000_000,
    };
    let b = BucketParams {
        capacity: 3,
        rate: 2,
        period: 1_000_000,
    };
    match p {
        Params::Fixed(_) => Params::Fixed(w),
        Params::Sliding(_) => Params::Sliding(w),
        Params::Log(_) => Params::Log(w),
        Params::Token(_) => Params::Token(b),
        Params::Leaky(_) => Params::Leaky(b),
        Params::Gcra(_) => Params::Gcra(b),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&v, bytes)) = data.split_first() else {
        return;
    };
    let version = v as i32 - 1;
    let Ok(limiter) = codec::decode(bytes, version) else {
        return;
    };
    assert!(limiter.is_valid());
    assert_eq!(codec::encode(&limiter), bytes, "decoding is not strict");
    let _ = limiter.describe();
    let stored = limiter.params();
    let times: [Micros; 5] = [0, 1, common::EPOCH, MAX_TIME_US - 1, MAX_TIME_US];
    for p in [stored, other(&stored)] {
        for now in times {
            for cost in [0, 1, 2, u64::MAX] {
                let cost = cost.min(match p {
                    Params::Fixed(w) | Params::Sliding(w) | Params::Log(w) => w.limit + 1,
                    Params::Token(b) | Params::Leaky(b) | Params::Gcra(b) => b.capacity + 1,
                });
                let mut l = limiter.clone();
                common::decide(&mut l, &p, cost, now);
            }
        }
    }
});
