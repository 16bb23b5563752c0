//! One limiter of any algorithm: what a Redis key holds, and the one table of
//! algorithms every other layer reads (names, encoding tags, parameter
//! shapes, counter slots).
//!
//! Each algorithm is a type implementing [`Algo`]: its parameters, its state,
//! and the pure steps on them. The `algorithms!` table below lists them
//! once, with their names and codec tags, and writes from that list the enums
//! every other layer handles ([`Algorithm`], [`Params`], [`Limiter`],
//! [`Next`]) and the one dispatch from those enums to the algorithm's own
//! code. Adding an algorithm is an `Algo` impl and a row of that table; the
//! Redis layer makes its command, `RL.<NAME>`, from the same row (the
//! summary and complexity `COMMAND DOCS` gives are the `Algo` impl's, its
//! arguments its [`Shape`]'s).
//!
//! The dispatch is a `match` the compiler sees through (each arm calls one
//! algorithm's monomorphic code), so a request costs what a hand-written
//! `match` did: no trait objects, no allocation.

use std::ffi::CStr;

use super::BucketParams;
use super::{Decision, Instant, WindowParams};

/// One rate-limit algorithm: the pure steps on its state. Implemented by a
/// marker type per algorithm (the three buckets share a state type but not
/// a marker).
pub trait Algo {
    /// What `COMMAND DOCS` says of the algorithm's own command: a one-line
    /// summary (C strings, which the Redis layer hands over as they are).
    const SUMMARY: &'static CStr;
    /// The time complexity of one request, as `COMMAND DOCS` gives it.
    const COMPLEXITY: &'static CStr;

    /// The parameters of a request, as given on the command line.
    type Params: Copy + PartialEq + std::fmt::Debug;
    /// The stored state, with the parameters last written to it.
    type State: Clone + PartialEq + std::fmt::Debug;
    /// What a request that writes leaves: the whole state when it is small
    /// and `Copy`, else a description of the change.
    type Next: Copy + PartialEq + std::fmt::Debug;

    /// A new, empty state.
    fn new(p: Self::Params) -> Self::State;

    /// The parameters stored with the state (those of the last write).
    fn params(s: &Self::State) -> Self::Params;

    /// The limit as replies report it (limit, capacity, `max_burst + 1`).
    fn limit(p: &Self::Params) -> u64;

    /// Decides one request on a borrowed state; answers the decision and
    /// what installing it would write.
    fn evaluate(
        s: &Self::State,
        p: &Self::Params,
        cost: u64,
        now: Instant,
    ) -> (Decision, Self::Next);

    /// Installs what [`Algo::evaluate`] or [`Algo::refund`] on this state
    /// returned.
    fn apply(s: &mut Self::State, next: &Self::Next);

    /// Decides, on a borrowed state, giving back up to `n` units spent at
    /// or before `now` by the algorithm's own rule: answers how many, and
    /// what installing the refund writes (to install only when that is more
    /// than zero).
    fn refund(s: &Self::State, n: u64, now: Instant) -> (u64, Self::Next);

