//! The kernel every command family stands on: the errors and how they are
//! answered, who decided a request ([`Source`]), the expiry rules, and
//! "decide on the snapshot the key holds, then install", for one key
//! ([`decide_one`]), for an `RL.ALL` call ([`decide_all`]), for a refund
//! ([`refund_one`]) and for a lease op ([`lease_one`]), with the checks a
//! replayed op must pass. All four install through [`install`], the Redis
//! half of `algo`'s one install step. It imports no command family.
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
use super::datatype::WriteKey;
use super::ffi::{Ctx, NotStored, RStr, WrongType};
use super::{clock, stats, top};
use crate::algo::value::{self, evaluate, BlockChange, Change, Guarded, Installed, Unfit};
use crate::algo::{
    Algorithm, Decision, Duration, Instant, Kind, LeaseAction, LeaseState, LeaseVerdict, Limiter,
    Mismatch, Params, UnixMs, Value, Verdict, MAX_TIME_US, MAX_WAIT_US,
};
use crate::args::{self, ArgError};
use crate::codec;

pub(super) const APPLY: &CStr = c"RL.APPLY";
pub(super) const APPLY_ALL: &CStr = c"RL.APPLYALL";

/// Keyspace event fired on the key of every denied request.
pub(super) const DENIED_EVENT: &CStr = c"rl.denied";

/// Keyspace event fired when a `PENALTY` blocks a key.
const PENALTY_EVENT: &CStr = c"rl.penalty";

/// Keyspace event fired on the key of a denial answered allowed (`SHADOW`).
const SHADOW_EVENT: &CStr = c"rl.shadow";

/// Counts a client's decision on one key (decided under `policy`, if
/// named) and fires its events; answers what the client is told (a denial
/// in shadow mode reads as allowed) and how the call is counted.
pub(super) fn report(
    ctx: Ctx,
    key: RStr,
    algo: Algorithm,
    d: &Decision,
    shadow: bool,
    blocked: bool,
    policy: Option<&[u8]>,
) -> (Decision, stats::Verdict) {
    let (told, verdict) = if d.allowed {
        (*d, stats::Verdict::Allowed)
    } else {
        denied(ctx, key, d, shadow, policy)
    };
    if blocked {
        stats::penalty_started();
        ctx.notify(PENALTY_EVENT, key);
    }
    stats::count(algo, verdict);
    (told, verdict)
}

/// A denial's events and its count in `RL.TOP`'s summaries. Cold and
/// never inlined, so that the allowed path of [`report`] stays as short as
/// it was.
#[cold]
#[inline(never)]
fn denied(
    ctx: Ctx,
    key: RStr,
    d: &Decision,
    shadow: bool,
    policy: Option<&[u8]>,
) -> (Decision, stats::Verdict) {
    if shadow {
        ctx.notify(SHADOW_EVENT, key);
        top::denied(ctx, key, policy, d.at, true);
        (d.shadowed(), stats::Verdict::ShadowDenied)
    } else {
        ctx.notify(DENIED_EVENT, key);
        top::denied(ctx, key, policy, d.at, false);
        (*d, stats::Verdict::Denied)
    }
}

/// Why a command failed; the reply adds the error code.
pub(super) enum Error {
    Arg(ArgError),
    WrongType,
    Mismatch(Mismatch),
    NotStored,
    /// A replicated or rewritten operation that can't be applied.
    BadOp(String),
    /// A client's request the server refuses for what it holds already
    /// (a full policy registry) or lacks (the module API `RL.TOP` needs
    /// to check the caller's key permissions).
    Refused(String),
    /// A broken invariant of the module itself: a bug, never expected.
    Bug(&'static str),
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
    pub(super) fn text(&self) -> String {
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
            Error::BadOp(msg) | Error::Refused(msg) | Error::System(msg) => format!("ERR {msg}"),
            Error::Bug(what) => format!("ERR {what}"),
            Error::Internal(command) => format!(
                "ERR {command} is internal: only a master's replication stream and AOF loading may send it"
            ),
        }
    }

    pub(super) fn reply(&self, ctx: Ctx) {
        ctx.reply_error(&self.text());
    }
}

pub(super) type Outcome = Result<(), Error>;

