//! Command handlers: parse, open the key, decide, store, expire, replicate,
//! reply.
//!
//! Replication is by effect, not by command: an allowed request is sent to
//! replicas and the AOF as `RL.APPLY key <op>`, where the op carries the
//! parameters, the cost, the exact time used and the absolute expiry. A
//! replica (or an AOF being loaded) replays it without reading any clock,
//! so it computes the very same state. Denied requests and peeks change
//! nothing and send nothing.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use redis_module::raw;

use super::config::{self, LOG_MAX_CEILING};
use super::datatype::{self, raw_type};
use super::ffi::{self, Ctx, Holding, Key, RString};
use super::{clock, reply, stats};
use crate::algo::{Algorithm, Decision, Limiter, Micros, Params};
use crate::args::{self, ArgError};
use crate::codec::{self, Op};

pub const APPLY: &CStr = c"RL.APPLY";

/// Keyspace event fired on the key of every denied request.
const DENIED_EVENT: &CStr = c"rl.denied";

const WRONGTYPE: &CStr = c"WRONGTYPE Operation against a key holding the wrong kind of value";

enum Failure {
    Arg(ArgError),
    WrongType,
    Mismatch(Algorithm, Algorithm),
    Corrupt(String),
}

impl From<ArgError> for Failure {
    fn from(e: ArgError) -> Self {
        Failure::Arg(e)
    }
}

fn reply_failure(ctx: Ctx, f: Failure) -> c_int {
    match f {
        Failure::Arg(e) => ffi::reply_error(ctx, &e.0),
        Failure::WrongType => ffi::reply_error_static(ctx, WRONGTYPE),
        Failure::Mismatch(stored, requested) => ffi::reply_error(
            ctx,
            &format!(
                "ERR the key holds a {} limiter, not {}: use another key, or DEL it to change algorithm",
                stored.name(),
                requested.name()
            ),
        ),
        Failure::Corrupt(msg) => ffi::reply_error(ctx, &format!("ERR {msg}")),
    }
}

/// Runs a handler, turning a panic (a bug, never expected) into an error
/// reply instead of taking the whole server down.
fn guarded(ctx: Ctx, f: impl FnOnce() -> Result<c_int, Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => reply_failure(ctx, failure),
        Err(_) => {
            ffi::log_warning(ctx, "ratelimit: internal error while running a command");
            ffi::reply_error_static(
                ctx,
                c"ERR internal error in the ratelimit module, see the server log",
            )
        }
    }
}

/// # Safety
/// `argv`/`argc` must be what Redis passed to a command handler.
unsafe fn argv<'a>(argv: *mut RString, argc: c_int) -> &'a [RString] {
    if argv.is_null() || argc <= 0 {
        return &[];
    }
    std::slice::from_raw_parts(argv, argc as usize)
}

/// Calls `f` with the bytes of `strings`, without allocating for the usual
/// short argument lists.
fn with_bytes<R>(strings: &[RString], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    const INLINE: usize = 12;
    if strings.len() <= INLINE {
        let mut buf: [&[u8]; INLINE] = [&[]; INLINE];
        for (slot, &s) in buf.iter_mut().zip(strings) {
            *slot = unsafe { ffi::bytes(s) };
        }
        f(&buf[..strings.len()])
    } else {
        let v: Vec<&[u8]> = strings.iter().map(|&s| unsafe { ffi::bytes(s) }).collect();
        f(&v)
    }
}

/// How a change is propagated.
enum Propagate {
    /// A client call: send the decided op.
    Op,
    /// Already an op (from a master or the AOF): pass it on unchanged.
    Verbatim,
}

/// Decides one request on one key and, if the state changed, stores it,
/// sets its expiry and propagates the change.
fn decide_key(
    ctx: Ctx,
    name: RString,
    params: &Params,
    cost: u64,
    now: Micros,
    expire_at_ms: Option<i64>,
    propagate: Propagate,
) -> Result<Decision, Failure> {
    let ty = raw_type();
    let key = Key::open(ctx, name, cost > 0);
    let mut fresh: Option<Box<Limiter>> = None;
    let limiter: &mut Limiter = match key.holding::<Limiter>(ty) {
        Holding::Other => return Err(Failure::WrongType),
        // Redis owns the value and nothing else touches it during the call.
        Holding::Ours(p) => unsafe { &mut *p.as_ptr() },
        Holding::Nothing => fresh.insert(Box::new(Limiter::new(params))),
    };
    let d = limiter
        .decide(params, cost, now)
        .map_err(|m| Failure::Mismatch(m.stored, m.requested))?;
    if d.changed {
        let change = Change {
            params,
            cost,
            now,
            expire_at_ms,
        };
        commit(ctx, &key, name, fresh, &d, &change, propagate)?;
    }
    Ok(d)
}

