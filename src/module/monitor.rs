//! `RL.TOP`: which keys are denied most, recently, on this server, from
//! the summaries in [`super::top`].
//!
//! The reply is a map (a flat array of name, value pairs under RESP2):
//! `role` (`master`, or `replica`: a replica counts nothing and lists
//! nothing), `at_ms` (the time the counts are seen at: the server's clock,
//! or the latest decision time counted if that is later), `halflife_ms`,
//! `size` (`ratelimit.top-size`), `tracked` (entries the summary holds),
//! `bound` (every key whose decayed denials are above it is held; 0 while
//! the summary has room, when every key denied is held exactly), `hidden`
//! (entries left out because the caller may not read their key), then
//! `keys`: an array of maps, most denied first, each with `key`, `policy`
//! (nil: the command's own parameters), `count` (decayed denials, each
//! weighing 1/2 a half-life later), `error` (at most this much of `count`
//! may be other keys': the true decayed count is in `[count - error,
//! count]`), `denials` (raw denials since the entry entered the summary),
//! `last_denied_ms` and `truncated` (1: the key's name was longer than
//! 256 bytes and is cut there).

use super::ffi::{self, Ctx, RStr};
use super::kernel::{with_bytes, Error, Outcome};
use super::top;
use crate::algo::saturating_i64;
use crate::args;
use crate::top::HALF_LIFE_MS;

/// `RL.TOP [COUNT n] [POLICY name] [SHADOW]`
pub(super) fn top_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, rest @ ..] = args else {
        return Err(args::arity_error("RL.TOP").into());
    };
    let (count, policy, shadow) = with_bytes(rest, |a| {
        args::top_request(a).map(|t| (t.count, t.policy.map(str::to_owned), t.shadow))
    })?;
    // Key names are listed only when each can be checked against the
    // caller's ACL key patterns: without the API, nothing is.
    let reader = ctx
        .key_reader()
        .map_err(|why| Error::Refused(format!("RL.TOP cannot list key names: {why}")))?;
    let replica = top::is_replica(ctx);
    let wall = u64::try_from(ffi::wall_ms()).unwrap_or(0);
    top::with(top::size(), |s| {
        if replica {
            // Whatever it counted as a master is no longer this server's.
            s.enforced.clear();
            s.shadow.clear();
        }
        let summary = if shadow { &s.shadow } else { &s.enforced };
        let at_ms = wall.max(summary.latest_ms());
        let mut hidden = 0u64;
        let mut listed = Vec::new();
        for v in summary.top(at_ms) {
            if policy.is_some() && policy.as_deref().map(str::as_bytes) != v.policy {
                continue;
            }
            if !reader.may_read(v.key) {
                hidden += 1;
            } else if listed.len() < count {
                listed.push(v);
            }
        }
        ctx.reply_map(8);
        ctx.reply_bulk(b"role");
        ctx.reply_bulk(if replica { b"replica" } else { b"master" });
        ctx.reply_bulk(b"at_ms");
        ctx.reply_i64(saturating_i64(at_ms));
        ctx.reply_bulk(b"halflife_ms");
        ctx.reply_i64(saturating_i64(HALF_LIFE_MS));
        ctx.reply_bulk(b"size");
        ctx.reply_i64(saturating_i64(summary.capacity()));
        ctx.reply_bulk(b"tracked");
        ctx.reply_i64(saturating_i64(summary.len()));
        ctx.reply_bulk(b"bound");
        ctx.reply_i64(saturating_i64(summary.bound(at_ms)));
        ctx.reply_bulk(b"hidden");
        ctx.reply_i64(saturating_i64(hidden));
        ctx.reply_bulk(b"keys");
        ctx.reply_array(listed.len());
        for v in &listed {
            ctx.reply_map(7);
            ctx.reply_bulk(b"key");
            ctx.reply_bulk(v.key);
            ctx.reply_bulk(b"policy");
            match v.policy {
                Some(p) => ctx.reply_bulk(p),
                None => ctx.reply_null(),
            }
            ctx.reply_bulk(b"count");
            ctx.reply_i64(saturating_i64(v.count));
            ctx.reply_bulk(b"error");
            ctx.reply_i64(saturating_i64(v.error));
            ctx.reply_bulk(b"denials");
            ctx.reply_i64(saturating_i64(v.denials));
            ctx.reply_bulk(b"last_denied_ms");
            ctx.reply_i64(saturating_i64(v.last_ms));
            ctx.reply_bulk(b"truncated");
            ctx.reply_i64(v.cut as i64);
        }
    });
    Ok(())
}