/// Runs a handler, turning a panic (a bug, never expected; the panic hook
/// has logged it with its location) into an error reply instead of taking
/// the whole server down.
pub(super) fn guarded(ctx: Ctx, f: impl FnOnce() -> Outcome) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => e.reply(ctx),
        Err(_) => ctx
            .reply_error_static(c"ERR internal error in the ratelimit module, see the server log"),
    }
    raw::Status::Ok as c_int
}

/// Inline room for the limits of an `RL.ALL` call: no allocation up to 8.
pub(super) type PerKey<T> = SmallVec<[T; 8]>;

/// Calls `f` with the bytes of `strings`, without allocating for argument
/// lists up to an `RL.ALL` of 8 limits.
pub(super) fn with_bytes<R>(strings: &[RStr], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    // Filled where it lies: collecting into it built it elsewhere and then
    // copied all 784 bytes, on every call.
    let mut bytes: SmallVec<[&[u8]; 48]> = SmallVec::new();
    bytes.extend(strings.iter().map(|s| s.bytes()));
    f(&bytes)
}

/// When a limiter that decided `d` is as good as an absent key: at the
/// decision's time or the wall clock, whichever is later (a limiter ahead of
/// the clock keeps its key that much longer), plus its reset time; never in
/// the past.
fn empty_at_ms(d: &Decision, wall: Instant) -> UnixMs {
    UnixMs::ceil(d.at.max(wall) + d.reset_after).max(UnixMs::ceil(wall).next())
}

/// When a key written by a client's request expires: when its state is
/// equivalent to an absent key, counted from the decision's time or the
/// wall clock, whichever is later (a limiter ahead of the clock keeps its
/// key that much longer), and never in the past. A write that spends nothing
/// (a denial keeping new parameters) never shortens the key's life: the
/// state it leaves still counts under the parameters it had.
pub(super) fn expiry_ms(key: &WriteKey, v: &Verdict, wall: Instant) -> UnixMs {
    let at = empty_at_ms(&v.decision, wall);
    if v.spends {
        return at;
    }
    key.expire_at_ms().map_or(at, |current| at.max(current))
}

/// Installs a change decided on the key's snapshot, through the one step
/// every writer takes ([`value::install`]), and does the Redis part: stores
/// the value it answers (or keeps the one changed in place), sets the expiry
/// `expiry` gives for the value as installed, or deletes a key left empty,
/// and signals the change. `stale` names the bug of a change the key can't
/// take. Answers the expiry set (the epoch for a deleted key).
///
/// Inlined into every writer with its closure, as [`value::install`] is
/// (see [`lease_one`]).
#[inline(always)]
pub(super) fn install(
    key: &mut WriteKey,
    change: Change,
    stale: &'static str,
    expiry: impl FnOnce(&Value) -> Result<UnixMs, Error>,
) -> Result<UnixMs, Error> {
    let at = match value::install(key.value_mut(), change) {
        Ok(Installed::InPlace) => {
            let at = expiry(key.value().ok_or(Error::Bug(stale))?)?;
            key.expire_at(at);
            at
        }
        Ok(Installed::Store(new)) => {
            let at = expiry(&new)?;
            key.store(new)?;
            key.expire_at(at);
            at
        }
        Ok(Installed::Empty) => {
            key.delete();
            UnixMs::EPOCH
        }
        Err(Unfit::Mismatch(m)) => return Err(m.into()),
        Err(Unfit::Stale) => return Err(Error::Bug(stale)),
    };
    key.signal_modified();
    Ok(at)
}

/// The bug of a decided limiter the key can't take (never: a key holding
/// nothing gets a new one, and one holding leases was refused by `evaluate`).
const LIMITER_GONE: &str = "the decided limiter is gone";

/// Who decided the request: a client (compute the expiry, replicate the
/// op) or a replayed op (use its expiry, pass it on verbatim).
#[derive(Clone, Copy)]
pub(super) enum Source {
    /// With the server's clock as the call sees it.
    Client {
        wall: Instant,
    },
    Replay {
        expire_at_ms: UnixMs,
    },
}

