//! Property tests of concurrency leases: acquire, release, renew, peek,
//! reclaim and held at random times (the clock may go back), ids from a
//! small set, against a list of `(id, units, expires)`. Random valid lease
//! states and lease ops round-trip byte for byte. Case counts are small so
//! the file runs in well under a second in release and in seconds in debug;
//! set `PROPTEST_CASES` to dig deeper.

use super::common::{
    answer_of, check_op_bytes, check_value_bytes, count, d, sample, wide_count, wide_period,
    wide_time, Answer,
};
use super::{config, t, Us, EPOCH};
use proptest::prelude::*;

use ratelimit::algo::{
    Instant, Lease, LeaseState, UnixMs, Value, MAX_COUNT, MAX_DURATION_US, MAX_LEASE_ID_LEN,
    MAX_TIME_US,
};
use ratelimit::codec::{self, AnyOp, LeaseAction, LeaseOp};

/// Ids from a small set, and two a parser refuses (empty, too long).
const IDS: [&[u8]; 6] = [
    b"a",
    b"b",
    b"c",
    &[0, 255],
    b"",
    &[b'x'; MAX_LEASE_ID_LEN + 1],
];

fn lease_id() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0usize..4, 1 => 4usize..6]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0u64), 12 => 1u64..=80, 1 => Just(u64::MAX)]
}

#[derive(Clone, Debug)]
enum LeaseStep {
    Acquire {
        limit: u64,
        units: u64,
        ttl: u64,
        id: usize,
    },
    Release(usize),
    Renew(usize, u64),
    Peek {
        limit: u64,
        units: u64,
    },
    Reclaim,
    Held,
}

fn lease_steps() -> impl Strategy<Value = Vec<(i64, LeaseStep)>> {
    let dt = prop_oneof![
        3 => Just(0i64),
        6 => 1i64..=30,
        1 => 30i64..=150,
        2 => -40i64..=-1,
    ];
    let limit = prop_oneof![4 => Just(4u64), 1 => 1u64..=6];
    let step = prop_oneof![
        8 => (limit.clone(), 0u64..8, ttl(), lease_id())
            .prop_map(|(limit, units, ttl, id)| LeaseStep::Acquire { limit, units, ttl, id }),
        3 => lease_id().prop_map(LeaseStep::Release),
        3 => (lease_id(), ttl()).prop_map(|(id, ttl)| LeaseStep::Renew(id, ttl)),
        1 => (limit, 0u64..8).prop_map(|(limit, units)| LeaseStep::Peek { limit, units }),
        1 => Just(LeaseStep::Reclaim),
        1 => Just(LeaseStep::Held),
    ];
    prop::collection::vec((dt, step), 1..60)
}

/// The leases as a plain list: `(id, units, expires, placed)`, where
/// `placed` orders leases that expire together.
#[derive(Clone, Debug)]
struct LeaseModel {
    limit: u64,
    last: Us,
    leases: Vec<(Vec<u8>, u64, Us, u64)>,
    placements: u64,
}

fn ttl_of(ttl: u64) -> Us {
    ttl.clamp(1, MAX_DURATION_US)
}

impl LeaseModel {
    fn clock(&self, now: Us) -> Us {
        now.min(MAX_TIME_US).max(self.last)
    }

    fn live(&self, c: Us) -> impl Iterator<Item = &(Vec<u8>, u64, Us, u64)> {
        self.leases.iter().filter(move |l| l.2 > c)
    }

    fn held_at(&self, c: Us) -> u64 {
        self.live(c).map(|l| l.1).sum()
    }

    fn holds(&self, id: &[u8], c: Us) -> Option<usize> {
        self.leases.iter().position(|l| l.0 == id && l.2 > c)
    }

    /// A write at `c`: the dead leases go, the clock moves to `c`.
    fn write(&mut self, c: Us) {
        self.leases.retain(|l| l.2 > c);
        self.last = c;
    }

    fn place(&mut self, id: &[u8], units: u64, expires: Us) {
        self.placements += 1;
        self.leases
            .push((id.to_vec(), units, expires, self.placements));
    }

    /// The answer to `units` more under `limit` at `c`, by brute force: the
    /// wait is to the first expiry after which they fit.
    fn answer(&self, limit: u64, units: u64, c: Us) -> Answer {
        let held = self.held_at(c);
        let allowed = units <= limit && held + units <= limit;
        let retry_after = if allowed {
            Some(0)
        } else if units > limit {
            None
        } else {
            let mut ends: Vec<Us> = self.live(c).map(|l| l.2).collect();
            ends.sort_unstable();
            let e = ends
                .into_iter()
                .find(|&e| self.held_at(e) + units <= limit)
                .expect("all leases gone, the units fit");
            Some(e - c)
        };
        Answer {
            allowed,
            remaining: limit.saturating_sub(if allowed { held + units } else { held }),
            retry_after,
            reset_after: self.live(c).map(|l| l.2 - c).max().unwrap_or(0),
        }
    }

