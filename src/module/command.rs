//! Command handlers: parse, open the keys, evaluate, install, expire,
//! replicate, reply.
//!
//! Replication is by effect, not by command: a request that writes is sent
//! to replicas and the AOF as `RL.APPLY key <op>` (or, for `RL.ALL`, one
//! `RL.APPLYALL numkeys key... <op>`), where the op carries the parameters,
//! the cost, the exact time used and the absolute expiry. A replica (or an
//! AOF being loaded) replays it through the same code without reading any
//! clock, so it computes the very same state. Requests that don't write
//! (denials under unchanged parameters, peeks) send nothing.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;
use smallvec::SmallVec;

use super::config::{self, Setting};
use super::ffi::{self, Ctx, NotStored, RStr, WriteKey, WrongType};
use super::{clock, reply, stats};
use crate::algo::value::{evaluate, BlockChange, Guarded};
use crate::algo::{
    Algorithm, Decision, Duration, Instant, Kind, Limiter, Mismatch, Params, Value, Verdict,
    MAX_TIME_US, MAX_WAIT_US,
};
use crate::args::{self, ArgError};
use crate::codec;

pub const APPLY: &CStr = c"RL.APPLY";
pub const APPLY_ALL: &CStr = c"RL.APPLYALL";

/// Keyspace event fired on the key of every denied request.
const DENIED_EVENT: &CStr = c"rl.denied";

/// Keyspace event fired when a `PENALTY` blocks a key.
const PENALTY_EVENT: &CStr = c"rl.penalty";

/// Keyspace event fired on the key of a denial answered allowed (`SHADOW`).
const SHADOW_EVENT: &CStr = c"rl.shadow";

/// Counts a client's decision on one key and fires its events; answers
/// what the client is told (a denial in shadow mode reads as allowed) and
/// how the call is counted.
fn report(
    ctx: Ctx,
    key: RStr,
    algo: Algorithm,
    d: &Decision,
    shadow: bool,
    blocked: bool,
) -> (Decision, stats::Verdict) {
    let (told, verdict) = if d.allowed {
        (*d, stats::Verdict::Allowed)
    } else if shadow {
        ctx.notify(SHADOW_EVENT, key);
        (d.shadowed(), stats::Verdict::ShadowDenied)
    } else {
        ctx.notify(DENIED_EVENT, key);
        (*d, stats::Verdict::Denied)
    };
    if blocked {
        stats::penalty_started();
        ctx.notify(PENALTY_EVENT, key);
    }
    stats::count(algo, verdict);
    (told, verdict)
}

/// Why a command failed; the reply adds the error code.
pub(super) enum Error {
    Arg(ArgError),
    WrongType,
    Mismatch(Mismatch),
    NotStored,
    /// A replicated or rewritten operation that can't be applied.
    BadOp(String),
    /// A replication or AOF command sent by an ordinary client.
    Internal(&'static str),
    /// A command meets a kind of value it does not work on.
    Holds(&'static str, Kind),
    /// The operating system failed us (no random bytes).
    System(String),
}

impl From<ArgError> for Error {
    fn from(e: ArgError) -> Self {
        Error::Arg(e)
    }
}

impl From<WrongType> for Error {
    fn from(_: WrongType) -> Self {
        Error::WrongType
    }
}

impl From<Mismatch> for Error {
    fn from(m: Mismatch) -> Self {
        Error::Mismatch(m)
    }
}

impl From<NotStored> for Error {
    fn from(_: NotStored) -> Self {
        Error::NotStored
    }
}

impl Error {
    /// The reply, error code first.
    fn text(&self) -> String {
        match self {
            Error::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            Error::Arg(e) => format!("ERR {e}"),
            Error::Mismatch(Mismatch {
                stored: Kind::Limiter(stored),
                requested: Kind::Limiter(requested),
            }) => format!(
                "ERR the key holds a {} limiter, not {}: use another key, or DEL it to change algorithm",
                stored.name(),
                requested.name()
            ),
            Error::Mismatch(m) => format!(
                "ERR the key holds {}, not {}: use another key, or DEL it",
                m.stored, m.requested
            ),
            Error::Holds(command, stored) => {
                format!("ERR the key holds {stored}, which {command} does not apply to: use another key")
            }
            Error::NotStored => "ERR could not store the limiter".into(),
            Error::BadOp(msg) | Error::System(msg) => format!("ERR {msg}"),
            Error::Internal(command) => format!(
                "ERR {command} is internal: only a master's replication stream and AOF loading may send it"
            ),
        }
    }

    fn reply(&self, ctx: Ctx) {
        ctx.reply_error(&self.text());
    }
}

pub(super) type Outcome = Result<(), Error>;

/// Runs a handler, turning a panic (a bug, never expected; the panic hook
/// has logged it with its location) into an error reply instead of taking
/// the whole server down.
fn guarded(ctx: Ctx, f: impl FnOnce() -> Outcome) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => e.reply(ctx),
        Err(_) => ctx
            .reply_error_static(c"ERR internal error in the ratelimit module, see the server log"),
    }
    raw::Status::Ok as c_int
}

