//! One limiter of any algorithm: what a Redis key holds, and the one table of
//! algorithms every other layer reads (names, parameters, encoding tags,
//! counter slots).

use super::bucket::Flavor;
use super::calendar::Span;
use super::fixed::{FixedParams, FixedWindow};
use super::log::LogNext;
use super::{
    BucketParams, BucketState, Decision, FixedState, GcraParams, Instant, LogState, SlidingState,
    WindowParams,
};

/// The six algorithms. The discriminant is the algorithm's slot in
/// [`TABLE`] and in per-algorithm counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    Fixed = 0,
    Sliding = 1,
    Log = 2,
    Token = 3,
    Leaky = 4,
    Gcra = 5,
}

/// How an algorithm's parameters read on a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `limit window`
    Window,
    /// `capacity rate period`
    Bucket,
    /// `max_burst rate period`
    Gcra,
}

pub struct AlgorithmInfo {
    /// As in `RL.ALL` and in messages.
    pub name: &'static str,
    /// The algorithm's own command.
    pub command: &'static str,
    /// Lower case, for `INFO ratelimit` fields.
    pub lower: &'static str,
    pub shape: Shape,
}

const TABLE: [AlgorithmInfo; 6] = [
    AlgorithmInfo {
        name: "FIXED",
        command: "RL.FIXED",
        lower: "fixed",
        shape: Shape::Window,
    },
    AlgorithmInfo {
        name: "SLIDING",
        command: "RL.SLIDING",
        lower: "sliding",
        shape: Shape::Window,
    },
    AlgorithmInfo {
        name: "LOG",
        command: "RL.LOG",
        lower: "log",
        shape: Shape::Window,
    },
    AlgorithmInfo {
        name: "TOKEN",
        command: "RL.TOKEN",
        lower: "token",
        shape: Shape::Bucket,
    },
    AlgorithmInfo {
        name: "LEAKY",
        command: "RL.LEAKY",
        lower: "leaky",
        shape: Shape::Bucket,
    },
    AlgorithmInfo {
        name: "GCRA",
        command: "RL.GCRA",
        lower: "gcra",
        shape: Shape::Gcra,
    },
];

impl Shape {
    /// Names of the positional parameters, in order.
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Shape::Window => &["limit", "window"],
            Shape::Bucket => &["capacity", "rate", "period"],
            Shape::Gcra => &["max_burst", "rate", "period"],
        }
    }
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

    /// Slot in [`Algorithm::ALL`] and in per-algorithm counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn info(self) -> &'static AlgorithmInfo {
        &TABLE[self.index()]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn shape(self) -> Shape {
        self.info().shape
    }

    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Stable tag used by the binary encodings (1 to 6); never reuse one.
    pub const fn tag(self) -> u8 {
        self as u8 + 1
    }

    pub fn from_tag(tag: u8) -> Option<Algorithm> {
        Algorithm::ALL
            .get(usize::from(tag).checked_sub(1)?)
            .copied()
    }

    fn flavor(self) -> Flavor {
        match self {
            Algorithm::Leaky => Flavor::Leaky,
            Algorithm::Gcra => Flavor::Gcra,
            _ => Flavor::Token,
        }
    }
}

