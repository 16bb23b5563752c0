//! Micro-benchmarks of the pure algorithms (no Redis): `cargo bench`.
//!
//! - `decide/<algo>/allowed`: steady state where every call is allowed and
//!   writes (time advances 1 µs per call);
//! - `decide/<algo>/denied`: a limiter at its limit, every call denied;
//! - `log_full/allowed/<limit>`: RL.LOG with a full log where each call drops
//!   the oldest entry and adds one; `log_full/denied/<limit>`: a full log;
//! - `codec/encode|decode/<algo>`: the RDB/RESTORE encoding of one limiter;
//! - `args/<command>`: parsing a typical command line (runs on every call).
//!
//! `cargo bench -- decide` runs one group; scripts/bench measures the module
//! inside redis-server.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ratelimit::algo::{Algorithm, BucketParams, Instant, Limiter, Params, WindowParams};
use ratelimit::{args, codec};

const BIG: u64 = 1_000_000_000_000;
const SECOND: u64 = 1_000_000;
const HOUR: u64 = 3_600 * SECOND;
const T0: u64 = 1_700_000_000_000_000;

fn t(us: u64) -> Instant {
    Instant::from_micros(us)
}

fn window(limit: u64, window: u64) -> WindowParams {
    WindowParams::new(limit, window).unwrap()
}

fn bucket(capacity: u64, rate: u64, period: u64) -> BucketParams {
    BucketParams::new(capacity, rate, period).unwrap()
}

/// Parameters under which every call is allowed at 1 call per µs.
fn allowing() -> Vec<(&'static str, Params)> {
    vec![
        ("fixed", Params::Fixed(window(BIG, HOUR).into())),
        ("sliding", Params::Sliding(window(BIG, HOUR))),
        // window = limit µs: once full, each call expires exactly one entry.
        ("log", Params::Log(window(1000, 1000))),
        ("token", Params::Token(bucket(BIG, 1_000_000, SECOND))),
        ("leaky", Params::Leaky(bucket(BIG, 1_000_000, SECOND))),
        (
            "gcra",
            Params::bucket(Algorithm::Gcra, bucket(BIG, 1_000_000, SECOND)).unwrap(),
        ),
    ]
}

/// Small limits that a burst at one instant exhausts.
fn denying() -> Vec<(&'static str, Params)> {
    vec![
        ("fixed", Params::Fixed(window(100, HOUR).into())),
        ("sliding", Params::Sliding(window(100, HOUR))),
        ("log", Params::Log(window(100, HOUR))),
        ("token", Params::Token(bucket(100, 1, HOUR))),
        ("leaky", Params::Leaky(bucket(100, 1, HOUR))),
        (
            "gcra",
            Params::bucket(Algorithm::Gcra, bucket(100, 1, HOUR)).unwrap(),
        ),
    ]
}

/// A limiter whose next call at `T0` is denied.
fn exhausted(p: &Params, limit: u64) -> Limiter {
    let mut l = Limiter::new(p);
    let d = l.decide(p, limit, t(T0)).unwrap();
    assert!(d.allowed);
    assert!(!l.decide(p, 1, t(T0)).unwrap().allowed);
    l
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for (name, p) in allowing() {
        let mut l = Limiter::new(&p);
        let mut now = T0;
        // Reach the steady state first (the log fills up).
        for _ in 0..2000 {
            now += 1;
            assert!(l.decide(&p, 1, t(now)).unwrap().allowed);
        }
        g.bench_function(BenchmarkId::new(name, "allowed"), |b| {
            b.iter(|| {
                now += 1;
                let d = l.decide(black_box(&p), black_box(1), t(now)).unwrap();
                debug_assert!(d.allowed);
                d
            })
        });
    }
    for (name, p) in denying() {
        let mut l = exhausted(&p, 100);
        g.bench_function(BenchmarkId::new(name, "denied"), |b| {
            b.iter(|| {
                let d = l
                    .decide(black_box(&p), black_box(1), black_box(t(T0)))
                    .unwrap();
                debug_assert!(!d.allowed);
                d
            })
        });
    }
    g.finish();
}

fn log_full(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_full");
    for limit in [10u64, 100, 1000, 10_000] {
        // Allowed on a full log: window = limit µs, time +1 µs per call.
        let p = Params::Log(window(limit, limit));
        let mut l = Limiter::new(&p);
        let mut now = T0;
        for _ in 0..limit {
            now += 1;
            l.decide(&p, 1, t(now)).unwrap();
        }
        g.bench_with_input(BenchmarkId::new("allowed", limit), &limit, |b, _| {
            b.iter(|| {
                now += 1;
                let d = l.decide(black_box(&p), 1, t(now)).unwrap();
                debug_assert!(d.allowed && d.remaining == 0);
                d
            })
        });
        // Denied on a full log.
        let p = Params::Log(window(limit, HOUR));
        let mut l = exhausted(&p, limit);
        g.bench_with_input(BenchmarkId::new("denied", limit), &limit, |b, _| {
            b.iter(|| l.decide(black_box(&p), 1, black_box(t(T0 + 1))).unwrap())
        });
        // A peek (RL.INFO, RL.ALL ... COST 0) on a full log: evaluated on
        // the borrowed state, nothing copied.
        g.bench_with_input(BenchmarkId::new("peek", limit), &limit, |b, _| {
            b.iter(|| l.evaluate(black_box(&p), 0, black_box(t(T0 + 1))).unwrap())
        });
    }
    g.finish();
}

fn codec_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let mut cases: Vec<(String, Limiter)> = Vec::new();
    for (name, p) in denying() {
        cases.push((name.to_string(), exhausted(&p, 100)));
    }
    let p = Params::Log(window(1000, HOUR));
    cases.push(("log_1000".to_string(), exhausted(&p, 1000)));
    for (name, l) in &cases {
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| codec::encode(black_box(l)))
        });
        let bytes = codec::encode(l);
        assert_eq!(
            codec::decode(&bytes, codec::ENCODING_VERSION).as_ref(),
            Ok(l)
        );
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| codec::decode(black_box(&bytes), codec::ENCODING_VERSION).unwrap())
        });
    }
    g.finish();
}

fn args_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("args");
    let limits = args::Limits {
        log_max: args::DEFAULT_LOG_MAX,
    };
    let cases: [(&str, Algorithm, &[&[u8]]); 3] = [
        ("RL.FIXED", Algorithm::Fixed, &[b"100", b"1m"]),
        ("RL.TOKEN", Algorithm::Token, &[b"10", b"5", b"1s"]),
        (
            "RL.GCRA+options",
            Algorithm::Gcra,
            &[b"15", b"30", b"60s", b"COST", b"2", b"AT", b"1700000000000"],
        ),
    ];
    for (name, algo, line) in cases {
        args::request(algo, name, line, &limits).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| args::request(algo, name, black_box(line), &limits).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, decide, log_full, codec_bench, args_bench);
criterion_main!(benches);