/// Defines `extern "C"` command handlers over safe bodies taking the
/// context and the arguments.
macro_rules! handlers {
    ($($name:ident => $body:expr;)*) => {$(
        pub(crate) unsafe extern "C" fn $name(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            // SAFETY: Redis calls a command handler with its live context
            // and arguments, which are used only during this call.
            match unsafe { Ctx::enter(ctx, argv, argc) } {
                Some((ctx, args)) => guarded(ctx, || $body(ctx, args)),
                None => raw::Status::Err as c_int,
            }
        }
    )*};
}

handlers! {
    rl_fixed => |ctx, args| limit_command(ctx, args, Algorithm::Fixed);
    rl_sliding => |ctx, args| limit_command(ctx, args, Algorithm::Sliding);
    rl_log => |ctx, args| limit_command(ctx, args, Algorithm::Log);
    rl_token => |ctx, args| limit_command(ctx, args, Algorithm::Token);
    rl_leaky => |ctx, args| limit_command(ctx, args, Algorithm::Leaky);
    rl_gcra => |ctx, args| limit_command(ctx, args, Algorithm::Gcra);
    rl_apply => apply_command;
    rl_setstate => setstate_command;
    rl_info => info_command;
    rl_peek => peek_command;
    rl_refund => refund_command;
    rl_policy => super::policy::policy_command;
    rl_check => super::policy::check_command;
    rl_acquire => super::lease::acquire_command;
    rl_release => super::lease::release_command;
    rl_renew => super::lease::renew_command;
    cl_throttle => throttle_command;
}

/// Inline room for the limits of an `RL.ALL` call: no allocation up to 8.
type PerKey<T> = SmallVec<[T; 8]>;

/// Calls `f` with the bytes of `strings`, without allocating for argument
/// lists up to an `RL.ALL` of 8 limits.
pub(super) fn with_bytes<R>(strings: &[RStr], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    let bytes: SmallVec<[&[u8]; 48]> = strings.iter().map(|s| s.bytes()).collect();
    f(&bytes)
}

/// When a key written by a client's request expires: when its state is
/// equivalent to an absent key, counted from the decision's time or the
/// wall clock, whichever is later (a limiter ahead of the clock keeps its
/// key that much longer), and never in the past. A write that spends nothing
/// (a denial keeping new parameters) never shortens the key's life: the
/// state it leaves still counts under the parameters it had.
fn expiry_ms(key: &WriteKey, v: &Verdict, wall: Instant) -> u64 {
    let d = &v.decision;
    let at = (d.at.max(wall) + d.reset_after)
        .ceil_millis()
        .max(wall.ceil_millis() + 1);
    if v.spends {
        return at;
    }
    key.expire_at_ms().map_or(at, |current| at.max(current))
}