/// The parameters of one request, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Params {
    Fixed(FixedParams),
    Sliding(WindowParams),
    Log(WindowParams),
    Token(BucketParams),
    Leaky(BucketParams),
    Gcra(GcraParams),
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

    /// The limit as replies report it (limit, capacity, `max_burst + 1`).
    pub fn limit(&self) -> u64 {
        match self {
            Params::Fixed(f) => f.limit.get(),
            Params::Sliding(w) | Params::Log(w) => w.limit.get(),
            Params::Token(b) | Params::Leaky(b) => b.capacity.get(),
            Params::Gcra(g) => g.max_burst.capacity().get(),
        }
    }

    /// Window parameters under the window algorithm `algo`.
    pub fn window(algo: Algorithm, w: WindowParams) -> Option<Params> {
        match algo {
            Algorithm::Fixed => Some(Params::Fixed(w.into())),
            Algorithm::Sliding => Some(Params::Sliding(w)),
            Algorithm::Log => Some(Params::Log(w)),
            _ => None,
        }
    }

    /// Bucket parameters under the bucket algorithm `algo` (GCRA's capacity
    /// is `max_burst + 1`).
    pub fn bucket(algo: Algorithm, b: BucketParams) -> Option<Params> {
        match algo {
            Algorithm::Token => Some(Params::Token(b)),
            Algorithm::Leaky => Some(Params::Leaky(b)),
            Algorithm::Gcra => Some(Params::Gcra(GcraParams::of_bucket(&b))),
            _ => None,
        }
    }
}

/// The state of one limiter, with the parameters last written to it. Each
/// state lives in its own allocation of exactly its size (the Redis layer
/// stores the algorithm beside the pointer), so a bucket costs 48 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limiter {
    Fixed(Box<FixedState>),
    Sliding(Box<SlidingState>),
    Log(Box<LogState>),
    Token(Box<BucketState>),
    Leaky(Box<BucketState>),
    Gcra(Box<BucketState>),
}

/// The state a request leaves when it writes: the whole new state for the
/// fixed-size algorithms, the change for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Fixed(FixedState),
    Sliding(SlidingState),
    Log(LogNext),
    Bucket(BucketState),
}

/// A decision and what installing it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub next: Next,
    /// Whether the request spends something (allowed, cost > 0).
    pub spends: bool,
    /// Whether the request writes: it spends, or it carries other parameters
    /// than the stored ones (cost > 0, even denied). Such a denial keeps the
    /// new parameters and leaves the state itself as it was, so a tightened
    /// limit is never forgotten early by the key's expiry, and a denial never
    /// makes a later request more likely to pass. A peek never writes.
    pub writes: bool,
}

/// What a key of this module can hold, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Limiter(Algorithm),
    Leases,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Limiter(a) => write!(f, "a {} limiter", a.name()),
            Kind::Leases => f.write_str("concurrency leases"),
        }
    }
}

/// A key holds another kind of value than the command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub stored: Kind,
    pub requested: Kind,
}

impl Limiter {
    /// A new, empty limiter.
    pub fn new(params: &Params) -> Limiter {
        match *params {
            Params::Fixed(p) => Limiter::Fixed(Box::new(FixedState::new(p))),
            Params::Sliding(p) => Limiter::Sliding(Box::new(SlidingState::new(p))),
            Params::Log(p) => Limiter::Log(Box::new(LogState::new(p))),
            Params::Token(p) => Limiter::Token(Box::new(BucketState::new(p))),
            Params::Leaky(p) => Limiter::Leaky(Box::new(BucketState::new(p))),
            Params::Gcra(p) => Limiter::Gcra(Box::new(BucketState::new(p.bucket()))),
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
            Limiter::Gcra(s) => Params::Gcra(GcraParams::of_bucket(&s.params)),
        }
    }

    /// Decides one request on this limiter without changing it.
    pub fn evaluate(&self, params: &Params, cost: u64, now: Instant) -> Result<Verdict, Mismatch> {
        let (decision, next) = match (self, params) {
            (Limiter::Fixed(s), Params::Fixed(p)) => {
                let (d, n) = s.evaluate(p, cost, now);
                (d, Next::Fixed(n))
            }
            (Limiter::Sliding(s), Params::Sliding(p)) => {
                let (d, n) = s.evaluate(p, cost, now);
                (d, Next::Sliding(n))
            }
            (Limiter::Log(s), Params::Log(p)) => {
                let (d, n) = s.evaluate(p, cost, now);
                (d, Next::Log(n))
            }
            (Limiter::Token(s), Params::Token(p)) | (Limiter::Leaky(s), Params::Leaky(p)) => {
                let (d, n) = s.evaluate(params.algorithm().flavor(), p, cost, now);
                (d, Next::Bucket(n))
            }
            (Limiter::Gcra(s), Params::Gcra(p)) => {
                let (d, n) = s.evaluate(Flavor::Gcra, &p.bucket(), cost, now);
                (d, Next::Bucket(n))
            }
            _ => {
                return Err(Mismatch {
                    stored: Kind::Limiter(self.algorithm()),
                    requested: Kind::Limiter(params.algorithm()),
                })
            }
        };
        let spends = decision.allowed && cost > 0;
        Ok(Verdict {
            decision,
            next,
            spends,
            // `spends` short-cuts the comparison on the common path.
            writes: spends || super::writes(false, cost, self.params() != *params),
        })
    }