    /// The parameters in force and the stored state as named integers, for
    /// `RL.INFO`: times in µs since the Unix epoch, durations in µs.
    fn describe(s: &Self::State, field: &mut impl FnMut(&'static str, i128));

    /// Whether the state satisfies the invariants `evaluate` keeps; decoded
    /// data must pass this before it is used.
    fn is_valid(s: &Self::State) -> bool;

    /// Bytes owned by the state (for `MEMORY USAGE`).
    fn memory(_s: &Self::State) -> usize {
        size_of::<Self::State>()
    }

    /// The parameters as a command line gives them, in order (what
    /// `RL.POLICY GET` answers; the parser reads them back by the table's
    /// [`Shape`]).
    fn arguments(p: &Self::Params, out: &mut impl FnMut(Argument));

    /// Writes the parameters' fields, after the tag (the table's, or
    /// [`Algo::ALT_TAG`] when [`Algo::uses_alt_tag`]).
    fn write_params(p: &Self::Params, w: &mut impl Encoder);

    /// Reads the parameters' fields written under `tag`.
    fn read_params<D: Decoder>(tag: u8, r: &mut D) -> Result<Self::Params, D::Error>;

    /// Writes the state's fields, after its parameters.
    fn write_state(s: &Self::State, w: &mut impl Encoder);

    /// Reads the state's fields under the parameters read before them;
    /// the caller then checks [`Algo::is_valid`].
    fn read_state<D: Decoder>(p: Self::Params, r: &mut D) -> Result<Self::State, D::Error>;

    /// A second codec tag, for parameters of another layout (FIXED's
    /// aligned windows); never one of the table's.
    const ALT_TAG: Option<u8> = None;

    /// Whether `p` is written under [`Algo::ALT_TAG`].
    fn uses_alt_tag(_p: &Self::Params) -> bool {
        false
    }

    /// How many entries a state may hold under `p`, if its memory grows
    /// with its limit (the log's): the module bounds that by its setting
    /// `log-max`.
    fn entries(_p: &Self::Params) -> Option<u64> {
        None
    }

    /// The algorithm's parameters from window figures, if it takes those.
    fn from_window(_w: WindowParams) -> Option<Self::Params> {
        None
    }

    /// The algorithm's parameters from bucket figures (GCRA's capacity is
    /// `max_burst + 1`), if it takes those.
    fn from_bucket(_b: BucketParams) -> Option<Self::Params> {
        None
    }
}

/// One argument of an algorithm's parameters on a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Argument {
    Count(u64),
    Duration(super::Duration),
    /// A window in calendar months.
    Months(u32),
    /// `ALIGN`, with `OFFSET` when the offset is not UTC (the default).
    Align(super::Offset),
}

/// Where an algorithm writes its parameters and state: fields in order.
/// How each field is laid out in bytes is the codec's ([`crate::codec`]);
/// which fields, in which order, is the algorithm's, beside its code.
pub trait Encoder {
    fn u8(&mut self, v: u8);
    fn i16(&mut self, v: i16);
    fn u64(&mut self, v: u64);
    fn u128(&mut self, v: u128);
    fn time(&mut self, t: Instant);
}

/// Where an algorithm reads what it wrote to an [`Encoder`]. Every read
/// checks what the types promise, so decoded data is never out of bounds.
pub trait Decoder {
    type Error;
    fn u8(&mut self) -> Result<u8, Self::Error>;
    fn i16(&mut self) -> Result<i16, Self::Error>;
    fn u64(&mut self) -> Result<u64, Self::Error>;
    fn u128(&mut self) -> Result<u128, Self::Error>;
    /// An instant no later than the latest the module accepts.
    fn time(&mut self) -> Result<Instant, Self::Error>;
    fn count(&mut self) -> Result<super::Count, Self::Error>;
    fn period(&mut self) -> Result<super::Period, Self::Error>;
    /// How many instants follow: at most `max`, and no more than the bytes
    /// left can hold, so it is safe to allocate for.
    fn times_len(&mut self, max: u64) -> Result<usize, Self::Error>;
    /// The error for a parameter out of its bounds.
    fn bad_parameter(&self) -> Self::Error;
    /// The error for a tag no algorithm owns.
    fn unknown_tag(&self, tag: u8) -> Self::Error;
}

/// How an algorithm's parameters read on a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `limit window`
    Window,
    /// `limit window [ALIGN [OFFSET ±hh:mm]]`: a window that may be aligned
    /// on the calendar, and then be months long.
    AlignableWindow,
    /// `capacity rate period`
    Bucket,
    /// `max_burst rate period`
    Gcra,
}

const LIMIT: Param = Param::positional(c"limit", ParamValue::Count);
const WINDOW: Param = Param::positional(c"window", ParamValue::Duration);
const CAPACITY: Param = Param::positional(c"capacity", ParamValue::Count);
const MAX_BURST: Param = Param::positional(c"max_burst", ParamValue::Count);
const RATE: Param = Param::positional(c"rate", ParamValue::Count);
const PERIOD: Param = Param::positional(c"period", ParamValue::Duration);
const ALIGN: Param = Param::option(c"ALIGN", c"align", ParamValue::Flag);
const OFFSET: Param = Param::option(c"OFFSET", c"offset", ParamValue::Offset);