/// Installs a verdict that writes, with its block change, sets the expiry
/// and signals the change.
fn install(key: &mut WriteKey, params: &Params, g: &Guarded, expire_at_ms: u64) -> Outcome {
    match key.value_mut() {
        Some(held) => held
            .limiter_mut_for(Kind::Limiter(params.algorithm()))?
            .apply(&g.verdict.next),
        None => key.store(Value::Limiter(Limiter::create(params, &g.verdict.next)))?,
    }
    match g.block {
        BlockChange::Keep => {}
        BlockChange::Start(until) => key.set_block(Some(until))?,
        BlockChange::Lift => key.set_block(None)?,
    }
    key.expire_at(i64::try_from(expire_at_ms).unwrap_or(i64::MAX));
    key.signal_modified();
    Ok(())
}

/// Who decided the request: a client (compute the expiry, replicate the
/// op) or a replayed op (use its expiry, pass it on verbatim).
#[derive(Clone, Copy)]
enum Source {
    /// With the server's clock as the call sees it.
    Client {
        wall: Instant,
    },
    Replay {
        expire_at_ms: u64,
    },
}

/// One request on one key, from a client or replayed. Answers the decision
/// and whether it started a penalty block.
fn decide_one(
    ctx: Ctx,
    name: RStr,
    params: &Params,
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
    source: Source,
) -> Result<(Decision, bool), Error> {
    if cost == 0 {
        // A peek never writes: read only.
        let key = ctx.open_read(name)?;
        let g = evaluate(key.value(), params, 0, now, None)?;
        return Ok((g.verdict.decision, false));
    }
    let mut key = ctx.open_write(name)?;
    let g = evaluate(key.value(), params, cost, now, penalty)?;
    let v = &g.verdict;
    let blocks = matches!(g.block, BlockChange::Start(_));
    if let Source::Replay { .. } = source {
        if !v.writes {
            return Err(diverged("the operation changes nothing here"));
        }
        if blocks != penalty.is_some() {
            return Err(diverged("the penalty box differs here"));
        }
    }
    if v.writes {
        match source {
            Source::Client { wall } => {
                let expire_at_ms = expiry_ms(&key, v, wall);
                install(&mut key, params, &g, expire_at_ms)?;
                let op = codec::encode_op(&codec::Op {
                    params: *params,
                    cost,
                    now,
                    expire_at_ms,
                    penalty: penalty.filter(|_| blocks),
                });
                ctx.replicate(APPLY, name, &op);
            }
            Source::Replay { expire_at_ms } => {
                install(&mut key, params, &g, expire_at_ms)?;
                ctx.replicate_verbatim();
            }
        }
    }
    Ok((v.decision, blocks))
}

/// A client's request on one key: decide, count, report a denial and a
/// block; answers what the client is told. In shadow mode the decision is
/// made and applied for real (so a denial changes nothing, and starts no
/// block), and a denial is answered allowed.
fn client_decide(ctx: Ctx, key: RStr, req: &args::Request) -> Result<Decision, Error> {
    Ok(client_decide_with(ctx, key, req)?.0)
}

/// As [`client_decide`], also answering how the call was counted.
pub(super) fn client_decide_with(
    ctx: Ctx,
    key: RStr,
    req: &args::Request,
) -> Result<(Decision, stats::Verdict), Error> {
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    let penalty = req.penalty.filter(|_| !req.shadow);
    let (d, blocked) = decide_one(
        ctx,
        key,
        &req.params,
        req.cost,
        now,
        penalty,
        Source::Client { wall },
    )?;
    Ok(report(
        ctx,
        key,
        req.params.algorithm(),
        &d,
        req.shadow,
        blocked,
    ))
}

/// `RL.<ALGO> key params... [COST n] [AT unix_ms]`
fn limit_command(ctx: Ctx, args: &[RStr], algo: Algorithm) -> Outcome {
    let command = algo.info().command;
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error(command).into());
    };
    let req = with_bytes(rest, |a| args::request(algo, command, a, &config::limits()))?;
    let d = client_decide(ctx, *key, &req)?;
    reply::decision(ctx, &d);
    Ok(())
}

