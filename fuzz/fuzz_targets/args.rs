//! The argument parser of every command (`ratelimit::args`): any bytes in,
//! a request within bounds or an `ERR` message safe to send out.
//!
//! Input: one byte picks the command, the next is the separator, and the
//! rest is split on it into the arguments (so any byte can be in one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{Algorithm, Instant, Limiter, Params};
use ratelimit::args::{self, ArgError, Limits};

#[path = "common.rs"]
mod common;

fn check_error(e: &ArgError) {
    // The Redis layer sends `ERR ` and this message.
    let msg = &e.0;
    assert!(!msg.is_empty() && !msg.starts_with("ERR"), "{msg:?}");
    // Sent as a RESP error line: printable ASCII only, never CR or LF.
    assert!(msg.bytes().all(|b| (b' '..=b'~').contains(&b)), "{msg:?}");
    assert!(msg.len() < 200, "{msg:?}");
}

fn run(params: &[Params], cost: u64, at: Option<Instant>) {
    let now = at.map_or(common::EPOCH, Instant::as_micros);
    for p in params {
        common::check_params(p);
        let mut l = Limiter::new(p);
        common::decide(&mut l, p, cost, now);
        common::decide(&mut l, p, cost, now);
        common::decide(&mut l, p, 1, now + 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, sep, rest @ ..] = data else {
        return;
    };
    let argv: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|b| b == sep).collect()
    };
    // A small log-max too, so the RL.LOG ceiling is exercised.
    let limits = if which & 0x80 != 0 {
        Limits { log_max: 3 }
    } else {
        Limits::default()
    };
    match which % 10 {
        i @ 0..=5 => {
            let algo = Algorithm::ALL[i as usize];
            let name = format!("RL.{}", algo.name());
            match args::request(algo, &name, &argv, &limits) {
                Ok(r) => {
                    if let Params::Log(w) = r.params {
                        assert!(w.limit.get() <= limits.log_max);
                    }
                    assert_eq!(r.params.algorithm(), algo);
                    run(&[r.params], r.cost, r.at);
                }
                Err(e) => check_error(&e),
            }
        }
        6 => match args::all_request(&argv, &limits) {
            Ok(r) => {
                assert_eq!(r.params.len(), r.numkeys);
                assert!(r.numkeys >= 1 && r.numkeys <= args::ALL_MAX_KEYS);
                assert!(argv.len() > r.numkeys);
                run(&r.params, r.cost, r.at);
            }
            Err(e) => check_error(&e),
        },
        7 => match args::throttle_request(&argv) {
            Ok(r) => run(&[r.params], r.cost, r.at),
            Err(e) => check_error(&e),
        },
        9 => match args::peek_request(&argv, &limits) {
            Ok(r) => {
                if let Params::Log(w) = r.params {
                    assert!(w.limit.get() <= limits.log_max);
                }
                run(&[r.params], r.cost, r.at)
            }
            Err(e) => check_error(&e),
        },
        _ => {
            // Module arguments: errors go to the server log, not to a client.
            let _ = args::module_args(&argv, 1_000_000);
        }
    }
});
