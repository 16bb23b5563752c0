//! Module settings: `ratelimit.log-max`, `ratelimit.lease-max`,
//! `ratelimit.cell-compat`, and `ratelimit.top-size` and
//! `ratelimit.compact-ops` (redis.conf and `CONFIG SET` only).
//!
//! Both can be given as `loadmodule` arguments (`log-max 5000`), or in
//! redis.conf as `ratelimit.log-max 5000` after the `loadmodule` line;
//! `log-max` can also be changed at run time with `CONFIG SET`. A bad value
//! makes the module refuse to load, with a log line naming the argument,
//! rather than run with a setting the operator did not ask for.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use redis_module::configuration::{
    register_bool_configuration, register_i64_configuration, ConfigurationFlags,
};
use redis_module::{Context, RedisString};

use super::ffi;
use crate::args::{self, Limits, DEFAULT_LEASE_MAX, DEFAULT_LOG_MAX};

/// Hard ceiling of `log-max`: one RL.LOG key stays under 8 MB.
pub const LOG_MAX_CEILING: u64 = crate::algo::MAX_LOG_ENTRIES;

/// Redis checks `CONFIG SET` values against the registered bounds
/// (1..=LOG_MAX_CEILING), so this always holds a valid log limit.
static LOG_MAX: AtomicI64 = AtomicI64::new(DEFAULT_LOG_MAX as i64);
static CELL_COMPAT: AtomicBool = AtomicBool::new(false);

/// Whether decisions replicate as compact ops (varints; see
/// `codec::encode_op_compact`), which only this release and later ones
/// read: off until the operator says every replica and AOF reader is one.
static COMPACT_OPS: AtomicBool = AtomicBool::new(false);

/// Hard ceiling of `lease-max`: one RL.ACQUIRE key stays under about 50 MB.
pub const LEASE_MAX_CEILING: u64 = crate::algo::MAX_LEASES;

/// Like `LOG_MAX`, always a valid limit (Redis checks the bounds).
static LEASE_MAX: AtomicI64 = AtomicI64::new(DEFAULT_LEASE_MAX as i64);

/// Entries each `RL.TOP` summary holds at most (0: none kept).
static TOP_SIZE: AtomicI64 = AtomicI64::new(crate::top::DEFAULT_CAPACITY as i64);

pub fn top_size() -> usize {
    TOP_SIZE
        .load(Ordering::Relaxed)
        .clamp(0, crate::top::MAX_CAPACITY as i64) as usize
}

/// A setting that bounds clients' limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    LogMax,
    LeaseMax,
}

impl Setting {
    /// As `CONFIG GET` names it.
    pub fn name(self) -> &'static str {
        match self {
            Setting::LogMax => "ratelimit.log-max",
            Setting::LeaseMax => "ratelimit.lease-max",
        }
    }
}

pub fn lease_max() -> u64 {
    LEASE_MAX
        .load(Ordering::Relaxed)
        .clamp(1, LEASE_MAX_CEILING as i64) as u64
}

pub fn log_max() -> u64 {
    LOG_MAX
        .load(Ordering::Relaxed)
        .clamp(1, LOG_MAX_CEILING as i64) as u64
}

pub fn cell_compat() -> bool {
    CELL_COMPAT.load(Ordering::Relaxed)
}

#[inline]
pub fn compact_ops() -> bool {
    COMPACT_OPS.load(Ordering::Relaxed)
}

pub fn limits() -> Limits {
    Limits { log_max: log_max() }
}

/// Registers the settings, applies redis.conf and then the module arguments.
/// `Err` carries the log line explaining why the module must not load.
/// `on_top_size` is told `ratelimit.top-size` once loaded and on every
/// change, so that the summaries shrink at once.
pub fn load(
    ctx: &Context,
    module_args: &[RedisString],
    on_top_size: fn(usize),
) -> Result<(), String> {
    let arg_bytes: Vec<&[u8]> = module_args.iter().map(|a| a.as_slice()).collect();
    let parsed = args::module_args(&arg_bytes, LOG_MAX_CEILING)?;
    register_i64_configuration(
        ctx,
        "log-max",
        &LOG_MAX,
        DEFAULT_LOG_MAX as i64,
        1,
        LOG_MAX_CEILING as i64,
        ConfigurationFlags::DEFAULT,
        None,
    );
    register_i64_configuration(
        ctx,
        "lease-max",
        &LEASE_MAX,
        DEFAULT_LEASE_MAX as i64,
        1,
        LEASE_MAX_CEILING as i64,
        ConfigurationFlags::DEFAULT,
        None,
    );
    register_i64_configuration(
        ctx,
        "top-size",
        &TOP_SIZE,
        crate::top::DEFAULT_CAPACITY as i64,
        0,
        crate::top::MAX_CAPACITY as i64,
        ConfigurationFlags::DEFAULT,
        Some(Box::new(move |_, _, _| on_top_size(top_size()))),
    );
    // Commands can only be added while loading, so this one is fixed for
    // the life of the server.
    register_bool_configuration(
        ctx,
        "cell-compat",
        &CELL_COMPAT,
        false,
        ConfigurationFlags::IMMUTABLE,
        None,
    );
    register_bool_configuration(
        ctx,
        "compact-ops",
        &COMPACT_OPS,
        false,
        ConfigurationFlags::DEFAULT,
        None,
    );
    if !ffi::load_configs(ctx) {
        return Err("a ratelimit.* setting in the configuration is invalid".into());
    }
    if let Some(v) = parsed.log_max {
        LOG_MAX.store(v as i64, Ordering::Relaxed);
    }
    if let Some(v) = parsed.lease_max {
        LEASE_MAX.store(v as i64, Ordering::Relaxed);
    }
    if let Some(v) = parsed.cell_compat {
        CELL_COMPAT.store(v, Ordering::Relaxed);
    }
    on_top_size(top_size());
    Ok(())
}
