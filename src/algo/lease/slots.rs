//! How a key's leases are stored: slots in expiry order with the holes
//! leases leave from the middle, the units they hold, and the index from
//! ids' keyed hashes to their expiries (see the parent module for why).
//! Everything here keeps the state's invariants ([`LeaseState::is_valid`]);
//! the parent decides what to store.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{vec_deque, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use super::{Lease, LeaseState, MAX_LEASES};
use crate::algo::{Count, Duration, Instant, MAX_COUNT, MAX_DURATION_US, MAX_TIME_US};

/// The slot of a lease gone from the middle: no units (no lease has none),
/// no id (an empty box allocates nothing), and the expiry it had, so the
/// slots stay sorted for the binary searches.
pub(super) fn hole(expires: Instant) -> Lease {
    Lease {
        id: Box::default(),
        units: 0,
        expires,
    }
}

pub(super) fn is_hole(l: &Lease) -> bool {
    l.units == 0
}

/// The hasher of `ids`, whose keys are already hashes.
#[derive(Default)]
pub(super) struct Prehashed(u64);

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
pub(super) fn id_hash(id: &[u8]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(id)
}

/// An id's hash as `ids` keys it: two halves, so that an [`Entry`] takes 12
/// bytes rather than the 16 a u64 beside a u32 would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key([u32; 2]);

impl Key {
    pub(super) fn of(id: &[u8]) -> Key {
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
pub(super) struct Entry {
    pub(super) key: Key,
    pub(super) low: u32,
}

impl Entry {
    pub(super) fn of(id: &[u8], expires: Instant) -> Entry {
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
pub(super) const SPANS_SEARCHED: usize = 8;

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

/// Units held by `leases`. At most [`MAX_LEASES`] * `u64::MAX`, far within
/// `u128`, whatever the leases say.
pub(super) fn total<'a>(leases: impl Iterator<Item = &'a Lease>) -> u128 {
    leases.map(|l| u128::from(l.units)).sum()
}

/// The leases live at a clock reading: those of `leases[first..]` that are
/// not holes, `count` of them holding `units`.
pub(super) struct Live<'a> {
    pub(super) leases: &'a VecDeque<Lease>,
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) units: u128,
}

impl Live<'_> {
    pub(super) fn len(&self) -> usize {
        self.count
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.range(self.first..).filter(|l| !is_hole(l))
    }

    pub(super) fn last(&self) -> Option<&Lease> {
        // Live leases are a suffix: the last stored is the last live one.
        (self.count > 0).then(|| self.leases.back()).flatten()
    }
}

impl LeaseState {
    /// Stores a new lease `id` of `units` expiring at `expires`, granted
    /// under `limit`: in expiry order, in the id index and in the units.
    pub(super) fn add(&mut self, id: &[u8], units: u64, expires: Instant, limit: Count) {
        self.reserve_one(limit);
        self.shared |= !self.ids.insert(Entry::of(id, expires));
        self.units += u128::from(units);
        self.place(Lease {
            id: id.into(),
            units,
            expires,
        });
    }

    /// Takes the lease at `slot` out of the slots, the units and the id
    /// index.
    pub(super) fn remove(&mut self, slot: usize) {
        if let Some(gone) = self.detach(slot) {
            self.forget(&gone);
        }
    }

    /// The leases stored, in expiry order (dead ones not yet reclaimed too).
    pub fn leases(&self) -> Leases<'_> {
        Leases {
            slots: self.leases.iter(),
            left: self.leases.len().saturating_sub(self.holes),
        }
    }

    /// Whether no lease is stored.
    pub(crate) fn is_empty(&self) -> bool {
        // Holes are never first or last, so never alone.
        self.leases.is_empty()
    }

    /// Whether a stored lease (live or not yet reclaimed) is named `id`:
    /// O(1) for an id not held.
    pub(crate) fn holds(&self, id: &[u8]) -> bool {
        self.locate(id).is_some()
    }

    pub(super) fn index_ids(&mut self) {
        self.ids.clear();
        self.ids
            .reserve(self.leases.len().saturating_sub(self.holes));
        self.shared = false;
        for l in self.leases.iter().filter(|l| !is_hole(l)) {
            self.shared |= !self.ids.insert(Entry::of(&l.id, l.expires));
        }
    }

    /// How many leading slots are dead at `now` (they are a prefix, since
    /// the slots are sorted by expiry).
    pub(super) fn dead(&self, now: Instant) -> usize {
        self.leases.partition_point(|l| l.expires <= now)
    }

    /// The leases live at `now` (already a clock reading): how many, the
    /// units they hold, and the first one's index. O(1) but for the dead
    /// slots, which the next write reclaims.
    pub(super) fn live(&self, now: Instant) -> Live<'_> {
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
    pub(super) fn locate(&self, id: &[u8]) -> Option<usize> {
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
    pub(super) fn find(&self, id: &[u8], now: Instant) -> Option<usize> {
        self.locate(id)
            .filter(|&i| self.leases.get(i).is_some_and(|l| l.expires > now))
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
    pub(crate) fn memory(&self) -> usize {
        size_of::<LeaseState>()
            + self.leases.capacity() * size_of::<Lease>()
            + self.leases.iter().map(|l| l.id.len()).sum::<usize>()
            + self.ids.capacity() * (size_of::<Entry>() + 1)
    }

    /// Drops the leases dead at `now` (a clock reading), from the front,
    /// and the holes they uncover; returns how many leases.
    pub(super) fn reclaim_at(&mut self, now: Instant) -> usize {
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
    pub(super) fn detach(&mut self, i: usize) -> Option<Lease> {
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
    pub(super) fn forget(&mut self, gone: &Lease) {
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
    pub(super) fn extend(&mut self, i: usize, expires: Instant, now: Instant) {
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
    pub(super) fn place(&mut self, lease: Lease) {
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
    pub(super) fn reserve_one(&mut self, limit: Count) {
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