impl Shape {
    /// The positional parameters, in order.
    pub(crate) const fn params(self) -> &'static [Param] {
        match self {
            Shape::Window | Shape::AlignableWindow => &[LIMIT, WINDOW],
            Shape::Bucket => &[CAPACITY, RATE, PERIOD],
            Shape::Gcra => &[MAX_BURST, RATE, PERIOD],
        }
    }

    /// The shape's own options, right after its parameters (every decision
    /// also takes `COST`, `AT`, `PENALTY` and `SHADOW`: the command line's,
    /// not the algorithm's).
    pub(crate) const fn options(self) -> &'static [Param] {
        match self {
            Shape::AlignableWindow => &[ALIGN, OFFSET],
            Shape::Window | Shape::Bucket | Shape::Gcra => &[],
        }
    }
}

/// One parameter of an algorithm on a command line, as messages and
/// `COMMAND DOCS` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    /// A C string, which the Redis layer hands over as it is; see
    /// [`Param::text`].
    pub(crate) name: &'static CStr,
    pub(crate) value: ParamValue,
    /// The word that introduces an optional parameter (`ALIGN`); `None`
    /// for a positional one.
    pub(crate) token: Option<&'static CStr>,
}

/// What a [`Param`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamValue {
    /// A positive integer.
    Count,
    /// A duration, with its unit (`1s`).
    Duration,
    /// Nothing: the token alone.
    Flag,
    /// A UTC offset, `±hh:mm`.
    Offset,
}

impl Param {
    const fn positional(name: &'static CStr, value: ParamValue) -> Param {
        Param {
            name,
            value,
            token: None,
        }
    }

    const fn option(token: &'static CStr, name: &'static CStr, value: ParamValue) -> Param {
        Param {
            name,
            value,
            token: Some(token),
        }
    }

    /// The name, for messages.
    pub(crate) fn text(&self) -> &'static str {
        // Every name above is ASCII.
        self.name.to_str().unwrap_or_default()
    }
}

pub(crate) struct AlgorithmInfo {
    /// As in `RL.ALL` and in messages.
    pub(crate) name: &'static str,
    /// The algorithm's own command.
    pub(crate) command: &'static str,
    /// Lower case, for `INFO ratelimit` fields.
    pub(crate) lower: &'static str,
    pub(crate) shape: Shape,
    /// Stable tag of the binary encodings; never reuse one. The codec
    /// matches tags in the table's macro; this copy lets the tests check
    /// the table.
    #[cfg(test)]
    pub(crate) tag: u8,
    /// What the Redis layer registers the algorithm's own command with.
    pub(crate) doc: CommandDoc,
}

/// The algorithm's own command as the Redis layer registers it: its name,
/// as [`AlgorithmInfo::command`], and what `COMMAND DOCS` says of it (see
/// [`Algo::SUMMARY`]); its arguments are its [`Shape`]'s.
pub(crate) struct CommandDoc {
    pub(crate) name: &'static CStr,
    pub(crate) summary: &'static CStr,
    pub(crate) complexity: &'static CStr,
}

/// `s`, which ends in a NUL and has no other, as a C string.
const fn c_str(s: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("not a C string"),
    }
}

/// Evaluates a request on one algorithm's state: the decision, its next
/// state wrapped by `wrap`, whether it spends and whether it writes.
#[inline]
fn verdict<A: Algo, N>(
    s: &A::State,
    p: &A::Params,
    cost: u64,
    now: Instant,
    wrap: impl FnOnce(A::Next) -> N,
    fresh: bool,
) -> (Decision, N, bool, bool) {
    let (decision, next) = A::evaluate(s, p, cost, now);
    let spends = decision.allowed && cost > 0;
    // `spends` short-cuts the comparison on the common path; a fresh state
    // holds the request's own parameters.
    let writes = spends || (!fresh && super::writes(false, cost, A::params(s) != *p));
    (decision, wrap(next), spends, writes)
}

