//! Counters behind the `INFO ratelimit` section.
//!
//! Commands run on the main thread, but values may be freed by Redis'
//! lazy-free thread, so everything is an atomic; relaxed ordering is enough
//! for figures that are only ever read as a snapshot.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redis_module::{raw, InfoContext, RedisResult};

use crate::algo::Algorithm;

/// How a call ended, as counted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Denied, answered allowed (`SHADOW`).
    ShadowDenied,
}

impl Verdict {
    pub fn of(allowed: bool) -> Verdict {
        if allowed {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }
}

pub struct Counters {
    calls: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    shadow_denied: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Counters {
    pub const fn new() -> Self {
        Counters {
            calls: AtomicU64::new(0),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            shadow_denied: AtomicU64::new(0),
        }
    }

    pub fn count(&self, v: Verdict) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let c = match v {
            Verdict::Allowed => &self.allowed,
            Verdict::Denied => &self.denied,
            Verdict::ShadowDenied => &self.shadow_denied,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `<prefix>_calls`, `_allowed`, `_denied`, `_shadow_denied`.
    pub fn fields(&self, prefix: &str) -> [(String, u64); 4] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (format!("{prefix}_calls"), load(&self.calls)),
            (format!("{prefix}_allowed"), load(&self.allowed)),
            (format!("{prefix}_denied"), load(&self.denied)),
            (format!("{prefix}_shadow_denied"), load(&self.shadow_denied)),
        ]
    }
}

/// One set per algorithm, at `Algorithm::index()`, then one for `RL.ALL`.
static COUNTERS: [Counters; ALL_INDEX + 1] = [const { Counters::new() }; ALL_INDEX + 1];
const ALL_INDEX: usize = Algorithm::ALL.len();

/// Replayed operations (from a master or the AOF) that could not be applied.
static REPLAY_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Penalty blocks started by clients' calls.
static PENALTIES: AtomicU64 = AtomicU64::new(0);

/// Refunds that gave something back, and the units they gave back.
static REFUNDS: AtomicU64 = AtomicU64::new(0);
static REFUNDED: AtomicU64 = AtomicU64::new(0);

/// Leases: acquires allowed and denied, releases and renewals that found
/// their lease.
static ACQUIRED: AtomicU64 = AtomicU64::new(0);
static ACQUIRE_DENIED: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);
static RENEWED: AtomicU64 = AtomicU64::new(0);

/// Limiter values currently held by Redis (created, loaded or copied, and
/// not yet freed).
static KEYS: AtomicI64 = AtomicI64::new(0);

/// A client's request to one limit (an `RL.ALL` call counts once per limit
/// here, and once more as a whole with [`count_all`]).
pub fn count(algo: Algorithm, v: Verdict) {
    COUNTERS[algo.index()].count(v);
}

pub fn count_all(v: Verdict) {
    COUNTERS[ALL_INDEX].count(v);
}

pub fn replay_failed() {
    REPLAY_ERRORS.fetch_add(1, Ordering::Relaxed);
}

pub fn penalty_started() {
    PENALTIES.fetch_add(1, Ordering::Relaxed);
}

pub fn refunded(units: u64) {
    REFUNDS.fetch_add(1, Ordering::Relaxed);
    REFUNDED.fetch_add(units, Ordering::Relaxed);
}

pub fn count_lease(allowed: bool) {
    let c = if allowed { &ACQUIRED } else { &ACQUIRE_DENIED };
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn count_lease_end(what: crate::codec::LeaseAction) {
    let c = match what {
        crate::codec::LeaseAction::Release => &RELEASED,
        _ => &RENEWED,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn key_created() {
    KEYS.fetch_add(1, Ordering::Relaxed);
}

pub fn key_freed() {
    KEYS.fetch_sub(1, Ordering::Relaxed);
}

/// Fills `INFO ratelimit`; Redis prefixes every field with `ratelimit_`.
fn section(ctx: &InfoContext) -> RedisResult<()> {
    let mut s = ctx
        .builder()
        .add_section("")
        .field("version", super::VERSION)?
        .field("keys", KEYS.load(Ordering::Relaxed).max(0))?;
    let names = Algorithm::ALL.iter().map(|a| a.info().lower).chain(["all"]);
    for (name, c) in names.zip(&COUNTERS) {
        for (field, v) in c.fields(name) {
            s = s.field(&field, v)?;
        }
    }
    let (policies, per_policy) = super::policy::info_fields();
    s = s.field("policies", policies as u64)?;
    for (field, v) in per_policy {
        s = s.field(&field, v.as_str())?;
    }
    s.field("leases_acquired", ACQUIRED.load(Ordering::Relaxed))?
        .field("leases_denied", ACQUIRE_DENIED.load(Ordering::Relaxed))?
        .field("leases_released", RELEASED.load(Ordering::Relaxed))?
        .field("leases_renewed", RENEWED.load(Ordering::Relaxed))?
        .field("penalties", PENALTIES.load(Ordering::Relaxed))?
        .field("refunds", REFUNDS.load(Ordering::Relaxed))?
        .field("refunded_units", REFUNDED.load(Ordering::Relaxed))?
        .field("replay_errors", REPLAY_ERRORS.load(Ordering::Relaxed))?
        .field("log_max", super::config::log_max())?
        .field("lease_max", super::config::lease_max())?
        .field("cell_compat", super::config::cell_compat() as u64)?
        .build_section()?
        .build_info()?;
    Ok(())
}

/// Called by Redis with a live info context.
pub(crate) extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    if let Err(e) = section(&InfoContext::new(ctx)) {
        super::ffi::log_warning(&format!("could not fill INFO ratelimit: {e}"));
    }
}