/// `RL.PEEK key ALGO params... [COST n] [AT unix_ms]`: what a call would
/// get, without writing anything. Read-only, so it runs on read-only
/// replicas and in `EVAL_RO`, where a `COST 0` call (a write command) can't.
fn peek_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error("RL.PEEK").into());
    };
    let req = with_bytes(rest, |a| {
        args::peek_request(a, &config::limits(), &super::policy::resolve)
    })?;
    let now = clock::now(ctx, req.at);
    let key = ctx.open_read(*key)?;
    let d = evaluate(key.value(), &req.params, req.cost, now, None)?
        .verdict
        .decision;
    reply::decision(ctx, &d);
    Ok(())
}

/// `RL.REFUND key n [AT unix_ms]`: gives back up to `n` units to the
/// limiter at `key` and answers how many went back. Never creates a key.
fn refund_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.REFUND").into());
    };
    let req = with_bytes(rest, args::refund_request)?;
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    let mut key = ctx.open_write(*name)?;
    let given = match key.value_mut() {
        Some(held) => held
            .limiter_mut()
            .ok_or(Error::Holds("RL.REFUND", Kind::Leases))?
            .refund(req.n, now),
        None => 0,
    };
    if given > 0 {
        let expire_at_ms = refund_expiry_ms(&key, now, wall)?;
        key.expire_at(i64::try_from(expire_at_ms).unwrap_or(i64::MAX));
        key.signal_modified();
        let op = codec::encode_refund_op(&codec::RefundOp {
            given,
            now,
            expire_at_ms,
        });
        ctx.replicate(APPLY, *name, &op);
        stats::refunded(given);
    }
    ctx.reply_u64(given);
    Ok(())
}

/// When a refunded key expires: when what is left is as good as nothing
/// (or its block ends), by the rule of [`expiry_ms`], never later than the
/// expiry it had (a refund only takes away).
fn refund_expiry_ms(key: &WriteKey, now: Instant, wall: Instant) -> Result<u64, Error> {
    let held = key.value();
    let params = held.and_then(Value::limiter).map(Limiter::params);
    let Some(params) = params else {
        return Err(Error::BadOp("no limiter to refund".into()));
    };
    let d = evaluate(held, &params, 0, now, None)?.verdict.decision;
    let at = (d.at.max(wall) + d.reset_after)
        .ceil_millis()
        .max(wall.ceil_millis() + 1);
    Ok(key.expire_at_ms().map_or(at, |current| at.min(current)))
}

/// Replays a refund: it must give back exactly what the master did, or it
/// changes nothing.
fn apply_refund(ctx: Ctx, name: RStr, op: &codec::RefundOp) -> Outcome {
    check_replayed_expiry(op.expire_at_ms)?;
    let mut key = ctx.open_write(name)?;
    let Some(limiter) = key.value_mut().and_then(Value::limiter_mut) else {
        return Err(diverged("there is no limiter to refund here"));
    };
    // Tried on a copy; then done in place, since the value is Redis' (the
    // refund is deterministic, so both give back the same).
    if limiter.clone().refund(op.given, op.now) != op.given {
        return Err(diverged("the refund gives back another amount here"));
    }
    limiter.refund(op.given, op.now);
    key.expire_at(i64::try_from(op.expire_at_ms).unwrap_or(i64::MAX));
    key.signal_modified();
    ctx.replicate_verbatim();
    ctx.reply_u64(op.given);
    Ok(())
}

/// `CL.THROTTLE key max_burst count period [quantity]`: redis-cell's command
/// and reply, decided by our GCRA and replicated by effect like the rest.
fn throttle_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, rest @ ..] = args else {
        return Err(args::arity_error("CL.THROTTLE").into());
    };
    let req = with_bytes(rest, args::throttle_request)?;
    let d = client_decide(ctx, *key, &req)?;
    reply::cell(ctx, &d);
    Ok(())
}

/// Ops come from our own master or AOF, and are checked as decoded data:
/// within the codec's ceilings, and an expiry a master can have set.
fn check_replayed(params: &Params, expire_at_ms: u64) -> Result<(), Error> {
    if let Params::Log(p) = params {
        check_replayed_limit(
            Setting::LogMax,
            p.limit.get(),
            config::LOG_MAX_CEILING,
            config::log_max(),
        )?;
    }
    check_replayed_expiry(expire_at_ms)
}