/// Writes everything the rows of [`algorithm_table!`] make: `Variant = slot,
/// tag, "NAME", "lower", Shape => Marker`. The slot is the algorithm's index in per-algorithm counters and
/// in the Redis layer's pointer tags; the tag is the codec's (1 to 6, as the
/// first release wrote them; the aligned fixed window has its own, see
/// [`crate::codec`]).
macro_rules! algorithms {
    ($($v:ident = $slot:literal, $tag:literal, $name:literal, $lower:literal, $shape:ident => $a:ty;)*) => {
        /// The algorithms. The discriminant is the algorithm's slot in
        /// [`Algorithm::ALL`] and in per-algorithm counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Algorithm {
            $($v = $slot,)*
        }

        const TABLE: &[AlgorithmInfo] = &[$(AlgorithmInfo {
            name: $name,
            command: concat!("RL.", $name),
            lower: $lower,
            shape: Shape::$shape,
            #[cfg(test)]
            tag: $tag,
            doc: CommandDoc {
                name: c_str(concat!("RL.", $name, "\0")),
                summary: <$a as Algo>::SUMMARY,
                complexity: <$a as Algo>::COMPLEXITY,
            },
        },)*];

        impl Algorithm {
            pub const ALL: [Algorithm; TABLE.len()] = [$(Algorithm::$v,)*];
        }

        /// The parameters of one request, as given on the command line.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Params {
            $($v(<$a as Algo>::Params),)*
        }

        /// The state of one limiter, with the parameters last written to
        /// it. Each state lives in its own allocation of exactly its size
        /// (the Redis layer stores the algorithm beside the pointer), so a
        /// bucket costs 48 bytes.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Limiter {
            $($v(Box<<$a as Algo>::State>),)*
        }

        /// The state a request leaves when it writes: the whole new state
        /// for the fixed-size algorithms, the change for the log.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Next {
            $($v(<$a as Algo>::Next),)*
        }

        /// The smallest alignment of any state: the Redis layer keeps the
        /// algorithm in the pointer bits it leaves free.
        pub(crate) const STATE_ALIGN: usize = {
            let mut min = usize::MAX;
            $(if align_of::<<$a as Algo>::State>() < min {
                min = align_of::<<$a as Algo>::State>();
            })*
            min
        };

        impl Params {
            pub fn algorithm(&self) -> Algorithm {
                match self {
                    $(Params::$v(_) => Algorithm::$v,)*
                }
            }

            /// The limit as replies report it (limit, capacity,
            /// `max_burst + 1`).
            pub fn limit(&self) -> u64 {
                match self {
                    $(Params::$v(p) => <$a as Algo>::limit(p),)*
                }
            }

            /// The parameters as a command line gives them (see
            /// [`Algo::arguments`]).
            pub(crate) fn arguments(&self, mut out: impl FnMut(Argument)) {
                match self {
                    $(Params::$v(p) => <$a as Algo>::arguments(p, &mut out),)*
                }
            }

            /// How many entries a state may hold under these parameters, if
            /// its memory grows with its limit (see [`Algo::entries`]).
            pub(crate) fn entries(&self) -> Option<u64> {
                match self {
                    $(Params::$v(p) => <$a as Algo>::entries(p),)*
                }
            }

            /// Writes the parameters: the algorithm's tag, then its fields.
            pub(crate) fn write(&self, w: &mut impl Encoder) {
                match self {
                    $(Params::$v(p) => {
                        let alt = <$a as Algo>::ALT_TAG.filter(|_| <$a as Algo>::uses_alt_tag(p));
                        w.u8(alt.unwrap_or($tag));
                        <$a as Algo>::write_params(p, w);
                    })*
                }
            }

            /// Reads what [`Params::write`] wrote.
            pub(crate) fn read<D: Decoder>(r: &mut D) -> Result<Params, D::Error> {
                let tag = r.u8()?;
                $(if tag == $tag || <$a as Algo>::ALT_TAG == Some(tag) {
                    return <$a as Algo>::read_params(tag, r).map(Params::$v);
                })*
                Err(r.unknown_tag(tag))
            }

            /// Window parameters under the window algorithm `algo`.
            pub fn window(algo: Algorithm, w: WindowParams) -> Option<Params> {
                match algo {
                    $(Algorithm::$v => <$a as Algo>::from_window(w).map(Params::$v),)*
                }
            }

            /// Bucket parameters under the bucket algorithm `algo` (GCRA's
            /// capacity is `max_burst + 1`).
            pub fn bucket(algo: Algorithm, b: BucketParams) -> Option<Params> {
                match algo {
                    $(Algorithm::$v => <$a as Algo>::from_bucket(b).map(Params::$v),)*
                }
            }
        }

        impl Limiter {
            /// A new, empty limiter.
            pub fn new(params: &Params) -> Limiter {
                match *params {
                    $(Params::$v(p) => Limiter::$v(Box::new(<$a as Algo>::new(p))),)*
                }
            }

            pub fn algorithm(&self) -> Algorithm {
                match self {
                    $(Limiter::$v(_) => Algorithm::$v,)*
                }
            }

            /// The parameters stored with the state (those of the last
            /// write).
            pub fn params(&self) -> Params {
                match self {
                    $(Limiter::$v(s) => Params::$v(<$a as Algo>::params(s)),)*
                }
            }

            /// Decides one request on this limiter without changing it.
            pub fn evaluate(
                &self,
                params: &Params,
                cost: u64,
                now: Instant,
            ) -> Result<Verdict, Mismatch> {
                let (decision, next, spends, writes) = match (self, params) {
                    $((Limiter::$v(s), Params::$v(p)) => {
                        verdict::<$a, _>(s, p, cost, now, Next::$v, false)
                    })*
                    _ => {
                        return Err(Mismatch {
                            stored: Kind::Limiter(self.algorithm()),
                            requested: Kind::Limiter(params.algorithm()),
                        })
                    }
                };
                Ok(Verdict { decision, next, spends, writes })
            }

            /// Decides one request on a key that holds nothing, without
            /// allocating.
            pub fn evaluate_fresh(params: &Params, cost: u64, now: Instant) -> Verdict {
                let (decision, next, spends, writes) = match params {
                    $(Params::$v(p) => {
                        let s = <$a as Algo>::new(*p);
                        verdict::<$a, _>(&s, p, cost, now, Next::$v, true)
                    })*
                };
                Verdict { decision, next, spends, writes }
            }

            /// Installs what [`Limiter::evaluate`] on this limiter
            /// returned.
            pub fn apply(&mut self, next: &Next) {
                match (self, next) {
                    $((Limiter::$v(s), Next::$v(n)) => <$a as Algo>::apply(s, n),)*
                    // `next` always comes from evaluating this very limiter.
                    #[allow(unreachable_patterns)]
                    _ => debug_assert!(false, "a verdict applied to another algorithm"),
                }
            }

            /// Decides giving back up to `n` units spent at or before
            /// `now`, by the algorithm's own rule (see each
            /// [`Algo::refund`]), without changing the limiter.
            pub(crate) fn evaluate_refund(&self, n: u64, now: Instant) -> Refund {
                match self {
                    $(Limiter::$v(s) => {
                        let (given, next) = <$a as Algo>::refund(s, n, now);
                        Refund { given, next: Next::$v(next) }
                    })*
                }
            }

            /// The parameters in force and the stored state as named
            /// integers, for `RL.INFO`. Times are µs since the Unix epoch,
            /// durations µs; an offset is signed minutes, so fields are
            /// `i64` (every other figure is bounded far below `i64::MAX`).
            pub fn describe(&self, mut signed: impl FnMut(&'static str, i64)) {
                let mut field = |name, v: i128| signed(name, super::saturating_i64(v));
                match self {
                    $(Limiter::$v(s) => <$a as Algo>::describe(s, &mut field),)*
                }
            }

            /// Bytes owned by the limiter (for `MEMORY USAGE`).
            pub(crate) fn memory(&self) -> usize {
                match self {
                    $(Limiter::$v(s) => <$a as Algo>::memory(s),)*
                }
            }

            /// Whether the state satisfies the invariants `evaluate` keeps;
            /// decoded data must pass this before it is used.
            pub fn is_valid(&self) -> bool {
                match self {
                    $(Limiter::$v(s) => <$a as Algo>::is_valid(s),)*
                }
            }

            /// Writes the limiter: its parameters, then its state.
            pub(crate) fn write(&self, w: &mut impl Encoder) {
                self.params().write(w);
                match self {
                    $(Limiter::$v(s) => <$a as Algo>::write_state(s, w),)*
                }
            }

            /// Reads what [`Limiter::write`] wrote, without checking
            /// [`Limiter::is_valid`].
            pub(crate) fn read<D: Decoder>(r: &mut D) -> Result<Limiter, D::Error> {
                Ok(match Params::read(r)? {
                    $(Params::$v(p) => Limiter::$v(Box::new(<$a as Algo>::read_state(p, r)?)),)*
                })
            }

            /// The algorithm and the state's allocation, handed over (to
            /// Redis, which keeps the algorithm in the pointer's free low
            /// bits, see [`STATE_ALIGN`]).
            pub(crate) fn into_raw(self) -> (Algorithm, *mut u8) {
                match self {
                    $(Limiter::$v(s) => (Algorithm::$v, Box::into_raw(s).cast()),)*
                }
            }

            /// Takes back what [`Limiter::into_raw`] handed over.
            ///
            /// # Safety
            /// `ptr` must come from [`Limiter::into_raw`] of a limiter of
            /// `algo`, and not have been taken back yet.
            pub(crate) unsafe fn from_raw(algo: Algorithm, ptr: *mut u8) -> Limiter {
                match algo {
                    // SAFETY: a `Box` of this algorithm's state, by the
                    // caller's contract.
                    $(Algorithm::$v => Limiter::$v(unsafe { Box::from_raw(ptr.cast()) }),)*
                }
            }
        }
    };
}

