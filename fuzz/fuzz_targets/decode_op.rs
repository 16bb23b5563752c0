//! The decoder of replicated operations (`RL.APPLY key <op>`,
//! `ratelimit::codec::decode_op`): any bytes in, either an error or an op
//! within bounds that re-encodes to the same bytes and replays cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{Limiter, MAX_COUNT, MAX_TIME_US};
use ratelimit::codec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(op) = codec::decode_op(data) else {
        return;
    };
    common::check_params(&op.params);
    assert!(op.cost <= MAX_COUNT);
    assert!(op.now <= MAX_TIME_US);
    assert_eq!(&*codec::encode_op(&op), data, "decoding is not strict");
    let mut l = Limiter::new(&op.params);
    common::decide(&mut l, &op.params, op.cost, op.now);
    common::decide(&mut l, &op.params, op.cost, op.now);
});
