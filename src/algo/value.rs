//! What a key holds, and the penalty box.
//!
//! A limiter may be *blocked*: a call given `PENALTY d` that is denied (and
//! could pass later) shuts the key until `d` after the decision. Every call
//! until then is denied, with nothing spent, `remaining` 0 and a wait of the
//! later of the block's end and the algorithm's own. Further denials don't
//! extend a block; only its end (or `DEL`) lifts it.
//!
//! A block is rare and short-lived, so it lives in a wrapper around the
//! limiter rather than in every state: an unblocked key pays nothing for it.

use super::{
    Decision, Duration, Instant, Kind, LeaseChange, LeaseState, Limiter, Mismatch, Next, Params,
    Refund, Verdict,
};

/// A limiter in the penalty box until `until` (the box is empty once
/// `until` is past; the wrapper stays until the key is next written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub until: Instant,
    pub limiter: Limiter,
}

/// What a key of this module holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Limiter(Limiter),
    Blocked(Box<Blocked>),
    /// Concurrency leases (`RL.ACQUIRE`).
    Leases(Box<LeaseState>),
}

impl Value {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::Limiter(l) => Kind::Limiter(l.algorithm()),
            Value::Blocked(b) => Kind::Limiter(b.limiter.algorithm()),
            Value::Leases(_) => Kind::Leases,
        }
    }

    /// The rate limiter held, or what the key holds instead for a command
    /// that wanted `requested`.
    pub(crate) fn limiter_for(&self, requested: Kind) -> Result<&Limiter, Mismatch> {
        match self {
            Value::Limiter(l) => Ok(l),
            Value::Blocked(b) => Ok(&b.limiter),
            Value::Leases(_) => Err(Mismatch {
                stored: Kind::Leases,
                requested,
            }),
        }
    }

    pub fn limiter(&self) -> Option<&Limiter> {
        match self {
            Value::Limiter(l) => Some(l),
            Value::Blocked(b) => Some(&b.limiter),
            Value::Leases(_) => None,
        }
    }

    pub fn limiter_mut(&mut self) -> Option<&mut Limiter> {
        match self {
            Value::Limiter(l) => Some(l),
            Value::Blocked(b) => Some(&mut b.limiter),
            Value::Leases(_) => None,
        }
    }

    /// The end of the key's block, past or not.
    pub fn block(&self) -> Option<Instant> {
        match self {
            Value::Blocked(b) => Some(b.until),
            _ => None,
        }
    }

    /// Bytes owned (for `MEMORY USAGE`).
    pub(crate) fn memory(&self) -> usize {
        match self {
            Value::Limiter(l) => l.memory(),
            Value::Blocked(b) => size_of::<Blocked>() + b.limiter.memory(),
            Value::Leases(s) => s.memory(),
        }
    }

    pub fn is_valid(&self) -> bool {
        match self {
            Value::Limiter(l) => l.is_valid(),
            Value::Blocked(b) => b.until <= latest_block_end() && b.limiter.is_valid(),
            Value::Leases(s) => s.is_valid(),
        }
    }
}

/// The latest a block can end: the latest decision time plus the longest
/// penalty.
pub const fn latest_block_end() -> Instant {
    Instant::from_micros(super::MAX_TIME_US + super::MAX_DURATION_US)
}

/// What a request does to the key's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockChange {
    Keep,
    /// A block starts (or a past one is replaced), ending then.
    Start(Instant),
    /// A past block goes with this write.
    Lift,
}

/// A verdict with the penalty box applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guarded {
    pub verdict: Verdict,
    pub block: BlockChange,
}

