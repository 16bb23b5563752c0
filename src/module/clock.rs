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
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use redis_module::raw;

use super::ffi::Ctx;
use crate::algo::{Micros, MAX_TIME_US};

const NO_SNAPSHOT: i64 = -1;

/// Only the Redis main thread touches these; atomics just avoid `static mut`.
static SNAPSHOT_MS: AtomicI64 = AtomicI64::new(NO_SNAPSHOT);
static SNAPSHOTS_ENABLED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn on_event_loop(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::ffi::c_void,
) {
    SNAPSHOT_MS.store(NO_SNAPSHOT, Ordering::Relaxed);
}

/// Subscribes to the event loop so snapshots can be dropped; without that
/// (older servers) transactions just read the clock on every call.
pub fn init(ctx: Ctx) {
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_EVENTLOOP,
        dataver: 1,
    };
    let ok = unsafe {
        raw::RedisModule_SubscribeToServerEvent.map(|sub| sub(ctx, event, Some(on_event_loop)))
    };
    SNAPSHOTS_ENABLED.store(ok == Some(raw::Status::Ok as c_int), Ordering::Relaxed);
}

fn wall_ms() -> i64 {
    unsafe { raw::RedisModule_Milliseconds.unwrap()() }
}

/// The time of this call in µs: `at` when the client gave one, else the
/// server's clock (a shared snapshot inside transactions and scripts).
pub fn now(ctx_flags: c_int, at: Option<Micros>) -> Micros {
    if let Some(at) = at {
        return at;
    }
    let in_transaction = ctx_flags
        & (raw::REDISMODULE_CTX_FLAGS_MULTI | raw::REDISMODULE_CTX_FLAGS_LUA) as c_int
        != 0;
    let ms = if in_transaction && SNAPSHOTS_ENABLED.load(Ordering::Relaxed) {
        match SNAPSHOT_MS.load(Ordering::Relaxed) {
            NO_SNAPSHOT => {
                let ms = wall_ms();
                SNAPSHOT_MS.store(ms, Ordering::Relaxed);
                ms
            }
            ms => ms,
        }
    } else {
        wall_ms()
    };
    to_micros(ms)
}

/// The wall clock in Unix ms, for absolute expiry times.
pub fn wall_now_ms() -> i64 {
    wall_ms()
}

fn to_micros(ms: i64) -> Micros {
    (ms.max(0) as u64).saturating_mul(1000).min(MAX_TIME_US)
}
