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
mod tests {
    use super::*;
    use crate::algo::testing::{raw, t, Raw};

    const S: u64 = 1_000_000;

    fn c(n: u64) -> Count {
        Count::new(n).unwrap()
    }

    fn d(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    /// A state at `last` holding `(id, units, expires)`, as given (sorted).
    fn state(limit: u64, last: u64, leases: &[(&str, u64, u64)]) -> LeaseState {
        let st = LeaseState::from_parts(
            c(limit),
            t(last),
            leases
                .iter()
                .map(|&(id, units, expires)| Lease {
                    id: id.as_bytes().into(),
                    units,
                    expires: t(expires),
                })
                .collect(),
        );
        assert!(st.is_valid());
        st
    }

    fn ids(st: &LeaseState) -> Vec<(&str, u64, u64)> {
        st.leases()
            .map(|l| {
                let id = std::str::from_utf8(&l.id).unwrap();
                (id, l.units, l.expires.as_micros())
            })
            .collect()
    }

    /// (now, limit, id, units, ttl, allowed, remaining, retry_after,
    /// reset_after); a row's `changed` must be its `allowed`.
    type Row = (
        u64,
        u64,
        &'static str,
        u64,
        u64,
        bool,
        u64,
        Option<u64>,
        u64,
    );

    fn run(st: &mut LeaseState, rows: &[Row]) {
        for (i, &(now, limit, id, units, ttl, allowed, remaining, retry, reset)) in
            rows.iter().enumerate()
        {
            let before = st.clone();
            let a = st.acquire(c(limit), units, d(ttl), id.as_bytes(), t(now));
            let changed = *st != before;
            assert_eq!(
                raw(&a.decision, changed),
                Raw {
                    allowed,
                    limit,
                    remaining,
                    retry_after: retry,
                    reset_after: reset,
                    changed: allowed,
                },
                "row {i}: now={now} id={id} units={units}"
            );
            assert_eq!(a.decision.allowed, a.granted || a.renewed, "row {i}");
            assert!(st.is_valid(), "row {i}");
        }
    }

    #[test]
    fn acquires_up_to_the_limit_then_waits_for_the_earliest_expiry() {
        let mut st = LeaseState::new(c(3));
        run(
            &mut st,
            &[
                (0, 3, "a", 1, 10 * S, true, 2, Some(0), 10 * S),
                (S, 3, "b", 1, 10 * S, true, 1, Some(0), 10 * S),
                (2 * S, 3, "c", 1, 10 * S, true, 0, Some(0), 10 * S),
                (3 * S, 3, "d", 1, 10 * S, false, 0, Some(7 * S), 9 * S),
                (10 * S - 1, 3, "d", 1, 10 * S, false, 0, Some(1), 2 * S + 1),
                // "a" expires exactly at 10 s: its slot is free then.
                (10 * S, 3, "d", 1, 10 * S, true, 0, Some(0), 10 * S),
            ],
        );
        assert_eq!(
            ids(&st),
            [("b", 1, 11 * S), ("c", 1, 12 * S), ("d", 1, 20 * S)]
        );
    }

    #[test]
    fn a_cost_waits_for_enough_units_in_expiry_order() {
        // "b" expires first though acquired second.
        let mut st = LeaseState::new(c(5));
        run(
            &mut st,
            &[
                (0, 5, "a", 2, 10 * S, true, 3, Some(0), 10 * S),
                (S, 5, "b", 2, 5 * S, true, 1, Some(0), 9 * S),
                (2 * S, 5, "c", 1, 20 * S, true, 0, Some(0), 20 * S),
                // 1 unit: "b" at 6 s; 3 units: "b" then "a", at 10 s.
                (3 * S, 5, "x", 1, S, false, 0, Some(3 * S), 19 * S),
                (3 * S, 5, "x", 3, S, false, 0, Some(7 * S), 19 * S),
                (3 * S, 5, "x", 5, S, false, 0, Some(19 * S), 19 * S),
                // More than the limit: never.
                (3 * S, 5, "x", 6, S, false, 0, None, 19 * S),
                (6 * S, 5, "x", 2, S, true, 0, Some(0), 16 * S),
            ],
        );
        assert_eq!(
            ids(&st),
            [("x", 2, 7 * S), ("a", 2, 10 * S), ("c", 1, 22 * S)]
        );
    }

    #[test]
    fn reacquiring_a_held_id_renews_it_and_takes_no_slot() {
        let mut st = LeaseState::new(c(2));
        run(
            &mut st,
            &[
                (0, 2, "a", 1, 10 * S, true, 1, Some(0), 10 * S),
                (5 * S, 2, "a", 1, 10 * S, true, 1, Some(0), 10 * S),
                (6 * S, 2, "b", 1, S, true, 0, Some(0), 9 * S),
                // Full, yet the holder renews; its units stay 1 whatever it
                // asks now, and a shorter ttl moves it forward.
                (6 * S, 2, "a", 2, 2 * S, true, 0, Some(0), 2 * S),
            ],
        );
        assert_eq!(ids(&st), [("b", 1, 7 * S), ("a", 1, 8 * S)]);
        let a = st.acquire(c(2), 1, d(S), b"a", t(6 * S));
        assert!(a.renewed && !a.granted);
        // Expired, the same id is a new lease.
        let a = st.acquire(c(2), 2, d(S), b"b", t(7 * S));
        assert!(a.granted && !a.renewed);
        assert_eq!(ids(&st), [("b", 2, 8 * S)]);
    }

    #[test]
    fn release_and_renew_answer_false_for_unknown_or_expired_ids() {
        // "a" is dead at 10 s but not yet reclaimed.
        let mut st = state(3, 5 * S, &[("a", 1, 10 * S), ("b", 1, 20 * S)]);
        let before = st.clone();
        for now in [10 * S, 15 * S, 3 * S] {
            // A clock gone back reads as `last`, when "a" is still live:
            // only then is it held.
            let held = now < 10 * S;
            assert_eq!(st.clone().release(b"a", t(now)), held, "{now}");
            assert_eq!(st.clone().renew(b"a", d(S), t(now)), held, "{now}");
            assert!(!st.release(b"zz", t(now)));
            assert!(!st.renew(b"zz", d(S), t(now)));
            assert!(!st.release(b"", t(now)));
        }
        assert!(!st.release(b"a", t(10 * S)));
        assert!(!st.renew(b"a", d(S), t(10 * S)));
        assert_eq!(st, before);
        // Past its expiry "b" is gone too.
        assert!(!st.renew(b"b", d(S), t(20 * S)));
        assert_eq!(st, before);
    }

    #[test]
    fn release_and_renew_of_a_held_id() {
        let mut st = state(3, 0, &[("a", 1, 10 * S), ("b", 1, 20 * S)]);
        assert!(st.renew(b"a", d(30 * S), t(S)));
        assert_eq!(ids(&st), [("b", 1, 20 * S), ("a", 1, 31 * S)]);
        assert_eq!(st.last, t(S));
        assert!(st.release(b"a", t(2 * S)));
        assert_eq!(ids(&st), [("b", 1, 20 * S)]);
        assert!(!st.release(b"a", t(2 * S)));
        // A release reclaims the dead leases with it.
        let mut st = state(3, 0, &[("a", 1, 10 * S), ("b", 1, 20 * S)]);
        assert!(st.release(b"b", t(10 * S)));
        assert_eq!((st.leases.len(), st.last), (0, t(10 * S)));
    }

    #[test]
    fn a_denial_changes_nothing() {
        // A dead lease and an old `last`: a denial neither reclaims the one
        // nor moves the other; nor does a peek or a zero-unit acquire.
        let mut st = state(2, S, &[("a", 1, 2 * S), ("b", 2, 9 * S)]);
        let before = st.clone();
        let a = st.acquire(c(2), 1, d(S), b"c", t(3 * S));
        assert_eq!(
            (a.decision.allowed, a.decision.retry_after),
            (false, Some(d(6 * S)))
        );
        assert_eq!(st, before);
        // The same request under a higher limit is granted.
        assert!(st.clone().acquire(c(5), 1, d(S), b"c", t(3 * S)).granted);
        let p = st.peek(c(5), 1, t(3 * S));
        let a = st.acquire(c(5), 0, d(S), b"c", t(3 * S));
        assert_eq!(
            (a.decision, a.granted, a.renewed),
            (st.peek(c(5), 0, t(3 * S)), false, false)
        );
        assert_eq!((p.allowed, p.remaining, p.reset_after), (true, 2, d(6 * S)));
        assert_eq!(st, before);
        assert_eq!(st.reclaim(t(S)), 0);
        assert_eq!(st, before);
    }

    #[test]
    fn a_lowered_limit_counts_what_is_held() {
        let mut st = LeaseState::new(c(5));
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            st.acquire(c(5), 1, d(10 * S), id.as_bytes(), t(i as u64 * S));
        }
        run(
            &mut st,
            &[
                // 5 held under 2: 4 must go for 1 more, the 4th at 13 s.
                (5 * S, 2, "f", 1, 10 * S, false, 0, Some(8 * S), 9 * S),
                (5 * S, 2, "f", 3, 10 * S, false, 0, None, 9 * S),
                // Held ids still renew, and the limit shown follows.
                (5 * S, 2, "a", 1, S, true, 0, Some(0), 9 * S),
                (13 * S, 2, "f", 1, 10 * S, true, 0, Some(0), 10 * S),
            ],
        );
        assert_eq!(st.limit, c(2));
        assert_eq!(st.held(t(13 * S)), 2);
        // A zero-unit peek is over the limit until enough leases expire.
        let mut st = state(5, 0, &[("a", 1, S), ("b", 1, 2 * S), ("c", 1, 3 * S)]);
        let p = st.peek(c(1), 0, t(0));
        assert_eq!(
            (p.allowed, p.remaining, p.retry_after),
            (false, 0, Some(d(2 * S)))
        );
        let p = st.peek(c(3), 0, t(0));
        assert_eq!((p.allowed, p.remaining), (true, 0));
        assert_eq!(st.reclaim(t(2 * S)), 2);
        assert_eq!((st.last, st.held(t(0))), (t(2 * S), 1));
    }

