//! Concurrency leases: `RL.ACQUIRE`, `RL.RELEASE`, `RL.RENEW`, their
//! replay, and `RL.INFO` on a lease key.
//!
//! A key holds a [`LeaseState`]; the algorithm is in `algo::lease`. As for
//! the limiters, replication is by effect: a call that changes the leases
//! sends `RL.APPLY key <op>` with the lease id (made up by the master when
//! the client gave none), the time and the key's resulting expiry, and a
//! replica or an AOF replays it without a clock. A key expires with its
//! last lease, and is deleted when its last lease is released.

use std::ffi::CStr;

use smallvec::SmallVec;

use super::command::{diverged, Error, Outcome, APPLY};
use super::ffi::{self, Ctx, RStr, WriteKey};
use super::reply::{self, ms};
use super::{clock, config, stats};
use crate::algo::{Decision, Instant, Kind, LeaseState, Mismatch, Value};
use crate::args;
use crate::codec::{self, LeaseAction, LeaseOp};

/// Keyspace event fired on the key of every denied request.
const DENIED_EVENT: &CStr = c"rl.denied";

/// The leases a key holds, or the error for what it holds instead.
fn leases_of(value: &mut Value) -> Result<&mut LeaseState, Error> {
    match value {
        Value::Leases(s) => Ok(s),
        other => Err(Mismatch {
            stored: other.kind(),
            requested: Kind::Leases,
        }
        .into()),
    }
}

/// When the key expires: with its last lease, and never in the past.
fn expiry_ms(s: &LeaseState, wall: Instant) -> u64 {
    let last = s.empty_at().map_or(0, Instant::ceil_millis);
    last.max(wall.ceil_millis() + 1)
}

/// A lease id the key does not hold: 16 hex characters. Each is a counter
/// mixed with a secret seeded once per process from the server's random
/// source, through SplitMix64 (a bijection, so ids never repeat within a
/// process; across restarts a repeat is checked against the key's leases).
/// Drawing every id from the server's random source (SHA-256 per call)
/// cost twice a whole acquire.
fn fresh_id(held: Option<&Value>) -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = SEED.load(Ordering::Relaxed);
    if seed == 0 {
        let hex = ffi::random_hex::<16>();
        seed = std::str::from_utf8(&hex)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        SEED.store(seed, Ordering::Relaxed);
    }
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = hex16(splitmix64(
            seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        ));
        let taken = match held {
            Some(Value::Leases(s)) => s.leases.iter().any(|l| *l.id == id),
            _ => false,
        };
        if !taken {
            return id;
        }
    }
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters its input.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex16(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// What an acquire did.
struct Acquired {
    decision: Decision,
    /// The lease was placed or renewed (the call wrote).
    holds: bool,
}

/// Acquires (or renews) a lease on an open key, creating the key when it
/// holds nothing, and sets its expiry; answers the expiry (0 if nothing
/// was written).
fn acquire_on(
    key: &mut WriteKey,
    what: LeaseAction,
    id: &[u8],
    now: Instant,
    wall: Instant,
) -> Result<(Acquired, u64), Error> {
    let LeaseAction::Acquire { limit, units, ttl } = what else {
        return Err(Error::BadOp("not an acquire".into()));
    };
    let a = match key.value_mut() {
        Some(held) => leases_of(held)?.acquire(limit, units, ttl, id, now),
        None => {
            let mut s = LeaseState::new(limit);
            let a = s.acquire(limit, units, ttl, id, now);
            if a.granted {
                key.store(Value::Leases(Box::new(s)))?;
            }
            a
        }
    };
    let holds = a.granted || a.renewed;
    let mut at = 0;
    if holds {
        at = match key.value_mut() {
            Some(held) => expiry_ms(leases_of(held)?, wall),
            None => return Err(Error::NotStored),
        };
        key.expire_at(i64::try_from(at).unwrap_or(i64::MAX));
        key.signal_modified();
    }
    Ok((
        Acquired {
            decision: a.decision,
            holds,
        },
        at,
    ))
}

/// `RL.ACQUIRE key limit ttl [ID lease_id] [COST n] [AT unix_ms]`: the five
/// integers of a decision, then the lease id (nil when denied).
pub(super) fn acquire_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.ACQUIRE").into());
    };
    let bytes: SmallVec<[&[u8]; 8]> = rest.iter().map(|a| a.bytes()).collect();
    let req = args::acquire_request(&bytes, config::lease_max())?;
    let wall = clock::wall(ctx);
    let now = req.at.unwrap_or(wall);
    let mut key = ctx.open_write(*name)?;
    let made;
    let id: &[u8] = match req.id {
        Some(id) => id,
        None => {
            made = fresh_id(key.value());
            &made
        }
    };
    let what = LeaseAction::Acquire {
        limit: req.limit,
        units: req.cost,
        ttl: req.ttl.duration(),
    };
    let (a, expire_at_ms) = acquire_on(&mut key, what, id, now, wall)?;
    if a.holds {
        let op = codec::encode_lease_op(&LeaseOp {
            what,
            id,
            now,
            expire_at_ms,
        });
        ctx.replicate(APPLY, *name, &op);
    }
    stats::count_lease(a.decision.allowed);
    if !a.decision.allowed {
        ctx.notify(DENIED_EVENT, *name);
    }
    reply::lease(ctx, &a.decision, a.holds.then_some(id));
    Ok(())
}