/// One request on one key, from a client or replayed. Answers the decision
/// and whether it started a penalty block.
pub(super) fn decide_one(
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
                install(&mut key, g.change(params), LIMITER_GONE, |_| {
                    Ok(expire_at_ms)
                })?;
                let op = codec::Op {
                    params: *params,
                    cost,
                    now,
                    expire_at_ms,
                    penalty: penalty.filter(|_| blocks),
                };
                let op = if config::compact_ops() {
                    codec::encode_op_compact(&op)
                } else {
                    codec::encode_op(&op)
                };
                ctx.replicate(APPLY, name, &op);
            }
            Source::Replay { expire_at_ms } => {
                install(&mut key, g.change(params), LIMITER_GONE, |_| {
                    Ok(expire_at_ms)
                })?;
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
pub(super) fn client_decide(ctx: Ctx, key: RStr, req: &args::Request) -> Result<Decision, Error> {
    Ok(client_decide_with(ctx, key, req, None)?.0)
}

/// As [`client_decide`], under `policy` if named, also answering how the
/// call was counted.
pub(super) fn client_decide_with(
    ctx: Ctx,
    key: RStr,
    req: &args::Request,
    policy: Option<&[u8]>,
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
        policy,
    ))
}

/// A refund on one key, from a client or replayed: decided on the limiter
/// the key holds, then installed with its expiry only when it gives
/// something back (a replay must give back exactly what its master did).
/// Answers the units given back.
pub(super) fn refund_one(
    ctx: Ctx,
    name: RStr,
    n: u64,
    now: Instant,
    source: Source,
) -> Result<u64, Error> {
    let mut key = ctx.open_write(name)?;
    let refund = match (key.value().map(Value::limiter), source) {
        (Some(Some(l)), _) => l.evaluate_refund(n, now),
        (Some(None), Source::Client { .. }) => return Err(Error::Holds("RL.REFUND", Kind::Leases)),
        (None, Source::Client { .. }) => return Ok(0),
        (_, Source::Replay { .. }) => return Err(diverged("there is no limiter to refund here")),
    };
    if matches!(source, Source::Replay { .. }) && refund.given != n {
        return Err(diverged("the refund gives back another amount here"));
    }
    if !refund.writes() {
        return Ok(0);
    }
    const GONE: &str = "the refunded limiter is gone";
    let expire_at_ms = match source {
        Source::Client { wall } => {
            let current = key.expire_at_ms();
            install(&mut key, refund.change(), GONE, |held| {
                refund_expiry_ms(held, current, now, wall)
            })?
        }
        Source::Replay { expire_at_ms } => {
            install(&mut key, refund.change(), GONE, |_| Ok(expire_at_ms))?
        }
    };
    match source {
        Source::Client { .. } => {
            let op = codec::encode_refund_op(&codec::RefundOp {
                given: refund.given,
                now,
                expire_at_ms,
            });
            ctx.replicate(APPLY, name, &op);
        }
        Source::Replay { .. } => ctx.replicate_verbatim(),
    }
    Ok(refund.given)
}

/// When a refunded key expires: when what is left is as good as nothing
/// (or its block ends), by the rule of [`expiry_ms`], never later than the
/// expiry it had, `current` (a refund only takes away).
fn refund_expiry_ms(
    held: &Value,
    current: Option<UnixMs>,
    now: Instant,
    wall: Instant,
) -> Result<UnixMs, Error> {
    let Some(params) = held.limiter().map(Limiter::params) else {
        return Err(Error::Bug("no limiter to refund"));
    };
    let d = evaluate(Some(held), &params, 0, now, None)?
        .verdict
        .decision;
    let at = empty_at_ms(&d, wall);
    Ok(current.map_or(at, |current| at.min(current)))
}

