//! Heavy hitters of denials, pure Rust: which keys are denied most,
//! recently, in bounded memory (what `RL.TOP` lists).
//!
//! **Space-Saving** (Metwally, Agrawal, El Abbadi, 2005) over at most
//! `capacity` entries: a denial of a key already held adds its weight to
//! that entry; a new key takes a free entry, or, when all are taken,
//! replaces the entry with the smallest count, inheriting that count (as
//! its `error`) plus its own weight. So for every entry
//! `count - error <= true weight <= count`, every error is at most the
//! smallest count, and that is at most `W / capacity` where `W` is the
//! total weight of every denial seen: any key whose true weight is above
//! the smallest count is held, whatever else was denied.
//!
//! **Recency by forward decay** (Cormode, Shkapenyuk, Srivastava, Xu,
//! 2009): a denial at time `t` weighs `2^((t - L) / H)` for a landmark
//! `L` and the half-life [`HALF_LIFE_MS`], so a newer denial weighs more
//! and no count ever has to be aged: seen from time `now`, an entry's
//! count divided by `2^((now - L) / H)` is its *decayed* count, where each
//! denial counts `2^(-(now - t) / H)`: 1 now, 1/2 a half-life ago. Every
//! count is divided by the same figure, so Space-Saving's order and its
//! bound hold for decayed counts too. Weights are integers, `2^16` at the
//! landmark, with the fraction of a half-life taken from a table of 64
//! steps; when a weight would pass `2^16` half-lives the landmark moves
//! forward and every count is halved that many times (O(capacity), at most
//! once every 16 half-lives), which keeps the order (halving is monotone).
//!
//! Cost: O(log capacity) per denial (a binary min-heap over the counts,
//! and a hash map from the key's identity to its entry), no allocation for
//! a key already held. Memory is fixed by the capacity whatever the number
//! of distinct keys: [`Summary::bytes`] is at most
//! `capacity * ENTRY_MAX_BYTES` plus the struct itself.
//!
//! A key is identified by its name, capped to [`MAX_KEY_LEN`] bytes (a
//! capped name is marked), and the policy it was denied under (none for a
//! command's own parameters): the same key under two policies is two
//! entries.

use std::collections::HashMap;
use std::sync::Arc;

/// Longest key name kept; longer names are cut there and marked.
pub const MAX_KEY_LEN: usize = 256;

/// Longest policy name (as `policy::MAX_NAME_LEN`).
pub(crate) const MAX_POLICY_LEN: usize = crate::policy::MAX_NAME_LEN;

/// The half-life of a denial's weight: a key that stops being denied sees
/// its decayed count halve every minute.
pub(crate) const HALF_LIFE_MS: u64 = 60_000;

/// Most entries a summary can be configured to hold.
pub const MAX_CAPACITY: usize = 100_000;

/// Entries held by default.
pub(crate) const DEFAULT_CAPACITY: usize = 1000;

/// Weight of a denial at the landmark.
const ONE_BITS: u32 = 16;

/// Half-lives past the landmark after which it moves.
const RESCALE_HALVES: u64 = 16;

/// Round `2^16 * 2^(i/64)`: the fraction of a half-life.
const FRACTION: [u32; 64] = [
    65536, 66250, 66971, 67700, 68438, 69183, 69936, 70698, 71468, 72246, 73032, 73828, 74632,
    75444, 76266, 77096, 77936, 78785, 79642, 80510, 81386, 82273, 83169, 84074, 84990, 85915,
    86851, 87796, 88752, 89719, 90696, 91684, 92682, 93691, 94711, 95743, 96785, 97839, 98905,
    99982, 101070, 102171, 103283, 104408, 105545, 106694, 107856, 109031, 110218, 111418, 112631,
    113858, 115098, 116351, 117618, 118899, 120194, 121502, 122825, 124163, 125515, 126882, 128263,
    129660,
];

/// Longest identity: flags and policy length, policy, key.
const MAX_ID_LEN: usize = 1 + MAX_POLICY_LEN + MAX_KEY_LEN;

