//! Property tests of the pure `ratelimit` crate (no server), one module per subject.
//!
//! Random runs against reference models computed by brute force.
//!
//! `PROPTEST_CASES` sets the case count of every property (e.g.
//! `PROPTEST_CASES=20000 cargo test --test properties`); a name filter
//! picks a subject (`cargo test --test properties calendar::`).

/// The decision of every algorithm, parameter changes and key expiry.
mod algorithms;
/// Calendar windows: month and microsecond windows, aligned limiters.
mod calendar;
/// Refunds, the penalty box, concurrency leases and their encodings.
mod refunds_penalties_leases;
