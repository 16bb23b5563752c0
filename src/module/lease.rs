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

use super::command::{check_replayed_limit, diverged, Error, Outcome, APPLY};
use super::config::Setting;
use super::ffi::{Ctx, RStr, WriteKey};
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

/// Length of a lease id the server makes up: 32 hex digits, 128 bits.
pub(super) const MADE_ID_LEN: usize = 32;

/// A lease id the key does not hold: 128 bits from the OS's CSPRNG
/// (`getrandom`), as 32 hex digits. An id is the only thing that lets a
/// client release or renew another's lease, so it must not be derivable
/// from any other id: no counter, no seed, nothing that can be inverted.
/// The bytes are drawn in blocks of [`POOL`] (one system call for 256
/// ids), which keeps an acquire's cost where a counter had it.
fn fresh_id(held: Option<&Value>) -> Result<[u8; MADE_ID_LEN], Error> {
    loop {
        let id = hex32(random_128()?);
        let taken = match held {
            Some(Value::Leases(s)) => s.holds(&id),
            _ => false,
        };
        if !taken {
            return Ok(id);
        }
    }
}

/// Bytes of the OS's random source drawn at once.
const POOL: usize = 4096;

/// 16 bytes never handed out before, from a block refilled from the OS.
fn random_128() -> Result<[u8; 16], Error> {
    use std::sync::Mutex;
    struct Pool {
        bytes: [u8; POOL],
        /// Bytes of `bytes` already handed out (POOL: none left).
        used: usize,
    }
    static STATE: Mutex<Pool> = Mutex::new(Pool {
        bytes: [0; POOL],
        used: POOL,
    });
    // Commands run on the main thread; a poisoned lock only means a panic
    // elsewhere, and the pool's bytes are still unused random bytes.
    let mut pool = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if pool.used + 16 > POOL {
        getrandom::fill(&mut pool.bytes)
            .map_err(|e| Error::System(format!("no random bytes for a lease id: {e}")))?;
        pool.used = 0;
    }
    let at = pool.used;
    let mut out = [0u8; 16];
    out.copy_from_slice(&pool.bytes[at..at + 16]);
    // Handed-out bytes are wiped, so nothing later (a core dump of this
    // process, or a forked child's memory) shows ids already in use.
    pool.bytes[at..at + 16].fill(0);
    pool.used = at + 16;
    Ok(out)
}

fn hex32(v: [u8; 16]) -> [u8; MADE_ID_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; MADE_ID_LEN];
    for (i, b) in v.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
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
            made = fresh_id(key.value())?;
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
    let at = if s.is_empty() {
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
/// changes nothing. It works on the stored leases in place, as the master's
/// call did (a copy of 10,000 leases per op made a replica ten times
/// slower than its master): whether the op empties the key is known before
/// anything changes, and an op that finds nothing to do changes nothing.
pub(super) fn apply(ctx: Ctx, name: RStr, op: &LeaseOp) -> Outcome {
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
    super::command::check_replayed_expiry(op.expire_at_ms)?;
    let mut key = ctx.open_write(name)?;
    let emptied = op.expire_at_ms == 0;
    let done = match key.value_mut() {
        Some(held) => {
            let s = leases_of(held)?;
            // Only a release can take the last lease (an acquire or a
            // renewal leaves a live lease behind).
            let empties = match op.what {
                LeaseAction::Release => s.live_leases(op.now) == 1,
                _ => false,
            };
            if empties != emptied {
                return Err(diverged("the leases differ here"));
            }
            match op.what {
                LeaseAction::Acquire { limit, units, ttl } => {
                    let a = s.acquire(limit, units, ttl, op.id, op.now);
                    a.granted || a.renewed
                }
                LeaseAction::Release => s.release(op.id, op.now),
                LeaseAction::Renew { ttl } => s.renew(op.id, ttl, op.now),
            }
        }
        None => match op.what {
            LeaseAction::Acquire { limit, units, ttl } if !emptied => {
                let mut s = LeaseState::new(limit);
                let granted = s.acquire(limit, units, ttl, op.id, op.now).granted;
                if granted {
                    key.store(Value::Leases(Box::new(s)))?;
                }
                granted
            }
            _ => return Err(diverged("there are no leases here")),
        },
    };
    if !done {
        return Err(diverged("the leases differ here"));
    }
    if emptied {
        key.delete();
    } else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_of_fresh_random_bytes() {
        assert_eq!(
            &hex32([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0, 0xff]),
            b"0123456789abcdef00000000000000ff"
        );
        let ids: std::collections::HashSet<[u8; MADE_ID_LEN]> = (0..10_000)
            .map(|_| fresh_id(None).ok().expect("random bytes"))
            .collect();
        assert_eq!(ids.len(), 10_000);
        // Every bit position takes both values across ids (a counter or a
        // constant part would not).
        let (mut ones, mut zeros) = ([0u32; 128], [0u32; 128]);
        for id in &ids {
            let text = std::str::from_utf8(id).unwrap();
            let v = u128::from_str_radix(text, 16).unwrap();
            for (bit, (o, z)) in ones.iter_mut().zip(zeros.iter_mut()).enumerate() {
                if v >> bit & 1 == 1 {
                    *o += 1
                } else {
                    *z += 1
                }
            }
        }
        assert!(ones.iter().chain(&zeros).all(|&n| n > 4_000), "{ones:?}");
    }
}
