//! The argument parser of every command (`ratelimit::args`): any bytes in,
//! a request within bounds or an `ERR` message safe to send out.
//!
//! Input: one byte picks the command (its low 7 bits, modulo the number of
//! commands; the top bit asks for small `log-max` and `lease-max` settings,
//! so their ceilings are exercised), the next is the separator, and the
//! rest is split on it into the arguments (so any byte can be in one).
//!
//! `RL.ALL` and `RL.PEEK` resolve `POLICY name` against a fixed set of
//! policies (`POLICIES`, one per algorithm, within the small `log-max`);
//! `RL.POLICY SET` definitions, `RL.CHECK` options and `RL.TOP`'s
//! arguments are parsed too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ratelimit::algo::{
    Algorithm, Duration, Instant, LeaseState, Limiter, Params, Value, WindowParams, MAX_COUNT,
    MAX_DURATION_US, MAX_LEASE_ID_LEN, MAX_TIME_US,
};
use ratelimit::args::{self, ArgError, Limits};
use ratelimit::codec;
use ratelimit::policy::{self, Policies, Policy};

#[path = "common.rs"]
mod common;

/// Commands the first byte picks from.
const COMMANDS: u8 = 16;

/// The policies `POLICY name` may name, as `RL.POLICY SET` lines.
const POLICIES: [&str; 6] = [
    "free TOKEN 10 5 1s",
    "login FIXED 5 1m PENALTY 15m",
    "tier:gold.v2 GCRA 0 30 1m SHADOW",
    "log LOG 3 1s",
    "s SLIDING 1 1us PENALTY 100000000000000000us SHADOW",
    "q LEAKY 1000000000000000 1 100000000000000000us",
];

/// `POLICIES`, parsed once.
fn policies() -> &'static Policies {
    static SET: OnceLock<Policies> = OnceLock::new();
    SET.get_or_init(|| {
        POLICIES
            .iter()
            .map(|line| {
                let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
                let small = Limits { log_max: 3 };
                let (name, p) = args::policy_set(&argv, &small).expect(line);
                (name.to_string(), p)
            })
            .collect()
    })
}

/// The registry's lookup, over `POLICIES`.
fn resolve(name: &[u8]) -> Option<Policy> {
    let name = std::str::from_utf8(name).ok()?;
    policies().get(name).copied()
}

/// A policy `RL.POLICY SET` accepted: within bounds, read back the same
/// from the definition `RL.POLICY GET` answers, saved and loaded the same
/// through the RDB record, and deciding without panicking.
fn defined(name: &str, p: &Policy, limits: &Limits) {
    assert!(policy::valid_name(name.as_bytes()), "{name:?}");
    assert_eq!(args::policy_name(name.as_bytes()), Ok(name));
    if let Params::Log(w) = p.params {
        assert!(w.limit.get() <= limits.log_max);
    }
    let words = p.definition();
    let argv: Vec<&[u8]> = std::iter::once(name.as_bytes())
        .chain(words.iter().map(|w| w.as_bytes()))
        .collect();
    assert_eq!(args::policy_set(&argv, limits), Ok((name, *p)));
    let mut all = policies().clone();
    all.insert(name.to_string(), *p);
    let bytes = codec::encode_policies(&all);
    assert_eq!(codec::decode_policies(&bytes).as_ref(), Ok(&all));
    run(&[p.params], 1, None, p.penalty);
}

/// Where `POLICY name` stood in an `RL.ALL` or `RL.PEEK` that parsed: the
/// name is one of `POLICIES` and the limit has exactly its parameters.
fn named(argv: &[&[u8]], at: usize, params: &Params) {
    assert!(argv[at - 1].eq_ignore_ascii_case(b"POLICY"));
    assert_eq!(resolve(argv[at]).map(|p| p.params).as_ref(), Some(params));
}

/// An `RL.TOP` request that parsed: within bounds, and listing from a
/// small summary (fed the arguments themselves as keys) gives at most
/// `count` entries, of its policy only, most first.
fn top(r: &args::Top, argv: &[&[u8]]) {
    assert!((1..=ratelimit::top::MAX_CAPACITY).contains(&r.count), "{r:?}");
    if let Some(p) = r.policy {
        assert_eq!(args::policy_name(p.as_bytes()), Ok(p));
    }
    let mut s = ratelimit::top::Summary::new(4);
    let at = (MAX_TIME_US / 1000).min(1_700_000_000_000);
    for (i, key) in argv.iter().enumerate() {
        let policy = r.policy.filter(|_| i % 2 == 0).map(str::as_bytes);
        s.record(key, policy, at + i as u64 * 1000);
    }
    assert!(s.is_valid());
    let listed: Vec<_> = s
        .top(at)
        .into_iter()
        .filter(|v| r.policy.is_none() || v.policy == r.policy.map(str::as_bytes))
        .take(r.count)
        .collect();
    assert!(listed.len() <= r.count.min(4));
    assert!(listed.windows(2).all(|w| w[0].count >= w[1].count));
    assert!(listed.iter().all(|v| v.key.len() <= ratelimit::top::MAX_KEY_LEN && v.error <= v.count));
}

