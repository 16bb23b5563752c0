//! The one place that reads the clock.
//!
//! Outside transactions each call reads the server's wall clock (Unix
//! milliseconds, as Redis itself uses for expiry). Inside `MULTI`/`EXEC` and
//! scripts every call must see the same instant, or a script checking two
//! limits would see them at different times; those calls share a snapshot
//! taken at the first of them and dropped before the event loop sleeps, so a
//! transaction (which always runs within one event-loop iteration) sees one
//! time. Replicated operations carry their time and never get here.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI64, Ordering};

use redis_module::raw;

use super::ffi;
use crate::algo::{Instant, MAX_TIME_US};

const NO_SNAPSHOT: i64 = -1;

/// Only the Redis main thread touches this; an atomic just avoids `static mut`.
static SNAPSHOT_MS: AtomicI64 = AtomicI64::new(NO_SNAPSHOT);

unsafe extern "C" fn on_event_loop(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::ffi::c_void,
) {
    SNAPSHOT_MS.store(NO_SNAPSHOT, Ordering::Relaxed);
}

/// Subscribes to the event loop so snapshots are dropped between
/// iterations. `false` if the server refused.
pub fn init(ctx: &redis_module::Context) -> bool {
    ffi::subscribe(ctx, raw::REDISMODULE_EVENT_EVENTLOOP, on_event_loop)
}

/// The time of this call: `at` when the client gave one, else the server's
/// clock (a shared snapshot inside transactions and scripts).
pub fn now(ctx: ffi::Ctx, at: Option<Instant>) -> Instant {
    at.unwrap_or_else(|| wall(ctx))
}

/// The server's clock as this call sees it: a shared snapshot inside
/// transactions and scripts, so an expiry counted from it agrees with the
/// time the call decided at (and with `TIME` there on servers that freeze it).
pub fn wall(ctx: ffi::Ctx) -> Instant {
    // Only the clock needs the context's flags (a few hundred instructions).
    let in_transaction = ctx.flags()
        & (raw::REDISMODULE_CTX_FLAGS_MULTI | raw::REDISMODULE_CTX_FLAGS_LUA) as c_int
        != 0;
    let ms = if in_transaction {
        match SNAPSHOT_MS.load(Ordering::Relaxed) {
            NO_SNAPSHOT => {
                let ms = ffi::wall_ms();
                SNAPSHOT_MS.store(ms, Ordering::Relaxed);
                ms
            }
            ms => ms,
        }
    } else {
        ffi::wall_ms()
    };
    Instant::from_millis(ms).min(Instant::from_micros(MAX_TIME_US))
}