    /// Decides one request on a key that holds nothing, without allocating.
    pub fn evaluate_fresh(params: &Params, cost: u64, now: Instant) -> Verdict {
        let (decision, next) = match params {
            Params::Fixed(p) => {
                let (d, n) = FixedState::new(*p).evaluate(p, cost, now);
                (d, Next::Fixed(n))
            }
            Params::Sliding(p) => {
                let (d, n) = SlidingState::new(*p).evaluate(p, cost, now);
                (d, Next::Sliding(n))
            }
            Params::Log(p) => {
                let (d, n) = LogState::new(*p).evaluate(p, cost, now);
                (d, Next::Log(n))
            }
            Params::Token(p) | Params::Leaky(p) => {
                let (d, n) =
                    BucketState::new(*p).evaluate(params.algorithm().flavor(), p, cost, now);
                (d, Next::Bucket(n))
            }
            Params::Gcra(g) => {
                let p = g.bucket();
                let (d, n) = BucketState::new(p).evaluate(Flavor::Gcra, &p, cost, now);
                (d, Next::Bucket(n))
            }
        };
        let spends = decision.allowed && cost > 0;
        Verdict {
            decision,
            next,
            spends,
            writes: spends,
        }
    }

    /// Installs what [`Limiter::evaluate`] on this limiter returned.
    pub fn apply(&mut self, next: &Next) {
        match (self, next) {
            (Limiter::Fixed(s), Next::Fixed(n)) => **s = *n,
            (Limiter::Sliding(s), Next::Sliding(n)) => **s = *n,
            (Limiter::Log(s), Next::Log(n)) => s.apply(n),
            (Limiter::Token(s) | Limiter::Leaky(s) | Limiter::Gcra(s), Next::Bucket(n)) => **s = *n,
            // `next` always comes from evaluating this very limiter.
            _ => debug_assert!(false, "a verdict applied to another algorithm"),
        }
    }

    /// The limiter a request on an absent key leaves (from
    /// [`Limiter::evaluate_fresh`]).
    pub fn create(params: &Params, next: &Next) -> Limiter {
        let mut l = Limiter::new(params);
        l.apply(next);
        l
    }

    /// Evaluates and installs when the request writes: the whole request on
    /// an owned limiter (tests, benches; the Redis layer uses the two steps).
    pub fn decide(
        &mut self,
        params: &Params,
        cost: u64,
        now: Instant,
    ) -> Result<Decision, Mismatch> {
        let v = self.evaluate(params, cost, now)?;
        if v.writes {
            self.apply(&v.next);
        }
        Ok(v.decision)
    }

    /// Gives back up to `n` units spent at or before `now`, by the
    /// algorithm's own rule (see each state's `refund`), and answers how
    /// many; the limiter changes only when that is more than zero.
    pub fn refund(&mut self, n: u64, now: Instant) -> u64 {
        match self {
            Limiter::Fixed(s) => s.refund(n, now),
            Limiter::Sliding(s) => s.refund(n, now),
            Limiter::Log(s) => s.refund(n, now),
            Limiter::Token(s) | Limiter::Leaky(s) | Limiter::Gcra(s) => s.refund(n, now),
        }
    }