/// Releases or renews `id` on an open key; answers whether it was held,
/// and the key's expiry after it (0: the last lease went, and the key).
fn end_or_extend(
    key: &mut WriteKey,
    what: LeaseAction,
    id: &[u8],
    now: Instant,
) -> Result<(bool, u64), Error> {
    let Some(held) = key.value_mut() else {
        return Ok((false, 0));
    };
    let s = leases_of(held)?;
    let done = match what {
        LeaseAction::Release => s.release(id, now),
        LeaseAction::Renew { ttl } => s.renew(id, ttl, now),
        LeaseAction::Acquire { .. } => return Err(Error::BadOp("not a release".into())),
    };
    if !done {
        return Ok((false, 0));
    }
    let at = if s.leases.is_empty() {
        key.delete();
        0
    } else {
        let at = expiry_ms(s, now);
        key.expire_at(i64::try_from(at).unwrap_or(i64::MAX));
        at
    };
    key.signal_modified();
    Ok((true, at))
}

/// `RL.RELEASE key lease_id` and `RL.RENEW key lease_id ttl`: 1 if the
/// lease was held (and is now freed, or extended), 0 otherwise.
fn end_or_extend_command(ctx: Ctx, name: RStr, what: LeaseAction, id: &[u8]) -> Outcome {
    let wall = clock::wall(ctx);
    let mut key = ctx.open_write(name)?;
    let (done, expire_at_ms) = end_or_extend(&mut key, what, id, wall)?;
    if done {
        let op = codec::encode_lease_op(&LeaseOp {
            what,
            id,
            now: wall,
            expire_at_ms,
        });
        ctx.replicate(APPLY, name, &op);
        stats::count_lease_end(what);
    }
    ctx.reply_i64(done as i64);
    Ok(())
}

pub(super) fn release_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, id] = args else {
        return Err(args::arity_error("RL.RELEASE").into());
    };
    let id = args::lease_id(id.bytes())?;
    end_or_extend_command(ctx, *name, LeaseAction::Release, id)
}

pub(super) fn renew_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.RENEW").into());
    };
    let bytes: SmallVec<[&[u8]; 2]> = rest.iter().map(|a| a.bytes()).collect();
    let (id, ttl) = args::renew_request(&bytes)?;
    let what = LeaseAction::Renew {
        ttl: ttl.duration(),
    };
    end_or_extend_command(ctx, *name, what, id)
}

/// Replays a lease op: it must do exactly what it did on the master, or it
/// changes nothing (it is tried on a copy first).
pub(super) fn apply(ctx: Ctx, name: RStr, op: &LeaseOp) -> Outcome {
    if let LeaseAction::Acquire { limit, .. } = op.what {
        let lease_max = config::lease_max();
        if limit.get() > lease_max {
            return Err(Error::BadOp(format!(
                "invalid replicated operation: lease limit {} above lease-max {lease_max}",
                limit.get()
            )));
        }
    }
    super::command::check_replayed_expiry(op.expire_at_ms)?;
    let mut key = ctx.open_write(name)?;
    let mut s = match (key.value_mut(), op.what) {
        (Some(held), _) => leases_of(held)?.clone(),
        (None, LeaseAction::Acquire { limit, .. }) => LeaseState::new(limit),
        (None, _) => return Err(diverged("there are no leases here")),
    };
    let done = match op.what {
        LeaseAction::Acquire { limit, units, ttl } => {
            let a = s.acquire(limit, units, ttl, op.id, op.now);
            a.granted || a.renewed
        }
        LeaseAction::Release => s.release(op.id, op.now),
        LeaseAction::Renew { ttl } => s.renew(op.id, ttl, op.now),
    };
    // The master deleted the key (expiry 0) exactly when no lease is left.
    if !done || s.leases.is_empty() != (op.expire_at_ms == 0) {
        return Err(diverged("the leases differ here"));
    }
    if s.leases.is_empty() {
        key.delete();
    } else {
        key.store(Value::Leases(Box::new(s)))?;
        key.expire_at(i64::try_from(op.expire_at_ms).unwrap_or(i64::MAX));
    }
    key.signal_modified();
    ctx.replicate_verbatim();
    ctx.reply_i64(1);
    Ok(())
}

/// `RL.INFO` on a lease key: the limit, the leases live now, the units they
/// hold, what could be taken now, when the last one ends, and the TTL.
pub(super) fn info(ctx: Ctx, s: &LeaseState, now: Instant, ttl_ms: Option<i64>) {
    let peek = s.peek(s.limit, 0, now);
    let held = s.held(now);
    let live = s
        .leases
        .iter()
        .filter(|l| l.expires > now.max(s.last))
        .count();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_and_never_repeat_from_one_seed() {
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        let seed: u64 = 0x1234_5678_9abc_def1;
        let ids: std::collections::HashSet<[u8; 16]> = (0..100_000u64)
            .map(|n| {
                hex16(splitmix64(
                    seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ))
            })
            .collect();
        assert_eq!(ids.len(), 100_000);
    }
}