/// What an allowed request did, as replicas must replay it.
struct Change<'a> {
    params: &'a Params,
    cost: u64,
    now: Micros,
    /// Set when replaying; computed from the decision otherwise.
    expire_at_ms: Option<i64>,
}

/// Stores a changed limiter (`fresh` when the key did not exist, else it was
/// changed in place), sets the expiry, signals and propagates.
fn commit(
    ctx: Ctx,
    key: &Key,
    name: RString,
    fresh: Option<Box<Limiter>>,
    d: &Decision,
    change: &Change,
    propagate: Propagate,
) -> Result<(), Failure> {
    if let Some(value) = fresh {
        if !key.set_value(raw_type(), value) {
            return Err(Failure::Corrupt("could not store the limiter".into()));
        }
        stats::key_created();
    }
    let at_ms = change.expire_at_ms.unwrap_or_else(|| {
        clock::wall_now_ms().saturating_add(reply::ms_ceil(d.reset_after).max(1))
    });
    key.expire_at(at_ms);
    key.signal_modified(ctx, name);
    match propagate {
        Propagate::Op => {
            let op = Op {
                params: *change.params,
                cost: change.cost,
                now: change.now,
                expire_at_ms: at_ms.max(0) as u64,
            };
            ffi::replicate(ctx, APPLY, name, &codec::encode_op(&op));
        }
        Propagate::Verbatim => ffi::replicate_verbatim(ctx),
    }
    Ok(())
}

fn is_resp3(flags: c_int) -> bool {
    flags & raw::REDISMODULE_CTX_FLAGS_RESP3 as c_int != 0
}

/// `RL.<ALGO> key params... [COST n] [AT unix_ms]`
fn limit_command(
    ctx: Ctx,
    args: &[RString],
    algo: Algorithm,
    command: &str,
) -> Result<c_int, Failure> {
    if args.len() < 2 {
        return Err(args::arity_error(command).into());
    }
    let req = with_bytes(&args[2..], |a| {
        args::request(algo, command, a, &config::limits())
    })?;
    let flags = ffi::context_flags(ctx);
    let d = client_decide(ctx, flags, args[1], &req)?;
    reply::decision(ctx, &d, is_resp3(flags));
    Ok(raw::Status::Ok as c_int)
}

/// A client's request on one key: decide, count, report a denial.
fn client_decide(
    ctx: Ctx,
    flags: c_int,
    key: RString,
    req: &args::Request,
) -> Result<Decision, Failure> {
    let now = clock::now(flags, req.at);
    let d = decide_key(ctx, key, &req.params, req.cost, now, None, Propagate::Op)?;
    stats::count(req.params.algorithm(), d.allowed);
    if !d.allowed {
        ffi::notify(ctx, DENIED_EVENT, key);
    }
    Ok(d)
}

macro_rules! limit_handlers {
    ($($fn_name:ident => $algo:ident, $cmd:literal;)*) => {$(
        pub(crate) unsafe extern "C" fn $fn_name(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
            let args = argv(argv_, argc);
            guarded(ctx, || limit_command(ctx, args, Algorithm::$algo, $cmd))
        }
    )*};
}

limit_handlers! {
    rl_fixed => Fixed, "RL.FIXED";
    rl_sliding => Sliding, "RL.SLIDING";
    rl_log => Log, "RL.LOG";
    rl_token => Token, "RL.TOKEN";
    rl_leaky => Leaky, "RL.LEAKY";
    rl_gcra => Gcra, "RL.GCRA";
}

