//! Concurrency leases: a counting semaphore whose slots expire.
//!
//! A worker acquires `units` of a key's `limit` under a lease id it chooses
//! and holds them until it releases the lease or the lease's time to live
//! runs out, so a worker that crashes gives its slots back by itself. A lease
//! whose `expires` is at or before `now` is dead: it holds nothing, and is
//! dropped by the next call that writes the state.
//!
//! The leases are kept sorted by expiry (ties in the order they were placed),
//! in a ring buffer, so the dead ones are a prefix reclaimed from the front,
//! the last one is the key's expiry, a lease of the usual ttl is placed at
//! the back, and the wait for `n` units to come free is one pass over a
//! prefix. Beside them the state keeps the units they hold and an index from
//! their ids' keyed hashes to the low 32 bits of their expiries (12 bytes an
//! entry): an acquire under an id not held (every server-made id) needs no
//! scan, and a release or a renewal finds its lease by a binary search on its
//! expiry (then a pass over the leases that expire at the same microsecond),
//! one search per span of 2^32 µs (71 minutes) the expiries cover, a few at
//! most before it falls back to a scan. A lease that leaves from the middle
//! leaves a hole in its slot, so nothing shifts: holes hold nothing, are
//! never first or last, are skipped by everything that reads the leases, and
//! are squeezed out once they are an eighth of the slots when the buffer is
//! full, or half of them at any time (each hole is made once and squeezed
//! once, so that is O(1) amortised). Every call then costs the same with
//! 10,000 leases held as with none (amortised: each dead lease is reclaimed
//! once); a peek or a denial never allocates. The number of leases is at
//! most the limit (each holds at least one unit), which the caller bounds by
//! the `lease-max` config.
//!
//! This file decides; how the leases and the index are stored, with the
//! holes, is in `slots.rs`, which keeps the state's invariants.
//!
//! Like the other limiters, an op takes two steps, "decide on a snapshot,
//! then install": [`LeaseState::evaluate`] decides on a borrowed state and
//! answers what the caller is told plus a [`LeaseChange`] (what installing
//! writes, the slot it found included, so nothing is searched twice), and
//! [`LeaseState::apply`] installs that change, which the caller does only
//! when there is one. A denial, a peek, or a release or renewal of an id not
//! held has none, and leaves the state exactly as it was, dead leases
//! included, since the module replicates only writes; a replayed op is
//! checked on the snapshot before anything changes.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use super::{to_u64, Count, Decision, Duration, Instant, MAX_DURATION_US};

mod slots;

pub use slots::Leases;
use slots::{is_hole, total, Entry, Live, Prehashed};

/// Longest lease id accepted (bytes; any bytes, binary-safe).
pub const MAX_LEASE_ID_LEN: usize = 64;

/// Hard ceiling of leases one key may hold (the ceiling of the `lease-max`
/// config), bounds decoding.
pub const MAX_LEASES: u64 = 1_000_000;

/// One holder's share of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: Box<[u8]>,
    /// At least 1.
    pub units: u64,
    /// The first instant the lease no longer holds its units.
    pub expires: Instant,
}

impl Lease {
    /// Whether `id` may name a lease: 1 to [`MAX_LEASE_ID_LEN`] bytes.
    pub(crate) fn is_valid_id(id: &[u8]) -> bool {
        (1..=MAX_LEASE_ID_LEN).contains(&id.len())
    }
}

#[derive(Clone, Debug)]
pub struct LeaseState {
    /// The limit of the last allowed acquire (what RL.INFO shows).
    pub limit: Count,
    /// Latest time this state has seen: a clock that goes back (AT in the
    /// past) is treated as this time, as the other limiters do.
    pub last: Instant,
    /// Live and not-yet-reclaimed leases, sorted by `expires`; leases that
    /// expire together are in the order they were acquired or renewed.
    /// Among them, `holes` holes ([`hole`]), never first nor last.
    leases: VecDeque<Lease>,
    holes: usize,
    /// Units `leases` hold, dead ones included.
    units: u128,
    /// An entry for every lease in `leases`, by its id's keyed hash: an id
    /// whose hash is missing is not held, and a held one is found by its
    /// expiry's low bits.
    ids: HashSet<Entry, BuildHasherDefault<Prehashed>>,
    /// Two stored ids share a hash (never seen with 64-bit SipHash; handled
    /// all the same): `ids` then keeps one entry for both, so ids are
    /// looked for by a scan, and `ids` is rebuilt when a lease goes.
    shared: bool,
}

/// Equal leases, whatever the holes and indexes beside them.
impl PartialEq for LeaseState {
    fn eq(&self, other: &Self) -> bool {
        (self.limit, self.last) == (other.limit, other.last) && self.leases().eq(other.leases())
    }
}

