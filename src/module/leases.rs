//! The lease commands: `RL.ACQUIRE`, `RL.RELEASE`, `RL.RENEW` (their
//! replay is in [`super::replay`], `RL.INFO` on a lease key in
//! [`super::windows`]).
//!
//! A key holds a `LeaseState`; the algorithm is in `algo::lease`. Each
//! command parses, decides and installs through the kernel's `lease_one`
//! (as its replay does), then counts and replies. As for the limiters,
//! replication is by effect: a call that changes the leases sends
//! `RL.APPLY key <op>` with the lease id (made up by the master when the
//! client gave none), the time and the key's resulting expiry, and a
//! replica or an AOF replays it without a clock. A key expires with its
//! last lease, and is deleted when its last lease is released.

use smallvec::SmallVec;

use super::docs::{arg, option, Access, Arg, Command, Doc, Keys, Kind, AT, COST, KEY};
use super::ffi::{Ctx, RStr};
use super::kernel::{lease_one, Error, Outcome, Source, DENIED_EVENT};
use super::{clock, config, reply, stats, top};
use crate::algo::{Instant, LeaseAction, Value};
use crate::args;

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

const ACQUIRE_ARGS: &[Arg] = &[
    KEY,
    arg(c"limit", Kind::Integer),
    arg(c"ttl", Kind::String),
    option(c"ID", c"lease_id", Kind::String),
    COST,
    AT,
];
pub(super) const RL_ACQUIRE: Command = Command {
    name: c"RL.ACQUIRE",
    flags: c"write deny-oom",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Takes cost (default 1) of limit concurrency slots for ttl under a lease id, made up unless given; the same id again renews its lease.",
        complexity: c"O(1) amortised for a new lease; O(N) to renew one, where N is the number of leases held on the key",
        since: c"0.3.0",
        arity: -4,
        keys: Keys::One(Access::Update),
        args: ACQUIRE_ARGS,
    },
};

/// `RL.ACQUIRE key limit ttl [ID lease_id] [COST n] [AT unix_ms]`: the five
/// integers of a decision, then the lease id (nil when denied).
pub(super) fn acquire_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.ACQUIRE").into());
    };
    let mut bytes: SmallVec<[&[u8]; 8]> = SmallVec::new();
    bytes.extend(rest.iter().map(|a| a.bytes()));
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
    let source = Source::Client { wall };
    let v = lease_one(ctx, *name, &mut key, what, id, now, source)?;
    let Some(d) = v.decision else {
        return Err(Error::Bug("an acquire was not decided"));
    };
    stats::count_lease(d.allowed);
    if !d.allowed {
        ctx.notify(DENIED_EVENT, *name);
        top::denied(ctx, *name, None, d.at, false);
    }
    reply::lease(ctx, &d, v.next.is_some().then_some(id));
    Ok(())
}

/// `RL.RELEASE key lease_id [AT ms]` and `RL.RENEW key lease_id ttl [AT
/// ms]`: 1 if the lease was held (and is now freed, or extended), 0
/// otherwise. Inlined into each, so that the op is known where it is
/// decided.
#[inline(always)]
fn end_or_extend_command(
    ctx: Ctx,
    name: RStr,
    what: LeaseAction,
    id: &[u8],
    at: Option<Instant>,
) -> Outcome {
    let wall = clock::wall(ctx);
    let now = at.unwrap_or(wall);
    let mut key = ctx.open_write(name)?;
    let source = Source::Client { wall };
    let v = lease_one(ctx, name, &mut key, what, id, now, source)?;
    let done = v.next.is_some();
    if done {
        stats::count_lease_end(what);
    }
    ctx.reply_i64(done as i64);
    Ok(())
}

const RELEASE_ARGS: &[Arg] = &[KEY, arg(c"lease_id", Kind::String), AT];
pub(super) const RL_RELEASE: Command = Command {
    name: c"RL.RELEASE",
    flags: c"write",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Frees a lease taken by RL.ACQUIRE: 1 if it was held, 0 otherwise.",
        complexity: c"O(N) where N is the number of leases held on the key",
        since: c"0.3.0",
        arity: -3,
        keys: Keys::One(Access::Update),
        args: RELEASE_ARGS,
    },
};

pub(super) fn release_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.RELEASE").into());
    };
    let mut bytes: SmallVec<[&[u8]; 3]> = SmallVec::new();
    bytes.extend(rest.iter().map(|a| a.bytes()));
    let (id, at) = args::release_request(&bytes)?;
    end_or_extend_command(ctx, *name, LeaseAction::Release, id, at)
}

const RENEW_ARGS: &[Arg] = &[
    KEY,
    arg(c"lease_id", Kind::String),
    arg(c"ttl", Kind::String),
    AT,
];
pub(super) const RL_RENEW: Command = Command {
    name: c"RL.RENEW",
    flags: c"write",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Moves a held lease's expiry to ttl from now: 1 if it was held, 0 otherwise.",
        complexity: c"O(N) where N is the number of leases held on the key",
        since: c"0.3.0",
        arity: -4,
        keys: Keys::One(Access::Update),
        args: RENEW_ARGS,
    },
};

pub(super) fn renew_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, rest @ ..] = args else {
        return Err(args::arity_error("RL.RENEW").into());
    };
    let mut bytes: SmallVec<[&[u8]; 4]> = SmallVec::new();
    bytes.extend(rest.iter().map(|a| a.bytes()));
    let (id, ttl, at) = args::renew_request(&bytes)?;
    let what = LeaseAction::Renew {
        ttl: ttl.duration(),
    };
    end_or_extend_command(ctx, *name, what, id, at)
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
