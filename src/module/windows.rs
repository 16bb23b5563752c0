//! The limiters' commands: `RL.<ALGO>`, `RL.ALL`, `RL.PEEK`, `RL.REFUND`,
//! `RL.INFO` and redis-cell's `CL.THROTTLE`. Each parses, decides through
//! the kernel, counts and replies; their replay is in [`super::replay`].

use std::cell::RefCell;
use std::sync::Arc;

use super::docs::{
    self, arg, many, option, Access, Arg, Command, Doc, Keys, Kind, AT, COST, DECIDE, KEY, O1,
    PENALTY, SHADOW, SINCE,
};
use super::ffi::{Ctx, RStr};
use super::kernel::{
    client_decide, decide_all, decide_one, refund_one, report, with_bytes, AllDecided, AllSource,
    Error, Outcome, PerKey, Source,
};
use super::stats::Counters;
use super::{clock, config, registry, reply, stats};
use crate::algo::value::evaluate;
use crate::algo::{Algorithm, Decision, Instant, Params, Value};
use crate::args;

/// `RL.<ALGO>`, from the algorithm's row of the table, decided with `args`
/// (its shape's, see [`docs::decision`]).
pub(super) const fn limit_spec(algo: Algorithm, args: &'static [Arg]) -> Command {
    let own = &algo.info().doc;
    Command {
        name: own.name,
        flags: DECIDE,
        internal: false,
        operator: false,
        doc: Doc {
            summary: own.summary,
            complexity: own.complexity,
            since: SINCE,
            // The name, then every argument that is not optional.
            arity: -(1 + docs::required(args)),
            keys: Keys::One(Access::Update),
            args,
        },
    }
}

/// `RL.<ALGO> key params... [COST n] [AT unix_ms]`
pub(super) fn limit_command(ctx: Ctx, args: &[RStr], algo: Algorithm) -> Outcome {
    let command = algo.info().command;
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error(command).into());
    };
    let req = with_bytes(rest, |a| args::request(algo, command, a, &config::limits()))?;
    let d = client_decide(ctx, *key, &req)?;
    reply::decision(ctx, &d);
    Ok(())
}

const PEEK_ARGS: &[Arg] = &[
    KEY,
    arg(c"algorithm", Kind::String),
    many(c"parameters", Kind::String),
    COST,
    AT,
];
pub(super) const RL_PEEK: Command = Command {
    name: c"RL.PEEK",
    flags: c"readonly fast",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"What a call with these parameters and cost would get, without writing: for replicas and read-only scripts.",
        complexity: c"O(1), O(log N) for a log where N is the limit",
        since: c"0.2.0",
        arity: -4,
        keys: Keys::One(Access::Read),
        args: PEEK_ARGS,
    },
};

/// `RL.PEEK key ALGO params... [COST n] [AT unix_ms]`: what a call would
/// get, without writing anything. Read-only, so it runs on read-only
/// replicas and in `EVAL_RO`, where a `COST 0` call (a write command) can't.
pub(super) fn peek_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error("RL.PEEK").into());
    };
    let req = with_bytes(rest, |a| {
        args::peek_request(a, &config::limits(), &registry::resolve)
    })?;
    let now = clock::now(ctx, req.at);
    let key = ctx.open_read(*key)?;
    let d = evaluate(key.value(), &req.params, req.cost, now, None)?
        .verdict
        .decision;
    reply::decision(ctx, &d);
    Ok(())
}

const REFUND_ARGS: &[Arg] = &[KEY, arg(c"n", Kind::Integer), AT];
pub(super) const RL_REFUND: Command = Command {
    name: c"RL.REFUND",
    flags: c"write fast",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Gives back up to n units to a limiter (never creating one) and answers how many went back.",
        complexity: c"O(1), O(N) for a log where N is the units given back",
        since: c"0.3.0",
        arity: -3,
        keys: Keys::One(Access::Update),
        args: REFUND_ARGS,
    },
};

/// `RL.REFUND key n [AT unix_ms]`: gives back up to `n` units to the
/// limiter at `key` and answers how many went back. Never creates a key.
pub(super) fn refund_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.REFUND").into());
    };
    let req = with_bytes(rest, args::refund_request)?;
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    let given = refund_one(ctx, *name, req.n, now, Source::Client { wall })?;
    if given > 0 {
        stats::refunded(given);
    }
    ctx.reply_u64(given);
    Ok(())
}

const THROTTLE_ARGS: &[Arg] = &[
    KEY,
    arg(c"max_burst", Kind::Integer),
    arg(c"count", Kind::Integer),
    arg(c"period", Kind::Integer),
    Arg {
        optional: true,
        ..arg(c"quantity", Kind::Integer)
    },
];
pub(super) const CL_THROTTLE: Command = Command {
    name: c"CL.THROTTLE",
    flags: DECIDE,
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"redis-cell's CL.THROTTLE, decided by RL.GCRA's limiter.",
        complexity: O1,
        since: SINCE,
        arity: -5,
        keys: Keys::One(Access::Update),
        args: THROTTLE_ARGS,
    },
};