impl Eq for LeaseState {}

/// What `acquire` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub decision: Decision,
    /// A new lease was placed.
    pub granted: bool,
    /// The id already held a live lease, whose expiry was pushed back.
    pub renewed: bool,
}

impl Acquired {
    /// What an acquire that decided `decision` and would install `next`
    /// did, once installed.
    fn of(decision: Decision, next: Option<&LeaseChange>) -> Acquired {
        Acquired {
            decision,
            granted: matches!(next, Some(LeaseChange::Place { .. })),
            renewed: matches!(next, Some(LeaseChange::Extend { .. })),
        }
    }
}

/// What a lease command asks of a key, as replication carries it (the
/// codec encodes it in `RL.APPLY`'s lease ops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// `RL.ACQUIRE`: a lease taken, or renewed when its id holds one.
    Acquire {
        limit: Count,
        units: u64,
        ttl: Duration,
    },
    /// `RL.RELEASE`.
    Release,
    /// `RL.RENEW`.
    Renew { ttl: Duration },
}

/// What installing a lease op writes, as [`LeaseState::evaluate`] decided
/// it on a snapshot: valid on that same state only, unchanged since (a slot
/// is an index into its buffer). `now` is the clock reading the op was
/// decided at (never before the state's latest time): the leases dead then
/// are reclaimed, and it becomes the latest time seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseChange<'id> {
    /// A new lease `id` of `units`, granted under `limit`.
    Place {
        id: &'id [u8],
        units: u64,
        expires: Instant,
        limit: Count,
        now: Instant,
    },
    /// The live lease in `slot` now expires at `expires`; renewed by an
    /// acquire under `limit`, which becomes the state's, or by `RL.RENEW`
    /// (`None`: the limit stays).
    Extend {
        slot: usize,
        expires: Instant,
        limit: Option<Count>,
        now: Instant,
    },
    /// The live lease in `slot` ends.
    End { slot: usize, now: Instant },
}

/// What a lease op decided on a snapshot, before anything changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseVerdict<'id> {
    /// An acquire's answer; `None` for a release or a renewal, which answer
    /// only whether they write.
    pub decision: Option<Decision>,
    /// What installing the op writes; `None` when it changes nothing (a
    /// denial, a peek, an id that holds no live lease).
    pub next: Option<LeaseChange<'id>>,
}

impl LeaseState {
    pub fn new(limit: Count) -> Self {
        Self::from_parts(limit, Instant::EPOCH, Vec::new())
    }

    /// A state holding `leases` (sorted by expiry, for a valid state; see
    /// [`is_valid`](Self::is_valid)), as decoded.
    pub fn from_parts(limit: Count, last: Instant, leases: Vec<Lease>) -> Self {
        let mut s = LeaseState {
            limit,
            last,
            leases: leases.into(),
            holes: 0,
            units: 0,
            ids: HashSet::default(),
            shared: false,
        };
        s.units = total(s.leases.iter());
        s.index_ids();
        s
    }

    /// The instant a call at `now` is decided at: never before the latest
    /// time seen, and never past [`MAX_TIME_US`], so that every expiry stays
    /// within the bounds `is_valid` checks.
    fn clock(&self, now: Instant) -> Instant {
        now.min(Instant::MAX).max(self.last)
    }

