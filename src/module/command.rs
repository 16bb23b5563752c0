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
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;

use super::clock;
use super::datatype::{self, raw_type};
use super::ffi::{self, Ctx, Holding, Key, RString};
use super::reply;
use crate::algo::{Algorithm, Decision, Limiter, Micros, Params};
use crate::args::{self, ArgError, Limits, DEFAULT_LOG_MAX};
use crate::codec::{self, Op};

pub const APPLY: &CStr = c"RL.APPLY";

/// Hard ceiling of `ratelimit.log-max`: one RL.LOG key stays under 8 MB.
pub const LOG_MAX_CEILING: u64 = 1_000_000;

static LOG_MAX: AtomicU64 = AtomicU64::new(DEFAULT_LOG_MAX);

pub fn set_log_max(v: u64) {
    LOG_MAX.store(v.min(LOG_MAX_CEILING), Ordering::Relaxed);
}

fn limits() -> Limits {
    Limits {
        log_max: LOG_MAX.load(Ordering::Relaxed),
    }
}

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
    if !d.changed {
        return Ok(d);
    }
    if let Some(value) = fresh {
        if !key.set_value(ty, value) {
            return Err(Failure::Corrupt("could not store the limiter".into()));
        }
    }
    let at_ms = expire_at_ms.unwrap_or_else(|| {
        clock::wall_now_ms().saturating_add(reply::ms_ceil(d.reset_after).max(1))
    });
    key.expire_at(at_ms);
    key.signal_modified(ctx, name);
    match propagate {
        Propagate::Op => {
            let op = Op {
                params: *params,
                cost,
                now,
                expire_at_ms: at_ms.max(0) as u64,
            };
            ffi::replicate(ctx, APPLY, name, &codec::encode_op(&op));
        }
        Propagate::Verbatim => ffi::replicate_verbatim(ctx),
    }
    Ok(d)
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
    let req = with_bytes(&args[2..], |a| args::request(algo, command, a, &limits()))?;
    let flags = ffi::context_flags(ctx);
    let now = clock::now(flags, req.at);
    let d = decide_key(
        ctx,
        args[1],
        &req.params,
        req.cost,
        now,
        None,
        Propagate::Op,
    )?;
    reply::decision(ctx, &d, is_resp3(flags));
    Ok(raw::Status::Ok as c_int)
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
        key.signal_modified(ctx, args[1]);
        ffi::replicate_verbatim(ctx);
        Ok(ffi::reply_ok(ctx))
    })
}