/// `RL.APPLY key op`: replays a decided request (what replicas and the AOF
/// receive). Needs no clock; a denied replay changes nothing.
pub(crate) unsafe extern "C" fn rl_apply(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
    let args = argv(argv_, argc);
    guarded(ctx, || {
        if args.len() != 3 {
            return Err(args::arity_error("RL.APPLY").into());
        }
        let op = codec::decode_op(unsafe { ffi::bytes(args[2]) })
            .map_err(|e| Failure::Corrupt(format!("invalid RL.APPLY operation: {e}")))?;
        if let Params::Log(p) = op.params {
            if p.limit > LOG_MAX_CEILING {
                return Err(Failure::Corrupt(format!(
                    "invalid RL.APPLY operation: log limit above {LOG_MAX_CEILING}"
                )));
            }
        }
        let expire = i64::try_from(op.expire_at_ms).unwrap_or(i64::MAX);
        let d = decide_key(
            ctx,
            args[1],
            &op.params,
            op.cost,
            op.now,
            Some(expire),
            Propagate::Verbatim,
        )?;
        reply::decision(ctx, &d, is_resp3(ffi::context_flags(ctx)));
        Ok(raw::Status::Ok as c_int)
    })
}

/// `RL.SETSTATE key encoding-version blob`: what an AOF rewrite emits to
/// recreate a key (its expiry follows as a separate `PEXPIREAT`).
pub(crate) unsafe extern "C" fn rl_setstate(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
    let args = argv(argv_, argc);
    guarded(ctx, || {
        if args.len() != 4 {
            return Err(args::arity_error("RL.SETSTATE").into());
        }
        let version = with_bytes(&args[2..3], |a| args::count("encoding version", a[0], 1))?;
        let version = i32::try_from(version).unwrap_or(i32::MAX);
        let limiter = codec::decode(unsafe { ffi::bytes(args[3]) }, version)
            .map_err(|e| Failure::Corrupt(format!("invalid RL.SETSTATE value: {e}")))?;
        let ty = datatype::raw_type();
        let key = Key::open(ctx, args[1], true);
        if let Holding::Other = key.holding::<Limiter>(ty) {
            return Err(Failure::WrongType);
        }
        if !key.set_value(ty, Box::new(limiter)) {
            return Err(Failure::Corrupt("could not store the limiter".into()));
        }
        stats::key_created();
        key.signal_modified(ctx, args[1]);
        ffi::replicate_verbatim(ctx);
        Ok(ffi::reply_ok(ctx))
    })
}

/// One key of an `RL.ALL` call while it is being decided.
struct Slot {
    key: Key,
    name: RString,
    /// The stored limiter, if the key exists.
    stored: Option<NonNull<Limiter>>,
    /// The state the decision was made on: a copy of the stored one (or a
    /// new one), so nothing is touched until every limit has allowed.
    work: Limiter,
}

/// `RL.ALL numkeys key [key ...] ALGO params [ALGO params ...] [COST n] [AT ms]`:
/// allowed only if every limit allows, and then every one is spent; a denial
/// by any of them changes none.
fn all_command(ctx: Ctx, args: &[RString]) -> Result<c_int, Failure> {
    if args.len() < 2 {
        return Err(args::arity_error("RL.ALL").into());
    }
    let req = with_bytes(&args[1..], |a| args::all_request(a, &config::limits()))?;
    let names = &args[2..2 + req.numkeys];
    let flags = ffi::context_flags(ctx);
    let now = clock::now(flags, req.at);
    let ty = raw_type();

    let mut slots = Vec::with_capacity(names.len());
    let mut decisions = Vec::with_capacity(names.len());
    for (&name, params) in names.iter().zip(&req.params) {
        let key = Key::open(ctx, name, req.cost > 0);
        let (stored, mut work) = match key.holding::<Limiter>(ty) {
            Holding::Other => return Err(Failure::WrongType),
            Holding::Ours(p) => (Some(p), unsafe { p.as_ref() }.clone()),
            Holding::Nothing => (None, Limiter::new(params)),
        };
        let d = work
            .decide(params, req.cost, now)
            .map_err(|m| Failure::Mismatch(m.stored, m.requested))?;
        decisions.push(d);
        slots.push(Slot {
            key,
            name,
            stored,
            work,
        });
    }

    if !decisions.iter().all(|d| d.allowed) && req.cost > 0 {
        // Nothing will be spent, so a limit that would have allowed reports
        // what it has now rather than what it would have had after.
        for ((slot, d), params) in slots.iter().zip(&mut decisions).zip(&req.params) {
            if d.allowed {
                let mut current = match slot.stored {
                    Some(p) => unsafe { p.as_ref() }.clone(),
                    None => Limiter::new(params),
                };
                if let Ok(peek) = current.decide(params, 0, now) {
                    *d = peek;
                }
            }
        }
    }
    let combined = Decision::combine(&decisions);
    for ((slot, d), params) in slots.iter().zip(&decisions).zip(&req.params) {
        stats::count(params.algorithm(), d.allowed);
        if !d.allowed {
            ffi::notify(ctx, DENIED_EVENT, slot.name);
        }
    }
    stats::count_all(combined.allowed);

    if combined.allowed && req.cost > 0 {
        for ((slot, d), params) in slots.into_iter().zip(&decisions).zip(&req.params) {
            let fresh = match slot.stored {
                Some(p) => {
                    // Same instant, same parameters: the copy is exactly
                    // what deciding on the stored value would have made.
                    unsafe { *p.as_ptr() = slot.work };
                    None
                }
                None => Some(Box::new(slot.work)),
            };
            let change = Change {
                params,
                cost: req.cost,
                now,
                expire_at_ms: None,
            };
            commit(ctx, &slot.key, slot.name, fresh, d, &change, Propagate::Op)?;
        }
    }
    reply::all(ctx, &combined, &decisions, is_resp3(flags));
    Ok(raw::Status::Ok as c_int)
}