/// Decides a request on what a key holds (`None`: nothing), under its
/// block and the request's `penalty`, changing nothing.
pub fn evaluate(
    held: Option<&Value>,
    params: &Params,
    cost: u64,
    now: Instant,
    penalty: Option<Duration>,
) -> Result<Guarded, Mismatch> {
    let Some(value) = held else {
        // No key, no block; and a fresh limiter denies only what it can
        // never allow, which starts no block.
        return Ok(Guarded {
            verdict: Limiter::evaluate_fresh(params, cost, now),
            block: BlockChange::Keep,
        });
    };
    let limiter = value.limiter_for(Kind::Limiter(params.algorithm()))?;
    let v = limiter.evaluate(params, cost, now)?;
    let at = v.decision.at;
    if let Some(until) = value.block().filter(|&u| u > at) {
        // Blocked: nothing is spent, but other parameters are still kept,
        // as by any denial.
        let unspent = if v.spends {
            limiter.evaluate(params, 0, now)?
        } else {
            v
        };
        let left = until - at;
        let own = if v.decision.allowed {
            Some(Duration::ZERO)
        } else {
            v.decision.retry_after
        };
        let verdict = Verdict {
            decision: blocked(&unspent.decision, own.map(|r| r.max(left)), left),
            next: unspent.next,
            spends: false,
            writes: super::writes(false, cost, limiter.params() != *params),
        };
        return Ok(Guarded {
            verdict,
            block: BlockChange::Keep,
        });
    }
    match (penalty, v.decision.retry_after) {
        (Some(d), Some(wait)) if !v.decision.allowed && cost > 0 => {
            let verdict = Verdict {
                decision: blocked(&v.decision, Some(wait.max(d)), d),
                writes: true,
                ..v
            };
            Ok(Guarded {
                verdict,
                block: BlockChange::Start(at + d),
            })
        }
        _ => Ok(Guarded {
            block: if v.writes && value.block().is_some() {
                BlockChange::Lift
            } else {
                BlockChange::Keep
            },
            verdict: v,
        }),
    }
}

/// What a write does to a key's value, as decided on a snapshot of it
/// (by [`evaluate`], [`Limiter::evaluate_refund`] or
/// [`LeaseState::evaluate`]), and carried out by [`install`]: the one step
/// every writer (decisions, refunds, lease ops and their replays) takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// A decision that writes: the held limiter moves to `next` (a key
    /// holding nothing gets a limiter of `params` at `next`), and its block
    /// changes.
    Limiter {
        params: &'a Params,
        next: Next,
        block: BlockChange,
    },
    /// A refund that gives something back: the held limiter moves to
    /// `next`, its block kept.
    Refund(Next),
    /// A lease op that writes, on the leases the key holds.
    Leases(LeaseChange<'a>),
    /// A lease op that writes on a key that held nothing: decided on
    /// `fresh`, which becomes the key's value once changed.
    NewLeases {
        fresh: LeaseState,
        change: LeaseChange<'a>,
    },
}

impl Guarded {
    /// What installing this verdict writes (when it writes), decided
    /// under `params`.
    #[inline]
    pub fn change<'a>(&self, params: &'a Params) -> Change<'a> {
        Change::Limiter {
            params,
            next: self.verdict.next,
            block: self.block,
        }
    }
}

impl Refund {
    /// What installing this refund writes (when it writes).
    #[inline]
    pub fn change(&self) -> Change<'static> {
        Change::Refund(self.next)
    }
}

/// What [`install`] did with the key's value.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// Changed where it is.
    InPlace,
    /// The key's value is now this one (the held one, if any, goes).
    Store(Value),
    /// The key holds nothing now: it goes.
    Empty,
}

/// A change that can't be installed on what the key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfit {
    /// The key holds another kind of value than the change writes.
    Mismatch(Mismatch),
    /// The key holds something the change was not decided on (nothing, or
    /// leases for a refund): a bug of the caller's.
    Stale,
}

