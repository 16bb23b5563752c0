//! Property tests of the pure `ratelimit` crate (no server), one module per subject.
//!
//! Random runs against reference models computed by brute force.
//!
//! `PROPTEST_CASES` sets the case count of every property (e.g.
//! `PROPTEST_CASES=20000 cargo test --test properties`); a name filter
//! picks a subject (`cargo test --test properties calendar::`).

use proptest::prelude::*;
use proptest::test_runner::Config;

use ratelimit::algo::{BucketParams, Instant, WindowParams};

/// The decision of every algorithm, parameter changes and key expiry.
mod algorithms;
/// Calendar windows: month and microsecond windows, aligned limiters.
mod calendar;
/// What the refunds, penalty box and leases properties share.
mod common;
/// Concurrency leases and their encodings.
mod leases;
/// The penalty box and the encoding of blocked limiters.
mod penalty_box;
/// Refunds and the encodings of refund and decision ops.
mod refunds;

/// Raw microseconds, as the reference models compute.
type Us = u64;

/// A plausible present (Nov 2023) in µs, so products are realistic too.
const EPOCH: Us = 1_700_000_000_000_000;

/// `default_cases` cases unless `PROPTEST_CASES` says otherwise, and no
/// failure files (a failing case is printed, and its seed with it).
fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn t(us: Us) -> Instant {
    Instant::from_micros(us)
}

/// Small windows: limits 1 to 8, 1 to 40 µs long.
fn window_params() -> impl Strategy<Value = WindowParams> {
    (1u64..=8, 1u64..=40).prop_map(|(limit, w)| WindowParams::new(limit, w).unwrap())
}

/// Small buckets: capacity 1 to 8, 1 to 5 units per 1 to 40 µs.
fn bucket_params() -> impl Strategy<Value = BucketParams> {
    (1u64..=8, 1u64..=5, 1u64..=40).prop_map(|(c, r, p)| BucketParams::new(c, r, p).unwrap())
}

/// The generated runs of refunds, the penalty box and leases reach what
/// their properties are about: refunds that give and that give nothing,
/// retries after a refund, blocks started, calls while blocked, lifted
/// blocks, grants, renewals, waits, expiries and a clock going back. Each
/// subject's checks are beside its properties.
#[test]
fn the_generated_runs_reach_every_case() {
    refunds::check_the_runs_reach_every_case();
    penalty_box::check_the_runs_reach_every_case();
    leases::check_the_runs_reach_every_case();
}