    #[test]
    fn a_clock_going_back_reads_as_the_latest_time_seen() {
        let mut st = LeaseState::new(c(2));
        run(
            &mut st,
            &[
                (100 * S, 2, "a", 1, 10 * S, true, 1, Some(0), 10 * S),
                (50 * S, 2, "b", 1, 10 * S, true, 0, Some(0), 10 * S),
                (60 * S, 2, "c", 1, 10 * S, false, 0, Some(10 * S), 10 * S),
            ],
        );
        assert_eq!(ids(&st), [("a", 1, 110 * S), ("b", 1, 110 * S)]);
        let a = st.acquire(c(2), 1, d(S), b"c", t(0));
        assert_eq!(a.decision.at, t(100 * S));
        assert_eq!(st.held(t(0)), 2);
        assert!(st.renew(b"a", d(S), t(0)));
        assert_eq!(ids(&st), [("a", 1, 101 * S), ("b", 1, 110 * S)]);
    }

    #[test]
    fn empty_at_is_the_last_expiry() {
        let mut st = LeaseState::new(c(3));
        assert_eq!(st.empty_at(), None);
        st.acquire(c(3), 1, d(30 * S), b"a", t(0));
        st.acquire(c(3), 1, d(10 * S), b"b", t(0));
        assert_eq!(st.empty_at(), Some(t(30 * S)));
        let a = st.acquire(c(3), 1, d(S), b"c", t(S));
        assert_eq!(a.decision.empty_at(), t(30 * S));
        st.release(b"a", t(S));
        assert_eq!(st.empty_at(), Some(t(10 * S)));
        assert_eq!(st.reclaim(t(10 * S)), 2);
        assert_eq!(st.empty_at(), None);
    }