fn check_error(e: &ArgError) {
    // The Redis layer sends `ERR ` and this message.
    let msg = &e.0;
    assert!(!msg.is_empty() && !msg.starts_with("ERR"), "{msg:?}");
    // Sent as a RESP error line: printable ASCII only, never CR or LF.
    assert!(msg.bytes().all(|b| (b' '..=b'~').contains(&b)), "{msg:?}");
    assert!(msg.len() < 200, "{msg:?}");
}

fn check_at(at: Option<Instant>) {
    if let Some(at) = at {
        assert!(at.as_micros() <= MAX_TIME_US, "{at:?}");
        assert_eq!(at.as_micros() % 1000, 0, "AT is in whole ms");
    }
}

fn run(params: &[Params], cost: u64, at: Option<Instant>, penalty: Option<Duration>) {
    assert!(cost <= MAX_COUNT);
    check_at(at);
    if let Some(p) = penalty {
        assert!((1..=MAX_DURATION_US).contains(&p.as_micros()), "{p:?}");
    }
    let now = at.map_or(common::EPOCH, Instant::as_micros);
    for p in params {
        common::check_params(p);
        let mut l = Limiter::new(p);
        common::decide(&mut l, p, cost, now);
        common::decide(&mut l, p, cost, now);
        common::decide(&mut l, p, 1, now + 1);
        // Through the penalty box: the second call may be denied and start
        // a block, which the later ones meet.
        let mut held = None;
        for (c, dt) in [(cost, 0), (cost, 0), (1, 1), (cost, 2)] {
            common::call(&mut held, p, c, now + dt, penalty);
        }
    }
}

/// A refund of `n` at `at` on a limiter of each algorithm that has spent
/// something.
fn refund(n: u64, at: Option<Instant>) {
    assert!(n <= MAX_COUNT);
    check_at(at);
    let now = at.map_or(common::EPOCH, Instant::as_micros);
    let w = WindowParams::new(5, 1_000_000).unwrap();
    let b = ratelimit::algo::BucketParams::new(5, 2, 1_000_000).unwrap();
    for algo in Algorithm::ALL {
        let p = Params::window(algo, w)
            .or_else(|| Params::bucket(algo, b))
            .unwrap();
        let mut l = Limiter::new(&p);
        common::decide(&mut l, &p, 3, now);
        let before = l.clone();
        let given = l.refund(n, Instant::from_micros(now));
        assert!(given <= n && given <= 3, "{given} of {n}");
        if given == 0 {
            assert_eq!(l, before);
        }
        assert!(l.is_valid());
        common::decide(&mut l, &p, 0, now);
    }
}