/// Bytes one entry can take at most, counting the slack of the vectors
/// and of the hash map (each at most twice what it holds) and the shared
/// identity's allocation.
pub const ENTRY_MAX_BYTES: usize = 2 * (std::mem::size_of::<Slot>() + 2 * 4)
    + 2 * (std::mem::size_of::<(Arc<[u8]>, u32)>() + 1)
    + MAX_ID_LEN
    + 2 * std::mem::size_of::<usize>();

/// The identity's first byte: the policy's length, and this bit when the
/// key name was cut.
const CUT: u8 = 0x80;

struct Slot {
    id: Arc<[u8]>,
    /// Forward-decayed weight (weights relative to the landmark).
    count: u128,
    /// What it inherited from the entry it replaced (same scale).
    error: u128,
    /// Denials since it entered the summary.
    denials: u64,
    /// Time of the last denial, Unix ms.
    last_ms: u64,
}

/// One entry as seen at some time: decayed figures, rounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View<'s> {
    pub key: &'s [u8],
    /// The policy it was denied under.
    pub policy: Option<&'s [u8]>,
    /// The key name was longer than [`MAX_KEY_LEN`] and is cut.
    pub(crate) cut: bool,
    /// Decayed denials, rounded to the nearest integer.
    pub count: u64,
    /// At most this much of `count` may belong to keys it replaced
    /// (rounded up): the true decayed count is within `[count - error, count]`.
    pub error: u64,
    /// Denials since it entered the summary (not decayed).
    pub(crate) denials: u64,
    pub(crate) last_ms: u64,
}

/// A bounded summary of denials. Times are Unix ms, given by the caller
/// (the denial's decision time): no clock is read here.
pub struct Summary {
    capacity: usize,
    landmark_ms: u64,
    /// The latest time seen; decayed counts are never seen before it.
    latest_ms: u64,
    slots: Vec<Slot>,
    /// Slot indices, a min-heap by count.
    heap: Vec<u32>,
    /// Each slot's place in `heap`.
    pos: Vec<u32>,
    index: HashMap<Arc<[u8]>, u32>,
    /// Bytes of the identities held.
    id_bytes: usize,
    /// Every denial counted, ever (not decayed).
    total: u64,
}

/// The weight of a denial at `t`, for a landmark at or before it, while
/// `t - landmark` is under `RESCALE_HALVES` half-lives.
fn weight_after(dt_ms: u64) -> u128 {
    let halves = dt_ms / HALF_LIFE_MS;
    let step = (dt_ms % HALF_LIFE_MS) * 64 / HALF_LIFE_MS;
    let f = u128::from(FRACTION[step as usize]);
    // halves < RESCALE_HALVES: at most 2^17 << 16.
    f << halves.min(RESCALE_HALVES)
}

/// The weight of a denial `dt_ms` before the landmark (an older decision
/// time than one already seen): halved per half-life, never below 1.
fn weight_before(dt_ms: u64) -> u128 {
    let halves = dt_ms / HALF_LIFE_MS;
    let step = (dt_ms % HALF_LIFE_MS) * 64 / HALF_LIFE_MS;
    let f = u128::from(FRACTION[step as usize]);
    let w = (1u128 << (2 * ONE_BITS)) / f;
    (w.checked_shr(u32::try_from(halves).unwrap_or(u32::MAX))
        .unwrap_or(0))
    .max(1)
}

/// `count` seen at `dt_ms` after the landmark, in thousandths of a denial.
fn decayed_milli(count: u128, dt_ms: u64) -> u128 {
    let halves = dt_ms / HALF_LIFE_MS;
    let step = (dt_ms % HALF_LIFE_MS) * 64 / HALF_LIFE_MS;
    let f = u128::from(FRACTION[step as usize]);
    let Some(shifted) = u32::try_from(halves)
        .ok()
        .and_then(|h| count.checked_shr(h))
    else {
        return 0;
    };
    // count < 2^113 (weights under 2^33, at most 2^64 denials... far
    // fewer in practice); fall back to dividing first if it would overflow.
    match shifted.checked_mul(1000) {
        Some(m) => m / f,
        None => shifted / f * 1000,
    }
}

fn milli_round(m: u128) -> u64 {
    u64::try_from(m.saturating_add(500) / 1000).unwrap_or(u64::MAX)
}

fn milli_ceil(m: u128) -> u64 {
    u64::try_from(m.saturating_add(999) / 1000).unwrap_or(u64::MAX)
}

