//! The server's policies as saved in every RDB (module aux data,
//! `ratelimit::codec::decode_policies`): any bytes in, either an error or
//! a set of policies each `RL.POLICY SET` could have defined, which
//! re-encodes to the very same bytes; and any set of definitions encodes to
//! bytes that decode back to it.
//!
//! Input: the first byte's low bit picks the direction.
//! - 0: the rest is a record, decoded (what `aux_load` does with an RDB's).
//! - 1: the rest is lines of `name ALGO params... [PENALTY d] [SHADOW]`
//!   (newline-separated, words separated by spaces), each parsed by
//!   `args::policy_set`; the ones it accepts (a later one replacing an
//!   earlier one of the same name, as `RL.POLICY SET` does) are encoded and
//!   must decode to the same set, and no shorter or longer record may.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{Limiter, Params, MAX_DURATION_US};
use ratelimit::args::{self, Limits};
use ratelimit::codec;
use ratelimit::policy::{valid_name, Policies, Policy, MAX_POLICIES};

#[path = "common.rs"]
mod common;

/// What a policy must be to have come from `RL.POLICY SET` (but `log-max`,
/// a setting the record does not know), and it decides without panicking.
fn check(name: &str, p: &Policy) {
    assert!(valid_name(name.as_bytes()), "{name:?}");
    common::check_params(&p.params);
    if let Some(d) = p.penalty {
        assert!((1..=MAX_DURATION_US).contains(&d.as_micros()), "{p:?}");
    }
    // The definition `RL.POLICY GET` answers reads back as the same policy.
    let words = p.definition();
    let argv: Vec<&[u8]> = std::iter::once(name.as_bytes())
        .chain(words.iter().map(|w| w.as_bytes()))
        .collect();
    let limits = Limits { log_max: u64::MAX };
    let (again_name, again) = args::policy_set(&argv, &limits).expect("GET reads back");
    assert_eq!((again_name, &again), (name, p));
    let mut l = Limiter::new(&p.params);
    common::decide(&mut l, &p.params, 1, common::EPOCH);
    let mut held = None;
    for dt in [0, 0, 1] {
        common::call(&mut held, &p.params, 1, common::EPOCH + dt, p.penalty);
    }
}

fn decode(bytes: &[u8]) {
    let Ok(all) = codec::decode_policies(bytes) else {
        return;
    };
    assert!(all.len() <= MAX_POLICIES);
    assert_eq!(
        codec::encode_policies(&all),
        bytes,
        "decoding is not strict"
    );
    // Bounded work per input: a record may hold thousands of policies.
    for (name, p) in all.iter().take(16) {
        check(name, p);
    }
}

fn round_trip(text: &[u8]) {
    let mut all = Policies::new();
    for line in text.split(|&b| b == b'\n').take(64) {
        let argv: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if let Ok((name, p)) = args::policy_set(&argv, &Limits::default()) {
            if let Params::Log(w) = p.params {
                assert!(w.limit.get() <= args::DEFAULT_LOG_MAX);
            }
            all.insert(name.to_string(), p);
        }
    }
    let bytes = codec::encode_policies(&all);
    assert_eq!(codec::decode_policies(&bytes).as_ref(), Ok(&all));
    for (name, p) in &all {
        check(name, p);
    }
    // Strict about its length: the record ends where the encoder stopped.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(codec::decode_policies(&longer).is_err());
    for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
        if cut < bytes.len() {
            assert!(
                codec::decode_policies(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        decode(rest);
    } else {
        round_trip(rest);
    }
});