    fn reset_all(&self, c: Us) -> Us {
        self.leases.iter().map(|l| l.2 - c).max().unwrap_or(0)
    }

    /// `(answer, granted, renewed)`
    fn acquire(
        &mut self,
        limit: u64,
        units: u64,
        ttl: u64,
        id: &[u8],
        now: Us,
    ) -> (Answer, bool, bool) {
        let c = self.clock(now);
        if units == 0 {
            return (self.answer(limit, 0, c), false, false);
        }
        if !(1..=MAX_LEASE_ID_LEN).contains(&id.len()) {
            let a = Answer {
                allowed: false,
                retry_after: None,
                ..self.answer(limit, 0, c)
            };
            return (a, false, false);
        }
        if let Some(i) = self.holds(id, c) {
            let (_, held_units, _, _) = self.leases.remove(i);
            self.write(c);
            self.place(id, held_units, c + ttl_of(ttl));
            self.limit = limit;
            let a = Answer {
                allowed: true,
                remaining: limit.saturating_sub(self.held_at(c)),
                retry_after: Some(0),
                reset_after: self.reset_all(c),
            };
            return (a, false, true);
        }
        let a = self.answer(limit, units, c);
        if !a.allowed {
            return (a, false, false);
        }
        self.write(c);
        self.place(id, units, c + ttl_of(ttl));
        self.limit = limit;
        let a = Answer {
            reset_after: self.reset_all(c),
            ..a
        };
        (a, true, false)
    }

    fn release(&mut self, id: &[u8], now: Us) -> bool {
        let c = self.clock(now);
        let Some(i) = self.holds(id, c) else {
            return false;
        };
        self.leases.remove(i);
        self.write(c);
        true
    }

    fn renew(&mut self, id: &[u8], ttl: u64, now: Us) -> bool {
        let c = self.clock(now);
        let Some(i) = self.holds(id, c) else {
            return false;
        };
        let (_, units, _, _) = self.leases.remove(i);
        self.write(c);
        self.place(id, units, c + ttl_of(ttl));
        true
    }

    fn reclaim(&mut self, now: Us) -> usize {
        let c = self.clock(now);
        let dead = self.leases.iter().filter(|l| l.2 <= c).count();
        if dead > 0 {
            self.write(c);
        }
        dead
    }

    /// The leases in the state's order: by expiry, then as placed.
    fn sorted(&self) -> Vec<(Vec<u8>, u64, Us)> {
        let mut v = self.leases.clone();
        v.sort_by_key(|l| (l.2, l.3));
        v.into_iter().map(|(id, u, e, _)| (id, u, e)).collect()
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct LeaseStats {
    granted: u64,
    renewed: u64,
    denied_waits: u64,
    released: u64,
    renew_true: u64,
    reclaimed: u64,
    clock_back: u64,
}

fn run_leases(steps: &[(i64, LeaseStep)]) -> LeaseStats {
    let first = count(4);
    let mut st = LeaseState::new(first);
    let mut m = LeaseModel {
        limit: 4,
        last: 0,
        leases: Vec::new(),
        placements: 0,
    };
    let mut stats = LeaseStats::default();
    let mut now = EPOCH;
    for (dt, step) in steps {
        now = now.saturating_add_signed(*dt);
        if now < m.last {
            stats.clock_back += 1;
        }
        let c = m.clock(now);
        let ctx = || {
            format!(
                "{step:?} at +{} (clock +{})",
                now as i128 - EPOCH as i128,
                c - EPOCH
            )
        };
        match *step {
            LeaseStep::Acquire {
                limit,
                units,
                ttl,
                id,
            } => {
                let id = IDS[id];
                let a = st.acquire(count(limit), units, d(ttl), id, t(now));
                let (want, granted, renewed) = m.acquire(limit, units, ttl, id, now);
                assert_eq!(answer_of(&a.decision), want, "{}", ctx());
                assert_eq!((a.granted, a.renewed), (granted, renewed), "{}", ctx());
                // A zero-unit acquire is a peek: allowed, nothing placed.
                assert_eq!(a.decision.allowed && units > 0, granted || renewed);
                assert_eq!(a.decision.at, t(c));
                assert_eq!(a.decision.limit, limit);
                if granted {
                    assert!(st.held(t(now)) <= limit, "held above the granting limit");
                    stats.granted += 1;
                }
                stats.renewed += renewed as u64;
                stats.denied_waits += want.retry_after.is_some_and(|r| r > 0) as u64;
            }
            LeaseStep::Release(id) => {
                let done = st.release(IDS[id], t(now));
                assert_eq!(done, m.release(IDS[id], now), "{}", ctx());
                stats.released += done as u64;
            }
            LeaseStep::Renew(id, ttl) => {
                let done = st.renew(IDS[id], d(ttl), t(now));
                assert_eq!(done, m.renew(IDS[id], ttl, now), "{}", ctx());
                stats.renew_true += done as u64;
            }
            LeaseStep::Peek { limit, units } => {
                let p = st.peek(count(limit), units, t(now));
                assert_eq!(answer_of(&p), m.answer(limit, units, c), "{}", ctx());
                assert_eq!(p.at, t(c));
            }
            LeaseStep::Reclaim => {
                let n = st.reclaim(t(now));
                assert_eq!(n, m.reclaim(now), "{}", ctx());
                stats.reclaimed += n as u64;
            }
            LeaseStep::Held => {}
        }
        // Every step: the same leases, in the same order; the same held
        // units; a valid state that round-trips byte for byte.
        assert!(st.is_valid(), "{st:?}");
        let got: Vec<(Vec<u8>, u64, Us)> = st
            .leases()
            .map(|l: &Lease| (l.id.to_vec(), l.units, l.expires.as_micros()))
            .collect();
        assert_eq!(got, m.sorted(), "after {}", ctx());
        assert_eq!((st.limit.get(), st.last.as_micros()), (m.limit, m.last));
        assert_eq!(st.held(t(now)), m.held_at(m.clock(now)));
        assert_eq!(
            st.empty_at().map(Instant::as_micros),
            m.leases.iter().map(|l| l.2).max()
        );
        let value = Value::Leases(Box::new(st.clone()));
        let bytes = codec::encode_value(&value);
        assert_eq!(codec::decode_value(&bytes, 2).as_ref(), Ok(&value));
    }
    stats
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn leases_match_their_model(s in lease_steps()) {
        run_leases(&s);
    }
}

// --------------------------------------------------------------- codec ---

fn any_id() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=MAX_LEASE_ID_LEN)
}

