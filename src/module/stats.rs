//! Counters behind the `INFO ratelimit` section.
//!
//! Commands run on the main thread, but values may be freed by Redis'
//! lazy-free thread, so everything is an atomic; relaxed ordering is enough
//! for figures that are only ever read as a snapshot.

use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redis_module::raw;

use crate::algo::Algorithm;

struct Counters {
    calls: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            calls: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    fn count(&self, allowed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let c = if allowed { &self.allowed } else { &self.denied };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One set per algorithm, in `Algorithm::ALL` order, then one for `RL.ALL`.
static COUNTERS: [Counters; 7] = [
    Counters::new(),
    Counters::new(),
    Counters::new(),
    Counters::new(),
    Counters::new(),
    Counters::new(),
    Counters::new(),
];
const ALL_INDEX: usize = 6;

/// Limiter values currently held by Redis (created, loaded or copied, and
/// not yet freed).
static KEYS: AtomicI64 = AtomicI64::new(0);

fn index(algo: Algorithm) -> usize {
    match algo {
        Algorithm::Fixed => 0,
        Algorithm::Sliding => 1,
        Algorithm::Log => 2,
        Algorithm::Token => 3,
        Algorithm::Leaky => 4,
        Algorithm::Gcra => 5,
    }
}

const NAMES: [&CStr; 7] = [
    c"fixed", c"sliding", c"log", c"token", c"leaky", c"gcra", c"all",
];

/// A client's request to one limit (an `RL.ALL` call counts once per limit
/// here, and once more as a whole with [`count_all`]).
pub fn count(algo: Algorithm, allowed: bool) {
    COUNTERS[index(algo)].count(allowed);
}

pub fn count_all(allowed: bool) {
    COUNTERS[ALL_INDEX].count(allowed);
}

pub fn key_created() {
    KEYS.fetch_add(1, Ordering::Relaxed);
}

pub fn key_freed() {
    KEYS.fetch_sub(1, Ordering::Relaxed);
}

fn add_u64(ctx: *mut raw::RedisModuleInfoCtx, name: &str, v: u64) {
    if let Ok(name) = std::ffi::CString::new(name) {
        unsafe {
            raw::RedisModule_InfoAddFieldULongLong.unwrap()(ctx, name.as_ptr(), v);
        }
    }
}

/// Fills `INFO ratelimit`; Redis prefixes every field with `ratelimit_`.
///
/// # Safety
/// Called by Redis with a live info context.
pub(crate) unsafe extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    raw::RedisModule_InfoAddSection.unwrap()(ctx, c"".as_ptr());
    raw::RedisModule_InfoAddFieldCString.unwrap()(
        ctx,
        c"version".as_ptr(),
        super::VERSION.as_ptr(),
    );
    add_u64(ctx, "keys", KEYS.load(Ordering::Relaxed).max(0) as u64);
    for (name, c) in NAMES.iter().zip(&COUNTERS) {
        let name = name.to_string_lossy();
        add_u64(
            ctx,
            &format!("{name}_calls"),
            c.calls.load(Ordering::Relaxed),
        );
        add_u64(
            ctx,
            &format!("{name}_allowed"),
            c.allowed.load(Ordering::Relaxed),
        );
        add_u64(
            ctx,
            &format!("{name}_denied"),
            c.denied.load(Ordering::Relaxed),
        );
    }
    add_u64(ctx, "log_max", super::config::log_max());
    add_u64(ctx, "cell_compat", super::config::cell_compat() as u64);
}