    /// The parameters in force and the stored state as named integers, for
    /// `RL.INFO`. Times are µs since the Unix epoch, durations µs; an offset
    /// is signed minutes, so fields are `i64` (every other figure is bounded
    /// far below `i64::MAX`).
    pub fn describe(&self, mut signed: impl FnMut(&'static str, i64)) {
        let mut field = |name, v: i128| signed(name, i64::try_from(v).unwrap_or(i64::MAX));
        match self {
            Limiter::Fixed(s) => {
                field("limit", i128::from(s.params.limit.get()));
                match s.params.window() {
                    FixedWindow::FirstHit(w) => field("window_us", w.micros().into()),
                    FixedWindow::Aligned(span, offset) => {
                        match span {
                            Span::Micros(w) => field("window_us", w.micros().into()),
                            Span::Months(n) => field("window_months", n.get().into()),
                        }
                        field("align", 1);
                        field("offset_minutes", offset.minutes().into());
                    }
                }
                field("window_start_us", i128::from(s.start.as_micros()));
                field("count", i128::from(s.count));
            }
            Limiter::Sliding(s) => {
                field("limit", i128::from(s.params.limit.get()));
                field("window_us", i128::from(s.params.window.micros()));
                field("window_start_us", i128::from(s.start.as_micros()));
                field("previous", i128::from(s.prev));
                field("current", i128::from(s.curr));
            }
            Limiter::Log(s) => {
                field("limit", i128::from(s.params.limit.get()));
                field("window_us", i128::from(s.params.window.micros()));
                field("entries", i128::from(s.entries.len() as u64));
                let micros = |t: Option<&Instant>| t.map_or(0, |t| t.as_micros());
                field("oldest_us", i128::from(micros(s.entries.front())));
                field("newest_us", i128::from(micros(s.entries.back())));
            }
            Limiter::Token(s) | Limiter::Leaky(s) | Limiter::Gcra(s) => {
                let p = &s.params;
                if let Limiter::Gcra(_) = self {
                    field("max_burst", i128::from(p.capacity.get() - 1));
                } else {
                    field("capacity", i128::from(p.capacity.get()));
                }
                field("rate", i128::from(p.rate.get()));
                field("period_us", i128::from(p.period.micros()));
                field("level", i128::from(s.level()));
                field("updated_at_us", i128::from(s.last.as_micros()));
            }
        }
    }

    /// Bytes owned by the limiter (for `MEMORY USAGE`).
    pub fn memory(&self) -> usize {
        match self {
            Limiter::Fixed(_) => size_of::<FixedState>(),
            Limiter::Sliding(_) => size_of::<SlidingState>(),
            Limiter::Log(s) => size_of::<LogState>() + s.entries.capacity() * size_of::<Instant>(),
            Limiter::Token(_) | Limiter::Leaky(_) | Limiter::Gcra(_) => size_of::<BucketState>(),
        }
    }

    /// Whether the state satisfies the invariants `evaluate` keeps; decoded
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_of_algorithms() {
        for (i, a) in Algorithm::ALL.into_iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(Algorithm::from_tag(a.tag()), Some(a));
            assert_eq!(Algorithm::from_name(a.name().as_bytes()), Some(a));
            assert_eq!(a.info().lower, a.name().to_ascii_lowercase());
        }
        assert_eq!(Algorithm::from_tag(0), None);
        assert_eq!(Algorithm::from_tag(7), None);
    }