/// Carries out `change` on what a key holds (`None`: nothing), the
/// snapshot it was decided on: changes the value in place where it can, or
/// answers the value to store instead. Block wrapping lives here: a block
/// that starts wraps the limiter in [`Blocked`], one lifted unwraps it (both
/// store a new value: rare, once per block, and every value Redis owns is
/// kept whole), and a block's new end is set in place.
///
/// Inlined into every writer, so that each keeps only the arm of the
/// change it makes (the writer knows which), at no cost over the install
/// it made by hand before.
#[inline(always)]
pub fn install(held: Option<&mut Value>, change: Change) -> Result<Installed, Unfit> {
    match change {
        Change::Limiter {
            params,
            next,
            block,
        } => install_decision(held, params, &next, block),
        Change::Refund(next) => {
            let limiter = held.and_then(Value::limiter_mut).ok_or(Unfit::Stale)?;
            limiter.apply(&next);
            Ok(Installed::InPlace)
        }
        Change::Leases(change) => match held {
            Some(Value::Leases(s)) => {
                s.apply(&change);
                Ok(if s.is_empty() {
                    Installed::Empty
                } else {
                    Installed::InPlace
                })
            }
            Some(other) => Err(Unfit::Mismatch(Mismatch {
                stored: other.kind(),
                requested: Kind::Leases,
            })),
            None => Err(Unfit::Stale),
        },
        Change::NewLeases { mut fresh, change } => {
            if held.is_some() {
                return Err(Unfit::Stale);
            }
            fresh.apply(&change);
            Ok(if fresh.is_empty() {
                Installed::Empty
            } else {
                Installed::Store(Value::Leases(Box::new(fresh)))
            })
        }
    }
}

/// [`install`] for a decision: the limiter moves to `next`, then the block
/// changes.
#[inline]
fn install_decision(
    held: Option<&mut Value>,
    params: &Params,
    next: &Next,
    block: BlockChange,
) -> Result<Installed, Unfit> {
    let Some(held) = held else {
        let limiter = Limiter::create(params, next);
        return Ok(Installed::Store(with_block(limiter, block)));
    };
    match (held, block) {
        (Value::Limiter(l), BlockChange::Start(until)) => {
            let mut limiter = l.clone();
            limiter.apply(next);
            Ok(Installed::Store(with_block(
                limiter,
                BlockChange::Start(until),
            )))
        }
        (Value::Limiter(l), BlockChange::Keep | BlockChange::Lift) => {
            l.apply(next);
            Ok(Installed::InPlace)
        }
        (Value::Blocked(b), BlockChange::Lift) => {
            let mut limiter = b.limiter.clone();
            limiter.apply(next);
            Ok(Installed::Store(Value::Limiter(limiter)))
        }
        (Value::Blocked(b), keep_or_start) => {
            if let BlockChange::Start(until) = keep_or_start {
                b.until = until;
            }
            b.limiter.apply(next);
            Ok(Installed::InPlace)
        }
        (held @ Value::Leases(_), _) => Err(Unfit::Mismatch(Mismatch {
            stored: held.kind(),
            requested: Kind::Limiter(params.algorithm()),
        })),
    }
}

/// A limiter under a block that starts (a key holding no block keeps none
/// or lifts none).
#[inline]
fn with_block(limiter: Limiter, block: BlockChange) -> Value {
    match block {
        BlockChange::Start(until) => Value::Blocked(Box::new(Blocked { until, limiter })),
        BlockChange::Keep | BlockChange::Lift => Value::Limiter(limiter),
    }
}