/// Any lease state `is_valid` accepts: unique ids of any bytes, sorted
/// expiries, at most `MAX_COUNT` units in all.
fn any_leases() -> impl Strategy<Value = LeaseState> {
    let expires = prop_oneof![
        Just(MAX_TIME_US + MAX_DURATION_US),
        EPOCH..=EPOCH + 1_000,
        0..=MAX_TIME_US + MAX_DURATION_US
    ];
    (
        wide_count(),
        wide_time(),
        prop::collection::vec((any_id(), wide_count(), expires), 0..8),
    )
        .prop_map(|(limit, last, raw)| {
            let mut leases: Vec<Lease> = Vec::new();
            let mut total = 0u64;
            for (id, units, expires) in raw {
                let units = units.min(MAX_COUNT - total);
                if units == 0 || leases.iter().any(|l| *l.id == *id) {
                    continue;
                }
                total += units;
                leases.push(Lease {
                    id: id.into(),
                    units,
                    expires: t(expires),
                });
            }
            leases.sort_by_key(|l| l.expires);
            let s = LeaseState::from_parts(count(limit), t(last), leases);
            assert!(s.is_valid(), "{s:?}");
            s
        })
}

fn lease_action() -> impl Strategy<Value = LeaseAction> {
    prop_oneof![
        (wide_count(), wide_count(), wide_period()).prop_map(|(limit, units, ttl)| {
            LeaseAction::Acquire {
                limit: count(limit),
                units,
                ttl: d(ttl),
            }
        }),
        Just(LeaseAction::Release),
        wide_period().prop_map(|ttl| LeaseAction::Renew { ttl: d(ttl) }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn lease_states_round_trip(s in any_leases()) {
        let v = Value::Leases(Box::new(s));
        check_value_bytes(&v, &codec::encode_value(&v));
    }

    #[test]
    fn lease_ops_round_trip(
        what in lease_action(),
        id in any_id(),
        now in wide_time(),
        expire_at_ms in any::<u64>().prop_map(UnixMs::from_millis),
    ) {
        let op = LeaseOp { what, id: &id, now: t(now), expire_at_ms };
        let bytes = codec::encode_lease_op(&op);
        assert_eq!(codec::decode_any_op(&bytes), Ok(AnyOp::Lease(op)));
        assert!(codec::decode_op(&bytes).is_err(), "not a decision");
        check_op_bytes(&bytes, |b| codec::decode_any_op(b).is_ok());
    }
}

/// The generated runs reach grants, renewals, denials with a wait, releases,
/// renewals by `RENEW`, reclaims and a clock going back (see
/// `the_generated_runs_reach_every_case`).
pub(super) fn check_the_runs_reach_every_case() {
    let mut l = LeaseStats::default();
    for s in sample(lease_steps(), 120) {
        let s = run_leases(&s);
        l.granted += s.granted;
        l.renewed += s.renewed;
        l.denied_waits += s.denied_waits;
        l.released += s.released;
        l.renew_true += s.renew_true;
        l.reclaimed += s.reclaimed;
        l.clock_back += s.clock_back;
    }
    assert!(
        l.granted > 100 && l.renewed > 20 && l.denied_waits > 20,
        "{l:?}"
    );
    assert!(l.released > 20 && l.renew_true > 20, "{l:?}");
    assert!(l.reclaimed > 10 && l.clock_back > 20, "{l:?}");
}