/// `CL.THROTTLE key max_burst count period [quantity]`: redis-cell's command
/// and reply, decided by our GCRA and replicated by effect like the rest.
pub(super) fn throttle_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error("CL.THROTTLE").into());
    };
    let req = with_bytes(rest, args::throttle_request)?;
    let d = client_decide(ctx, *key, &req)?;
    reply::cell(ctx, &d);
    Ok(())
}

const INFO_ARGS: &[Arg] = &[KEY];
pub(super) const RL_INFO: Command = Command {
    name: c"RL.INFO",
    flags: c"readonly fast",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"What a limiter holds: algorithm, parameters, state, remaining, reset and TTL.",
        complexity: O1,
        since: SINCE,
        arity: 2,
        keys: Keys::One(Access::Read),
        args: INFO_ARGS,
    },
};

/// `RL.INFO key`: the algorithm, parameters, state, what a request could
/// spend now and the TTL, without changing or copying anything.
pub(super) fn info_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name] = args else {
        return Err(args::arity_error("RL.INFO").into());
    };
    let key = ctx.open_read(*name)?;
    let Some(held) = key.value() else {
        ctx.reply_null();
        return Ok(());
    };
    let now = clock::now(ctx, None);
    let limiter = match held {
        Value::Leases(s) => {
            reply::lease_info(ctx, s, now, key.ttl_ms());
            return Ok(());
        }
        Value::Limiter(l) => l,
        Value::Blocked(b) => &b.limiter,
    };
    let peek = evaluate(Some(held), &limiter.params(), 0, now, None)?
        .verdict
        .decision;
    // Only a block still in force at the decision's time is shown.
    let blocked_until_ms = held
        .block()
        .filter(|&until| until > peek.at)
        .map_or(0, |until| until.ceil_millis());
    reply::info(ctx, limiter, &peek, blocked_until_ms, key.ttl_ms());
    Ok(())
}

const ALL_ARGS: &[Arg] = &[
    arg(c"numkeys", Kind::Integer),
    many(c"key", Kind::Key),
    many(c"algorithm-and-parameters", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
    option(c"COMBINED", c"combined", Kind::PureToken),
];
pub(super) const RL_ALL: Command = Command {
    name: c"RL.ALL",
    flags: DECIDE,
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Several limits on several keys in one atomic call: allowed only if all allow.",
        complexity: c"O(N) where N is the number of keys, plus the log's cost for LOG limits",
        since: SINCE,
        // Only the name and numkeys: the handler says precisely what
        // else is missing.
        arity: -2,
        keys: Keys::Numkeys,
        args: ALL_ARGS,
    },
};

/// `RL.ALL numkeys key [key ...] ALGO params [ALGO params ...] [COST n] [AT ms]`.
pub(super) fn all_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let Some(rest) = args.get(1..).filter(|r| r.len() >= 2) else {
        return Err(args::arity_error("RL.ALL").into());
    };
    // Each policy named is looked up once: its counters are kept for the
    // verdict, in the order the limits name them.
    let counters: RefCell<PerKey<Arc<Counters>>> = RefCell::default();
    let resolve = |name: &[u8]| {
        let (policy, c) = registry::resolve_counted(name)?;
        counters.borrow_mut().push(c);
        Some(policy)
    };
    let mut req = args::AllRequest::default();
    with_bytes(rest, |a| {
        args::all_request_into(a, &config::limits(), &resolve, &mut req)
    })?;
    let counters = counters.into_inner();
    let names = &rest[1..=req.numkeys];
    // The clock is read once: for the decision (unless AT) and the expiries.
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    if req.per_limit_modes() {
        return all_with_modes(ctx, rest, names, &req, &counters, wall, now);
    }
    let source = AllSource::Client { wall };
    let penalty = req.penalty.filter(|_| !req.shadow);
    let mut decided = AllDecided::new();
    decide_all(
        ctx,
        names,
        &req.params,
        req.cost,
        now,
        penalty,
        source,
        &mut decided,
    )?;
    // What each client is told goes where its decision was (the combined
    // decision is made already).
    let mut named = counters.iter();
    for ((((name, d), p), &blocked), policy) in names
        .iter()
        .zip(&mut decided.each)
        .zip(&req.params)
        .zip(&decided.blocked)
        .zip(&req.policies)
    {
        let policy_name = policy.and_then(|i| rest.get(i)).map(|n| n.bytes());
        let (told, verdict) = report(
            ctx,
            *name,
            p.algorithm(),
            d,
            req.shadow,
            blocked,
            policy_name,
        );
        if let Some(c) = policy.and_then(|_| named.next()) {
            c.count(verdict);
        }
        *d = told;
    }
    let combined = &decided.combined;
    let verdict = match (combined.allowed, req.shadow) {
        (true, _) => stats::Verdict::Allowed,
        (false, true) => stats::Verdict::ShadowDenied,
        (false, false) => stats::Verdict::Denied,
    };
    stats::count_all(verdict);
    let combined = if req.shadow && !combined.allowed {
        combined.shadowed()
    } else {
        *combined
    };
    reply::all(
        ctx,
        &combined,
        if req.combined { &[] } else { &decided.each },
    );
    Ok(())
}

