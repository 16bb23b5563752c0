//! The one place that defines the reply shape of every `RL.*` decision.
//!
//! RESP2: `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`, all
//! integers. RESP3: a map with those names, `allowed` a boolean. Durations
//! are rounded *up* to whole milliseconds, so a client that waits the
//! figure it was given is never early.

use std::ffi::CStr;

use super::ffi::{self, Ctx};
use crate::algo::{Decision, Limiter, Micros};

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
    five(ctx, d, resp3, 0);
}

/// The five fields of `d`, as an array (RESP2) or a map (RESP3) with
/// `extra` more entries that the caller writes next.
fn five(ctx: Ctx, d: &Decision, resp3: bool, extra: usize) {
    let values = fields(d);
    if resp3 {
        ffi::reply_map(ctx, FIELDS.len() + extra);
        for (i, (name, v)) in FIELDS.iter().zip(values).enumerate() {
            ffi::reply_simple(ctx, name);
            if i == 0 {
                ffi::reply_bool(ctx, v != 0);
            } else {
                ffi::reply_i64(ctx, v);
            }
        }
    } else {
        ffi::reply_array(ctx, FIELDS.len() + extra);
        for v in values {
            ffi::reply_i64(ctx, v);
        }
    }
}

/// `RL.ALL`: the combined decision's five fields, then one decision per key.
/// RESP3: a map of the combined fields plus `limits`, a list of maps.
pub fn all(ctx: Ctx, combined: &Decision, each: &[Decision], resp3: bool) {
    if resp3 {
        five(ctx, combined, true, 1);
        ffi::reply_simple(ctx, c"limits");
        ffi::reply_array(ctx, each.len());
    } else {
        five(ctx, combined, false, each.len());
    }
    for d in each {
        decision(ctx, d, resp3);
    }
}

/// Whole seconds the way redis-cell reports them: rounded up when at least
/// a millisecond is left over, down otherwise.
fn cell_seconds(us: Micros) -> i64 {
    let s = us / 1_000_000;
    let extra = (us % 1_000_000 / 1000 > 0) as u64;
    i64::try_from(s + extra).unwrap_or(i64::MAX)
}

/// redis-cell's `CL.THROTTLE` reply: `[limited, limit, remaining,
/// retry_after_s, reset_after_s]`, retry -1 when allowed or never possible.
pub fn cell_fields(d: &Decision) -> [i64; 5] {
    [
        (!d.allowed) as i64,
        i64::try_from(d.limit).unwrap_or(i64::MAX),
        i64::try_from(d.remaining).unwrap_or(i64::MAX),
        match (d.allowed, d.retry_after) {
            (false, Some(us)) => cell_seconds(us),
            _ => -1,
        },
        cell_seconds(d.reset_after),
    ]
}

pub fn cell(ctx: Ctx, d: &Decision) {
    ffi::reply_array(ctx, 5);
    for v in cell_fields(d) {
        ffi::reply_i64(ctx, v);
    }
}

/// `RL.INFO`: `algorithm`, the parameters and state as named integers, then
/// what could be spent now, the reset time and the key's TTL (-1 if none).
pub fn info(ctx: Ctx, limiter: &Limiter, peek: &Decision, ttl_ms: Option<i64>) {
    let described = limiter.describe();
    ffi::reply_map(ctx, described.len() + 4);
    ffi::reply_bulk(ctx, b"algorithm");
    ffi::reply_bulk(ctx, limiter.algorithm().name().as_bytes());
    for (name, v) in described {
        ffi::reply_bulk(ctx, name.as_bytes());
        ffi::reply_i64(ctx, i64::try_from(v).unwrap_or(i64::MAX));
    }
    ffi::reply_bulk(ctx, b"remaining");
    ffi::reply_i64(ctx, i64::try_from(peek.remaining).unwrap_or(i64::MAX));
    ffi::reply_bulk(ctx, b"reset_after_ms");
    ffi::reply_i64(ctx, ms_ceil(peek.reset_after));
    ffi::reply_bulk(ctx, b"ttl_ms");
    ffi::reply_i64(ctx, ttl_ms.unwrap_or(-1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{BucketParams, Params};

    /// The reference case table redis-cell documents for its GCRA (limit 5,
    /// one per second), checked through our GCRA and the cell reply mapping:
    /// (ms since start, quantity, limited, remaining, retry_s, reset_s).
    #[test]
    fn cell_replies_follow_the_gcra_reference_table() {
        let params = Params::Gcra(BucketParams {
            capacity: 5,
            rate: 1,
            period: 1_000_000,
        });
        let start: Micros = 1_700_000_000_000_000;
        let cases: [(u64, u64, i64, i64, i64, i64); 15] = [
            (0, 6, 1, 5, -1, 0),
            (0, 1, 0, 4, -1, 1),
            (0, 1, 0, 3, -1, 2),
            (0, 1, 0, 2, -1, 3),
            (0, 1, 0, 1, -1, 4),
            (0, 1, 0, 0, -1, 5),
            (0, 1, 1, 0, 1, 5),
            (3000, 1, 0, 2, -1, 3),
            (3100, 1, 0, 1, -1, 4),
            (4000, 1, 0, 1, -1, 4),
            (8000, 1, 0, 4, -1, 1),
            (9500, 1, 0, 4, -1, 1),
            (9500, 0, 0, 4, -1, 1),
            (9500, 2, 0, 2, -1, 3),
            (9500, 5, 1, 2, 3, 3),
        ];
        let mut limiter = Limiter::new(&params);
        for (i, &(ms, quantity, limited, remaining, retry, reset)) in cases.iter().enumerate() {
            let d = limiter
                .decide(&params, quantity, start + ms * 1000)
                .unwrap();
            assert_eq!(
                cell_fields(&d),
                [limited, 5, remaining, retry, reset],
                "case {i}"
            );
        }
    }

    #[test]
    fn cell_seconds_round_up_from_a_millisecond() {
        assert_eq!(cell_seconds(0), 0);
        assert_eq!(cell_seconds(999), 0);
        assert_eq!(cell_seconds(1000), 1);
        assert_eq!(cell_seconds(1_000_000), 1);
        assert_eq!(cell_seconds(1_000_999), 1);
        assert_eq!(cell_seconds(1_001_000), 2);
    }
}