    /// Refunds per algorithm, on a fake clock: (now s, op, answer, remaining
    /// after), op `Spend(n)` answering allowed (1/0) or `Refund(n)`
    /// answering the units given back.
    #[test]
    fn refunds_follow_each_algorithms_rule() {
        use crate::algo::testing::{every_algorithm, t, window};
        use crate::algo::BucketParams;
        #[derive(Clone, Copy)]
        enum Op {
            Spend(u64),
            Refund(u64),
        }
        use Op::*;
        const S: u64 = 1_000_000;
        let w = window(5, 10 * S);
        let b = BucketParams::new(5, 1, S).unwrap();
        let [fixed, sliding, log, token, leaky, gcra] = every_algorithm(w, b);
        type Row = (u64, Op, u64, u64);
        let window_rows: &[Row] = &[
            (0, Spend(3), 1, 2),
            (1, Refund(2), 2, 4),
            (2, Refund(5), 1, 5),
            (2, Refund(1), 0, 5),
            (3, Spend(5), 1, 0),
        ];
        let bucket_rows: &[Row] = &[
            (0, Spend(5), 1, 0),
            // Two units drained: three can come back, not more.
            (2, Refund(10), 3, 5),
            (2, Refund(1), 0, 5),
            (2, Spend(5), 1, 0),
            (2, Refund(1), 1, 1),
        ];
        let cases: [(&Params, &[Row]); 6] = [
            (&fixed, window_rows),
            (&sliding, window_rows),
            (&log, window_rows),
            (&token, bucket_rows),
            (&leaky, bucket_rows),
            (&gcra, bucket_rows),
        ];
        for (params, rows) in cases {
            let mut l = Limiter::new(params);
            for (i, &(now, op, answer, remaining)) in rows.iter().enumerate() {
                let got = match op {
                    Spend(n) => l.decide(params, n, t(now * S)).unwrap().allowed as u64,
                    Refund(n) => {
                        let before = l.clone();
                        let given = l.refund(n, t(now * S));
                        if given == 0 {
                            assert_eq!(l, before, "a refund of nothing changes nothing");
                        }
                        given
                    }
                };
                let left = l.decide(params, 0, t(now * S)).unwrap().remaining;
                assert_eq!(
                    (got, left),
                    (answer, remaining),
                    "{:?} row {i}",
                    params.algorithm()
                );
            }
        }
    }

    /// Never into a closed window, nor entries that no longer count.
    #[test]
    fn refunds_stay_in_the_current_window() {
        use crate::algo::testing::{t, window};
        const S: u64 = 1_000_000;
        let w = window(5, 10 * S);
        for params in [Params::Fixed(w.into()), Params::Sliding(w), Params::Log(w)] {
            let mut l = Limiter::new(&params);
            l.decide(&params, 3, t(0)).unwrap();
            assert_eq!(l.refund(1, t(10 * S)), 0, "{:?}", params.algorithm());
            assert_eq!(l.refund(1, t(9 * S)), 1, "{:?}", params.algorithm());
        }
        // The log gives back the newest entries.
        let params = Params::Log(w);
        let mut l = Limiter::new(&params);
        for s in 0..3 {
            l.decide(&params, 1, t(s * S)).unwrap();
        }
        assert_eq!(l.refund(2, t(3 * S)), 2);
        let Limiter::Log(s) = &l else { unreachable!() };
        assert_eq!(s.entries, [t(0)]);
        // GCRA: the arrival time never goes before now.
        let params = Params::Gcra(crate::algo::GcraParams::of_bucket(
            &crate::algo::BucketParams::new(3, 1, S).unwrap(),
        ));
        let mut l = Limiter::new(&params);
        l.decide(&params, 2, t(0)).unwrap();
        assert_eq!(l.refund(1, t(S / 2)), 1);
        // 0.5 unit left: it counts as one, and the level is then empty.
        assert_eq!(l.refund(5, t(S / 2)), 1);
        assert_eq!(
            l.decide(&params, 0, t(S / 2))
                .unwrap()
                .reset_after
                .as_micros(),
            0
        );
    }

    #[test]
    fn states_are_compact() {
        assert_eq!(
            size_of::<FixedState>(),
            32,
            "a fixed window, aligned or not"
        );
        assert!(size_of::<SlidingState>() <= 48);
        assert_eq!(size_of::<BucketState>(), 48);
        assert_eq!(size_of::<LogState>(), 48);
    }
}