/// `RL.ALL` with policies that carry their own `SHADOW` or `PENALTY`: a
/// shadow policy is never enforced, and a policy's penalty blocks its own
/// key, wherever the policy is used.
///
/// - The enforced limits are decided together, all or nothing, as any
///   `RL.ALL` is (with the call's own `PENALTY`, if it gives one).
/// - A shadow limit is then decided on its own, as `RL.CHECK` of that
///   policy would: it spends when it allows and the call goes through, and
///   is only looked at (cost 0) when the enforced limits deny. Its denial
///   is answered allowed, counted and fired as `rl.shadow`, and changes
///   neither the call's answer nor its combined figures.
/// - A denied call blocks each enforced key whose own policy has a penalty
///   and whose own limit denied, for that policy's penalty (the call's
///   `PENALTY`, when given, applies to every key instead).
///
/// Each part is replicated with the ops every released version reads: an
/// `RL.APPLYALL` over the enforced keys, an `RL.APPLY` per shadow key that
/// wrote and per block started (Redis wraps them in one MULTI/EXEC).
fn all_with_modes(
    ctx: Ctx,
    rest: &[RStr],
    names: &[RStr],
    req: &args::AllRequest,
    counters: &[Arc<Counters>],
    wall: Instant,
    now: Instant,
) -> Outcome {
    let n = names.len();
    let enforced: PerKey<usize> = (0..n).filter(|&i| !req.modes[i].shadow).collect();
    let mut each: PerKey<Option<Decision>> = PerKey::from_elem(None, n);
    let mut blocked: PerKey<bool> = PerKey::from_elem(false, n);
    let mut allowed = true;
    if !enforced.is_empty() {
        let e_names: PerKey<RStr> = enforced.iter().map(|&i| names[i]).collect();
        let e_params: PerKey<Params> = enforced.iter().map(|&i| req.params[i]).collect();
        let source = AllSource::Client { wall };
        let mut decided = AllDecided::new();
        decide_all(
            ctx,
            &e_names,
            &e_params,
            req.cost,
            now,
            req.penalty,
            source,
            &mut decided,
        )?;
        for (j, &i) in enforced.iter().enumerate() {
            each[i] = Some(decided.each[j]);
            blocked[i] = decided.blocked[j];
        }
        allowed = decided.combined.allowed;
    }
    let source = Source::Client { wall };
    if !allowed && req.penalty.is_none() && req.cost > 0 {
        for &i in &enforced {
            let (Some(penalty), Some(d)) = (req.modes[i].penalty, each[i]) else {
                continue;
            };
            if !d.allowed {
                let (d, blocks) = decide_one(
                    ctx,
                    names[i],
                    &req.params[i],
                    req.cost,
                    now,
                    Some(penalty),
                    source,
                )?;
                each[i] = Some(d);
                blocked[i] = blocks;
            }
        }
    }
    for i in (0..n).filter(|&i| req.modes[i].shadow) {
        let cost = if allowed { req.cost } else { 0 };
        let (d, _) = decide_one(ctx, names[i], &req.params[i], cost, now, None, source)?;
        each[i] = Some(d);
    }
    let mut told: PerKey<Decision> = PerKey::with_capacity(n);
    let mut named = counters.iter();
    for i in 0..n {
        let d = each[i].ok_or(Error::Bug("a limit was not decided"))?;
        let shadow = req.modes[i].shadow;
        let policy = req.policies[i]
            .and_then(|at| rest.get(at))
            .map(|n| n.bytes());
        let (d, verdict) = report(
            ctx,
            names[i],
            req.params[i].algorithm(),
            &d,
            shadow,
            blocked[i],
            policy,
        );
        if let Some(c) = req.policies[i].and_then(|_| named.next()) {
            c.count(verdict);
        }
        told.push(d);
    }
    // The answer is the enforced limits': adding a shadow limit to a tier
    // changes nothing a client sees but its own entry.
    let enforced_told: PerKey<Decision> = enforced.iter().map(|&i| told[i]).collect();
    let combined = Decision::combine(if enforced_told.is_empty() {
        &told
    } else {
        &enforced_told
    })
    .ok_or(Error::Bug("no keys"))?;
    stats::count_all(if combined.allowed {
        stats::Verdict::Allowed
    } else {
        stats::Verdict::Denied
    });
    reply::all(ctx, &combined, if req.combined { &[] } else { &told });
    Ok(())
}
