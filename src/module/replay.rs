//! Replay: `RL.APPLY`, `RL.APPLYALL` and `RL.SETSTATE`, what a master's
//! replication stream and the AOF send (see [`super::kernel`]). Closed to
//! ordinary clients; an op that can't be applied here is counted and logged,
//! never half-applied.

use std::ffi::c_int;

use redis_module::raw;

use super::config::{self, Setting};
use super::docs::{arg, many, Access, Arg, Command, Doc, Keys, Kind, DECIDE, KEY, SINCE};
use super::ffi::{self, Ctx, RStr};
use super::kernel::{
    check_replayed, check_replayed_expiry, check_replayed_limit, decide_all, decide_one, lease_one,
    refund_one, AllDecided, AllSource, Error, Outcome, PerKey, Source,
};
use super::{reply, stats};
use crate::algo::{LeaseAction, Params, UnixMs};
use crate::args;
use crate::codec::{self, LeaseOp};

/// Replays a refund: it must give back exactly what the master did, or it
/// changes nothing.
fn apply_refund(ctx: Ctx, name: RStr, op: &codec::RefundOp) -> Outcome {
    check_replayed_expiry(op.expire_at_ms)?;
    let source = Source::Replay {
        expire_at_ms: op.expire_at_ms,
    };
    let given = refund_one(ctx, name, op.given, op.now, source)?;
    ctx.reply_u64(given);
    Ok(())
}

/// Runs a replication or AOF command: only for a master's stream or while
/// loading. A replay that can't be applied is the sign of a replica whose
/// state differs from its master's: it is counted and logged (at most once
/// a second) with the key (argument `key_at`) and the reason, since nobody
/// reads the reply.
fn internal(
    ctx: Ctx,
    args: &[RStr],
    command: &'static str,
    key_at: usize,
    body: impl FnOnce(Ctx, &[RStr]) -> Outcome,
) -> Outcome {
    let from = raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING;
    if ctx.flags() & from as c_int == 0 {
        return Err(Error::Internal(command));
    }
    let result = body(ctx, args);
    if let Err(e) = &result {
        stats::replay_failed();
        let key = args.get(key_at);
        let key = key.map_or(String::new(), |k| args::shown(k.bytes()));
        log_throttled(&format!(
            "could not apply {command} on key{key}: {}",
            e.text()
        ));
    }
    result
}

/// Logs at most once a second (a diverged replica could fail every op).
fn log_throttled(msg: &str) {
    static LAST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
    let now = ffi::wall_ms();
    let last = LAST_MS.load(std::sync::atomic::Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000 {
        LAST_MS.store(now, std::sync::atomic::Ordering::Relaxed);
        ffi::log_warning(msg);
    }
}

const APPLY_ARGS: &[Arg] = &[KEY, arg(c"operation", Kind::String)];
// What replicas and the AOF receive; closed to clients.
pub(super) const RL_APPLY: Command = Command {
    name: c"RL.APPLY",
    flags: DECIDE,
    internal: true,
    operator: false,
    doc: Doc {
        summary: c"Internal: replays a decided request (replication and AOF only).",
        complexity: c"O(1), O(M) for a log where M is the cost",
        since: SINCE,
        arity: 3,
        keys: Keys::One(Access::Update),
        args: APPLY_ARGS,
    },
};

/// `RL.APPLY key op`: replays a decided request (what replicas and the AOF
/// receive). Needs no clock.
pub(super) fn apply_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.APPLY", 1, apply_op)
}

fn apply_op(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, op] = args else {
        return Err(args::arity_error("RL.APPLY").into());
    };
    let op = codec::decode_any_op(op.bytes())
        .map_err(|e| Error::BadOp(format!("invalid RL.APPLY operation: {e}")))?;
    let op = match op {
        codec::AnyOp::Decide(op) => op,
        codec::AnyOp::Refund(op) => return apply_refund(ctx, *key, &op),
        codec::AnyOp::Lease(op) => return apply_lease(ctx, *key, &op),
    };
    check_replayed(&op.params, op.expire_at_ms)?;
    if op.cost == 0 {
        return Err(Error::BadOp(
            "invalid RL.APPLY operation: a peek is never replicated".into(),
        ));
    }
    let source = Source::Replay {
        expire_at_ms: op.expire_at_ms,
    };
    let (d, _) = decide_one(ctx, *key, &op.params, op.cost, op.now, op.penalty, source)?;
    reply::decision(ctx, &d);
    Ok(())
}

const SETSTATE_ARGS: &[Arg] = &[
    KEY,
    arg(c"encoding-version", Kind::Integer),
    arg(c"state", Kind::String),
];
pub(super) const RL_SETSTATE: Command = Command {
    name: c"RL.SETSTATE",
    flags: c"write deny-oom",
    internal: true,
    operator: false,
    doc: Doc {
        summary: c"Internal: recreates a limiter from its encoding (AOF rewrite only).",
        complexity: c"O(N) where N is the size of the state",
        since: SINCE,
        arity: 4,
        keys: Keys::One(Access::Overwrite),
        args: SETSTATE_ARGS,
    },
};

