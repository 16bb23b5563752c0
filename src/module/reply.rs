//! The one place that defines the reply shape of every `RL.*` decision.
//!
//! RESP2: `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`, all
//! integers. RESP3: a map with those names, `allowed` a boolean. Durations
//! are rounded *up* to whole milliseconds, so a client that waits the
//! figure it was given is never early.

use std::ffi::CStr;

use super::ffi::{self, Ctx};
use crate::algo::{Decision, Micros};

pub const FIELDS: [&CStr; 5] = [
    c"allowed",
    c"limit",
    c"remaining",
    c"retry_after_ms",
    c"reset_after_ms",
];

/// A duration in µs as whole milliseconds, rounded up.
pub fn ms_ceil(us: Micros) -> i64 {
    i64::try_from(us.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The five integers of a decision, in reply order.
pub fn fields(d: &Decision) -> [i64; 5] {
    [
        d.allowed as i64,
        i64::try_from(d.limit).unwrap_or(i64::MAX),
        i64::try_from(d.remaining).unwrap_or(i64::MAX),
        d.retry_after.map_or(-1, ms_ceil),
        ms_ceil(d.reset_after),
    ]
}

/// Writes one decision (without returning a status, so callers can nest it).
pub fn decision(ctx: Ctx, d: &Decision, resp3: bool) {
    let values = fields(d);
    if resp3 {
        ffi::reply_map(ctx, FIELDS.len());
        for (i, (name, v)) in FIELDS.iter().zip(values).enumerate() {
            ffi::reply_simple(ctx, name);
            if i == 0 {
                ffi::reply_bool(ctx, v != 0);
            } else {
                ffi::reply_i64(ctx, v);
            }
        }
    } else {
        ffi::reply_array(ctx, FIELDS.len());
        for v in values {
            ffi::reply_i64(ctx, v);
        }
    }
}
