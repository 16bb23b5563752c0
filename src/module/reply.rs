//! The one place that defines the reply shape of every `RL.*` decision:
//! `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`, all
//! integers, under RESP2 and RESP3 alike. Durations are rounded *up* to
//! whole milliseconds, so a client that waits the figure it was given is
//! never early. The maps of `RL.INFO` and `RL.TOP` are here too.

use super::ffi::Ctx;
use crate::algo::{saturating_i64, Decision, Duration, Instant, LeaseState, Limiter};
use crate::top::View;

/// A duration as whole milliseconds, rounded up.
pub fn ms(d: Duration) -> i64 {
    saturating_i64(d.ceil_millis())
}

/// The five integers of a decision, in reply order:
/// `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`.
pub fn fields(d: &Decision) -> [i64; 5] {
    [
        d.allowed as i64,
        saturating_i64(d.limit),
        saturating_i64(d.remaining),
        d.retry_after.map_or(-1, ms),
        ms(d.reset_after),
    ]
}

/// An array of five integers, then `extra` more elements the caller writes.
/// The same under RESP2 and RESP3: no client mapping can reorder or flatten
/// a positional array of integers.
fn five(ctx: Ctx, values: [i64; 5], extra: usize) {
    ctx.reply_array(values.len() + extra);
    for v in values {
        ctx.reply_i64(v);
    }
}

/// One decision.
pub fn decision(ctx: Ctx, d: &Decision) {
    five(ctx, fields(d), 0);
}

/// `RL.ALL`: the combined decision's five fields, then one decision per key
/// (none: `COMBINED`, the five fields alone).
pub fn all(ctx: Ctx, combined: &Decision, each: &[Decision]) {
    five(ctx, fields(combined), each.len());
    for d in each {
        decision(ctx, d);
    }
}

/// `RL.ACQUIRE`: the decision's five integers, then the lease id (nil when
/// no lease is held).
pub fn lease(ctx: Ctx, d: &Decision, id: Option<&[u8]>) {
    five(ctx, fields(d), 1);
    match id {
        Some(id) => ctx.reply_bulk(id),
        None => ctx.reply_null(),
    }
}

/// Whole seconds the way redis-cell reports them: rounded up when at least
/// a millisecond is left over, down otherwise.
fn cell_seconds(d: Duration) -> i64 {
    let us = d.as_micros();
    let s = us / 1_000_000;
    let extra = (us % 1_000_000 / 1000 > 0) as u64;
    saturating_i64(s + extra)
}

/// redis-cell's `CL.THROTTLE` reply: `[limited, limit, remaining,
/// retry_after_s, reset_after_s]`, retry -1 when allowed or never possible.
pub fn cell_fields(d: &Decision) -> [i64; 5] {
    [
        (!d.allowed) as i64,
        saturating_i64(d.limit),
        saturating_i64(d.remaining),
        match (d.allowed, d.retry_after) {
            (false, Some(wait)) => cell_seconds(wait),
            _ => -1,
        },
        cell_seconds(d.reset_after),
    ]
}

/// `CL.THROTTLE`: redis-cell's array.
pub fn cell(ctx: Ctx, d: &Decision) {
    five(ctx, cell_fields(d), 0);
}

/// `RL.INFO`: `algorithm`, the parameters and state as named integers, then
/// what could be spent now, the reset time, the end of a penalty block in
/// force (Unix ms, 0 if none) and the key's TTL (-1 if none).
pub fn info(
    ctx: Ctx,
    limiter: &Limiter,
    peek: &Decision,
    blocked_until_ms: u64,
    ttl_ms: Option<i64>,
) {
    let mut described = 0;
    limiter.describe(|_, _| described += 1);
    ctx.reply_map(described + 5);
    ctx.reply_bulk(b"algorithm");
    ctx.reply_bulk(limiter.algorithm().name().as_bytes());
    limiter.describe(|name, v| {
        ctx.reply_bulk(name.as_bytes());
        ctx.reply_i64(v);
    });
    ctx.reply_bulk(b"remaining");
    ctx.reply_u64(peek.remaining);
    ctx.reply_bulk(b"reset_after_ms");
    ctx.reply_i64(ms(peek.reset_after));
    ctx.reply_bulk(b"blocked_until_ms");
    ctx.reply_u64(blocked_until_ms);
    ctx.reply_bulk(b"ttl_ms");
    ctx.reply_i64(ttl_ms.unwrap_or(-1));
}