/// The one list of algorithms, handed to the macro `$then`: to
/// [`algorithms!`] here, and to the Redis layer, which makes each
/// algorithm's command from its row (matching only `Variant = ... =>
/// Marker;`, so the columns can change without it).
macro_rules! algorithm_table {
    ($then:ident) => {
        $then! {
            Fixed   = 0, 1, "FIXED",   "fixed",   AlignableWindow => $crate::algo::fixed::Fixed;
            Sliding = 1, 2, "SLIDING", "sliding", Window => $crate::algo::sliding::Sliding;
            Log     = 2, 3, "LOG",     "log",     Window => $crate::algo::log::Log;
            Token   = 3, 4, "TOKEN",   "token",   Bucket => $crate::algo::bucket::Token;
            Leaky   = 4, 5, "LEAKY",   "leaky",   Bucket => $crate::algo::bucket::Leaky;
            Gcra    = 5, 6, "GCRA",    "gcra",    Gcra   => $crate::algo::bucket::Gcra;
        }
    };
}
pub(crate) use algorithm_table;

algorithm_table!(algorithms);

impl Algorithm {
    /// Slot in [`Algorithm::ALL`] and in per-algorithm counters.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    pub(crate) const fn info(self) -> &'static AlgorithmInfo {
        &TABLE[self.index()]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub(crate) const fn shape(self) -> Shape {
        self.info().shape
    }

