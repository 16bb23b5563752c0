//! Counters behind the `INFO ratelimit` section.
//!
//! Commands run on the main thread, but values may be freed by Redis'
//! lazy-free thread, so everything is an atomic; relaxed ordering is enough
//! for figures that are only ever read as a snapshot.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::ffi::{self, InfoWriter};
use crate::algo::Algorithm;

/// How a call ended, as counted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Denied, answered allowed (`SHADOW`).
    ShadowDenied,
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

    /// The counts, labelled `calls`, `allowed`, `denied`, `shadow_denied`.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("calls", load(&self.calls)),
            ("allowed", load(&self.allowed)),
            ("denied", load(&self.denied)),
            ("shadow_denied", load(&self.shadow_denied)),
        ]
    }
}

/// One set per algorithm, at `Algorithm::index()`, then one for `RL.ALL`.
static COUNTERS: [Counters; ALL_INDEX + 1] = [const { Counters::new() }; ALL_INDEX + 1];
const ALL_INDEX: usize = Algorithm::ALL.len();

/// Replayed operations (from a master or the AOF) that could not be applied.
static REPLAY_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Replayed operations whose limit was above this server's own setting
/// (applied: the master accepted them).
static ABOVE_SETTINGS: AtomicU64 = AtomicU64::new(0);

/// When the last warning about a replayed limit above a setting was logged
/// (server milliseconds; 0: never).
static ABOVE_SETTINGS_LOGGED_MS: AtomicI64 = AtomicI64::new(0);

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

/// A replayed op's limit is above this server's setting: counted, and
/// logged at most once a minute (a replica replaying a busy key would
/// otherwise log every op).
pub fn replayed_above_setting(setting: &str, limit: u64, current: u64) {
    ABOVE_SETTINGS.fetch_add(1, Ordering::Relaxed);
    let now = ffi::wall_ms();
    let last = ABOVE_SETTINGS_LOGGED_MS.load(Ordering::Relaxed);
    if last == 0 || now.saturating_sub(last) >= 60_000 {
        ABOVE_SETTINGS_LOGGED_MS.store(now.max(1), Ordering::Relaxed);
        ffi::log_warning(&format!(
            "replayed a limit of {limit}, above this server's {setting} of {current}: applied, since the \
             server that wrote it (a master, or this one before a restart) accepted it; \
             set {setting} to at least {limit} here so that clients get the same limits after a failover \
             or restart (INFO ratelimit: replayed_above_settings)"
        ));
    }
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

/// The first fields of `INFO ratelimit` (Redis prefixes each with
/// `ratelimit_`) after the version: the keys, and every algorithm's
/// counters.
pub fn write_head(w: &mut InfoWriter) {
    w.i64("keys", KEYS.load(Ordering::Relaxed).max(0));
    let names = Algorithm::ALL.iter().map(|a| a.info().lower).chain(["all"]);
    for (prefix, c) in names.zip(&COUNTERS) {
        for (label, n) in c.snapshot() {
            w.text(|name, value| {
                use std::io::Write;
                let _ = write!(name, "{prefix}_{label}");
                let _ = write!(value, "{n}");
            });
        }
    }
}

/// The counters after the policies in `INFO ratelimit`: leases,
/// penalties, refunds, replay (the settings follow).
pub fn write_tail(w: &mut InfoWriter) {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    w.u64("leases_acquired", load(&ACQUIRED));
    w.u64("leases_denied", load(&ACQUIRE_DENIED));
    w.u64("leases_released", load(&RELEASED));
    w.u64("leases_renewed", load(&RENEWED));
    w.u64("penalties", load(&PENALTIES));
    w.u64("refunds", load(&REFUNDS));
    w.u64("refunded_units", load(&REFUNDED));
    w.u64("replay_errors", load(&REPLAY_ERRORS));
    w.u64("replayed_above_settings", load(&ABOVE_SETTINGS));
}
