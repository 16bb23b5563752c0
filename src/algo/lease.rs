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
//! Like the other limiters, an op takes two steps, "decide on a snapshot,
//! then install": [`LeaseState::evaluate`] decides on a borrowed state and
//! answers what the caller is told plus a [`LeaseChange`] (what installing
//! writes, the slot it found included, so nothing is searched twice), and
//! [`LeaseState::apply`] installs that change, which the caller does only
//! when there is one. A denial, a peek, or a release or renewal of an id not
//! held has none, and leaves the state exactly as it was, dead leases
//! included, since the module replicates only writes; a replayed op is
//! checked on the snapshot before anything changes.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{vec_deque, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;

use super::{to_u64, Count, Decision, Duration, Instant, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US};

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

/// The slot of a lease gone from the middle: no units (no lease has none),
/// no id (an empty box allocates nothing), and the expiry it had, so the
/// slots stay sorted for the binary searches.
fn hole(expires: Instant) -> Lease {
    Lease {
        id: Box::default(),
        units: 0,
        expires,
    }
}

fn is_hole(l: &Lease) -> bool {
    l.units == 0
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

/// The hasher of `ids`, whose keys are already hashes.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64s are hashed with it; this keeps it total anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// An id's hash, keyed once per process (clients choose ids, so the keys
/// must be unknown to them), the same for every state.
fn id_hash(id: &[u8]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(id)
}

/// An id's hash as `ids` keys it: two halves, so that an [`Entry`] takes 12
/// bytes rather than the 16 a u64 beside a u32 would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key([u32; 2]);

impl Key {
    fn of(id: &[u8]) -> Key {
        let h = id_hash(id);
        Key([h as u32, (h >> 32) as u32])
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

/// A lease's entry in `ids`: its id's hash, and the low 32 bits of its
/// expiry, which with the expiries stored give the expiry back.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    low: u32,
}

impl Entry {
    fn of(id: &[u8], expires: Instant) -> Entry {
        Entry {
            key: Key::of(id),
            low: expires.as_micros() as u32,
        }
    }
}

/// Entries are the same entry by their key alone (and hash as it).
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Entry {}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl Borrow<Key> for Entry {
    fn borrow(&self) -> &Key {
        &self.key
    }
}

/// Spans of 2^32 µs [`LeaseState::locate`] searches before it scans.
const SPANS_SEARCHED: usize = 8;

/// The leases of a state in expiry order, holes skipped.
pub struct Leases<'a> {
    slots: vec_deque::Iter<'a, Lease>,
    /// Leases not yet yielded.
    left: usize,
}

impl<'a> Iterator for Leases<'a> {
    type Item = &'a Lease;

    fn next(&mut self) -> Option<&'a Lease> {
        let l = self.slots.find(|l| !is_hole(l))?;
        self.left = self.left.saturating_sub(1);
        Some(l)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Leases<'_> {}

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

    /// The leases stored, in expiry order (dead ones not yet reclaimed too).
    pub fn leases(&self) -> Leases<'_> {
        Leases {
            slots: self.leases.iter(),
            left: self.leases.len().saturating_sub(self.holes),
        }
    }

    /// Whether no lease is stored.
    pub fn is_empty(&self) -> bool {
        // Holes are never first or last, so never alone.
        self.leases.is_empty()
    }

    /// Whether a stored lease (live or not yet reclaimed) is named `id`:
    /// O(1) for an id not held.
    pub fn holds(&self, id: &[u8]) -> bool {
        self.locate(id).is_some()
    }

    fn index_ids(&mut self) {
        self.ids.clear();
        self.ids
            .reserve(self.leases.len().saturating_sub(self.holes));
        self.shared = false;
        for l in self.leases.iter().filter(|l| !is_hole(l)) {
            self.shared |= !self.ids.insert(Entry::of(&l.id, l.expires));
        }
    }

    /// The instant a call at `now` is decided at: never before the latest
    /// time seen, and never past [`MAX_TIME_US`], so that every expiry stays
    /// within the bounds `is_valid` checks.
    fn clock(&self, now: Instant) -> Instant {
        now.min(Instant::MAX).max(self.last)
    }

    /// How many leading slots are dead at `now` (they are a prefix, since
    /// the slots are sorted by expiry).
    fn dead(&self, now: Instant) -> usize {
        self.leases.partition_point(|l| l.expires <= now)
    }

    /// The leases live at `now` (already a clock reading): how many, the
    /// units they hold, and the first one's index. O(1) but for the dead
    /// slots, which the next write reclaims.
    fn live(&self, now: Instant) -> Live<'_> {
        let first = self.dead(now);
        let (mut dead_units, mut dead_holes) = (0u128, 0usize);
        for l in self.leases.range(..first) {
            dead_units += u128::from(l.units);
            dead_holes += usize::from(is_hole(l));
        }
        let live_holes = self.holes.saturating_sub(dead_holes);
        Live {
            leases: &self.leases,
            first,
            count: (self.leases.len() - first).saturating_sub(live_holes),
            units: self.units.saturating_sub(dead_units),
        }
    }

    /// Index of the stored lease (live or dead) named `id`, if any. Its
    /// expiry is one ending in the low bits `ids` holds: one per span of
    /// 2^32 µs, tried from the first span any lease expires in, each by a
    /// binary search then a pass over the leases that expire at that same
    /// instant; leases spread over more spans than [`SPANS_SEARCHED`] (ttls
    /// of hours and days mixed) are scanned.
    fn locate(&self, id: &[u8]) -> Option<usize> {
        let named = |l: &Lease| !is_hole(l) && *l.id == *id;
        let low = u64::from(self.ids.get(&Key::of(id))?.low);
        if self.shared {
            return self.leases.iter().position(named);
        }
        let last = self.leases.back()?.expires.as_micros();
        let mut span = self.leases.front()?.expires.as_micros() >> 32;
        for _ in 0..SPANS_SEARCHED {
            let expires = Instant::from_micros(span.checked_mul(1 << 32)? | low);
            if expires.as_micros() > last {
                return None;
            }
            let first = self.leases.partition_point(|l| l.expires < expires);
            let found = self
                .leases
                .range(first..)
                .take_while(|l| l.expires == expires)
                .position(named);
            if let Some(i) = found {
                return Some(first + i);
            }
            // On to the next span any lease expires in.
            let end = span.checked_add(1)?.checked_mul(1 << 32)?;
            let next = self.leases.partition_point(|l| l.expires.as_micros() < end);
            span = self.leases.get(next)?.expires.as_micros() >> 32;
        }
        self.leases.iter().position(named)
    }

    /// Index of the live lease named `id`, if any.
    fn find(&self, id: &[u8], now: Instant) -> Option<usize> {
        self.locate(id)
            .filter(|&i| self.leases.get(i).is_some_and(|l| l.expires > now))
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
    pub fn evaluate_acquire<'id>(
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
                self.reserve_one(limit);
                self.shared |= !self.ids.insert(Entry::of(id, expires));
                self.units += u128::from(units);
                self.place(Lease {
                    id: id.into(),
                    units,
                    expires,
                });
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
                if let Some(gone) = self.detach(slot) {
                    self.forget(&gone);
                }
                self.reclaim_at(now);
                self.last = now;
            }
        }
    }

    /// Whether installing `change` leaves no lease (the key goes with its
    /// last lease), decided on the snapshot `change` was decided on: only
    /// the end of the one live lease does.
    #[inline]
    pub fn empties(&self, change: &LeaseChange) -> bool {
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

    /// Whether the state satisfies the invariants the methods keep; decoded
    /// data must pass this before it is used. Beyond the bounds of each
    /// field: ids unique, leases sorted by expiry (the methods rely on it),
    /// and at most [`MAX_COUNT`] units in all (every grant fitted under a
    /// limit, and the dead leases were reclaimed first). A decoded state has
    /// no holes, so a lease of no units is refused as one. O(n log n), for
    /// decoding only.
    pub fn is_valid(&self) -> bool {
        let max_expiry = Instant::MAX + Duration::from_micros(MAX_DURATION_US);
        let fields = self.leases().all(|l| {
            Lease::is_valid_id(&l.id)
                && (1..=MAX_COUNT).contains(&l.units)
                && l.expires <= max_expiry
        });
        let holes = self.leases.iter().filter(|l| is_hole(l)).count();
        let ends =
            !self.leases.front().is_some_and(is_hole) && !self.leases.back().is_some_and(is_hole);
        if !(fields
            && holes == self.holes
            && ends
            && self.leases().len() as u64 <= MAX_LEASES
            && self.last.as_micros() <= MAX_TIME_US
            && total(self.leases()) <= MAX_COUNT.into()
            && self.leases.iter().is_sorted_by_key(|l| l.expires))
        {
            return false;
        }
        let mut ids: Vec<&[u8]> = self.leases().map(|l| &*l.id).collect();
        ids.sort_unstable();
        ids.windows(2).all(|w| w[0] != w[1])
    }

    /// Bytes owned by the state (for `MEMORY USAGE`): the slots, the ids,
    /// and the id index (an entry and a control byte per slot).
    pub fn memory(&self) -> usize {
        size_of::<LeaseState>()
            + self.leases.capacity() * size_of::<Lease>()
            + self.leases.iter().map(|l| l.id.len()).sum::<usize>()
            + self.ids.capacity() * (size_of::<Entry>() + 1)
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

    /// Drops the leases dead at `now` (a clock reading), from the front,
    /// and the holes they uncover; returns how many leases.
    fn reclaim_at(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(front) = self.leases.front() {
            let hole = is_hole(front);
            if !hole && front.expires > now {
                break;
            }
            let Some(gone) = self.leases.pop_front() else {
                break;
            };
            if hole {
                self.holes = self.holes.saturating_sub(1);
            } else {
                self.forget(&gone);
                n += 1;
            }
        }
        if self.holes * 2 > self.leases.len() {
            self.squeeze();
        }
        n
    }

    /// Takes the lease at `i` out of the slots, units and index untouched:
    /// popped from an end (with the holes it uncovers), or left as a hole.
    fn detach(&mut self, i: usize) -> Option<Lease> {
        let last = self.leases.len().checked_sub(1)?;
        let gone = if i == last {
            self.leases.pop_back()
        } else if i == 0 {
            self.leases.pop_front()
        } else {
            let slot = self.leases.get_mut(i)?;
            let expires = slot.expires;
            self.holes += 1;
            Some(std::mem::replace(slot, hole(expires)))
        };
        while self.leases.back().is_some_and(is_hole) {
            self.leases.pop_back();
            self.holes = self.holes.saturating_sub(1);
        }
        while self.leases.front().is_some_and(is_hole) {
            self.leases.pop_front();
            self.holes = self.holes.saturating_sub(1);
        }
        if self.holes * 2 > self.leases.len() {
            self.squeeze();
        }
        gone
    }

    /// Drops every hole, keeping the leases' order: O(n), paid for by the
    /// n/8 (or n/2) leases that went since the holes were last squeezed out.
    fn squeeze(&mut self) {
        if self.holes > 0 {
            self.leases.retain(|l| !is_hole(l));
            self.holes = 0;
        }
    }

    /// Takes a lease that left `leases` out of the units and the id index.
    fn forget(&mut self, gone: &Lease) {
        self.units = self.units.saturating_sub(u128::from(gone.units));
        if self.shared {
            self.index_ids();
        } else {
            self.ids.remove(&Key::of(&gone.id));
        }
    }

    /// Renews the live lease at `i` to `expires`: takes it out, reclaims
    /// the dead ones (all before it), then puts it at its new place in
    /// expiry order.
    fn extend(&mut self, i: usize, expires: Instant, now: Instant) {
        let Some(mut lease) = self.detach(i) else {
            return;
        };
        self.reclaim_at(now);
        lease.expires = expires;
        let entry = Entry::of(&lease.id, lease.expires);
        self.place(lease);
        if self.shared {
            self.index_ids();
        } else {
            self.ids.replace(entry);
        }
        self.last = now;
    }

    /// Puts a lease after every lease expiring no later: at the back for a
    /// lease of the longest ttl yet, in O(1); else into the hole just before
    /// its place if there is one, or shifting the shorter side.
    fn place(&mut self, lease: Lease) {
        if self
            .leases
            .back()
            .is_none_or(|l| l.expires <= lease.expires)
        {
            self.leases.push_back(lease);
            return;
        }
        let at = self.leases.partition_point(|l| l.expires <= lease.expires);
        if let Some(slot) = at.checked_sub(1).and_then(|i| self.leases.get_mut(i)) {
            if is_hole(slot) {
                *slot = lease;
                self.holes = self.holes.saturating_sub(1);
                return;
            }
        }
        self.leases.insert(at, lease);
    }

    /// Room for one more lease, growing geometrically but never beyond
    /// `limit` leases (each holds a unit at least, so a granted lease always
    /// fits): a key full at `limit` costs `limit` leases, not up to twice.
    /// Holes a full buffer holds are squeezed out when they are an eighth of
    /// it, and make it grow by an eighth when fewer.
    fn reserve_one(&mut self, limit: Count) {
        let (len, cap) = (self.leases.len(), self.leases.capacity());
        if len < cap {
            return;
        }
        if self.holes > 0 && self.holes * 8 >= len {
            self.squeeze();
            return;
        }
        let cap_limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
        let target = if cap < cap_limit {
            cap.saturating_mul(2).max(4).min(cap_limit)
        } else {
            cap.saturating_add(cap / 8)
        }
        .max(len + 1);
        self.leases.reserve_exact(target - len);
        let indexed = target.saturating_sub(self.holes);
        self.ids.reserve(indexed.saturating_sub(self.ids.len()));
    }
}

/// A ttl as stored: 1 µs to [`MAX_DURATION_US`].
fn clamp_ttl(ttl: Duration) -> Duration {
    Duration::from_micros(ttl.as_micros().clamp(1, MAX_DURATION_US))
}

/// Units held by `leases`. At most [`MAX_LEASES`] * `u64::MAX`, far within
/// `u128`, whatever the leases say.
fn total<'a>(leases: impl Iterator<Item = &'a Lease>) -> u128 {
    leases.map(|l| u128::from(l.units)).sum()
}

/// Time from `now` until `last`, the last lease to expire, expires.
fn reset(last: Option<&Lease>, now: Instant) -> Duration {
    last.map_or(Duration::ZERO, |l| l.expires - now)
}

/// The leases live at a clock reading: those of `leases[first..]` that are
/// not holes, `count` of them holding `units`.
struct Live<'a> {
    leases: &'a VecDeque<Lease>,
    first: usize,
    count: usize,
    units: u128,
}

impl Live<'_> {
    fn len(&self) -> usize {
        self.count
    }

    fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.range(self.first..).filter(|l| !is_hole(l))
    }

    fn last(&self) -> Option<&Lease> {
        // Live leases are a suffix: the last stored is the last live one.
        (self.count > 0).then(|| self.leases.back()).flatten()
    }
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
