//! The one place that reads the clock.
//!
//! A call decides at the time the server gave the command (Unix
//! milliseconds, as Redis itself uses for expiry), where the server tells
//! a module that time (Redis 7.2 and later, Valkey): taken when the
//! outermost command began, the time the server also judges key expiry by
//! during it. Inside `MULTI`/`EXEC` and scripts that is when the `EXEC` or
//! the script began, so every call of one sees the same instant (a script
//! checking two limits must not see them at different times).
//!
//! Redis 7.0 does not tell it: there each call outside a transaction reads
//! the wall clock, and the calls of a transaction or a script share a
//! snapshot taken at the first of them and dropped before the event loop
//! sleeps (a transaction always runs within one event-loop iteration).
//!
//! Replicated operations carry their time and never get here.

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

/// On a server that does not tell a command its time, subscribes to the
/// event loop so snapshots are dropped between iterations. `false` if the
/// server refused.
pub fn init(ctx: &redis_module::Context) -> bool {
    ffi::command_time_us().is_some()
        || ffi::subscribe(ctx, raw::REDISMODULE_EVENT_EVENTLOOP, on_event_loop)
}

/// The time of this call: `at` when the client gave one, else the server's
/// clock.
pub fn now(ctx: ffi::Ctx, at: Option<Instant>) -> Instant {
    at.unwrap_or_else(|| wall(ctx))
}

/// The server's clock as this call sees it: the same for every call of a
/// transaction or a script, so an expiry counted from it agrees with the
/// time the call decided at (and with `TIME` there, on servers that freeze
/// it).
pub fn wall(ctx: ffi::Ctx) -> Instant {
    // Read in whole milliseconds either way, so a decision does not
    // depend on which server it runs on.
    let ms = match ffi::command_time_us() {
        // A call that reads a field, where the flags and the clock below
        // cost about 170 instructions.
        Some(us) => us.div_euclid(1_000),
        None => snapshot_ms(ctx),
    };
    Instant::from_millis(ms).min(Instant::from_micros(MAX_TIME_US))
}

/// Redis 7.0's clock for a call: the wall clock, or a transaction's
/// snapshot.
fn snapshot_ms(ctx: ffi::Ctx) -> i64 {
    let in_transaction = ctx.flags()
        & (raw::REDISMODULE_CTX_FLAGS_MULTI | raw::REDISMODULE_CTX_FLAGS_LUA) as c_int
        != 0;
    if !in_transaction {
        return ffi::wall_ms();
    }
    match SNAPSHOT_MS.load(Ordering::Relaxed) {
        NO_SNAPSHOT => {
            let ms = ffi::wall_ms();
            SNAPSHOT_MS.store(ms, Ordering::Relaxed);
            ms
        }
        ms => ms,
    }
}