/// A replayed limit is bound by the hard ceiling only. The master's own
/// setting bounded its clients when it accepted the call, and what it
/// accepted must replay here (a replica, or this server restarting from its
/// AOF) whatever this server's setting says now: refusing would drop the
/// key and let the limit be exceeded. A limit above this server's setting
/// is applied, counted and logged, so that settings that differ between
/// servers are visible.
pub(super) fn check_replayed_limit(
    setting: Setting,
    limit: u64,
    ceiling: u64,
    current: u64,
) -> Result<(), Error> {
    if limit > ceiling {
        return Err(Error::BadOp(format!(
            "invalid replicated operation: limit {limit} above the ceiling of {} ({ceiling})",
            setting.name()
        )));
    }
    if limit > current {
        stats::replayed_above_setting(setting, limit, current);
    }
    Ok(())
}

pub(super) fn check_replayed_expiry(expire_at_ms: u64) -> Result<(), Error> {
    if expire_at_ms > MAX_EXPIRE_MS {
        return Err(Error::BadOp(format!(
            "invalid replicated operation: expiry {expire_at_ms} is beyond year 9999 plus the longest wait"
        )));
    }
    Ok(())
}

/// Latest expiry a master can set: the latest instant plus the longest wait.
const MAX_EXPIRE_MS: u64 = (MAX_TIME_US + MAX_WAIT_US) / 1000 + 1;

/// Runs a replication or AOF command: only for a master's stream or while
/// loading. A replay that can't be applied is the sign of a replica whose
/// state differs from its master's: it is counted and logged (at most once
/// a second) with the key and the reason, since nobody reads the reply.
fn internal(
    ctx: Ctx,
    args: &[RStr],
    command: &'static str,
    body: impl FnOnce(Ctx, &[RStr]) -> Outcome,
) -> Outcome {
    let from = raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING;
    if ctx.flags() & from as c_int == 0 {
        return Err(Error::Internal(command));
    }
    let result = body(ctx, args);
    if let Err(e) = &result {
        stats::replay_failed();
        let key = args.get(if command == "RL.APPLYALL" { 2 } else { 1 });
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

/// A replayed op must write exactly where its master wrote.
pub(super) fn diverged(what: &str) -> Error {
    Error::BadOp(format!(
        "the replica's state differs from its master's: {what}"
    ))
}

/// `RL.APPLY key op`: replays a decided request (what replicas and the AOF
/// receive). Needs no clock.
fn apply_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.APPLY", apply_op)
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
        codec::AnyOp::Lease(op) => return super::lease::apply(ctx, *key, &op),
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

/// `RL.SETSTATE key encoding-version blob`: what an AOF rewrite emits to
/// recreate a key (its expiry follows as a separate `PEXPIREAT`).
fn setstate_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.SETSTATE", setstate)
}

fn setstate(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, key, version, blob] = args else {
        return Err(args::arity_error("RL.SETSTATE").into());
    };
    let version = args::count("encoding version", version.bytes(), 1)?;
    let version = i32::try_from(version).unwrap_or(i32::MAX);
    let value = codec::decode_value(blob.bytes(), version)
        .map_err(|e| Error::BadOp(format!("invalid RL.SETSTATE value: {e}")))?;
    let mut key = ctx.open_write(*key)?;
    key.store(value)?;
    key.signal_modified();
    ctx.replicate_verbatim();
    ctx.reply_ok();
    Ok(())
}