/// The identity of `key` under `policy` in `buf`; answers its length.
fn identity(buf: &mut [u8; MAX_ID_LEN], key: &[u8], policy: Option<&[u8]>) -> usize {
    let policy = policy.unwrap_or(b"");
    let policy = &policy[..policy.len().min(MAX_POLICY_LEN)];
    let cut = key.len() > MAX_KEY_LEN;
    let key = &key[..key.len().min(MAX_KEY_LEN)];
    // MAX_POLICY_LEN < 0x80.
    buf[0] = policy.len() as u8 | if cut { CUT } else { 0 };
    buf[1..1 + policy.len()].copy_from_slice(policy);
    let at = 1 + policy.len();
    buf[at..at + key.len()].copy_from_slice(key);
    at + key.len()
}

impl Summary {
    pub fn new(capacity: usize) -> Self {
        Summary {
            capacity: capacity.min(MAX_CAPACITY),
            landmark_ms: 0,
            latest_ms: 0,
            slots: Vec::new(),
            heap: Vec::new(),
            pos: Vec::new(),
            index: HashMap::new(),
            id_bytes: 0,
            total: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The latest decision time seen (0: none).
    pub(crate) fn latest_ms(&self) -> u64 {
        self.latest_ms
    }

    /// Heap bytes held (an upper estimate of the allocations).
    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + (self.heap.capacity() + self.pos.capacity()) * 4
            + self.index.capacity() * (std::mem::size_of::<(Arc<[u8]>, u32)>() + 1)
            + self.id_bytes
            + self.slots.len() * 2 * std::mem::size_of::<usize>()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        *self = Summary::new(self.capacity);
    }

    /// Holds at most `capacity` entries from now on, dropping the smallest.
    pub(crate) fn resize(&mut self, capacity: usize) {
        let capacity = capacity.min(MAX_CAPACITY);
        self.capacity = capacity;
        if self.slots.len() > capacity {
            while self.slots.len() > capacity {
                self.remove_min();
            }
            self.slots.shrink_to_fit();
            self.heap.shrink_to_fit();
            self.pos.shrink_to_fit();
            self.index.shrink_to_fit();
        }
    }

    /// Counts a denial of `key` under `policy` decided at `at_ms`.
    pub fn record(&mut self, key: &[u8], policy: Option<&[u8]>, at_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        self.total = self.total.saturating_add(1);
        if self.slots.is_empty() {
            self.landmark_ms = at_ms;
        }
        self.latest_ms = self.latest_ms.max(at_ms);
        let w = if at_ms >= self.landmark_ms {
            let dt = at_ms - self.landmark_ms;
            if dt / HALF_LIFE_MS >= RESCALE_HALVES {
                self.rescale(dt / HALF_LIFE_MS);
            }
            weight_after(at_ms - self.landmark_ms)
        } else {
            weight_before(self.landmark_ms - at_ms)
        };
        let mut buf = [0u8; MAX_ID_LEN];
        let len = identity(&mut buf, key, policy);
        let id = &buf[..len];
        if let Some(&s) = self.index.get(id) {
            let slot = &mut self.slots[s as usize];
            slot.count = slot.count.saturating_add(w);
            slot.denials = slot.denials.saturating_add(1);
            slot.last_ms = slot.last_ms.max(at_ms);
            self.sift_down(self.pos[s as usize] as usize);
            return;
        }
        let id: Arc<[u8]> = Arc::from(id);
        if self.slots.len() < self.capacity {
            let s = self.slots.len() as u32;
            self.slots.push(Slot {
                id: Arc::clone(&id),
                count: w,
                error: 0,
                denials: 1,
                last_ms: at_ms,
            });
            self.pos.push(self.heap.len() as u32);
            self.heap.push(s);
            self.index.insert(id, s);
            self.id_bytes += len;
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Full: the smallest entry makes way, its count becoming the
        // newcomer's error.
        let s = self.heap[0];
        let slot = &mut self.slots[s as usize];
        let old = std::mem::replace(&mut slot.id, Arc::clone(&id));
        self.id_bytes = self.id_bytes - old.len() + len;
        slot.error = slot.count;
        slot.count = slot.count.saturating_add(w);
        slot.denials = 1;
        slot.last_ms = at_ms;
        self.index.remove(&old);
        self.index.insert(id, s);
        self.sift_down(0);
    }

    /// Moves the landmark `halves` half-lives forward, halving every count
    /// as many times (order kept: halving is monotone, so the heap holds).
    fn rescale(&mut self, halves: u64) {
        self.landmark_ms += halves * HALF_LIFE_MS;
        let h = u32::try_from(halves).unwrap_or(u32::MAX);
        for s in &mut self.slots {
            s.count = s.count.checked_shr(h).unwrap_or(0);
            s.error = s.error.checked_shr(h).unwrap_or(0);
        }
    }

    /// The entries as seen at `now_ms` (never before the latest denial),
    /// most first, with a decayed count of at least 1: the answer's order
    /// is by stored count, which is the decayed count's order.
    pub fn top(&self, now_ms: u64) -> Vec<View<'_>> {
        let dt = now_ms.max(self.latest_ms).saturating_sub(self.landmark_ms);
        let mut order: Vec<&Slot> = self.slots.iter().collect();
        order.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_ms.cmp(&a.last_ms)));
        order
            .into_iter()
            .map(|s| {
                let flags = s.id[0];
                let plen = usize::from(flags & !CUT);
                View {
                    key: &s.id[1 + plen..],
                    policy: (plen > 0).then(|| &s.id[1..1 + plen]),
                    cut: flags & CUT != 0,
                    count: milli_round(decayed_milli(s.count, dt)),
                    error: milli_ceil(decayed_milli(s.error, dt)),
                    denials: s.denials,
                    last_ms: s.last_ms,
                }
            })
            .filter(|v| v.count > 0)
            .collect()
    }

    /// The guarantee at `now_ms`, in decayed denials (rounded up): every key
    /// whose true decayed count is above it is listed. 0 while the summary
    /// has room (every key denied is then held, exactly).
    pub(crate) fn bound(&self, now_ms: u64) -> u64 {
        if self.slots.len() < self.capacity {
            return 0;
        }
        let dt = now_ms.max(self.latest_ms).saturating_sub(self.landmark_ms);
        self.heap.first().map_or(0, |&s| {
            milli_ceil(decayed_milli(self.slots[s as usize].count, dt))
        })
    }

    fn count_at(&self, h: usize) -> u128 {
        self.slots[self.heap[h] as usize].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut h: usize) {
        while h > 0 {
            let parent = (h - 1) / 2;
            if self.count_at(parent) <= self.count_at(h) {
                break;
            }
            self.swap(parent, h);
            h = parent;
        }
    }

    fn sift_down(&mut self, mut h: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * h + 1, 2 * h + 2);
            let mut least = h;
            if l < n && self.count_at(l) < self.count_at(least) {
                least = l;
            }
            if r < n && self.count_at(r) < self.count_at(least) {
                least = r;
            }
            if least == h {
                return;
            }
            self.swap(h, least);
            h = least;
        }
    }

    /// Drops the entry with the smallest count.
    fn remove_min(&mut self) {
        let Some(&s) = self.heap.first() else {
            return;
        };
        let last = self.heap.len() - 1;
        self.swap(0, last);
        self.heap.pop();
        self.sift_down(0);
        // Move the last slot into `s`'s place.
        let s = s as usize;
        let moved = self.slots.len() - 1;
        let gone = self.slots.swap_remove(s);
        self.pos.swap_remove(s);
        self.index.remove(&gone.id);
        self.id_bytes -= gone.id.len();
        if s != moved {
            self.heap[self.pos[s] as usize] = s as u32;
            if let Some(i) = self.index.get_mut(&self.slots[s].id) {
                *i = s as u32;
            }
        }
    }

    /// Checks the structure (tests).
    pub fn is_valid(&self) -> bool {
        let n = self.slots.len();
        n <= self.capacity
            && self.heap.len() == n
            && self.pos.len() == n
            && self.index.len() == n
            && (0..n).all(|s| self.heap[self.pos[s] as usize] as usize == s)
            && (1..n).all(|h| self.count_at((h - 1) / 2) <= self.count_at(h))
            && self
                .slots
                .iter()
                .enumerate()
                .all(|(s, slot)| self.index.get(&slot.id) == Some(&(s as u32)))
            && self.slots.iter().all(|s| s.error <= s.count)
            && self.id_bytes == self.slots.iter().map(|s| s.id.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const H: u64 = HALF_LIFE_MS;

    fn listed(s: &Summary, now: u64) -> Vec<(String, u64, u64)> {
        s.top(now)
            .iter()
            .map(|v| {
                (
                    String::from_utf8_lossy(v.key).into_owned(),
                    v.count,
                    v.error,
                )
            })
            .collect()
    }

    #[test]
    fn counts_and_orders_while_there_is_room() {
        // (key, denials) at T0, and what is listed at T0.
        type Denials = &'static [(&'static str, u64)];
        type Listed = &'static [(&'static str, u64, u64)];
        let table: &[(Denials, Listed)] = &[
            (&[("a", 3), ("b", 1)], &[("a", 3, 0), ("b", 1, 0)]),
            (
                &[("b", 1), ("a", 2), ("c", 5)],
                &[("c", 5, 0), ("a", 2, 0), ("b", 1, 0)],
            ),
            (&[], &[]),
        ];
        for (denials, want) in table {
            let mut s = Summary::new(10);
            for (k, n) in *denials {
                for _ in 0..*n {
                    s.record(k.as_bytes(), None, T0);
                }
            }
            assert!(s.is_valid());
            let want: Vec<(String, u64, u64)> = want
                .iter()
                .map(|(k, c, e)| (k.to_string(), *c, *e))
                .collect();
            assert_eq!(listed(&s, T0), want, "{denials:?}");
            assert_eq!(s.bound(T0), 0);
        }
    }

    #[test]
    fn decays_by_half_each_half_life_and_leaves() {
        let mut s = Summary::new(10);
        for _ in 0..64 {
            s.record(b"k", None, T0);
        }
        // (seen at, decayed count)
        for (dt, want) in [(0, 64), (H / 2, 45), (H, 32), (2 * H, 16), (6 * H, 1)] {
            assert_eq!(listed(&s, T0 + dt), vec![("k".into(), want, 0)], "{dt}");
        }
        // Below half a denial: no longer listed, though still held.
        assert!(s.top(T0 + 8 * H).is_empty());
        assert_eq!(s.len(), 1);
        // Never seen before the latest denial.
        assert_eq!(s.top(0)[0].count, 64);
    }

    #[test]
    fn recent_denials_outweigh_old_ones() {
        let mut s = Summary::new(10);
        for _ in 0..100 {
            s.record(b"old", None, T0);
        }
        for _ in 0..30 {
            s.record(b"new", None, T0 + 2 * H);
        }
        // old: 100 / 4 = 25; new: 30.
        assert_eq!(
            listed(&s, T0 + 2 * H),
            vec![("new".into(), 30, 0), ("old".into(), 25, 0)]
        );
    }

    #[test]
    fn a_full_summary_replaces_its_smallest_and_says_by_how_much() {
        let mut s = Summary::new(2);
        for (k, n) in [("a", 5), ("b", 2), ("c", 1)] {
            for _ in 0..n {
                s.record(k.as_bytes(), None, T0);
            }
        }
        assert!(s.is_valid());
        // c replaced b, inheriting its 2.
        assert_eq!(listed(&s, T0), vec![("a".into(), 5, 0), ("c".into(), 3, 2)]);
        assert_eq!(s.bound(T0), 3);
        let v = &s.top(T0)[1];
        assert_eq!((v.denials, v.last_ms), (1, T0));
    }

    #[test]
    fn policies_and_cut_names_are_part_of_the_identity() {
        let mut s = Summary::new(10);
        let long = vec![b'x'; MAX_KEY_LEN + 10];
        s.record(b"k", None, T0);
        s.record(b"k", Some(b"free"), T0);
        s.record(b"k", Some(b"free"), T0);
        s.record(&long, None, T0);
        s.record(&long[..MAX_KEY_LEN], None, T0);
        let top = s.top(T0);
        assert_eq!(top.len(), 4);
        assert_eq!(
            (top[0].key, top[0].policy, top[0].count),
            (&b"k"[..], Some(&b"free"[..]), 2)
        );
        let cut: Vec<_> = top.iter().filter(|v| v.cut).collect();
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].key.len(), MAX_KEY_LEN);
    }

    #[test]
    fn resizing_drops_the_smallest_and_zero_holds_nothing() {
        let mut s = Summary::new(10);
        for i in 0..10u64 {
            for _ in 0..=i {
                s.record(format!("k{i}").as_bytes(), None, T0);
            }
        }
        s.resize(3);
        assert!(s.is_valid());
        let keys: Vec<String> = listed(&s, T0).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["k9", "k8", "k7"]);
        s.resize(0);
        assert!(s.is_valid() && s.is_empty());
        s.record(b"k", None, T0);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn long_gaps_rescale_without_losing_order() {
        let mut s = Summary::new(4);
        for _ in 0..8 {
            s.record(b"a", None, T0);
        }
        s.record(b"b", None, T0 + 3 * H);
        // Far past the rescale point: a's weight has all but gone.
        let later = T0 + 40 * H;
        for _ in 0..3 {
            s.record(b"c", None, later);
        }
        s.record(b"a", None, later);
        assert!(s.is_valid());
        assert_eq!(
            listed(&s, later),
            vec![("c".into(), 3, 0), ("a".into(), 1, 0)]
        );
        // A decision time before the landmark still counts, for little.
        s.record(b"d", None, T0);
        assert!(s.is_valid());
        assert!(s.top(later).iter().all(|v| v.key != b"d"));
    }

    #[test]
    fn memory_stays_within_the_bound_under_a_flood() {
        let mut s = Summary::new(100);
        let long = vec![b'z'; 1000];
        for i in 0..50_000u64 {
            let mut k = long.clone();
            k.extend_from_slice(&i.to_le_bytes());
            k.rotate_right(8);
            s.record(&k, Some(b"p"), T0 + i);
        }
        assert!(s.is_valid());
        assert_eq!(s.len(), 100);
        assert!(s.bytes() <= 100 * ENTRY_MAX_BYTES, "{}", s.bytes());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Space-Saving's guarantees, at one time (no decay): every
            /// entry's true count is within [count - error, count], every
            /// error is at most N / capacity, and every key denied more
            /// than N / capacity times is held.
            #[test]
            fn error_bound(keys in proptest::collection::vec(0u8..40, 0..600), cap in 1usize..16) {
                let mut s = Summary::new(cap);
                let mut truth = std::collections::HashMap::<u8, u64>::new();
                for k in &keys {
                    s.record(&[*k], None, T0);
                    *truth.entry(*k).or_default() += 1;
                }
                prop_assert!(s.is_valid());
                let n = keys.len() as u64;
                let top = s.top(T0);
                for v in &top {
                    let t = truth[&v.key[0]];
                    prop_assert!(v.count >= t && v.count - v.error <= t, "{v:?} true {t}");
                    prop_assert!(v.error <= n / cap as u64);
                }
                for (k, t) in &truth {
                    if *t > n / cap as u64 {
                        prop_assert!(top.iter().any(|v| v.key == [*k]), "{k} ({t} of {n})");
                    }
                }
            }

            /// With denials spread over time, every entry's bounds hold for
            /// decayed counts (within rounding), and the structure stays valid.
            #[test]
            fn decayed_error_bound(
                events in proptest::collection::vec((0u8..20, 0u64..600_000), 0..300),
                cap in 1usize..8,
            ) {
                let mut events = events;
                events.sort_by_key(|e| e.1);
                let mut s = Summary::new(cap);
                let mut truth = std::collections::HashMap::<u8, f64>::new();
                let now = T0 + 600_000;
                for (k, dt) in &events {
                    s.record(&[*k], None, T0 + dt);
                    let age = (600_000 - dt) as f64 / H as f64;
                    *truth.entry(*k).or_default() += 0.5f64.powf(age);
                }
                prop_assert!(s.is_valid());
                for v in s.top(now) {
                    let t = truth[&v.key[0]];
                    // Rounding and the 64-step table: within 2% plus one.
                    let slack = t * 0.02 + 1.0;
                    prop_assert!(v.count as f64 + slack >= t, "{v:?} true {t}");
                    prop_assert!((v.count as f64 - v.error as f64) <= t + slack, "{v:?} true {t}");
                }
            }
        }
    }
}