    pub(crate) fn from_name(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }
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

/// A refund decided on a limiter, and what installing it would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Units given back.
    pub(crate) given: u64,
    pub next: Next,
}

impl Refund {
    /// A refund writes when it gives something back.
    pub fn writes(&self) -> bool {
        self.given > 0
    }
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
    pub(crate) stored: Kind,
    pub(crate) requested: Kind,
}

impl Limiter {
    /// The limiter a request on an absent key leaves (from
    /// [`Limiter::evaluate_fresh`]).
    pub fn create(params: &Params, next: &Next) -> Limiter {
        let mut l = Limiter::new(params);
        l.apply(next);
        l
    }

    /// Gives back up to `n` units and answers how many: the refund decided
    /// and installed (tests, benches; the Redis layer uses the two steps).
    pub fn refund(&mut self, n: u64, now: Instant) -> u64 {
        let r = self.evaluate_refund(n, now);
        if r.writes() {
            self.apply(&r.next);
        }
        r.given
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{BucketState, FixedState, LogState, SlidingState};

    /// The algorithm the table gives `tag` (the codec matches tags itself,
    /// in the table's macro).
    fn from_tag(tag: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.info().tag == tag)
    }

    #[test]
    fn one_table_of_algorithms() {
        for (i, a) in Algorithm::ALL.into_iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(from_tag(a.info().tag), Some(a));
            assert_eq!(Algorithm::from_name(a.name().as_bytes()), Some(a));
            assert_eq!(a.info().lower, a.name().to_ascii_lowercase());
        }
        for a in Algorithm::ALL {
            assert_eq!(a.info().command, format!("RL.{}", a.name()));
        }
        // FIXED's second tag is no algorithm's.
        let alt = <super::super::fixed::Fixed as Algo>::ALT_TAG.unwrap();
        assert_eq!(from_tag(alt), None);
        assert_eq!(from_tag(0), None);
        assert_eq!(from_tag(7), None);
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