    #[test]
    fn bad_ids_and_ttls_never_make_an_invalid_state() {
        let mut st = LeaseState::new(c(3));
        let long = [b'x'; MAX_LEASE_ID_LEN + 1];
        for id in [&b""[..], &long[..]] {
            let a = st.acquire(c(3), 1, d(S), id, t(0));
            assert_eq!((a.decision.allowed, a.decision.retry_after), (false, None));
        }
        assert_eq!(st, LeaseState::new(c(3)));
        // A zero ttl lives 1 µs; an endless one is cut at the longest.
        st.acquire(c(3), 1, Duration::ZERO, &[0, 255], t(5));
        st.acquire(c(3), 1, d(u64::MAX), &[b'y'; MAX_LEASE_ID_LEN], t(5));
        assert_eq!(st.held(t(5)), 2);
        assert_eq!(st.held(t(6)), 1);
        assert_eq!(st.empty_at(), Some(t(5 + MAX_DURATION_US)));
        assert!(st.is_valid());
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut st = LeaseState::new(c(MAX_COUNT));
        let a = st.acquire(
            c(MAX_COUNT),
            MAX_COUNT,
            d(MAX_DURATION_US),
            b"a",
            t(u64::MAX),
        );
        assert!(a.granted);
        assert_eq!(a.decision.at, t(MAX_TIME_US));
        assert_eq!(a.decision.reset_after, d(MAX_DURATION_US));
        let a = st.acquire(c(MAX_COUNT), 1, d(1), b"b", t(u64::MAX));
        assert_eq!(a.decision.retry_after, Some(d(MAX_DURATION_US)));
        assert!(st
            .acquire(c(MAX_COUNT), u64::MAX, d(1), b"b", t(0))
            .decision
            .retry_after
            .is_none());
        assert!(st.is_valid());
    }

    #[test]
    fn is_valid_checks_every_invariant() {
        let good = state(3, 0, &[("a", 1, 10), ("b", 2, 20)]);
        let bad = |f: &dyn Fn(&mut LeaseState)| {
            let mut st = good.clone();
            f(&mut st);
            assert!(!st.is_valid(), "{st:?}");
        };
        bad(&|s| s.leases[1].id = b"a"[..].into());
        bad(&|s| s.leases[1].id = b""[..].into());
        bad(&|s| s.leases[1].id = vec![0; MAX_LEASE_ID_LEN + 1].into());
        bad(&|s| s.leases[1].units = 0);
        bad(&|s| s.leases[1].units = MAX_COUNT);
        bad(&|s| s.leases[0].expires = t(30));
        bad(&|s| s.leases[1].expires = t(MAX_TIME_US + MAX_DURATION_US + 1));
        bad(&|s| s.last = t(MAX_TIME_US + 1));
    }

    #[test]
    fn memory_counts_the_leases_and_their_ids() {
        let mut st = LeaseState::new(c(2));
        let base = size_of::<LeaseState>();
        assert_eq!(st.memory(), base);
        st.acquire(c(2), 1, d(S), &[7; 16], t(0));
        st.acquire(c(2), 1, d(S), &[8; 16], t(0));
        // Capacity stops at the limit; the id index holds a hash, an
        // expiry's low 32 bits and a control byte per slot.
        assert_eq!(st.leases.capacity(), 2);
        assert!(st.ids.capacity() >= 2);
        assert_eq!(
            st.memory(),
            base + 2 * (size_of::<Lease>() + 16) + st.ids.capacity() * 13
        );
    }

