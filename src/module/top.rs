//! The server's heavy hitters of denials (`RL.TOP`, `INFO ratelimit`
//! `top_*`): one [`Summary`] of enforced denials and one of shadow denials
//! (what a `SHADOW` limit would have denied), each bounded by
//! `ratelimit.top-size`. The algorithm is in [`crate::top`].
//!
//! Server state, like `INFO`: not replicated, not persisted, emptied by a
//! restart or a `FLUSHALL`. Only clients' calls on a master are counted:
//! a replayed op (replication, AOF) never reaches [`denied`], and a
//! writable replica's own denials are left out, so a replica's summaries
//! stay empty. Called only on the denied branch: an allowed call never
//! gets here.

use std::ffi::{c_int, c_void};
use std::sync::{Mutex, MutexGuard};

use redis_module::raw;

use super::ffi::{self, Ctx, InfoWriter, RStr};
use crate::algo::Instant;
use crate::top::{Summary, DEFAULT_CAPACITY};

pub(super) struct Summaries {
    pub(super) enforced: Summary,
    pub(super) shadow: Summary,
}

/// Commands run on the main thread; the lock is never contended.
static SUMMARIES: Mutex<Option<Summaries>> = Mutex::new(None);

/// The summaries, made on first use with the configured size.
pub(super) fn summaries() -> MutexGuard<'static, Option<Summaries>> {
    // A panic while holding the lock (a bug) must not stop the counting.
    SUMMARIES.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn with<R>(size: usize, f: impl FnOnce(&mut Summaries) -> R) -> R {
    let mut guard = summaries();
    let s = guard.get_or_insert_with(|| Summaries {
        enforced: Summary::new(size),
        shadow: Summary::new(size),
    });
    f(s)
}

/// The size both summaries hold (`ratelimit.top-size`): set at load and
/// by `CONFIG SET`, which drops the smallest entries at once.
static SIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(DEFAULT_CAPACITY);

pub fn resize(size: usize) {
    SIZE.store(size, std::sync::atomic::Ordering::Relaxed);
    with(size, |s| {
        s.enforced.resize(size);
        s.shadow.resize(size);
    });
}

pub(super) fn size() -> usize {
    SIZE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether this server is a replica (its summaries stay empty).
pub(super) fn is_replica(ctx: Ctx) -> bool {
    ctx.flags() & raw::REDISMODULE_CTX_FLAGS_SLAVE as c_int != 0
}

/// Counts a client's denial of `key`, under `policy` (none for a
/// command's own parameters), at the decision's time. Cold and never
/// inlined: it stays out of the body of the functions that decide, whose
/// allowed path must cost what it did.
#[cold]
#[inline(never)]
pub(super) fn denied(ctx: Ctx, key: RStr, policy: Option<&[u8]>, at: Instant, shadow: bool) {
    if is_replica(ctx) {
        return;
    }
    let at_ms = at.as_micros() / 1000;
    with(size(), |s| {
        let summary = if shadow {
            &mut s.shadow
        } else {
            &mut s.enforced
        };
        summary.record(key.bytes(), policy, at_ms);
    });
}

/// `FLUSHALL` empties both summaries, and frees them: the keys they name
/// are gone, and whoever flushes a whole server (a test suite, a reset)
/// means to start again. `FLUSHDB` leaves them, since an entry does not
/// say which database its key is in.
unsafe extern "C" fn on_flush(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    // SAFETY: `data` is this flush event's own argument.
    let everything = unsafe { ffi::flushed_db(data) }.is_none();
    if subevent == raw::REDISMODULE_SUBEVENT_FLUSHDB_END && everything {
        *summaries() = None;
    }
}

/// Has `FLUSHALL` empty the summaries; `false` if Redis refused.
pub fn init(ctx: &redis_module::Context) -> bool {
    ffi::subscribe(ctx, raw::REDISMODULE_EVENT_FLUSHDB, on_flush)
}

/// `INFO ratelimit`: `top_size`, then per summary the entries it holds
/// and their bytes.
pub fn write_info(w: &mut InfoWriter) {
    let size = size();
    let (keys, bytes, shadow_keys, shadow_bytes) = with(size, |s| {
        (
            s.enforced.len(),
            s.enforced.bytes(),
            s.shadow.len(),
            s.shadow.bytes(),
        )
    });
    w.u64("top_size", size as u64);
    w.u64("top_keys", keys as u64);
    w.u64("top_bytes", bytes as u64);
    w.u64("top_shadow_keys", shadow_keys as u64);
    w.u64("top_shadow_bytes", shadow_bytes as u64);
}
