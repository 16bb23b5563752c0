//! `RL.TOP`: which keys are denied most, recently, on this server, from
//! the summaries in [`super::top`]. The reply's shape is
//! [`super::reply::top`].

use super::docs::{option, Arg, Command, Doc, Keys, Kind, SHADOW};
use super::ffi::{self, Ctx, RStr};
use super::kernel::{with_bytes, Error, Outcome};
use super::{reply, top};
use crate::args;
use crate::top::HALF_LIFE_MS;

const TOP_ARGS: &[Arg] = &[
    option(c"COUNT", c"count", Kind::Integer),
    option(c"POLICY", c"policy", Kind::String),
    SHADOW,
];
// Lists key names, each checked against the caller's ACL key patterns:
// a read of the keyspace, O(size), like KEYS or SCAN (`@read @slow`,
// and `@ratelimit`, which grants an application only its own keys).
pub(super) const RL_TOP: Command = Command {
    name: c"RL.TOP",
    flags: c"readonly",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"The keys denied most on this server, recently (decayed: a denial counts half a minute later), most first, each with its count, error bound, raw denials and last denial; only keys the caller may read.",
        complexity: c"O(N log N) where N is ratelimit.top-size",
        since: c"0.4.0",
        arity: -1,
        keys: Keys::None,
        args: TOP_ARGS,
    },
};

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
        let figures = reply::TopFigures {
            replica,
            at_ms,
            halflife_ms: HALF_LIFE_MS,
            size: summary.capacity(),
            tracked: summary.len(),
            bound: summary.bound(at_ms),
            hidden,
        };
        reply::top(ctx, &figures, &listed);
    });
    Ok(())
}