    #[test]
    fn the_indexes_follow_the_leases() {
        // Held units and the id set agree with the leases after every kind
        // of change, dead leases and their reclaiming included.
        let mut st = LeaseState::new(c(10));
        let check = |st: &LeaseState| {
            let units: u128 = st.leases().map(|l| u128::from(l.units)).sum();
            assert_eq!(st.units, units);
            assert_eq!(st.ids.len(), st.leases().len());
            for l in st.leases() {
                assert!(st.holds(&l.id));
                let entry = st.ids.get(&Key::of(&l.id)).map(|e| e.low);
                assert_eq!(entry, Some(l.expires.as_micros() as u32));
            }
            assert!(st.is_valid());
            assert!(!st.holds(b"never"));
        };
        for (i, id) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            let ttl = d((i as u64 + 1) * S);
            assert!(st.acquire(c(10), 2, ttl, *id, t(0)).granted);
            check(&st);
        }
        // A renewal moves "a" behind the others.
        assert!(st.acquire(c(10), 2, d(10 * S), b"a", t(0)).renewed);
        assert_eq!(
            ids(&st).iter().map(|l| l.0).collect::<Vec<_>>(),
            ["b", "c", "d", "a"]
        );
        check(&st);
        assert!(st.release(b"c", t(0)));
        check(&st);
        // At 2.5 s "b" is dead: an acquire reclaims it.
        assert_eq!(st.held(t(2 * S + S / 2)), 4);
        assert!(st.acquire(c(10), 1, d(S), b"e", t(2 * S + S / 2)).granted);
        assert_eq!(
            ids(&st).iter().map(|l| l.0).collect::<Vec<_>>(),
            ["e", "d", "a"]
        );
        check(&st);
        assert!(!st.holds(b"b"));
        // Decoded states build the same indexes.
        let copy = LeaseState::from_parts(st.limit, st.last, st.leases().cloned().collect());
        assert_eq!(copy, st);
        check(&copy);
    }

    #[test]
    fn ids_sharing_a_hash_keep_the_set_right() {
        let mut st = state(5, 0, &[("a", 1, 10), ("b", 1, 20)]);
        // As if "a" and "b" hashed alike: "b"'s hash is gone from the set.
        st.ids.remove(&Key::of(b"b"));
        st.shared = true;
        assert!(st.release(b"a", t(0)));
        // The set was rebuilt from the leases left.
        assert!(st.holds(b"b") && !st.holds(b"a"));
        assert!(!st.shared);
    }

    /// An op of the hole tables and the model test.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Acquire { limit: u64, units: u64, ttl: u64 },
        Release,
        Renew { ttl: u64 },
    }

    /// Runs `op` on `id` at `now`: whether it wrote.
    fn apply(st: &mut LeaseState, op: Op, id: &[u8], now: u64) -> bool {
        match op {
            Op::Acquire { limit, units, ttl } => {
                let a = st.acquire(c(limit), units, d(ttl), id, t(now));
                a.granted || a.renewed
            }
            Op::Release => st.release(id, t(now)),
            Op::Renew { ttl } => st.renew(id, d(ttl), t(now)),
        }
    }

    fn names(st: &LeaseState) -> Vec<&str> {
        ids(st).iter().map(|l| l.0).collect()
    }

    /// (op, id, now, wrote, leases after, holes after, slots after)
    type HoleRow = (
        Op,
        &'static str,
        u64,
        bool,
        &'static [&'static str],
        usize,
        usize,
    );

    #[test]
    fn leases_leaving_the_middle_leave_holes_nobody_sees() {
        use Op::*;
        let abcdef = [
            ("a", 1, 10 * S),
            ("b", 1, 20 * S),
            ("c", 1, 30 * S),
            ("d", 1, 40 * S),
            ("e", 1, 50 * S),
            ("f", 1, 60 * S),
        ];
        let mut st = state(10, 0, &abcdef);
        let renew = |ttl| Renew { ttl };
        let acquire = |units, ttl| Acquire {
            limit: 10,
            units,
            ttl,
        };
        #[rustfmt::skip]
        let rows: &[HoleRow] = &[
            (Release, "c", 0, true, &["a", "b", "d", "e", "f"], 1, 6),
            (Release, "c", 0, false, &["a", "b", "d", "e", "f"], 1, 6),
            // The first lease renewed goes to the back, nothing left in front.
            (renew(100 * S), "a", 0, true, &["b", "d", "e", "f", "a"], 1, 6),
            // The last renewed stays last.
            (renew(200 * S), "a", 0, true, &["b", "d", "e", "f", "a"], 1, 6),
            // "e" renewed to 35 s fills the hole "c" left at 30 s, leaving
            // one at 50 s; "d" renewed to 45 s fills the one it leaves.
            (renew(35 * S), "e", 0, true, &["b", "e", "d", "f", "a"], 1, 6),
            (renew(45 * S), "d", 0, true, &["b", "e", "d", "f", "a"], 1, 6),
            // A tie goes after the lease it ties with, in placement order:
            // "g" after "f" at 60 s (the buffer is full: its hole is
            // squeezed out first), then "f" renewed to 60 s after "g".
            (acquire(2, 60 * S), "g", 0, true, &["b", "e", "d", "f", "g", "a"], 0, 6),
            (renew(60 * S), "f", 0, true, &["b", "e", "d", "g", "f", "a"], 1, 7),
            (Release, "g", 0, true, &["b", "e", "d", "f", "a"], 2, 7),
            // At 36 s "b" and "e" are dead, not held any more: releasing
            // "f" reclaims them, and the holes, now over half the slots,
            // are squeezed out.
            (Release, "e", 36 * S, false, &["b", "e", "d", "f", "a"], 2, 7),
            (Release, "f", 36 * S, true, &["d", "a"], 0, 2),
            (acquire(1, 50 * S), "h", 36 * S, true, &["d", "h", "a"], 0, 3),
            (Release, "h", 36 * S, true, &["d", "a"], 1, 3),
            (renew(S), "d", 36 * S, true, &["d", "a"], 0, 2),
        ];
        for (i, &(op, id, now, wrote, after, holes, slots)) in rows.iter().enumerate() {
            assert_eq!(apply(&mut st, op, id.as_bytes(), now), wrote, "row {i}");
            assert_eq!(names(&st), after, "row {i}");
            assert_eq!((st.holes, st.leases.len()), (holes, slots), "row {i}");
            assert!(st.is_valid(), "row {i}");
            assert_eq!(st.leases().len(), after.len(), "row {i}");
            let live = ids(&st).iter().filter(|l| l.2 > now).count();
            assert_eq!(st.live_leases(t(now)), live, "row {i}");
            assert_eq!(st.ids.len(), after.len(), "row {i}");
            for l in st.leases() {
                assert!(st.holds(&l.id), "row {i}");
            }
        }
        assert_eq!(ids(&st), [("d", 1, 37 * S), ("a", 1, 200 * S)]);
        assert_eq!((st.held(t(36 * S)), st.empty_at()), (2, Some(t(200 * S))));
    }

    #[test]
    fn a_state_with_holes_encodes_as_one_without() {
        use crate::algo::Value;
        use crate::codec::{decode_value, encode_value, ENCODING_VERSION};
        let n = 1000u64;
        let mut st = LeaseState::new(c(2 * n));
        for i in 0..n {
            let id = format!("held-{i}");
            assert!(
                st.acquire(c(2 * n), 1 + i % 3, d(S + i), id.as_bytes(), t(0))
                    .granted
            );
        }
        // Release 900 in a scattered order, renew some of the rest.
        for k in 0..900 {
            let id = format!("held-{}", (k * 7919) % n);
            assert!(st.release(id.as_bytes(), t(S / 2)), "{id}");
            assert!(st.holes * 2 <= st.leases.len());
        }
        for k in 900..950 {
            let id = format!("held-{}", (k * 7919) % n);
            assert!(st.renew(id.as_bytes(), d(S), t(S / 2)), "{id}");
        }
        assert_eq!(st.live_leases(t(S / 2)), 100);
        let fresh = LeaseState::from_parts(st.limit, st.last, st.leases().cloned().collect());
        assert!(fresh.is_valid() && fresh == st);
        let bytes = encode_value(&Value::Leases(Box::new(st.clone())));
        assert_eq!(bytes, encode_value(&Value::Leases(Box::new(fresh))));
        match decode_value(&bytes, ENCODING_VERSION) {
            Ok(Value::Leases(back)) => assert_eq!(*back, st),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expiries_ending_in_the_same_bits_in_many_spans() {
        // 20 leases whose expiries all end in the same 32 bits, one per
        // span of 2^32 µs: past SPANS_SEARCHED spans the lookup scans.
        let mut st = LeaseState::new(c(100));
        let span = 1u64 << 32;
        for k in 1..=20u64 {
            let id = format!("{k}");
            assert!(
                st.acquire(c(100), 1, d(k * span), id.as_bytes(), t(S))
                    .granted
            );
        }
        assert_eq!(size_of::<Entry>(), 12);
        for k in [20u64, 1, 9, 10, 17, 2] {
            let id = format!("{k}");
            assert!(st.holds(id.as_bytes()), "{k}");
            assert!(st.renew(id.as_bytes(), d(k * span), t(S)), "{k}");
        }
        for k in [5u64, 19, 8, 12, 1, 20, 3] {
            assert!(st.release(format!("{k}").as_bytes(), t(S)), "{k}");
            assert!(!st.holds(format!("{k}").as_bytes()), "{k}");
        }
        assert_eq!(st.live_leases(t(S)), 13);
        for l in st.leases() {
            assert!(st.holds(&l.id));
        }
        assert!(!st.holds(b"21") && st.is_valid());
    }

    #[test]
    fn holes_in_a_full_buffer_are_squeezed_before_it_grows() {
        // 8 leases under a limit of 8: one hole is an eighth, squeezed out.
        let mut st = LeaseState::new(c(8));
        for i in 0..8u64 {
            st.acquire(c(8), 1, d(S + i), &[b'a' + i as u8], t(0));
        }
        assert_eq!(st.leases.capacity(), 8);
        assert!(st.release(b"c", t(0)));
        assert_eq!(st.holes, 1);
        assert!(st.acquire(c(8), 1, d(2 * S), b"z", t(0)).granted);
        assert_eq!((st.holes, st.leases.len(), st.leases.capacity()), (0, 8, 8));
        // Under a limit of 100, one hole in 100 slots: the buffer grows by
        // an eighth, not to twice.
        let mut st = LeaseState::new(c(100));
        for i in 0..100u64 {
            st.acquire(c(100), 1, d(S + i), format!("{i}").as_bytes(), t(0));
        }
        assert_eq!(st.leases.capacity(), 100);
        assert!(st.release(b"50", t(0)));
        assert!(st.acquire(c(100), 1, d(2 * S), b"z", t(0)).granted);
        assert_eq!((st.holes, st.leases.len()), (1, 101));
        assert_eq!(st.leases.capacity(), 112);
        assert!(st.is_valid());
    }

    impl Op {
        fn action(self) -> LeaseAction {
            match self {
                Op::Acquire { limit, units, ttl } => LeaseAction::Acquire {
                    limit: c(limit),
                    units,
                    ttl: d(ttl),
                },
                Op::Release => LeaseAction::Release,
                Op::Renew { ttl } => LeaseAction::Renew { ttl: d(ttl) },
            }
        }
    }

    /// Whether two states are the same slot for slot: holes, units and the
    /// id index included (`==` compares only the leases).
    fn identical(a: &LeaseState, b: &LeaseState) -> bool {
        a == b
            && a.leases.iter().eq(b.leases.iter())
            && (a.holes, a.units, a.shared) == (b.holes, b.units, b.shared)
            && a.ids.len() == b.ids.len()
            && a.ids
                .iter()
                .all(|e| b.ids.get(&e.key).is_some_and(|f| f.low == e.low))
    }

    /// Decides `op` on a snapshot, checks the snapshot is untouched, then
    /// installs what was decided: the verdict and the state after.
    fn evaluate_then_apply<'id>(
        st: &mut LeaseState,
        op: Op,
        id: &'id [u8],
        now: u64,
    ) -> LeaseVerdict<'id> {
        let before = st.clone();
        let v = st.evaluate(op.action(), id, t(now));
        assert!(identical(st, &before), "evaluate changed the state");
        // Deciding twice decides the same.
        assert_eq!(st.evaluate(op.action(), id, t(now)), v);
        if let Some(next) = &v.next {
            let empties = st.empties(next);
            st.apply(next);
            assert_eq!(st.is_empty(), empties);
        }
        v
    }

    /// (op, id, now, the change it makes, an acquire's (allowed, remaining,
    /// retry_after, reset_after), the leases after); each row on the state
    /// the one before left.
    type SeamRow = (
        Op,
        &'static str,
        u64,
        Option<&'static str>,
        Option<(bool, u64, Option<u64>, u64)>,
        &'static [(&'static str, u64, u64)],
    );

    #[test]
    fn ops_decide_on_a_snapshot_then_install_what_they_decided() {
        use Op::*;
        let mut st = state(
            5,
            0,
            &[("a", 1, 10 * S), ("b", 1, 20 * S), ("c", 2, 30 * S)],
        );
        let mut model = Model {
            limit: st.limit,
            last: st.last,
            leases: st.leases().cloned().collect(),
        };
        let acquire = |units, ttl| Acquire {
            limit: 5,
            units,
            ttl,
        };
        let renew = |ttl| Renew { ttl };
        #[rustfmt::skip]
        let rows: &[SeamRow] = &[
            // The last unit: the new lease is not the last to expire.
            (acquire(1, 5 * S), "d", 0, Some("place"), Some((true, 0, Some(0), 30 * S)),
                &[("d", 1, 5 * S), ("a", 1, 10 * S), ("b", 1, 20 * S), ("c", 2, 30 * S)]),
            // Full: a denial, a peek and a bad id write nothing.
            (acquire(1, 5 * S), "e", S, None, Some((false, 0, Some(4 * S), 29 * S)),
                &[("d", 1, 5 * S), ("a", 1, 10 * S), ("b", 1, 20 * S), ("c", 2, 30 * S)]),
            (acquire(0, 5 * S), "e", S, None, Some((true, 0, Some(0), 29 * S)),
                &[("d", 1, 5 * S), ("a", 1, 10 * S), ("b", 1, 20 * S), ("c", 2, 30 * S)]),
            (acquire(1, 5 * S), "", S, None, Some((false, 0, None, 29 * S)),
                &[("d", 1, 5 * S), ("a", 1, 10 * S), ("b", 1, 20 * S), ("c", 2, 30 * S)]),
            // Re-acquiring the last lease for less: renewed, its units kept,
            // and the key's reset is now the last of the others'.
            (acquire(3, S), "c", S, Some("extend"), Some((true, 0, Some(0), 19 * S)),
                &[("c", 2, 2 * S), ("d", 1, 5 * S), ("a", 1, 10 * S), ("b", 1, 20 * S)]),
            // At 6 s "c" and "d" are dead: renewing "a" reclaims them.
            (renew(30 * S), "a", 6 * S, Some("extend"), None,
                &[("b", 1, 20 * S), ("a", 1, 36 * S)]),
            (renew(30 * S), "zz", 6 * S, None, None, &[("b", 1, 20 * S), ("a", 1, 36 * S)]),
            (Release, "d", 6 * S, None, None, &[("b", 1, 20 * S), ("a", 1, 36 * S)]),
            (acquire(2, 10 * S), "f", 7 * S, Some("place"), Some((true, 1, Some(0), 29 * S)),
                &[("f", 2, 17 * S), ("b", 1, 20 * S), ("a", 1, 36 * S)]),
            // From the middle: a hole.
            (Release, "b", 7 * S, Some("end"), None, &[("f", 2, 17 * S), ("a", 1, 36 * S)]),
            // A clock gone back reads as the latest time seen.
            (renew(S), "f", 0, Some("extend"), None, &[("f", 2, 8 * S), ("a", 1, 36 * S)]),
            // The last live lease: the key goes ("f" is dead at 18 s).
            (Release, "a", 18 * S, Some("end"), None, &[]),
            (Release, "a", 18 * S, None, None, &[]),
        ];
        for (i, &(op, id, now, change, decision, after)) in rows.iter().enumerate() {
            let id = id.as_bytes();
            let v = evaluate_then_apply(&mut st, op, id, now);
            let kind = v.next.map(|n| match n {
                LeaseChange::Place { .. } => "place",
                LeaseChange::Extend { .. } => "extend",
                LeaseChange::End { .. } => "end",
            });
            assert_eq!(kind, change, "row {i}");
            let got = v.decision.map(|d| {
                let r = raw(&d, false);
                (r.allowed, r.remaining, r.retry_after, r.reset_after)
            });
            assert_eq!(got, decision, "row {i}");
            assert_eq!(ids(&st), after, "row {i}");
            assert!(st.is_valid(), "row {i}");
            // What the reference does in place, the ops did in two steps.
            let wrote = match op {
                Acquire { limit, units, ttl } => {
                    let a = model.acquire(c(limit), units, d(ttl), id, t(now));
                    assert_eq!(Some(a.decision), v.decision, "row {i}");
                    a.granted || a.renewed
                }
                Release => model.release(id, t(now)),
                Renew { ttl } => model.renew(id, d(ttl), t(now)),
            };
            assert_eq!(wrote, v.next.is_some(), "row {i}");
            assert!(st.leases().eq(model.leases.iter()), "row {i}");
            assert_eq!((st.limit, st.last), (model.limit, model.last), "row {i}");
        }
    }

    #[test]
    fn a_fresh_state_decides_and_installs_an_acquire() {
        // What the module does for a key that holds nothing.
        let mut fresh = LeaseState::new(c(3));
        let v = evaluate_then_apply(
            &mut fresh,
            Op::Acquire {
                limit: 3,
                units: 2,
                ttl: S,
            },
            b"w",
            5,
        );
        assert!(matches!(v.next, Some(LeaseChange::Place { .. })));
        let mut direct = LeaseState::new(c(3));
        let a = direct.acquire(c(3), 2, d(S), b"w", t(5));
        assert!(a.granted && !a.renewed);
        assert_eq!(v.decision, Some(a.decision));
        assert!(identical(&fresh, &direct));
        // Release and renewal need a live lease; a fresh state has none.
        for op in [Op::Release, Op::Renew { ttl: S }] {
            assert_eq!(
                LeaseState::new(c(3)).evaluate(op.action(), b"w", t(5)),
                LeaseVerdict::default()
            );
        }
    }

    /// The reference: the leases in a Vec sorted by expiry, every lookup a
    /// scan, every removal a shift, the answers from the same `answer`.
    #[derive(Clone, Debug)]
    struct Model {
        limit: Count,
        last: Instant,
        leases: Vec<Lease>,
    }

    impl Model {
        fn clock(&self, now: Instant) -> Instant {
            now.min(Instant::MAX).max(self.last)
        }

        fn dead(&self, now: Instant) -> usize {
            self.leases.iter().take_while(|l| l.expires <= now).count()
        }

        fn answer(&self, limit: Count, units: u64, now: Instant) -> Decision {
            let q: VecDeque<Lease> = self.leases.iter().cloned().collect();
            let first = self.dead(now);
            let live = Live {
                leases: &q,
                first,
                count: q.len() - first,
                units: total(q.range(first..)),
            };
            answer(&live, limit, units, now)
        }

        fn find(&self, id: &[u8], now: Instant) -> Option<usize> {
            self.leases
                .iter()
                .position(|l| *l.id == *id && l.expires > now)
        }

        fn place(&mut self, l: Lease) {
            let at = self
                .leases
                .iter()
                .take_while(|x| x.expires <= l.expires)
                .count();
            self.leases.insert(at, l);
        }

        fn reclaim_at(&mut self, now: Instant) -> usize {
            let n = self.dead(now);
            self.leases.drain(..n);
            n
        }

        fn extend(&mut self, i: usize, ttl: Duration, now: Instant) {
            let mut l = self.leases.remove(i);
            self.reclaim_at(now);
            l.expires = now + clamp_ttl(ttl);
            self.place(l);
            self.last = now;
        }

        fn acquire(
            &mut self,
            limit: Count,
            units: u64,
            ttl: Duration,
            id: &[u8],
            now: Instant,
        ) -> Acquired {
            let now = self.clock(now);
            let refused = |decision| Acquired {
                decision,
                granted: false,
                renewed: false,
            };
            if units == 0 {
                return refused(self.answer(limit, 0, now));
            }
            if !Lease::is_valid_id(id) {
                return refused(Decision {
                    allowed: false,
                    retry_after: None,
                    ..self.answer(limit, 0, now)
                });
            }
            if let Some(i) = self.find(id, now) {
                self.extend(i, ttl, now);
                self.limit = limit;
                let decision = Decision {
                    allowed: true,
                    limit: limit.get(),
                    remaining: to_u64(limit.wide().saturating_sub(total(self.leases.iter()))),
                    retry_after: Some(Duration::ZERO),
                    reset_after: reset(self.leases.last(), now),
                    at: now,
                };
                return Acquired {
                    decision,
                    granted: false,
                    renewed: true,
                };
            }
            let d = self.answer(limit, units, now);
            if !d.allowed {
                return refused(d);
            }
            self.reclaim_at(now);
            self.place(Lease {
                id: id.into(),
                units,
                expires: now + clamp_ttl(ttl),
            });
            self.limit = limit;
            self.last = now;
            Acquired {
                decision: Decision {
                    reset_after: reset(self.leases.last(), now),
                    ..d
                },
                granted: true,
                renewed: false,
            }
        }

        fn release(&mut self, id: &[u8], now: Instant) -> bool {
            let now = self.clock(now);
            let Some(i) = self.find(id, now) else {
                return false;
            };
            self.leases.remove(i);
            self.reclaim_at(now);
            self.last = now;
            true
        }

        fn renew(&mut self, id: &[u8], ttl: Duration, now: Instant) -> bool {
            let now = self.clock(now);
            let Some(i) = self.find(id, now) else {
                return false;
            };
            self.extend(i, ttl, now);
            true
        }
    }

    /// An id of the model test: a small pool, so that ops often name a
    /// held lease; 0 is the empty id, refused.
    fn pool_id(n: u8) -> Vec<u8> {
        if n == 0 {
            Vec::new()
        } else {
            format!("id-{n}").into_bytes()
        }
    }

    fn op_strategy() -> impl proptest::strategy::Strategy<Value = (u8, Op)> {
        use proptest::prelude::*;
        // Ttls of a few seconds, often equal (ties), rarely endless.
        let ttl = prop_oneof![
            4 => (1u64..=4).prop_map(|n| n * S / 2),
            // Expiries in other spans of 2^32 µs, ending in the same bits.
            1 => (1u64..=3).prop_map(|n| (n << 32) + S),
            1 => Just(0u64),
            1 => Just(u64::MAX),
        ];
        let op = prop_oneof![
            3 => ((1u64..=8), (0u64..=3), ttl.clone())
                .prop_map(|(limit, units, ttl)| Op::Acquire { limit, units, ttl }),
            2 => Just(Op::Release),
            2 => ttl.prop_map(|ttl| Op::Renew { ttl }),
        ];
        (0u8..=10, op)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(400))]

        /// Every op answers and leaves what the reference does, whatever
        /// holes it made: the leases, in order, and what is read of them.
        #[test]
        fn agrees_with_a_scanned_vec(
            ops in proptest::collection::vec((op_strategy(), 0u64..=4, 0u8..8), 1..120),
        ) {
            let mut st = LeaseState::new(c(4));
            let mut model = Model { limit: c(4), last: Instant::EPOCH, leases: Vec::new() };
            let mut now = 10 * S;
            for (i, ((n, op), step, back)) in ops.into_iter().enumerate() {
                // Mostly forward by half seconds (or not at all: ties); now
                // and then back (read as the latest time seen).
                now = if back == 0 { now - S } else { now + step * S / 2 };
                let id = pool_id(n);
                let at = t(now);
                // Every other op through the two steps by hand (the
                // snapshot checked untouched), the rest through the methods.
                let stepped = i % 2 == 0;
                let v = stepped.then(|| evaluate_then_apply(&mut st, op, &id, now));
                match op {
                    Op::Acquire { limit, units, ttl } => {
                        let want = model.acquire(c(limit), units, d(ttl), &id, at);
                        let got = match v {
                            Some(v) => Acquired::of(v.decision.unwrap(), v.next.as_ref()),
                            None => st.acquire(c(limit), units, d(ttl), &id, at),
                        };
                        proptest::prop_assert_eq!(got, want, "op {}", i);
                    }
                    Op::Release => {
                        let got = v.map_or_else(|| st.release(&id, at), |v| v.next.is_some());
                        proptest::prop_assert_eq!(got, model.release(&id, at), "op {}", i);
                    }
                    Op::Renew { ttl } => {
                        let got = v.map_or_else(|| st.renew(&id, d(ttl), at), |v| v.next.is_some());
                        proptest::prop_assert_eq!(got, model.renew(&id, d(ttl), at), "op {}", i);
                    }
                }
                proptest::prop_assert!(st.is_valid(), "op {}", i);
                proptest::prop_assert_eq!((st.limit, st.last), (model.limit, model.last));
                proptest::prop_assert!(st.leases().eq(model.leases.iter()), "op {}: {:?} vs {:?}", i, st, model);
                proptest::prop_assert_eq!(st.leases().len(), model.leases.len());
                proptest::prop_assert!(st.holes * 2 <= st.leases.len());
                proptest::prop_assert_eq!(st.ids.len(), model.leases.len());
                let probe = t(now + step * S / 3);
                let model_now = model.clock(probe);
                let live = model.leases.len() - model.dead(model_now);
                proptest::prop_assert_eq!(st.live_leases(probe), live);
                proptest::prop_assert_eq!(st.held(probe), to_u64(total(model.leases[model.leases.len() - live..].iter())));
                proptest::prop_assert_eq!(st.empty_at(), model.leases.last().map(|l| l.expires));
                for units in [0, 1, 3] {
                    proptest::prop_assert_eq!(st.peek(c(4), units, probe), model.answer(c(4), units, model_now));
                }
                for n in 0..=10 {
                    let id = pool_id(n);
                    proptest::prop_assert_eq!(st.holds(&id), model.leases.iter().any(|l| *l.id == *id));
                }
            }
        }
    }
}
