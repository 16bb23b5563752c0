//! `RL.ACQUIRE` and `RL.RENEW`'s arguments, and what a lease id may be:
//! the lease commands bound memory per key, so their limit is checked
//! against `ratelimit.lease-max` here.

use crate::algo::{Count, Instant, Period};

use super::{arity_error, duration, options, positive, ArgError, Opt};

/// Default and hard ceiling of `RL.ACQUIRE`'s limit: each lease costs
/// about 50 bytes, so this bounds one key at about 500 KB by default.
pub const DEFAULT_LEASE_MAX: u64 = 10_000;

/// `RL.ACQUIRE key limit ttl [ID lease_id] [COST n] [AT unix_ms]`, once
/// parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquire<'a> {
    pub limit: Count,
    pub ttl: Period,
    /// `ID lease_id`; the server makes one up without it.
    pub id: Option<&'a [u8]>,
    /// Slots the lease takes (default 1); 0 asks without taking.
    pub cost: u64,
    pub at: Option<Instant>,
}

/// A lease id: 1 to 64 bytes, any bytes.
pub(crate) fn lease_id(arg: &[u8]) -> Result<&[u8], ArgError> {
    if crate::algo::Lease::is_valid_id(arg) {
        Ok(arg)
    } else {
        Err(ArgError::new(format!(
            "lease_id must be 1 to {} bytes",
            crate::algo::MAX_LEASE_ID_LEN
        )))
    }
}

/// Parses what follows the key of `RL.ACQUIRE`.
pub fn acquire_request<'a>(args: &[&'a [u8]], lease_max: u64) -> Result<Acquire<'a>, ArgError> {
    let [limit, ttl, rest @ ..] = args else {
        return Err(arity_error("RL.ACQUIRE"));
    };
    let limit = positive("limit", limit)?;
    if limit.get() > lease_max {
        return Err(ArgError::new(format!(
            "limit is too large for RL.ACQUIRE (at most {lease_max}, see ratelimit.lease-max)"
        )));
    }
    let ttl = duration("ttl", ttl)?;
    let opts = options(rest, &[Opt::Id, Opt::Cost, Opt::At])?;
    Ok(Acquire {
        limit,
        ttl,
        id: opts.id,
        cost: opts.cost.unwrap_or(1),
        at: opts.at,
    })
}

/// `RL.RENEW key lease_id ttl [AT unix_ms]`: parses what follows the key.
/// `AT` is the call's time, as for `RL.ACQUIRE` (the new expiry is `ttl`
/// after it), so tests and replays on a clock of their own renew on it.
pub fn renew_request<'a>(
    args: &[&'a [u8]],
) -> Result<(&'a [u8], Period, Option<Instant>), ArgError> {
    let [id, ttl, rest @ ..] = args else {
        return Err(arity_error("RL.RENEW"));
    };
    let (id, ttl) = (lease_id(id)?, duration("ttl", ttl)?);
    Ok((id, ttl, options(rest, &[Opt::At])?.at))
}

/// `RL.RELEASE key lease_id [AT unix_ms]`: parses what follows the key.
/// `AT` is the call's time: a lease whose expiry is at or before it is no
/// longer held.
pub fn release_request<'a>(args: &[&'a [u8]]) -> Result<(&'a [u8], Option<Instant>), ArgError> {
    let [id, rest @ ..] = args else {
        return Err(arity_error("RL.RELEASE"));
    };
    let id = lease_id(id)?;
    Ok((id, options(rest, &[Opt::At])?.at))
}
