//! Module settings: `ratelimit.log-max` and `ratelimit.cell-compat`.
//!
//! Both can be given as `loadmodule` arguments (`log-max 5000`), or in
//! redis.conf as `ratelimit.log-max 5000` after the `loadmodule` line;
//! `log-max` can also be changed at run time with `CONFIG SET`. A bad value
//! makes the module refuse to load, with a log line naming the argument,
//! rather than run with a setting the operator did not ask for.

use std::ffi::{c_char, c_int, c_longlong, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redis_module::{raw, Context, RedisString};

use crate::args::{self, Limits, DEFAULT_LOG_MAX};

/// Hard ceiling of `log-max`: one RL.LOG key stays under 8 MB.
pub const LOG_MAX_CEILING: u64 = 1_000_000;

static LOG_MAX: AtomicU64 = AtomicU64::new(DEFAULT_LOG_MAX);
static CELL_COMPAT: AtomicBool = AtomicBool::new(false);

pub fn log_max() -> u64 {
    LOG_MAX.load(Ordering::Relaxed)
}

pub fn cell_compat() -> bool {
    CELL_COMPAT.load(Ordering::Relaxed)
}

pub fn limits() -> Limits {
    Limits { log_max: log_max() }
}

unsafe extern "C" fn get_log_max(_name: *const c_char, _p: *mut c_void) -> c_longlong {
    log_max() as c_longlong
}

unsafe extern "C" fn set_log_max(
    _name: *const c_char,
    v: c_longlong,
    _p: *mut c_void,
    _err: *mut *mut raw::RedisModuleString,
) -> c_int {
    // Redis has already checked `v` against the registered bounds.
    LOG_MAX.store(
        v.clamp(1, LOG_MAX_CEILING as c_longlong) as u64,
        Ordering::Relaxed,
    );
    raw::Status::Ok as c_int
}

unsafe extern "C" fn get_cell_compat(_name: *const c_char, _p: *mut c_void) -> c_int {
    cell_compat() as c_int
}

unsafe extern "C" fn set_cell_compat(
    _name: *const c_char,
    v: c_int,
    _p: *mut c_void,
    _err: *mut *mut raw::RedisModuleString,
) -> c_int {
    CELL_COMPAT.store(v != 0, Ordering::Relaxed);
    raw::Status::Ok as c_int
}

/// Registers the settings, applies redis.conf and then the module arguments.
/// `Err` carries the log line explaining why the module must not load.
pub fn load(ctx: &Context, module_args: &[RedisString]) -> Result<(), String> {
    let arg_bytes: Vec<&[u8]> = module_args.iter().map(|a| a.as_slice()).collect();
    let parsed = args::module_args(&arg_bytes, LOG_MAX_CEILING)?;
    let raw_ctx = ctx.ctx;
    unsafe {
        // Servers before 7.0 have no module configs: arguments still work.
        if let (Some(numeric), Some(boolean), Some(load)) = (
            raw::RedisModule_RegisterNumericConfig,
            raw::RedisModule_RegisterBoolConfig,
            raw::RedisModule_LoadConfigs,
        ) {
            let ok = raw::Status::Ok as c_int;
            if numeric(
                raw_ctx,
                c"log-max".as_ptr(),
                DEFAULT_LOG_MAX as c_longlong,
                raw::REDISMODULE_CONFIG_DEFAULT,
                1,
                LOG_MAX_CEILING as c_longlong,
                Some(get_log_max),
                Some(set_log_max),
                None,
                std::ptr::null_mut(),
            ) != ok
                // Commands can only be added while loading, so this one is
                // fixed for the life of the server.
                || boolean(
                    raw_ctx,
                    c"cell-compat".as_ptr(),
                    0,
                    raw::REDISMODULE_CONFIG_IMMUTABLE,
                    Some(get_cell_compat),
                    Some(set_cell_compat),
                    None,
                    std::ptr::null_mut(),
                ) != ok
            {
                return Err("could not register the ratelimit.* configs".into());
            }
            if load(raw_ctx) != ok {
                return Err("a ratelimit.* setting in the configuration is invalid".into());
            }
        }
    }
    if let Some(v) = parsed.log_max {
        LOG_MAX.store(v, Ordering::Relaxed);
    }
    if let Some(v) = parsed.cell_compat {
        CELL_COMPAT.store(v, Ordering::Relaxed);
    }
    Ok(())
}
