//! The decoders of replicated operations (`RL.APPLY key <op>`,
//! `ratelimit::codec::decode_any_op`: decisions, with or without a penalty,
//! compact or not, refunds and lease operations; and `RL.APPLYALL numkeys key... <op>`,
//! `decode_all_op`): any bytes in, either an error or an op within bounds
//! that re-encodes to the same bytes and replays cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{Limiter, MAX_COUNT, MAX_TIME_US};
use ratelimit::codec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = codec::decode_all_op(data) {
        assert!((1..=codec::ALL_OP_MAX_LIMITS).contains(&op.limits.len()));
        assert!(op.cost <= MAX_COUNT);
        assert!(op.now.as_micros() <= MAX_TIME_US);
        let again = codec::encode_all_op(
            op.cost,
            op.now,
            op.penalty,
            op.limits.iter().map(|(p, e)| (p, *e)),
        );
        assert_eq!(&*again, data, "decoding is not strict");
        for (p, _) in &op.limits {
            common::check_params(p);
            let mut l = Limiter::new(p);
            common::decide(&mut l, p, op.cost, op.now.as_micros());
        }
        return;
    }
    let op = match codec::decode_any_op(data) {
        Ok(codec::AnyOp::Decide(op)) => op,
        Ok(codec::AnyOp::Refund(op)) => {
            assert!((1..=MAX_COUNT).contains(&op.given));
            assert!(op.now.as_micros() <= MAX_TIME_US);
            assert_eq!(
                &*codec::encode_refund_op(&op),
                data,
                "decoding is not strict"
            );
            return;
        }
        Ok(codec::AnyOp::Lease(op)) => {
            assert!(op.now.as_micros() <= MAX_TIME_US);
            assert!((1..=ratelimit::algo::MAX_LEASE_ID_LEN).contains(&op.id.len()));
            assert_eq!(
                &*codec::encode_lease_op(&op),
                data,
                "decoding is not strict"
            );
            return;
        }
        Err(_) => return,
    };
    common::check_params(&op.params);
    assert!(op.cost <= MAX_COUNT);
    assert!(op.now.as_micros() <= MAX_TIME_US);
    let again = if codec::is_compact_op(data) {
        codec::encode_op_compact(&op)
    } else {
        codec::encode_op(&op)
    };
    assert_eq!(&*again, data, "decoding is not strict");
    let mut l = Limiter::new(&op.params);
    common::decide(&mut l, &op.params, op.cost, op.now.as_micros());
    common::decide(&mut l, &op.params, op.cost, op.now.as_micros());
});