pub(crate) unsafe extern "C" fn rl_all(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
    let args = argv(argv_, argc);
    if raw::RedisModule_IsKeysPositionRequest.is_some_and(|f| f(ctx) != 0) {
        // Redis 7.0's cluster routing asks the handler rather than reading
        // the key spec: answer with the same `numkeys key...` positions.
        let numkeys = args
            .get(1)
            .and_then(|n| with_bytes(&[*n], |a| args::count("numkeys", a[0], 1).ok()))
            .unwrap_or(0);
        let last = (numkeys as usize).min(args.len().saturating_sub(2));
        if let Some(key_at) = raw::RedisModule_KeyAtPos {
            for pos in 2..2 + last {
                key_at(ctx, pos as c_int);
            }
        }
        return raw::Status::Ok as c_int;
    }
    guarded(ctx, || all_command(ctx, args))
}

/// `CL.THROTTLE key max_burst count period [quantity]`: redis-cell's command
/// and reply, decided by our GCRA and replicated by effect like the rest.
pub(crate) unsafe extern "C" fn cl_throttle(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
    let args = argv(argv_, argc);
    guarded(ctx, || {
        if args.len() < 2 {
            return Err(args::arity_error("CL.THROTTLE").into());
        }
        let req = with_bytes(&args[2..], args::throttle_request)?;
        let flags = ffi::context_flags(ctx);
        let d = client_decide(ctx, flags, args[1], &req)?;
        reply::cell(ctx, &d);
        Ok(raw::Status::Ok as c_int)
    })
}

/// `RL.INFO key`: the algorithm, parameters, state, what a request could
/// spend now and the TTL, without changing anything.
pub(crate) unsafe extern "C" fn rl_info(ctx: Ctx, argv_: *mut RString, argc: c_int) -> c_int {
    let args = argv(argv_, argc);
    guarded(ctx, || {
        if args.len() != 2 {
            return Err(args::arity_error("RL.INFO").into());
        }
        let key = Key::open(ctx, args[1], false);
        let limiter: &Limiter = match key.holding::<Limiter>(raw_type()) {
            Holding::Other => return Err(Failure::WrongType),
            Holding::Nothing => return Ok(ffi::reply_null(ctx)),
            Holding::Ours(p) => unsafe { p.as_ref() },
        };
        let now = clock::now(ffi::context_flags(ctx), None);
        // A peek on a copy: `decide` with cost 0 never changes the state,
        // but the stored value is only borrowed here.
        let params = limiter.params();
        let peek = limiter
            .clone()
            .decide(&params, 0, now)
            .map_err(|m| Failure::Mismatch(m.stored, m.requested))?;
        reply::info(ctx, limiter, &peek, key.ttl_ms());
        Ok(raw::Status::Ok as c_int)
    })
}
