//! Calls that need no context (the server's clock, its log, its pause
//! state): usable from a panic hook, a type callback or a timer, where no
//! command context exists.

use std::ffi::{c_char, CStr};

use redis_module::raw;

/// The server's clock, in Unix milliseconds, read now.
pub fn wall_ms() -> i64 {
    // SAFETY: takes nothing, reads the system clock.
    unsafe { api!(RedisModule_Milliseconds)() }
}

/// The time the server gave the command running now, in Unix
/// microseconds, where it tells a module (Redis 7.2 and later, Valkey;
/// `None` on Redis 7.0): taken when the outermost command began (a
/// `MULTI`'s `EXEC`, a script), so every call inside one sees the same
/// time, the time the server judges key expiry by during it.
pub fn command_time_us() -> Option<i64> {
    // SAFETY: Redis fills the API table once, before calling the module;
    // it is only read afterwards.
    let time = unsafe { *std::ptr::addr_of!(raw::RedisModule_CachedMicroseconds) }?;
    // SAFETY: takes nothing, reads a field of the server.
    Some(unsafe { time() })
}

/// Writes `msg` to the server log at warning level; usable with no context
/// (from a panic hook or a type callback).
pub fn log_warning(msg: &str) {
    log(c"warning", msg);
}

/// Writes `msg` to the server log at notice level (the default verbosity).
pub fn log_notice(msg: &str) {
    log(c"notice", msg);
}

fn log(level: &CStr, msg: &str) {
    let Ok(msg) = std::ffi::CString::new(msg) else {
        return;
    };
    // SAFETY: Redis fills the API table once, before calling the module.
    let Some(log) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_Log) }) else {
        return;
    };
    // SAFETY: a NULL context is allowed; "%s" makes `msg` data, not a
    // format.
    unsafe {
        log(
            std::ptr::null_mut(),
            level.as_ptr(),
            c"ratelimit: %s".as_ptr(),
            msg.as_ptr() as *const c_char,
        )
    };
}

/// Whether clients are paused for writes (`CLIENT PAUSE`, `FAILOVER`):
/// then the server must not propagate anything (it asserts that it does
/// not, and would crash).
pub fn writes_paused() -> bool {
    // SAFETY: takes nothing, reads the server's pause state.
    unsafe { api!(RedisModule_AvoidReplicaTraffic)() != 0 }
}
