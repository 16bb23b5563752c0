//! One limiter of any algorithm: what a Redis key holds.

use super::bucket::Flavor;
use super::{
    to_u64, BucketParams, BucketState, Decision, FixedState, LogState, Micros, SlidingState,
    WindowParams,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Fixed,
    Sliding,
    Log,
    Token,
    Leaky,
    Gcra,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Fixed,
        Algorithm::Sliding,
        Algorithm::Log,
        Algorithm::Token,
        Algorithm::Leaky,
        Algorithm::Gcra,
    ];

    /// The name used in commands (`RL.<NAME>`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Fixed => "FIXED",
            Algorithm::Sliding => "SLIDING",
            Algorithm::Log => "LOG",
            Algorithm::Token => "TOKEN",
            Algorithm::Leaky => "LEAKY",
            Algorithm::Gcra => "GCRA",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Stable tag used by the binary encodings; never reuse a number.
    pub fn tag(self) -> u8 {
        match self {
            Algorithm::Fixed => 1,
            Algorithm::Sliding => 2,
            Algorithm::Log => 3,
            Algorithm::Token => 4,
            Algorithm::Leaky => 5,
            Algorithm::Gcra => 6,
        }
    }

    pub fn from_tag(tag: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.tag() == tag)
    }
}

/// The parameters of one request, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Params {
    Fixed(WindowParams),
    Sliding(WindowParams),
    Log(WindowParams),
    Token(BucketParams),
    Leaky(BucketParams),
    /// GCRA keeps redis-cell's meaning: `capacity` here is `max_burst + 1`.
    Gcra(BucketParams),
}

impl Params {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Params::Fixed(_) => Algorithm::Fixed,
            Params::Sliding(_) => Algorithm::Sliding,
            Params::Log(_) => Algorithm::Log,
            Params::Token(_) => Algorithm::Token,
            Params::Leaky(_) => Algorithm::Leaky,
            Params::Gcra(_) => Algorithm::Gcra,
        }
    }
}

/// The state of one limiter, with the parameters last written to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limiter {
    Fixed(FixedState),
    Sliding(SlidingState),
    Log(LogState),
    Token(BucketState),
    Leaky(BucketState),
    Gcra(BucketState),
}

/// A key holds a limiter of another algorithm than the command's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub stored: Algorithm,
    pub requested: Algorithm,
}

impl Limiter {
    /// The state of a key that does not exist yet.
    pub fn new(params: &Params) -> Limiter {
        match *params {
            Params::Fixed(p) => Limiter::Fixed(FixedState::new(p)),
            Params::Sliding(p) => Limiter::Sliding(SlidingState::new(p)),
            Params::Log(p) => Limiter::Log(LogState::new(p)),
            Params::Token(p) => Limiter::Token(BucketState::new(p)),
            Params::Leaky(p) => Limiter::Leaky(BucketState::new(p)),
            Params::Gcra(p) => Limiter::Gcra(BucketState::new(p)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Limiter::Fixed(_) => Algorithm::Fixed,
            Limiter::Sliding(_) => Algorithm::Sliding,
            Limiter::Log(_) => Algorithm::Log,
            Limiter::Token(_) => Algorithm::Token,
            Limiter::Leaky(_) => Algorithm::Leaky,
            Limiter::Gcra(_) => Algorithm::Gcra,
        }
    }

    /// The parameters stored with the state (those of the last write).
    pub fn params(&self) -> Params {
        match self {
            Limiter::Fixed(s) => Params::Fixed(s.params),
            Limiter::Sliding(s) => Params::Sliding(s.params),
            Limiter::Log(s) => Params::Log(s.params),
            Limiter::Token(s) => Params::Token(s.params),
            Limiter::Leaky(s) => Params::Leaky(s.params),
            Limiter::Gcra(s) => Params::Gcra(s.params),
        }
    }

    /// Decides one request; the state changes only if `decision.changed`.
    pub fn decide(
        &mut self,
        params: &Params,
        cost: u64,
        now: Micros,
    ) -> Result<Decision, Mismatch> {
        Ok(match (self, params) {
            (Limiter::Fixed(s), Params::Fixed(p)) => s.decide(p, cost, now),
            (Limiter::Sliding(s), Params::Sliding(p)) => s.decide(p, cost, now),
            (Limiter::Log(s), Params::Log(p)) => s.decide(p, cost, now),
            (Limiter::Token(s), Params::Token(p)) => s.decide(Flavor::Token, p, cost, now),
            (Limiter::Leaky(s), Params::Leaky(p)) => s.decide(Flavor::Leaky, p, cost, now),
            (Limiter::Gcra(s), Params::Gcra(p)) => s.decide(Flavor::Gcra, p, cost, now),
            (s, p) => {
                return Err(Mismatch {
                    stored: s.algorithm(),
                    requested: p.algorithm(),
                })
            }
        })
    }

    /// The parameters in force and the stored state as named integers, for
    /// `RL.INFO`. Times are µs since the Unix epoch, durations µs.
    pub fn describe(&self) -> Vec<(&'static str, u64)> {
        let window = |p: &WindowParams| [("limit", p.limit), ("window_us", p.window)];
        let bucket = |first: &'static str, p: &BucketParams, s: &BucketState| {
            let first_value = if first == "max_burst" {
                p.capacity - 1
            } else {
                p.capacity
            };
            [
                (first, first_value),
                ("rate", p.rate),
                ("period_us", p.period),
                // Whole units in the bucket, rounded up (the state keeps
                // fractions of a unit).
                ("level", to_u64(s.scaled.div_ceil(p.period.max(1) as u128))),
                ("updated_at_us", s.last),
            ]
        };
        match self {
            Limiter::Fixed(s) => {
                let mut v = window(&s.params).to_vec();
                v.extend([("window_start_us", s.start), ("count", s.count)]);
                v
            }
            Limiter::Sliding(s) => {
                let mut v = window(&s.params).to_vec();
                v.extend([
                    ("window_start_us", s.start),
                    ("previous", s.prev),
                    ("current", s.curr),
                ]);
                v
            }
            Limiter::Log(s) => {
                let mut v = window(&s.params).to_vec();
                v.extend([
                    ("entries", s.entries.len() as u64),
                    ("oldest_us", s.entries.front().copied().unwrap_or(0)),
                    ("newest_us", s.entries.back().copied().unwrap_or(0)),
                ]);
                v
            }
            Limiter::Token(s) => bucket("capacity", &s.params, s).to_vec(),
            Limiter::Leaky(s) => bucket("capacity", &s.params, s).to_vec(),
            Limiter::Gcra(s) => bucket("max_burst", &s.params, s).to_vec(),
        }
    }

    /// Heap bytes owned beyond the limiter itself (for `MEMORY USAGE`).
    pub fn heap_size(&self) -> usize {
        match self {
            Limiter::Log(s) => s.entries.capacity() * std::mem::size_of::<Micros>(),
            _ => 0,
        }
    }

    /// Whether the state satisfies the invariants `decide` keeps; decoded
    /// data must pass this before it is used.
    pub fn is_valid(&self) -> bool {
        match self {
            Limiter::Fixed(s) => s.is_valid(),
            Limiter::Sliding(s) => s.is_valid(),
            Limiter::Log(s) => s.is_valid(),
            Limiter::Token(s) | Limiter::Leaky(s) | Limiter::Gcra(s) => s.is_valid(),
        }
    }
}
