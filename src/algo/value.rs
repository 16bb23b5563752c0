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

use super::{Decision, Duration, Instant, Kind, LeaseState, Limiter, Mismatch, Params, Verdict};

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
    pub fn kind(&self) -> Kind {
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

    /// As [`Value::limiter_for`], to change it.
    pub(crate) fn limiter_mut_for(&mut self, requested: Kind) -> Result<&mut Limiter, Mismatch> {
        match self {
            Value::Limiter(l) => Ok(l),
            Value::Blocked(b) => Ok(&mut b.limiter),
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
    pub fn memory(&self) -> usize {
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

    /// Decides like the module: evaluate, install when it writes, apply the
    /// block change.
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
        let old_block = held.as_ref().and_then(Value::block);
        if g.verdict.writes {
            let mut l = match held.take() {
                Some(v) => v.limiter().unwrap().clone(),
                None => Limiter::new(params),
            };
            l.apply(&g.verdict.next);
            let block = match g.block {
                BlockChange::Keep => old_block,
                BlockChange::Start(u) => Some(u),
                BlockChange::Lift => None,
            };
            *held = Some(match block {
                Some(until) => Value::Blocked(Box::new(Blocked { until, limiter: l })),
                None => Value::Limiter(l),
            });
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