/// `RL.INFO` on a lease key: the limit, the leases live now, the units they
/// hold, what could be taken now, when the last one ends, and the TTL.
pub fn lease_info(ctx: Ctx, s: &LeaseState, now: Instant, ttl_ms: Option<i64>) {
    let peek = s.peek(s.limit, 0, now);
    let held = s.held(now);
    let live = s.live_leases(now);
    ctx.reply_map(7);
    ctx.reply_bulk(b"algorithm");
    ctx.reply_bulk(b"LEASES");
    ctx.reply_bulk(b"limit");
    ctx.reply_u64(s.limit.get());
    ctx.reply_bulk(b"leases");
    ctx.reply_u64(live as u64);
    ctx.reply_bulk(b"held");
    ctx.reply_u64(held);
    ctx.reply_bulk(b"remaining");
    ctx.reply_u64(s.limit.get().saturating_sub(held));
    ctx.reply_bulk(b"reset_after_ms");
    ctx.reply_i64(ms(peek.reset_after));
    ctx.reply_bulk(b"ttl_ms");
    ctx.reply_i64(ttl_ms.unwrap_or(-1));
}

/// The figures `RL.TOP` reports of the summary it lists from.
pub struct TopFigures {
    /// A replica counts nothing and lists nothing.
    pub replica: bool,
    /// The time the counts are seen at, Unix ms: the server's clock, or
    /// the latest decision time counted if that is later.
    pub at_ms: u64,
    pub halflife_ms: u64,
    /// `ratelimit.top-size`.
    pub size: usize,
    /// Entries the summary holds.
    pub tracked: usize,
    /// Every key whose decayed denials are above it is held (0 while the
    /// summary has room, when every key denied is held exactly).
    pub bound: u64,
    /// Entries left out because the caller may not read their key.
    pub hidden: u64,
}

/// `RL.TOP`: a map (a flat array of name, value pairs under RESP2) of
/// `role` (`master` or `replica`), `at_ms`, `halflife_ms`, `size`,
/// `tracked`, `bound`, `hidden`, then `keys`: an array of maps, most
/// denied first, each with `key`, `policy` (nil: the command's own
/// parameters), `count` (decayed denials, each weighing 1/2 a half-life
/// later), `error` (at most this much of `count` may be other keys': the
/// true decayed count is in `[count - error, count]`), `denials` (raw
/// denials since the entry entered the summary), `last_denied_ms` and
/// `truncated` (1: the key's name was longer than 256 bytes and is cut
/// there).
pub fn top(ctx: Ctx, f: &TopFigures, keys: &[View<'_>]) {
    ctx.reply_map(8);
    ctx.reply_bulk(b"role");
    ctx.reply_bulk(if f.replica { b"replica" } else { b"master" });
    ctx.reply_bulk(b"at_ms");
    ctx.reply_u64(f.at_ms);
    ctx.reply_bulk(b"halflife_ms");
    ctx.reply_u64(f.halflife_ms);
    ctx.reply_bulk(b"size");
    ctx.reply_i64(saturating_i64(f.size));
    ctx.reply_bulk(b"tracked");
    ctx.reply_i64(saturating_i64(f.tracked));
    ctx.reply_bulk(b"bound");
    ctx.reply_u64(f.bound);
    ctx.reply_bulk(b"hidden");
    ctx.reply_u64(f.hidden);
    ctx.reply_bulk(b"keys");
    ctx.reply_array(keys.len());
    for v in keys {
        ctx.reply_map(7);
        ctx.reply_bulk(b"key");
        ctx.reply_bulk(v.key);
        ctx.reply_bulk(b"policy");
        match v.policy {
            Some(p) => ctx.reply_bulk(p),
            None => ctx.reply_null(),
        }
        ctx.reply_bulk(b"count");
        ctx.reply_u64(v.count);
        ctx.reply_bulk(b"error");
        ctx.reply_u64(v.error);
        ctx.reply_bulk(b"denials");
        ctx.reply_u64(v.denials);
        ctx.reply_bulk(b"last_denied_ms");
        ctx.reply_u64(v.last_ms);
        ctx.reply_bulk(b"truncated");
        ctx.reply_i64(v.cut as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{Algorithm, BucketParams, Instant, Params};

    /// The reference case table redis-cell documents for its GCRA (limit 5,
    /// one per second), checked through our GCRA and the cell reply mapping:
    /// (ms since start, quantity, limited, remaining, retry_s, reset_s).
    #[test]
    fn cell_replies_follow_the_gcra_reference_table() {
        let params =
            Params::bucket(Algorithm::Gcra, BucketParams::new(5, 1, 1_000_000).unwrap()).unwrap();
        let start: u64 = 1_700_000_000_000_000;
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
                .decide(&params, quantity, Instant::from_micros(start + ms * 1000))
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
        let s = |us| cell_seconds(Duration::from_micros(us));
        assert_eq!(s(0), 0);
        assert_eq!(s(999), 0);
        assert_eq!(s(1000), 1);
        assert_eq!(s(1_000_000), 1);
        assert_eq!(s(1_000_999), 1);
        assert_eq!(s(1_001_000), 2);
    }
}