/// `RL.INFO key`: the algorithm, parameters, state, what a request could
/// spend now and the TTL, without changing or copying anything.
fn info_command(ctx: Ctx, args: &[RStr]) -> Outcome {
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
            super::lease::info(ctx, s, now, key.ttl_ms());
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

/// Who decided an `RL.ALL` call, as [`Source`] for one key.
#[derive(Clone, Copy)]
enum AllSource<'e> {
    /// A client's call: computes the expiries and replicates one op.
    Client { wall: Instant },
    /// A replayed op's expiries (0 for a key the master did not write).
    Replay { expiries: &'e [u64] },
}

/// What an `RL.ALL` call decided.
struct AllDecided {
    combined: Decision,
    each: PerKey<Decision>,
    /// Per key, whether the call put it in the penalty box.
    blocked: PerKey<bool>,
}

/// Decides several limits together, all or nothing: every limit is
/// evaluated on the state it holds, and only if all allow is any spent. A
/// denied call still keeps changed parameters (like a single-key denial),
/// and with a `penalty` blocks each key whose own limit denied; the limits
/// that would have allowed then report what they hold now.
fn decide_all(
    ctx: Ctx,
    names: &[RStr],
    params: &[Params],
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
    source: AllSource,
) -> Result<AllDecided, Error> {
    let mut blocked = PerKey::from_elem(false, names.len());
    if cost == 0 {
        let mut each = PerKey::with_capacity(names.len());
        for (name, p) in names.iter().zip(params) {
            let key = ctx.open_read(*name)?;
            each.push(evaluate(key.value(), p, 0, now, None)?.verdict.decision);
        }
        let combined = Decision::combine(&each).ok_or(Error::BadOp("no keys".into()))?;
        return Ok(AllDecided {
            combined,
            each,
            blocked,
        });
    }
    let mut keys: PerKey<WriteKey> = PerKey::with_capacity(names.len());
    let mut guarded: PerKey<Guarded> = PerKey::with_capacity(names.len());
    for (name, p) in names.iter().zip(params) {
        let key = ctx.open_write(*name)?;
        guarded.push(evaluate(key.value(), p, cost, now, penalty)?);
        keys.push(key);
    }
    if !guarded.iter().all(|g| g.verdict.decision.allowed) {
        for ((key, g), p) in keys.iter().zip(&mut guarded).zip(params) {
            if g.verdict.decision.allowed {
                // Nothing is spent: report (and keep) what the key holds
                // now, under these parameters if they changed.
                let changed = key
                    .value()
                    .and_then(Value::limiter)
                    .is_some_and(|l| l.params() != *p);
                let mut now_held = evaluate(key.value(), p, 0, now, None)?;
                now_held.verdict.writes = changed;
                if !changed {
                    now_held.block = BlockChange::Keep;
                }
                *g = now_held;
            }
        }
    }
    let mut expire = [0u64; codec::ALL_OP_MAX_LIMITS];
    let mut wrote = false;
    let mut disagree = false;
    for (i, ((key, g), p)) in keys.iter_mut().zip(&guarded).zip(params).enumerate() {
        let v = &g.verdict;
        let at = match source {
            AllSource::Client { wall } if v.writes => expiry_ms(key, v, wall),
            AllSource::Client { .. } => continue,
            // A replica writes exactly the keys its master wrote; where the
            // two disagree, its state differs: leave that key as it is.
            AllSource::Replay { expiries } => match expiries.get(i) {
                Some(&ms) if ms > 0 && v.writes => ms,
                Some(&ms) => {
                    disagree |= (ms > 0) != v.writes;
                    continue;
                }
                None => continue,
            },
        };
        install(key, p, g, at)?;
        if let Some(slot) = expire.get_mut(i) {
            *slot = at;
        }
        if let (Some(b), BlockChange::Start(_)) = (blocked.get_mut(i), g.block) {
            *b = true;
        }
        wrote = true;
    }
    let blocks = blocked.iter().any(|&b| b);
    if wrote {
        match source {
            AllSource::Client { .. } => {
                let op = codec::encode_all_op(
                    cost,
                    now,
                    penalty.filter(|_| blocks),
                    params.iter().zip(expire),
                );
                ctx.replicate_keys(APPLY_ALL, names, &op);
            }
            AllSource::Replay { .. } => ctx.replicate_verbatim(),
        }
    }
    if disagree {
        return Err(diverged("the operation writes other keys here"));
    }
    if matches!(source, AllSource::Replay { .. }) && blocks != penalty.is_some() {
        return Err(diverged("the penalty box differs here"));
    }
    let each: PerKey<Decision> = guarded.iter().map(|g| g.verdict.decision).collect();
    let combined = Decision::combine(&each).ok_or(Error::BadOp("no keys".into()))?;
    Ok(AllDecided {
        combined,
        each,
        blocked,
    })
}

/// `RL.ALL numkeys key [key ...] ALGO params [ALGO params ...] [COST n] [AT ms]`.
fn all_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let Some(rest) = args.get(1..).filter(|r| r.len() >= 2) else {
        return Err(args::arity_error("RL.ALL").into());
    };
    let req = with_bytes(rest, |a| {
        args::all_request(a, &config::limits(), &super::policy::resolve)
    })?;
    let names = &rest[1..=req.numkeys];
    // The clock is read once: for the decision (unless AT) and the expiries.
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    if req.per_limit_modes() {
        return all_with_modes(ctx, rest, names, &req, wall, now);
    }
    let source = AllSource::Client { wall };
    let penalty = req.penalty.filter(|_| !req.shadow);
    let decided = decide_all(ctx, names, &req.params, req.cost, now, penalty, source)?;
    let mut told: PerKey<Decision> = PerKey::with_capacity(names.len());
    for ((((name, d), p), &blocked), policy) in names
        .iter()
        .zip(&decided.each)
        .zip(&req.params)
        .zip(&decided.blocked)
        .zip(&req.policies)
    {
        let (d, verdict) = report(ctx, *name, p.algorithm(), d, req.shadow, blocked);
        if let Some(name) = policy.and_then(|i| rest.get(i)) {
            super::policy::count(name.bytes(), verdict);
        }
        told.push(d);
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
    reply::all(ctx, &combined, &told);
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
        let decided = decide_all(ctx, &e_names, &e_params, req.cost, now, req.penalty, source)?;
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
    for i in 0..n {
        let d = each[i].ok_or(Error::BadOp("a limit was not decided".into()))?;
        let shadow = req.modes[i].shadow;
        let (d, verdict) = report(
            ctx,
            names[i],
            req.params[i].algorithm(),
            &d,
            shadow,
            blocked[i],
        );
        if let Some(name) = req.policies[i].and_then(|at| rest.get(at)) {
            super::policy::count(name.bytes(), verdict);
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
    .ok_or(Error::BadOp("no keys".into()))?;
    stats::count_all(if combined.allowed {
        stats::Verdict::Allowed
    } else {
        stats::Verdict::Denied
    });
    reply::all(ctx, &combined, &told);
    Ok(())
}

/// `RL.APPLYALL numkeys key [key ...] op`: replays one `RL.ALL` call.
fn apply_all_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    internal(ctx, args, "RL.APPLYALL", apply_all_op)
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
    let mut params: PerKey<Params> = PerKey::with_capacity(op.limits.len());
    let mut expiries: PerKey<u64> = PerKey::with_capacity(op.limits.len());
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
    let decided = decide_all(ctx, names, &params, op.cost, op.now, op.penalty, source)?;
    reply::all(ctx, &decided.combined, &decided.each);
    Ok(())
}

/// The handler of commands whose keys are `numkeys key [key ...]` after the
/// name: answers Redis 7.0's key-position requests (its cluster routing asks
/// the handler rather than reading the key spec) with the same keys.
fn numkeys_command(ctx: Ctx, args: &[RStr], body: impl FnOnce(Ctx, &[RStr]) -> Outcome) -> Outcome {
    if ctx.keys_position_request() {
        let numkeys = args
            .get(1)
            .and_then(|n| args::count("numkeys", n.bytes(), 1).ok())
            .unwrap_or(0);
        let last = usize::try_from(numkeys)
            .unwrap_or(usize::MAX)
            .min(args.len().saturating_sub(2));
        for pos in 2..2 + last {
            ctx.key_at(pos);
        }
        return Ok(());
    }
    body(ctx, args)
}

handlers! {
    rl_all => |ctx, args| numkeys_command(ctx, args, all_command);
    rl_apply_all => |ctx, args| numkeys_command(ctx, args, apply_all_command);
}