/// Ops come from our own master or AOF, and are checked as decoded data:
/// within the codec's ceilings, and an expiry a master can have set.
pub(super) fn check_replayed(params: &Params, expire_at_ms: UnixMs) -> Result<(), Error> {
    if let Some(entries) = params.entries() {
        check_replayed_limit(
            Setting::LogMax,
            entries,
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
        stats::replayed_above_setting(setting.name(), limit, current);
    }
    Ok(())
}

pub(super) fn check_replayed_expiry(expire_at_ms: UnixMs) -> Result<(), Error> {
    if expire_at_ms > MAX_EXPIRE_MS {
        return Err(Error::BadOp(format!(
            "invalid replicated operation: expiry {} is beyond year 9999 plus the longest wait",
            expire_at_ms.as_millis()
        )));
    }
    Ok(())
}

/// Latest expiry a master can set: the latest instant plus the longest wait.
pub(super) const MAX_EXPIRE_MS: UnixMs =
    UnixMs::from_millis((MAX_TIME_US + MAX_WAIT_US) / 1000 + 1);

/// A replayed op must write exactly where its master wrote.
pub(super) fn diverged(what: &str) -> Error {
    Error::BadOp(format!(
        "the replica's state differs from its master's: {what}"
    ))
}

/// Who decided an `RL.ALL` call, as [`Source`] for one key.
#[derive(Clone, Copy)]
pub(super) enum AllSource<'e> {
    /// A client's call: computes the expiries and replicates one op.
    Client { wall: Instant },
    /// A replayed op's expiries (the epoch for a key the master did not
    /// write).
    Replay { expiries: &'e [UnixMs] },
}

/// What an `RL.ALL` call decided: written by [`decide_all`] into the
/// caller's (it is 500 bytes, and returning it copied them).
pub(super) struct AllDecided {
    pub(super) combined: Decision,
    pub(super) each: PerKey<Decision>,
    /// Per key, whether the call put it in the penalty box.
    pub(super) blocked: PerKey<bool>,
}

impl AllDecided {
    /// Nothing decided yet: what [`decide_all`] writes into.
    pub(super) fn new() -> Self {
        AllDecided {
            // Written by every call that succeeds.
            combined: Decision {
                allowed: false,
                limit: 0,
                remaining: 0,
                retry_after: None,
                reset_after: Duration::ZERO,
                at: Instant::EPOCH,
            },
            each: PerKey::new(),
            blocked: PerKey::new(),
        }
    }
}

/// Decides several limits together, all or nothing: every limit is
/// evaluated on the state it holds, and only if all allow is any spent. A
/// denied call still keeps changed parameters (like a single-key denial),
/// and with a `penalty` blocks each key whose own limit denied; the limits
/// that would have allowed then report what they hold now.
// The eighth is the out-param (see `AllDecided`).
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_all(
    ctx: Ctx,
    names: &[RStr],
    params: &[Params],
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
    source: AllSource,
    out: &mut AllDecided,
) -> Result<(), Error> {
    let blocked = &mut out.blocked;
    blocked.resize(names.len(), false);
    if cost == 0 {
        for (name, p) in names.iter().zip(params) {
            let key = ctx.open_read(*name)?;
            out.each
                .push(evaluate(key.value(), p, 0, now, None)?.verdict.decision);
        }
        out.combined = Decision::combine(&out.each).ok_or(Error::Bug("no keys"))?;
        return Ok(());
    }
    // One slot per key: the open key, its verdict and the expiry written
    // (the epoch where nothing was), moved once each.
    let mut slots: PerKey<(WriteKey, Guarded, UnixMs)> = PerKey::new();
    for (name, p) in names.iter().zip(params) {
        let key = ctx.open_write(*name)?;
        let g = evaluate(key.value(), p, cost, now, penalty)?;
        slots.push((key, g, UnixMs::EPOCH));
    }
    if !slots.iter().all(|(_, g, _)| g.verdict.decision.allowed) {
        for ((key, g, _), p) in slots.iter_mut().zip(params) {
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
    let mut wrote = false;
    let mut disagree = false;
    for (i, ((key, g, expire), p)) in slots.iter_mut().zip(params).enumerate() {
        let v = &g.verdict;
        let at = match source {
            AllSource::Client { wall } if v.writes => expiry_ms(key, v, wall),
            AllSource::Client { .. } => continue,
            // A replica writes exactly the keys its master wrote; where the
            // two disagree, its state differs: leave that key as it is.
            AllSource::Replay { expiries } => match expiries.get(i) {
                Some(&ms) if ms > UnixMs::EPOCH && v.writes => ms,
                Some(&ms) => {
                    disagree |= (ms > UnixMs::EPOCH) != v.writes;
                    continue;
                }
                None => continue,
            },
        };
        install(key, g.change(p), LIMITER_GONE, |_| Ok(at))?;
        *expire = at;
        if let (Some(b), BlockChange::Start(_)) = (blocked.get_mut(i), g.block) {
            *b = true;
        }
        wrote = true;
    }
    let blocks = blocked.iter().any(|&b| b);
    if wrote {
        match source {
            AllSource::Client { .. } => {
                let mut op = codec::OpBytes::new();
                codec::encode_all_op_into(
                    &mut op,
                    cost,
                    now,
                    penalty.filter(|_| blocks),
                    params.iter().zip(slots.iter().map(|s| s.2)),
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
    out.each
        .extend(slots.iter().map(|(_, g, _)| g.verdict.decision));
    out.combined = Decision::combine(&out.each).ok_or(Error::Bug("no keys"))?;
    Ok(())
}

/// The leases a key holds, or the error for what it holds instead.
fn leases_in(value: &Value) -> Result<&LeaseState, Error> {
    match value {
        Value::Leases(s) => Ok(s),
        other => Err(not_leases(other)),
    }
}

fn not_leases(other: &Value) -> Error {
    Mismatch {
        stored: other.kind(),
        requested: Kind::Leases,
    }
    .into()
}

/// A lease op on one open key, from a client or replayed: decided on the
/// leases the key holds (an acquire on a key holding none, on a fresh
/// state), then, only when it writes, installed with the key's expiry (a
/// key goes with its last lease), signalled and replicated. A replayed op
/// must write exactly where its master's did and empty the key exactly
/// when it did: both are checked on the snapshot, so one that can't be
/// applied changes nothing, and nothing is copied. Answers the verdict.
///
/// Inlined into each command (and the replay), so that the op each one
/// runs is known where it is decided: an RL.RENEW costs no more than it
/// did when it renewed in place.
#[inline(always)]
pub(super) fn lease_one<'id>(
    ctx: Ctx,
    name: RStr,
    key: &mut WriteKey,
    what: LeaseAction,
    id: &'id [u8],
    now: Instant,
    source: Source,
) -> Result<LeaseVerdict<'id>, Error> {
    let replayed = match source {
        Source::Replay { expire_at_ms } => Some(expire_at_ms),
        Source::Client { .. } => None,
    };
    let mut fresh = None;
    let snapshot = match (key.value(), what, replayed) {
        (Some(held), _, _) => leases_in(held)?,
        // A replayed acquire that emptied the key can't have been one.
        (None, LeaseAction::Acquire { limit, .. }, _)
            if replayed.is_none_or(|at| at > UnixMs::EPOCH) =>
        {
            fresh.insert(LeaseState::new(limit))
        }
        (None, _, None) => return Ok(LeaseVerdict::default()),
        (None, _, Some(_)) => return Err(diverged("there are no leases here")),
    };
    let v = snapshot.evaluate(what, id, now);
    if let Some(expire_at_ms) = replayed {
        let emptied = expire_at_ms == UnixMs::EPOCH;
        let same = v
            .next
            .as_ref()
            .is_some_and(|c| snapshot.empties(c) == emptied);
        if !same {
            return Err(diverged("the leases differ here"));
        }
    }
    let Some(change) = v.next else {
        return Ok(v);
    };
    let change = match fresh {
        Some(fresh) => Change::NewLeases { fresh, change },
        None => Change::Leases(change),
    };
    // A key left without leases is deleted by `install`, which answers the
    // epoch for it, as the op carries it.
    let expire_at_ms = install(key, change, "the leases are gone", |held| match source {
        Source::Client { wall } => Ok(lease_expiry_ms(leases_in(held)?, wall)),
        Source::Replay { expire_at_ms } => Ok(expire_at_ms),
    })?;
    match source {
        Source::Client { .. } => {
            let op = codec::encode_lease_op(&codec::LeaseOp {
                what,
                id,
                now,
                expire_at_ms,
            });
            ctx.replicate(APPLY, name, &op);
        }
        Source::Replay { .. } => ctx.replicate_verbatim(),
    }
    Ok(v)
}

/// When a lease key expires: with its last lease, and never in the past.
#[inline]
pub(super) fn lease_expiry_ms(s: &LeaseState, wall: Instant) -> UnixMs {
    let last = s.empty_at().map_or(UnixMs::EPOCH, UnixMs::ceil);
    last.max(UnixMs::ceil(wall).next())
}