/// A decision as a block `left` long shows it.
fn blocked(d: &Decision, retry_after: Option<Duration>, left: Duration) -> Decision {
    Decision {
        allowed: false,
        remaining: 0,
        retry_after,
        reset_after: d.reset_after.max(left),
        ..*d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::{t, window};

    const S: u64 = 1_000_000;

    /// Decides like the module: evaluate, then install when it writes.
    fn call(
        held: &mut Option<Value>,
        params: &Params,
        cost: u64,
        now: u64,
        penalty: Option<u64>,
    ) -> (bool, u64, Option<u64>, u64) {
        let g = evaluate(
            held.as_ref(),
            params,
            cost,
            t(now),
            penalty.map(Duration::from_micros),
        )
        .unwrap();
        if g.verdict.writes {
            match install(held.as_mut(), g.change(params)).unwrap() {
                Installed::InPlace => {}
                Installed::Store(v) => *held = Some(v),
                Installed::Empty => *held = None,
            }
        } else {
            assert_eq!(g.block, BlockChange::Keep);
        }
        let d = g.verdict.decision;
        (
            d.allowed,
            d.remaining,
            d.retry_after.map(|r| r.as_micros()),
            d.reset_after.as_micros(),
        )
    }

    /// What installing left: changed in place (or not), and what the key
    /// holds then.
    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        InPlace(Value),
        Store(Value),
        Empty,
        Refused(Unfit),
    }

    fn run(mut held: Option<Value>, change: Change) -> Out {
        let before = held.clone();
        match install(held.as_mut(), change) {
            Ok(Installed::InPlace) => Out::InPlace(held.expect("changed in place")),
            Ok(Installed::Store(v)) => Out::Store(v),
            Ok(Installed::Empty) => Out::Empty,
            Err(e) => {
                assert_eq!(held, before, "a refused change changes nothing");
                Out::Refused(e)
            }
        }
    }

    #[test]
    fn install_carries_out_each_change_on_each_value() {
        use crate::algo::{Algorithm, Count, LeaseAction};
        let p = Params::Fixed(window(5, 10 * S).into());
        let l0 = Limiter::new(&p);
        let next = l0.evaluate(&p, 1, t(0)).unwrap().next;
        let mut l1 = l0.clone();
        l1.apply(&next);
        let lim = |l: &Limiter| Value::Limiter(l.clone());
        let blk = |until: u64, l: &Limiter| {
            Value::Blocked(Box::new(Blocked {
                until: t(until),
                limiter: l.clone(),
            }))
        };
        let decided = |block| Change::Limiter {
            params: &p,
            next,
            block,
        };
        let limit = Count::new(2).unwrap();
        let s0 = LeaseState::new(limit);
        let acquire = LeaseAction::Acquire {
            limit,
            units: 1,
            ttl: Duration::from_micros(S),
        };
        let place = s0.evaluate(acquire, b"a", t(0)).next.unwrap();
        let mut s1 = s0.clone();
        s1.apply(&place);
        let end = s1.evaluate(LeaseAction::Release, b"a", t(1)).next.unwrap();
        let leases = |s: &LeaseState| Value::Leases(Box::new(s.clone()));
        let fresh = |s: &LeaseState, change| Change::NewLeases {
            fresh: s.clone(),
            change,
        };
        let wants_limiter = Unfit::Mismatch(Mismatch {
            stored: Kind::Leases,
            requested: Kind::Limiter(Algorithm::Fixed),
        });
        let wants_leases = Unfit::Mismatch(Mismatch {
            stored: Kind::Limiter(Algorithm::Fixed),
            requested: Kind::Leases,
        });
        use BlockChange::{Keep, Lift, Start};
        use Out::*;
        let rows: Vec<(Option<Value>, Change, Out)> = vec![
            // A decision: a key holding nothing gets a new limiter.
            (None, decided(Keep), Store(lim(&l1))),
            (None, decided(Start(t(9))), Store(blk(9, &l1))),
            (None, decided(Lift), Store(lim(&l1))),
            // A block that starts wraps the limiter; a held one changes
            // its end in place; one lifted unwraps it.
            (Some(lim(&l0)), decided(Keep), InPlace(lim(&l1))),
            (Some(lim(&l0)), decided(Start(t(9))), Store(blk(9, &l1))),
            (Some(lim(&l0)), decided(Lift), InPlace(lim(&l1))),
            (Some(blk(5, &l0)), decided(Keep), InPlace(blk(5, &l1))),
            (
                Some(blk(5, &l0)),
                decided(Start(t(9))),
                InPlace(blk(9, &l1)),
            ),
            (Some(blk(5, &l0)), decided(Lift), Store(lim(&l1))),
            // Leases where a limiter is asked: the mismatch the client is
            // told.
            (Some(leases(&s1)), decided(Keep), Refused(wants_limiter)),
            (
                Some(leases(&s1)),
                decided(Start(t(9))),
                Refused(wants_limiter),
            ),
            (Some(leases(&s1)), decided(Lift), Refused(wants_limiter)),
            // A refund changes the held limiter, its block kept.
            (None, Change::Refund(next), Refused(Unfit::Stale)),
            (Some(lim(&l0)), Change::Refund(next), InPlace(lim(&l1))),
            (
                Some(blk(5, &l0)),
                Change::Refund(next),
                InPlace(blk(5, &l1)),
            ),
            (
                Some(leases(&s1)),
                Change::Refund(next),
                Refused(Unfit::Stale),
            ),
            // A lease op on held leases; the last lease's end empties the key.
            (None, Change::Leases(place), Refused(Unfit::Stale)),
            (Some(lim(&l0)), Change::Leases(place), Refused(wants_leases)),
            (
                Some(blk(5, &l0)),
                Change::Leases(place),
                Refused(wants_leases),
            ),
            (
                Some(leases(&s0)),
                Change::Leases(place),
                InPlace(leases(&s1)),
            ),
            (Some(leases(&s1)), Change::Leases(end), Empty),
            // A lease op on a key that held nothing, on the fresh state it
            // was decided on.
            (None, fresh(&s0, place), Store(leases(&s1))),
            (None, fresh(&s1, end), Empty),
            (Some(lim(&l0)), fresh(&s0, place), Refused(Unfit::Stale)),
            (Some(leases(&s0)), fresh(&s0, place), Refused(Unfit::Stale)),
        ];
        for (i, (held, change, want)) in rows.into_iter().enumerate() {
            let shown = format!("row {i}: {change:?} on {held:?}");
            assert_eq!(run(held, change), want, "{shown}");
        }
    }

    #[test]
    fn a_denial_with_a_penalty_blocks_the_key_until_it_ends() {
        let p = Params::Fixed(window(2, 10 * S).into());
        let mut key = None;
        let pen = Some(60 * S);
        assert_eq!(call(&mut key, &p, 1, 0, pen), (true, 1, Some(0), 10 * S));
        assert_eq!(call(&mut key, &p, 1, S, pen), (true, 0, Some(0), 9 * S));
        // Denied: the block starts, longer than the window's own wait.
        assert_eq!(
            call(&mut key, &p, 1, 2 * S, pen),
            (false, 0, Some(60 * S), 60 * S)
        );
        assert_eq!(key.as_ref().unwrap().block(), Some(t(62 * S)));
        // The window has reset, but the block holds; not extended.
        assert_eq!(
            call(&mut key, &p, 1, 30 * S, pen),
            (false, 0, Some(32 * S), 32 * S)
        );
        assert_eq!(key.as_ref().unwrap().block(), Some(t(62 * S)));
        // A peek sees the block too.
        assert_eq!(call(&mut key, &p, 0, 61 * S, None), (false, 0, Some(S), S));
        // Over at its end; the write lifts the wrapper.
        assert_eq!(
            call(&mut key, &p, 1, 62 * S, pen),
            (true, 1, Some(0), 10 * S)
        );
        assert_eq!(key.as_ref().unwrap().block(), None);
    }

    #[test]
    fn a_block_shorter_than_the_algorithms_wait_reports_the_longer() {
        let p = Params::Fixed(window(1, 100 * S).into());
        let mut key = None;
        call(&mut key, &p, 1, 0, None);
        assert_eq!(
            call(&mut key, &p, 1, S, Some(5 * S)),
            (false, 0, Some(99 * S), 99 * S)
        );
        assert_eq!(call(&mut key, &p, 1, 3 * S, None).2, Some(97 * S));
    }

    #[test]
    fn no_block_without_a_penalty_or_when_the_call_can_never_pass() {
        let p = Params::Fixed(window(1, 10 * S).into());
        let mut key = None;
        call(&mut key, &p, 1, 0, None);
        assert!(!call(&mut key, &p, 1, S, None).0);
        assert_eq!(key.as_ref().unwrap().block(), None);
        // Cost above the limit: retry never, no block.
        assert_eq!(call(&mut key, &p, 5, S, Some(S)).2, None);
        assert_eq!(key.as_ref().unwrap().block(), None);
        // Nor on an absent key.
        let mut none = None;
        call(&mut none, &p, 5, S, Some(S));
        assert!(none.is_none());
    }
}