/// A lease state after `acquire` calls as the request asks, checked.
fn acquire(r: &args::Acquire, lease_max: u64) {
    assert!((1..=lease_max).contains(&r.limit.get()), "{r:?}");
    assert!((1..=MAX_DURATION_US).contains(&r.ttl.micros()), "{r:?}");
    assert!(r.cost <= MAX_COUNT);
    if let Some(id) = r.id {
        assert!((1..=MAX_LEASE_ID_LEN).contains(&id.len()), "{r:?}");
    }
    check_at(r.at);
    let now = r.at.unwrap_or(Instant::from_micros(common::EPOCH));
    let id = r.id.unwrap_or(b"fuzz");
    let mut s = LeaseState::new(r.limit);
    for (id, now) in [(id, now), (id, now), (&b"other"[..], now)] {
        let before = s.clone();
        let a = s.acquire(r.limit, r.cost, r.ttl.duration(), id, now);
        if a.granted {
            assert!(s.held(now) <= r.limit.get());
        }
        if !(a.granted || a.renewed) {
            assert_eq!(s, before);
        }
        assert!(s.is_valid(), "{s:?}");
    }
    let v = Value::Leases(Box::new(s));
    let bytes = codec::encode_value(&v);
    assert_eq!(
        codec::decode_value(&bytes, codec::ENCODING_VERSION).as_ref(),
        Ok(&v)
    );
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
    // Small settings too, so the RL.LOG and RL.ACQUIRE ceilings are
    // exercised.
    let small = which & 0x80 != 0;
    let limits = if small {
        Limits { log_max: 3 }
    } else {
        Limits::default()
    };
    let lease_max = if small { 3 } else { args::DEFAULT_LEASE_MAX };
    match (which & 0x7f) % COMMANDS {
        i @ 0..=5 => {
            let algo = Algorithm::ALL[i as usize];
            let name = format!("RL.{}", algo.name());
            match args::request(algo, &name, &argv, &limits) {
                Ok(r) => {
                    if let Params::Log(w) = r.params {
                        assert!(w.limit.get() <= limits.log_max);
                    }
                    assert_eq!(r.params.algorithm(), algo);
                    run(&[r.params], r.cost, r.at, r.penalty);
                }
                Err(e) => check_error(&e),
            }
        }
        6 => match args::all_request(&argv, &limits, &resolve) {
            Ok(r) => {
                assert_eq!(r.params.len(), r.numkeys);
                assert_eq!(r.policies.len(), r.numkeys);
                assert_eq!(r.modes.len(), r.numkeys);
                for ((p, at), mode) in r.params.iter().zip(&r.policies).zip(&r.modes) {
                    match at {
                        Some(at) => {
                            named(&argv, *at, p);
                            let policy = resolve(argv[*at]).expect("named");
                            assert_eq!((mode.shadow, mode.penalty), (policy.shadow, policy.penalty));
                        }
                        None => {
                            assert_eq!(*mode, args::Mode::default());
                            if let Params::Log(w) = p {
                                assert!(w.limit.get() <= limits.log_max);
                            }
                        }
                    }
                }
                assert!(r.numkeys >= 1 && r.numkeys <= args::ALL_MAX_KEYS);
                assert!(argv.len() > r.numkeys);
                run(&r.params, r.cost, r.at, r.penalty);
            }
            Err(e) => check_error(&e),
        },
        7 => match args::throttle_request(&argv) {
            Ok(r) => {
                assert!(r.at.is_none() && r.penalty.is_none());
                run(&[r.params], r.cost, r.at, r.penalty)
            }
            Err(e) => check_error(&e),
        },
        9 => match args::peek_request(&argv, &limits, &resolve) {
            Ok(r) => {
                if argv[0].eq_ignore_ascii_case(b"POLICY") {
                    named(&argv, 1, &r.params);
                }
                if let Params::Log(w) = r.params {
                    assert!(w.limit.get() <= limits.log_max);
                }
                // A peek writes nothing, so it takes no PENALTY.
                assert!(r.penalty.is_none());
                run(&[r.params], r.cost, r.at, r.penalty)
            }
            Err(e) => check_error(&e),
        },
        10 => match args::refund_request(&argv) {
            Ok(r) => refund(r.n, r.at),
            Err(e) => check_error(&e),
        },
        11 => match args::acquire_request(&argv, lease_max) {
            Ok(r) => acquire(&r, lease_max),
            Err(e) => check_error(&e),
        },
        12 => {
            // RL.RELEASE takes what RL.RENEW does but the ttl: the same bytes.
            match args::release_request(&argv) {
                Ok((id, at)) => {
                    assert!((1..=MAX_LEASE_ID_LEN).contains(&id.len()));
                    assert!(at.is_none_or(|t| t.as_micros() <= ratelimit::algo::MAX_TIME_US));
                }
                Err(e) => check_error(&e),
            }
            renew(&argv);
        }
        13 => match args::policy_set(&argv, &limits) {
            Ok((name, p)) => defined(name, &p, &limits),
            Err(e) => check_error(&e),
        },
        14 => match args::check_options(&argv) {
            Ok(o) => {
                // RL.CHECK takes COST and AT; the policy brings the rest.
                assert!(o.penalty.is_none() && o.id.is_none() && !o.shadow);
                let cost = o.cost.unwrap_or(1);
                for p in policies().values() {
                    run(&[p.params], cost, o.at, p.penalty);
                }
            }
            Err(e) => check_error(&e),
        },
        15 => match args::top_request(&argv) {
            Ok(r) => top(&r, &argv),
            Err(e) => check_error(&e),
        },
        _ => {
            // Module arguments: errors go to the server log, not to a client.
            let _ = args::module_args(&argv, 1_000_000);
        }
    }
});

/// `RL.RENEW key <argv>`: a renewal parsed renews a lease it names.
fn renew(argv: &[&[u8]]) {
    match args::renew_request(argv) {
        Ok((id, ttl, at)) => {
            assert!((1..=MAX_LEASE_ID_LEN).contains(&id.len()));
            assert!((1..=MAX_DURATION_US).contains(&ttl.micros()));
            assert!(at.is_none_or(|t| t.as_micros() <= ratelimit::algo::MAX_TIME_US));
            let limit = ratelimit::algo::Count::new(2).unwrap();
            let now = at.unwrap_or(Instant::from_micros(common::EPOCH));
            let mut s = LeaseState::new(limit);
            assert!(s.acquire(limit, 1, ttl.duration(), id, now).granted);
            assert!(s.renew(id, ttl.duration(), now));
            assert!(s.is_valid(), "{s:?}");
        }
        Err(e) => check_error(&e),
    }
}