    /// Decides `what` on `id` at `now` on this state, changing nothing:
    /// the answer, and what installing it writes (see [`apply`](Self::apply)).
    /// An acquire is decided as [`evaluate_acquire`](Self::evaluate_acquire);
    /// a release or a renewal writes when `id` names a live lease.
    #[inline(always)]
    pub fn evaluate<'id>(
        &self,
        what: LeaseAction,
        id: &'id [u8],
        now: Instant,
    ) -> LeaseVerdict<'id> {
        let (decision, next) = match what {
            LeaseAction::Acquire { limit, units, ttl } => {
                let (d, next) = self.evaluate_acquire(limit, units, ttl, id, now);
                (Some(d), next)
            }
            LeaseAction::Release => (None, self.evaluate_release(id, now)),
            LeaseAction::Renew { ttl } => (None, self.evaluate_renew(id, ttl, now)),
        };
        LeaseVerdict { decision, next }
    }

    /// Decides an acquire of `units` of `limit` for `ttl` under `id`, or the
    /// renewal of the live lease `id` already names (its units unchanged,
    /// whatever `units` says), changing nothing: the decision, as the state
    /// will stand once the change is installed, and the change.
    ///
    /// `units == 0` is a peek: the answer of [`peek`](Self::peek), nothing
    /// renewed or written. An id the parser should have refused (empty or
    /// longer than [`MAX_LEASE_ID_LEN`]) is denied for good. A `ttl` is read
    /// as at least 1 µs (a granted lease is live when granted) and at most
    /// [`MAX_DURATION_US`].
    pub(crate) fn evaluate_acquire<'id>(
        &self,
        limit: Count,
        units: u64,
        ttl: Duration,
        id: &'id [u8],
        now: Instant,
    ) -> (Decision, Option<LeaseChange<'id>>) {
        let now = self.clock(now);
        if units == 0 {
            return (self.peek(limit, 0, now), None);
        }
        if !Lease::is_valid_id(id) {
            let d = Decision {
                allowed: false,
                retry_after: None,
                ..self.peek(limit, 0, now)
            };
            return (d, None);
        }
        let expires = now + clamp_ttl(ttl);
        if let Some(slot) = self.find(id, now) {
            let d = self.answer_renewed(slot, limit, expires, now);
            let next = LeaseChange::Extend {
                slot,
                expires,
                limit: Some(limit),
                now,
            };
            return (d, Some(next));
        }
        let d = answer(&self.live(now), limit, units, now);
        if !d.allowed {
            return (d, None);
        }
        // The new lease may be the last to expire; the leases dead now,
        // which go when it is placed, all expire before it.
        let last = self
            .leases
            .back()
            .map_or(expires, |l| l.expires.max(expires));
        let d = Decision {
            reset_after: last - now,
            ..d
        };
        let next = LeaseChange::Place {
            id,
            units,
            expires,
            limit,
            now,
        };
        (d, Some(next))
    }

    /// Decides the release of the live lease `id`: its slot, or `None` (and
    /// nothing to write) if `id` holds no live lease.
    #[inline(always)]
    fn evaluate_release<'id>(&self, id: &[u8], now: Instant) -> Option<LeaseChange<'id>> {
        let now = self.clock(now);
        let slot = self.find(id, now)?;
        Some(LeaseChange::End { slot, now })
    }

    /// Decides pushing the expiry of the live lease `id` to `now + ttl`
    /// (`ttl` read as in [`evaluate_acquire`](Self::evaluate_acquire)), or
    /// `None` if `id` holds no live lease.
    #[inline(always)]
    fn evaluate_renew<'id>(
        &self,
        id: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Option<LeaseChange<'id>> {
        let now = self.clock(now);
        let slot = self.find(id, now)?;
        Some(LeaseChange::Extend {
            slot,
            expires: now + clamp_ttl(ttl),
            limit: None,
            now,
        })
    }

    /// Installs what [`evaluate`](Self::evaluate) decided on this very
    /// state: places, moves or ends the lease, and reclaims the leases dead
    /// at the change's time on the way.
    pub fn apply(&mut self, change: &LeaseChange) {
        match *change {
            LeaseChange::Place {
                id,
                units,
                expires,
                limit,
                now,
            } => {
                self.reclaim_at(now);
                self.add(id, units, expires, limit);
                self.limit = limit;
                self.last = now;
            }
            LeaseChange::Extend {
                slot,
                expires,
                limit,
                now,
            } => {
                self.extend(slot, expires, now);
                if let Some(limit) = limit {
                    self.limit = limit;
                }
            }
            LeaseChange::End { slot, now } => {
                self.remove(slot);
                self.reclaim_at(now);
                self.last = now;
            }
        }
    }

    /// Whether installing `change` leaves no lease (the key goes with its
    /// last lease), decided on the snapshot `change` was decided on: only
    /// the end of the one live lease does.
    #[inline]
    pub(crate) fn empties(&self, change: &LeaseChange) -> bool {
        match *change {
            LeaseChange::End { now, .. } => self.live(now).count == 1,
            LeaseChange::Place { .. } | LeaseChange::Extend { .. } => false,
        }
    }

    /// Acquires (or renews): [`evaluate_acquire`](Self::evaluate_acquire),
    /// then [`apply`](Self::apply) when it writes, as the module does.
    pub fn acquire(
        &mut self,
        limit: Count,
        units: u64,
        ttl: Duration,
        id: &[u8],
        now: Instant,
    ) -> Acquired {
        let (decision, next) = self.evaluate_acquire(limit, units, ttl, id, now);
        if let Some(next) = &next {
            self.apply(next);
        }
        Acquired::of(decision, next.as_ref())
    }

    /// What `acquire` would answer for `units` under an id not held, changing
    /// nothing (for `RL.INFO` and `COST 0`). `units == 0` asks whether the
    /// leases held fit under `limit`. Its `reset_after` is that of the leases
    /// held: a peek has no ttl for the lease it does not place.
    pub fn peek(&self, limit: Count, units: u64, now: Instant) -> Decision {
        let now = self.clock(now);
        answer(&self.live(now), limit, units, now)
    }

    /// Ends the live lease `id`: true if it was held and is now gone (dead
    /// leases are reclaimed with it), false and no change if `id` holds no
    /// live lease. [`evaluate`](Self::evaluate), then [`apply`](Self::apply).
    pub fn release(&mut self, id: &[u8], now: Instant) -> bool {
        self.evaluate_release(id, now)
            .map(|next| self.apply(&next))
            .is_some()
    }

    /// Pushes the expiry of the live lease `id` to `now + ttl`: true if it
    /// was held, false and no change otherwise. Dead leases are reclaimed on
    /// the way. [`evaluate`](Self::evaluate), then [`apply`](Self::apply).
    pub fn renew(&mut self, id: &[u8], ttl: Duration, now: Instant) -> bool {
        self.evaluate_renew(id, ttl, now)
            .map(|next| self.apply(&next))
            .is_some()
    }

    /// Drops the leases dead at `now`; returns how many.
    pub fn reclaim(&mut self, now: Instant) -> usize {
        let now = self.clock(now);
        let n = self.reclaim_at(now);
        if n > 0 {
            self.last = now;
        }
        n
    }

    /// How many leases are live at `now`.
    pub(crate) fn live_leases(&self, now: Instant) -> usize {
        self.live(self.clock(now)).count
    }

    /// Units held by the leases live at `now`.
    pub fn held(&self, now: Instant) -> u64 {
        to_u64(self.live(self.clock(now)).units)
    }

    /// When the last lease expires (the key's expiry), `None` without leases.
    pub fn empty_at(&self) -> Option<Instant> {
        self.leases.back().map(|l| l.expires)
    }

    /// The answer to an acquire renewing the live lease in `slot` to
    /// `expires`, decided before it is installed: allowed even when a
    /// lowered limit is below what is held. Installing it reclaims the
    /// leases dead at `now`, so what is held then is what is live now, and
    /// the last lease is the renewed one or the last of the others.
    fn answer_renewed(
        &self,
        slot: usize,
        limit: Count,
        expires: Instant,
        now: Instant,
    ) -> Decision {
        let held = self.live(now).units;
        let others = if slot + 1 == self.leases.len() {
            self.leases.range(..slot).rev().find(|l| !is_hole(l))
        } else {
            self.leases.back()
        };
        let last = others.map_or(expires, |l| l.expires.max(expires));
        Decision {
            allowed: true,
            limit: limit.get(),
            remaining: to_u64(limit.wide().saturating_sub(held)),
            retry_after: Some(Duration::ZERO),
            reset_after: last - now,
            at: now,
        }
    }
}