/// `RL.SETSTATE key encoding-version blob`: what an AOF rewrite emits to
/// recreate a key (its expiry follows as a separate `PEXPIREAT`).
pub(super) fn setstate_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.SETSTATE", 1, setstate)
}

fn setstate(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, version, blob] = args else {
        return Err(args::arity_error("RL.SETSTATE").into());
    };
    let version = args::count("encoding version", version.bytes(), 1)?;
    let version = i32::try_from(version).unwrap_or(i32::MAX);
    let value = codec::decode_value(blob.bytes(), version)
        .map_err(|e| Error::BadOp(format!("invalid RL.SETSTATE value: {e}")))?;
    // A whole value restored, as RESTORE does, not a change decided on a
    // snapshot: so not through `value::install`, and its expiry is the
    // rewrite's own `PEXPIREAT`, not one computed here.
    let mut key = ctx.open_write(*key)?;
    key.store(value)?;
    key.signal_modified();
    ctx.replicate_verbatim();
    ctx.reply_ok();
    Ok(())
}

const APPLY_ALL_ARGS: &[Arg] = &[
    arg(c"numkeys", Kind::Integer),
    many(c"key", Kind::Key),
    arg(c"operation", Kind::String),
];
pub(super) const RL_APPLYALL: Command = Command {
    name: c"RL.APPLYALL",
    flags: DECIDE,
    internal: true,
    operator: false,
    doc: Doc {
        summary: c"Internal: replays a decided RL.ALL call (replication and AOF only).",
        complexity: c"O(N) where N is the number of keys",
        since: c"0.2.0",
        arity: -4,
        keys: Keys::Numkeys,
        args: APPLY_ALL_ARGS,
    },
};

/// `RL.APPLYALL numkeys key [key ...] op`: replays one `RL.ALL` call.
pub(super) fn apply_all_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.APPLYALL", 2, apply_all_op)
}

fn apply_all_op(ctx: Ctx, args: &[RStr]) -> Outcome {
    let bad = |why: &str| Error::BadOp(format!("invalid RL.APPLYALL operation: {why}"));
    let [_, numkeys, rest @ ..] = args else {
        return Err(args::arity_error("RL.APPLYALL").into());
    };
    let n = args::count("numkeys", numkeys.bytes(), 1)?;
    let Some((op, names)) = rest.split_last() else {
        return Err(args::arity_error("RL.APPLYALL").into());
    };
    if names.len() as u64 != n {
        return Err(args::arity_error("RL.APPLYALL").into());
    }
    let op = codec::decode_all_op(op.bytes()).map_err(|e| bad(&e.to_string()))?;
    if op.limits.len() != names.len() {
        return Err(bad("one limit per key is needed"));
    }
    // Two handles on one key would alias its value.
    for (i, name) in names.iter().enumerate() {
        if names[..i].iter().any(|other| other.bytes() == name.bytes()) {
            return Err(bad("a key is repeated"));
        }
    }
    let mut params: PerKey<Params> = PerKey::new();
    let mut expiries: PerKey<UnixMs> = PerKey::new();
    if op.cost == 0 {
        return Err(bad("a peek is never replicated"));
    }
    for (p, at) in &op.limits {
        check_replayed(p, *at)?;
        params.push(*p);
        expiries.push(*at);
    }
    let source = AllSource::Replay {
        expiries: &expiries,
    };
    let mut decided = AllDecided::new();
    decide_all(
        ctx,
        names,
        &params,
        op.cost,
        op.now,
        op.penalty,
        source,
        &mut decided,
    )?;
    reply::all(ctx, &decided.combined, &decided.each);
    Ok(())
}

/// Replays a lease op: it must do exactly what it did on the master, or it
/// changes nothing. It is decided on the stored leases and installed in
/// place, as the master's call was (a copy of 10,000 leases per op made a
/// replica ten times slower than its master): whether it writes, and
/// whether it empties the key, are checked on the snapshot before anything
/// changes.
fn apply_lease(ctx: Ctx, name: RStr, op: &LeaseOp) -> Outcome {
    if let LeaseAction::Acquire { limit, .. } = op.what {
        // The master's setting bounded its client; here only the codec's
        // ceiling applies, whatever this server's own lease-max says.
        check_replayed_limit(
            Setting::LeaseMax,
            limit.get(),
            config::LEASE_MAX_CEILING,
            config::lease_max(),
        )?;
    }
    check_replayed_expiry(op.expire_at_ms)?;
    let mut key = ctx.open_write(name)?;
    let source = Source::Replay {
        expire_at_ms: op.expire_at_ms,
    };
    lease_one(ctx, name, &mut key, op.what, op.id, op.now, source)?;
    ctx.reply_i64(1);
    Ok(())
}
