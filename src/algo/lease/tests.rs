//! The lease state's tests, in a file of their own: they are half of the
//! lease code's length, and the decisions read better without them.

use super::slots::Key;
use super::*;
use crate::algo::testing::{raw, t, Raw};
use crate::algo::{MAX_COUNT, MAX_TIME_US};

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