/// A ttl as stored: 1 µs to [`MAX_DURATION_US`].
fn clamp_ttl(ttl: Duration) -> Duration {
    Duration::from_micros(ttl.as_micros().clamp(1, MAX_DURATION_US))
}

/// Time from `now` until `last`, the last lease to expire, expires.
fn reset(last: Option<&Lease>, now: Instant) -> Duration {
    last.map_or(Duration::ZERO, |l| l.expires - now)
}

/// The answer to `units` more under `limit`, given the leases `live` at
/// `now`, before anything is written. A new lease (`units > 0`) also needs
/// a slot under [`MAX_LEASES`]; the caller's `lease-max` bounds the limit
/// below it, so in practice only units count.
fn answer(live: &Live, limit: Count, units: u64, now: Instant) -> Decision {
    let cap = limit.wide();
    let held = live.units;
    let want = u128::from(units);
    let slots = units == 0 || (live.len() as u64) < MAX_LEASES;
    let allowed = want <= cap && held + want <= cap && slots;
    let after = if allowed { held + want } else { held };
    let retry_after = if allowed {
        Some(Duration::ZERO)
    } else if want > cap {
        None
    } else {
        // The units that must come free; the longer of that wait and the
        // wait for one slot (the earliest expiry) when slots are short.
        let need = (held + want).saturating_sub(cap);
        let units_wait = wait_for(live, need, now);
        let slot_wait = if slots {
            Duration::ZERO
        } else {
            wait_for(live, 1, now)
        };
        Some(units_wait.max(slot_wait))
    };
    Decision {
        allowed,
        limit: limit.get(),
        // A lowered limit may be below what is held.
        remaining: to_u64(cap.saturating_sub(after)),
        retry_after,
        reset_after: reset(live.last(), now),
        at: now,
    }
}

/// Time from `now` until leases holding `need` units have expired, taking
/// them in expiry order. `need` is at most what `live` holds when it is
/// called, so the scan always ends inside `live`.
fn wait_for(live: &Live, need: u128, now: Instant) -> Duration {
    let mut freed = 0u128;
    for l in live.iter() {
        freed += u128::from(l.units);
        if freed >= need {
            return l.expires - now;
        }
    }
    reset(live.last(), now)
}

#[cfg(test)]
mod tests;
