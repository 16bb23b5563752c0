//! Argument parsing for the `RL.*` commands: raw bytes in, typed request or
//! a precise error message out. Pure Rust (no Redis types), so it is unit
//! tested and fuzzed directly.

use smallvec::SmallVec;

use crate::algo::limiter::Shape;
use crate::algo::units::{unit_scale, DAY_US, DURATION_UNITS};
use crate::algo::{
    Algorithm, BucketParams, Burst, Count, Duration, FixedParams, FixedWindow, GcraParams, Instant,
    Months, Offset, Params, Period, Span, WindowParams, MAX_ALIGNED_US, MAX_COUNT, MAX_DURATION_US,
    MAX_MONTHS, MAX_TIME_US,
};
use crate::policy::Policy;

/// Default and hard ceiling of `RL.LOG`'s limit: the log costs 8 bytes per
/// unit of limit, so this bounds one key at 80 KB by default.
pub const DEFAULT_LOG_MAX: u64 = 10_000;

/// What a command asks for, once parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub params: Params,
    pub cost: u64,
    /// `AT unix_ms`.
    pub at: Option<Instant>,
    /// `PENALTY duration`.
    pub penalty: Option<Duration>,
    /// `SHADOW`: decide and apply for real, answer allowed.
    pub shadow: bool,
}

/// Settings that bound what a command may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub log_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            log_max: DEFAULT_LOG_MAX,
        }
    }
}

/// A client error: the message only; the Redis layer adds the `ERR` code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl ArgError {
    fn new(msg: impl Into<String>) -> Self {
        ArgError(msg.into())
    }
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Redis' own wording, so clients and tools recognise it; module commands
/// are named as registered, as Redis' own arity check names them.
pub(crate) fn arity_error(command: &str) -> ArgError {
    ArgError(format!("wrong number of arguments for '{command}' command"))
}

/// Shows a client's bytes in a message only when they are short printable
/// ASCII, so an error reply can never carry control characters.
pub fn shown(arg: &[u8]) -> String {
    if arg.len() <= 32 && arg.iter().all(|b| b.is_ascii_graphic()) {
        format!(" '{}'", String::from_utf8_lossy(arg))
    } else {
        String::new()
    }
}

fn utf8<'a>(name: &str, arg: &'a [u8]) -> Result<&'a str, ArgError> {
    std::str::from_utf8(arg).map_err(|_| ArgError::new(format!("{name} is not valid UTF-8")))
}

/// Parses a decimal integer: optional `-`, then 1 to 20 digits. Runs on
/// every argument of every call, so the common case is a plain byte loop;
/// UTF-8 is only examined to word an error.
fn integer(name: &str, arg: &[u8], what: &str) -> Result<i128, ArgError> {
    let (neg, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, arg),
    };
    if digits.len() > 20 && digits.iter().all(u8::is_ascii_digit) {
        return Err(ArgError::new(format!("{name} has too many digits")));
    }
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        utf8(name, arg)?;
        return Err(ArgError::new(format!(
            "{name} must be {what}, got{}",
            shown_or_empty(arg)
        )));
    }
    // At most 20 digits: below 10^20, far inside i128.
    let v = digits
        .iter()
        .fold(0i128, |acc, &d| acc * 10 + (d - b'0') as i128);
    Ok(if neg { -v } else { v })
}

fn shown_or_empty(arg: &[u8]) -> String {
    if arg.is_empty() {
        " an empty string".into()
    } else {
        let s = shown(arg);
        if s.is_empty() {
            " a value that is not a number".into()
        } else {
            s
        }
    }
}

/// Plain decimal digits, at most 16 of them (so below 10^16: no overflow,
/// and above `MAX_COUNT` only by the last few): the common case, parsed in
/// one pass. Anything else (signs, long or bad input) takes the careful
/// path, which also words the errors.
#[inline]
fn plain_digits(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || arg.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in arg {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// A count between `min` and `MAX_COUNT`.
pub fn count(name: &str, arg: &[u8], min: u64) -> Result<u64, ArgError> {
    if let Some(v) = plain_digits(arg).filter(|v| (min..=MAX_COUNT).contains(v)) {
        return Ok(v);
    }
    let what = if min == 0 {
        "a non-negative integer"
    } else {
        "a positive integer"
    };
    let v = integer(name, arg, what)?;
    if v < min as i128 {
        return Err(ArgError::new(if min == 0 {
            format!("{name} must not be negative")
        } else {
            format!("{name} must be greater than 0")
        }));
    }
    if v > MAX_COUNT as i128 {
        return Err(ArgError::new(format!(
            "{name} is too large (at most {MAX_COUNT})"
        )));
    }
    Ok(v as u64)
}

/// A positive count (a limit, capacity or rate).
fn positive(name: &str, arg: &[u8]) -> Result<Count, ArgError> {
    let v = count(name, arg, 1)?;
    Count::new(v).ok_or_else(|| ArgError::new(format!("{name} must be greater than 0")))
}

/// A duration: an integer with an optional unit (`us`, `ms`, `s`, `m`, `h`,
/// `d`); a bare integer is seconds.
pub fn duration(name: &str, arg: &[u8]) -> Result<Period, ArgError> {
    duration_or(name, arg, "us, ms, s, m, h or d")
}

/// [`duration`], naming `units` as the ones to use when the unit is unknown
/// (FIXED's window also takes months).
fn duration_or(name: &str, arg: &[u8], units: &str) -> Result<Period, ArgError> {
    if let Some(p) = plain_duration(arg) {
        return Ok(p);
    }
    let split = arg
        .iter()
        .position(|&c| !(c.is_ascii_digit() || c == b'-'))
        .unwrap_or(arg.len());
    let (number, unit) = arg.split_at(split);
    let known = DURATION_UNITS
        .iter()
        .find(|(u, _)| unit.eq_ignore_ascii_case(u.as_bytes()));
    let scale = match known {
        Some(&(_, scale)) => scale,
        None if unit.is_empty() => 1_000_000,
        None => {
            utf8(name, arg)?;
            return Err(ArgError::new(format!(
                "{name} has an unknown unit{} (use {units})",
                shown(unit)
            )));
        }
    };
    let what = "a positive integer with an optional unit (us, ms, s, m, h, d)";
    let v = integer(name, number, what)?;
    if v <= 0 {
        return Err(ArgError::new(format!("{name} must be greater than 0")));
    }
    let too_long = || {
        ArgError::new(format!(
            "{name} is too long (at most {} days)",
            MAX_DURATION_US / DAY_US
        ))
    };
    let us = v.checked_mul(scale as i128).ok_or_else(too_long)?;
    u64::try_from(us)
        .ok()
        .and_then(Period::from_micros)
        .ok_or_else(too_long)
}

/// The common case of [`duration`]: digits and a lower-case unit, in one
/// pass; `None` sends anything else (and every error) to the careful path.
#[inline]
fn plain_duration(arg: &[u8]) -> Option<Period> {
    let digits = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, unit) = arg.split_at(digits);
    let scale = unit_scale(unit)?;
    Period::from_micros(plain_digits(number)?.checked_mul(scale)?)
}

/// Names of the positional parameters of each algorithm, in order.
pub(crate) fn param_names(algo: Algorithm) -> &'static [&'static str] {
    algo.shape().param_names()
}

/// Parses the parameters of `algo` at the start of `args`: its positional
/// ones, and for FIXED an `ALIGN [OFFSET ±hh:mm]` right after the window.
/// Answers them and what follows.
pub(crate) fn spec<'a, 'b>(
    algo: Algorithm,
    args: &'a [&'b [u8]],
    limits: &Limits,
) -> Result<(Params, &'a [&'b [u8]]), ArgError> {
    let n = param_names(algo).len();
    if args.len() < n {
        return Err(arity_error(algo.name()));
    }
    let (given, rest) = args.split_at(n);
    if algo.shape() != Shape::AlignableWindow {
        return Ok((params(algo, given, limits)?, rest));
    }
    let [limit, window] = given else {
        return Err(arity_error(algo.name()));
    };
    // In the order given, as for the other algorithms.
    let limit = positive("limit", limit)?;
    let (align, rest) = match rest.split_first() {
        Some((&a, tail)) if a.eq_ignore_ascii_case(b"ALIGN") => match tail.split_first() {
            Some((&o, tail)) if o.eq_ignore_ascii_case(b"OFFSET") => {
                let (&v, tail) = tail
                    .split_first()
                    .ok_or_else(|| ArgError::new("OFFSET needs a value"))?;
                (Some(offset(v)?), tail)
            }
            _ => (Some(Offset::UTC), tail),
        },
        Some((&o, _)) if o.eq_ignore_ascii_case(b"OFFSET") => {
            return Err(ArgError::new(
                "OFFSET needs ALIGN before it: FIXED limit window ALIGN OFFSET +hh:mm",
            ))
        }
        _ => (None, rest),
    };
    let window = fixed_window(window, align)?;
    let p = FixedParams::new(limit, window).ok_or_else(|| {
        ArgError::new(format!(
            "an aligned window is at most {} days (use mo for longer)",
            MAX_ALIGNED_US / DAY_US
        ))
    })?;
    Ok((Params::Fixed(p), rest))
}

/// `ALIGN`'s offset: `+hh:mm`, `-hh:mm` or `Z`.
fn offset(arg: &[u8]) -> Result<Offset, ArgError> {
    Offset::parse(arg).ok_or_else(|| {
        ArgError::new(format!(
            "OFFSET must be +hh:mm or -hh:mm (at most 23:59) or Z, got{}",
            shown_or_empty(arg)
        ))
    })
}

/// A whole number of calendar months, `<n>mo`; `None` if `arg` is not
/// written in months at all.
fn months(arg: &[u8]) -> Option<Result<Months, ArgError>> {
    let number = arg.len().checked_sub(2).map(|n| arg.split_at(n))?;
    let (number, unit) = number;
    if !unit.eq_ignore_ascii_case(b"mo") || number.is_empty() {
        return None;
    }
    let what = "a positive number of months";
    Some(integer("window", number, what).and_then(|v| {
        if v <= 0 {
            return Err(ArgError::new("window must be greater than 0"));
        }
        u32::try_from(v)
            .ok()
            .and_then(Months::new)
            .ok_or_else(|| ArgError::new(format!("window is too long (at most {MAX_MONTHS}mo)")))
    }))
}

/// FIXED's window: first-hit unless aligned, and in months only aligned.
fn fixed_window(arg: &[u8], align: Option<Offset>) -> Result<FixedWindow, ArgError> {
    if let Some(m) = months(arg) {
        let m = m?;
        return match align {
            Some(offset) => Ok(FixedWindow::Aligned(Span::Months(m), offset)),
            None => Err(ArgError::new(format!(
                "a window in months needs ALIGN: FIXED limit {} ALIGN",
                String::from_utf8_lossy(arg)
            ))),
        };
    }
    let w = duration_or("window", arg, "us, ms, s, m, h, d, or mo with ALIGN")?;
    Ok(match align {
        Some(offset) => FixedWindow::Aligned(Span::Micros(w), offset),
        None => FixedWindow::FirstHit(w),
    })
}

/// Parses the positional parameters of `algo` (exactly `param_names(algo).len()` args).
/// FIXED's are read here as a first-hit window; [`spec`] reads `ALIGN`.
pub fn params(algo: Algorithm, args: &[&[u8]], limits: &Limits) -> Result<Params, ArgError> {
    let wrong = || arity_error(algo.name());
    let [first, second, rest @ ..] = args else {
        return Err(wrong());
    };
    let params = match algo.shape() {
        Shape::Window | Shape::AlignableWindow => {
            if algo.shape() == Shape::Window && months(second).is_some() {
                return Err(ArgError::new(format!(
                    "a window in months is only for FIXED with ALIGN, not {}",
                    algo.name()
                )));
            }
            let p = WindowParams {
                limit: positive("limit", first)?,
                window: duration("window", second)?,
            };
            let p = Params::window(algo, p);
            if let Some(p) = &p {
                within(p, limits)?;
            }
            p
        }
        Shape::Bucket => {
            let [third] = rest else { return Err(wrong()) };
            Params::bucket(
                algo,
                BucketParams {
                    capacity: positive("capacity", first)?,
                    rate: positive("rate", second)?,
                    period: duration("period", third)?,
                },
            )
        }
        Shape::Gcra => {
            let [third] = rest else { return Err(wrong()) };
            Params::bucket(
                algo,
                BucketParams {
                    capacity: burst(first)?.capacity(),
                    rate: positive("rate", second)?,
                    period: duration("period", third)?,
                },
            )
        }
    };
    params.ok_or_else(wrong)
}

/// Whether parameters are within the server's settings: a log's limit
/// bounds its memory, so it is checked on every use, also of parameters
/// defined earlier (a policy set before `log-max` was lowered, or loaded
/// from an RDB file).
pub fn within(p: &Params, limits: &Limits) -> Result<(), ArgError> {
    match p.entries() {
        Some(n) if n > limits.log_max => Err(ArgError::new(format!(
            "limit is too large for {} (at most {}, see ratelimit.log-max)",
            p.algorithm().info().command,
            limits.log_max
        ))),
        _ => Ok(()),
    }
}

/// A policy's parameters checked by [`within`], the policy named in the
/// message.
pub(crate) fn policy_within(name: &str, p: &Params, limits: &Limits) -> Result<(), ArgError> {
    within(p, limits).map_err(|e| ArgError::new(format!("policy '{name}': {e}")))
}

fn burst(arg: &[u8]) -> Result<Burst, ArgError> {
    Burst::new(count("max_burst", arg, 0)?).ok_or_else(|| {
        ArgError::new(format!(
            "max_burst is too large (at most {})",
            MAX_COUNT - 1
        ))
    })
}

/// Optional trailing arguments of the commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    pub cost: Option<u64>,
    pub at: Option<Instant>,
    pub penalty: Option<Duration>,
    /// `ID lease_id` (`RL.ACQUIRE`).
    pub id: Option<&'a [u8]>,
    /// `SHADOW` (a flag, no value).
    pub shadow: bool,
    /// `COMBINED` (a flag, `RL.ALL` only): reply the combined decision alone.
    pub combined: bool,
}

/// The optional trailing arguments, each named once here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// `COST n`
    Cost,
    /// `AT unix_ms`
    At,
    /// `PENALTY duration`
    Penalty,
    /// `ID lease_id`
    Id,
    /// `SHADOW`, a flag with no value.
    Shadow,
    /// `COMBINED`, a flag (`RL.ALL` only).
    Combined,
}

impl Opt {
    pub const fn name(self) -> &'static str {
        match self {
            Opt::Cost => "COST",
            Opt::At => "AT",
            Opt::Penalty => "PENALTY",
            Opt::Id => "ID",
            Opt::Shadow => "SHADOW",
            Opt::Combined => "COMBINED",
        }
    }
}

/// The options of the decision commands.
pub(crate) const DECIDE_OPTIONS: &[Opt] = &[Opt::Cost, Opt::At, Opt::Penalty, Opt::Shadow];

/// `RL.ALL`'s: the decision commands' and `COMBINED`.
pub(crate) const ALL_OPTIONS: &[Opt] =
    &[Opt::Cost, Opt::At, Opt::Penalty, Opt::Shadow, Opt::Combined];

/// Parses the options in `accepted`, each at most once, in any order.
pub fn options<'a>(args: &[&'a [u8]], accepted: &[Opt]) -> Result<Options<'a>, ArgError> {
    let mut opts = Options::default();
    let mut i = 0;
    while i < args.len() {
        let name = args[i];
        let known = accepted
            .iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name));
        let Some(&option) = known else {
            if name.eq_ignore_ascii_case(b"ALIGN") || name.eq_ignore_ascii_case(b"OFFSET") {
                return Err(ArgError::new(
                    "ALIGN [OFFSET +hh:mm] is only for FIXED, right after its window",
                ));
            }
            return Err(ArgError::new(format!(
                "unknown option{} (expected {})",
                shown(name),
                listed(accepted)
            )));
        };
        let flag = match option {
            Opt::Shadow => Some(&mut opts.shadow),
            Opt::Combined => Some(&mut opts.combined),
            _ => None,
        };
        if let Some(set) = flag {
            if *set {
                return Err(ArgError::new(format!(
                    "{} given more than once",
                    option.name()
                )));
            }
            *set = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .copied()
            .ok_or_else(|| ArgError::new(format!("{} needs a value", option.name())))?;
        let twice = || ArgError::new(format!("{} given more than once", option.name()));
        let name = option.name();
        match option {
            Opt::Cost if opts.cost.is_none() => opts.cost = Some(count(name, v, 0)?),
            Opt::At if opts.at.is_none() => opts.at = Some(at(v)?),
            Opt::Penalty if opts.penalty.is_none() => {
                opts.penalty = Some(duration(name, v)?.duration())
            }
            Opt::Id if opts.id.is_none() => opts.id = Some(lease_id(v)?),
            _ => return Err(twice()),
        }
        i += 2;
    }
    Ok(opts)
}

/// `A`, `A or B`, `A, B or C`.
fn listed(options: &[Opt]) -> String {
    let names: Vec<&str> = options.iter().map(|o| o.name()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn at(arg: &[u8]) -> Result<Instant, ArgError> {
    let max_ms = MAX_TIME_US / 1000;
    let what = "a Unix time in milliseconds";
    let v = integer(Opt::At.name(), arg, what)?;
    if !(0..=max_ms as i128).contains(&v) {
        return Err(ArgError::new(format!("AT must be between 0 and {max_ms}")));
    }
    Ok(Instant::from_micros(v as u64 * 1000))
}

/// Parses everything after the key of `RL.<algo> key ...`.
pub fn request(
    algo: Algorithm,
    command: &str,
    args: &[&[u8]],
    limits: &Limits,
) -> Result<Request, ArgError> {
    if args.len() < param_names(algo).len() {
        return Err(arity_error(command));
    }
    let (params, rest) = spec(algo, args, limits)?;
    let opts = options(rest, DECIDE_OPTIONS)?;
    Ok(Request {
        params,
        cost: opts.cost.unwrap_or(1),
        at: opts.at,
        penalty: opts.penalty,
        shadow: opts.shadow,
    })
}

/// Most limits one `RL.ALL` call may combine; far above any real policy,
/// low enough that a call stays `fast`.
pub const ALL_MAX_KEYS: usize = 64;

/// `RL.ALL numkeys key [key ...] ALGO params [ALGO params ...] [COST n] [AT ms]`,
/// once parsed. Keys stay positional: `keys` indexes the argument list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllRequest {
    pub numkeys: usize,
    /// Inline up to 8 limits: no allocation on a call's path.
    pub params: SmallVec<[Params; 8]>,
    pub cost: u64,
    pub at: Option<Instant>,
    pub penalty: Option<Duration>,
    pub shadow: bool,
    /// `COMBINED`: the reply is the combined decision's five integers
    /// alone, without one array per key.
    pub combined: bool,
    /// Per limit, where the name of its policy is in the argument list
    /// (`POLICY name` given instead of `ALGO params`).
    pub policies: SmallVec<[Option<usize>; 8]>,
    /// Per limit, its policy's own shadow mode and penalty (none for a
    /// limit given as `ALGO params`).
    pub modes: SmallVec<[Mode; 8]>,
}

/// A policy's own way of deciding, beyond its parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    pub shadow: bool,
    pub penalty: Option<Duration>,
}

impl AllRequest {
    /// Whether some limit has a mode of its own that the call's options
    /// don't already cover: a shadow policy (unless the whole call is in
    /// shadow mode), or a policy's penalty (unless the call gives one).
    pub(crate) fn per_limit_modes(&self) -> bool {
        !self.shadow
            && self
                .modes
                .iter()
                .any(|m| m.shadow || (m.penalty.is_some() && self.penalty.is_none()))
    }
}

/// Finds a named policy (the server's registry).
pub(crate) type Resolve<'r> = &'r dyn Fn(&[u8]) -> Option<Policy>;

/// No policies (tests, and commands that take none).
pub(crate) fn no_policies(_: &[u8]) -> Option<Policy> {
    None
}

/// Parses everything after `RL.ALL` (so `args[0]` is numkeys). Keys are
/// `args[1..=numkeys]`; the caller reads them from there.
pub fn all_request(
    args: &[&[u8]],
    limits: &Limits,
    resolve: Resolve,
) -> Result<AllRequest, ArgError> {
    const COMMAND: &str = "RL.ALL";
    if args.len() < 3 {
        return Err(arity_error(COMMAND));
    }
    let numkeys = count("numkeys", args[0], 1)?;
    if numkeys > ALL_MAX_KEYS as u64 {
        return Err(ArgError::new(format!(
            "numkeys is too large for RL.ALL (at most {ALL_MAX_KEYS})"
        )));
    }
    let numkeys = numkeys as usize;
    if args.len() < 1 + numkeys {
        return Err(ArgError::new(
            "numkeys is greater than the number of keys given",
        ));
    }
    let keys = &args[1..=numkeys];
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(ArgError::new(format!(
                "key {} of RL.ALL repeats key {}{}",
                i + 1,
                keys[..i].iter().position(|x| x == k).map_or(0, |j| j + 1),
                shown(k)
            )));
        }
    }
    let mut rest = &args[1 + numkeys..];
    let mut params = SmallVec::with_capacity(numkeys);
    let mut policies = SmallVec::with_capacity(numkeys);
    let mut modes = SmallVec::with_capacity(numkeys);
    for n in 1..=numkeys {
        let here = args.len() - rest.len();
        let (p, named, tail) = limit(rest, limits, resolve).map_err(|e| match e {
            LimitError::NoPolicy(e) => e,
            LimitError::Missing => ArgError::new(format!(
                "RL.ALL needs one limit per key: limit {n} of {numkeys} is missing"
            )),
            LimitError::UnknownAlgorithm(got) => ArgError::new(format!(
                "limit {n} must start with FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY, got{got}"
            )),
            LimitError::Short(algo, needs) => {
                ArgError::new(format!("limit {n} ({}) needs {needs}", algo.name()))
            }
            LimitError::Bad(algo, e) => ArgError(format!("limit {n} ({}): {e}", algo.name())),
        })?;
        params.push(p);
        policies.push(named.is_some().then_some(here + 1));
        modes.push(named.map_or(Mode::default(), |policy| Mode {
            shadow: policy.shadow,
            penalty: policy.penalty,
        }));
        rest = tail;
    }
    let opts = options(rest, ALL_OPTIONS)?;
    Ok(AllRequest {
        numkeys,
        params,
        cost: opts.cost.unwrap_or(1),
        at: opts.at,
        penalty: opts.penalty,
        shadow: opts.shadow,
        combined: opts.combined,
        policies,
        modes,
    })
}

/// Why `ALGO params...` could not be read; each command words it.
enum LimitError {
    Missing,
    /// The name as shown in a message (` 'X'`, or a description).
    UnknownAlgorithm(String),
    /// The parameters it needs, comma-separated.
    Short(Algorithm, String),
    Bad(Algorithm, ArgError),
    /// `POLICY name` with a bad or unknown name.
    NoPolicy(ArgError),
}

/// A policy name, or why it can't be one.
pub fn policy_name(arg: &[u8]) -> Result<&str, ArgError> {
    if !crate::policy::valid_name(arg) {
        return Err(ArgError::new(format!(
            "a policy name is 1 to {} of A-Z a-z 0-9 _ . : -, got{}",
            crate::policy::MAX_NAME_LEN,
            bad_policy_name(arg)
        )));
    }
    // Valid names are ASCII.
    std::str::from_utf8(arg).map_err(|_| ArgError::new("policy name is not valid UTF-8"))
}

/// What is wrong with a name `valid_name` refused, shown without control
/// characters: the name itself when it is printable, else its length or
/// its first byte that no name may hold.
fn bad_policy_name(arg: &[u8]) -> String {
    if arg.is_empty() {
        return " an empty string".into();
    }
    if arg.len() > crate::policy::MAX_NAME_LEN {
        return format!(" a name of {} bytes", arg.len());
    }
    if arg.iter().all(u8::is_ascii_graphic) {
        return format!(" '{}'", String::from_utf8_lossy(arg));
    }
    // A name that is not all graphic ASCII holds a byte outside the set.
    match arg.iter().find(|b| !b.is_ascii_graphic()) {
        Some(b' ') => " a name with a space".into(),
        Some(b) => format!(" a name with the byte 0x{b:02x}"),
        None => String::new(),
    }
}

/// The error for a policy the server does not have.
pub(crate) fn no_such_policy(name: &str) -> ArgError {
    ArgError::new(format!("no such policy '{name}'"))
}

/// A limit read from the arguments: its parameters, the policy they came
/// from, and the arguments after it.
type Limit<'a, 'b> = (Params, Option<Policy>, &'a [&'b [u8]]);

/// `ALGO params...` (or `POLICY name`) at the start of `args`.
fn limit<'a, 'b>(
    args: &'a [&'b [u8]],
    limits: &Limits,
    resolve: Resolve,
) -> Result<Limit<'a, 'b>, LimitError> {
    let Some((&name, tail)) = args.split_first() else {
        return Err(LimitError::Missing);
    };
    if name.eq_ignore_ascii_case(b"POLICY") {
        let Some((&policy, rest)) = tail.split_first() else {
            return Err(LimitError::NoPolicy(ArgError::new("POLICY needs a name")));
        };
        let policy = policy_name(policy).map_err(LimitError::NoPolicy)?;
        let p = resolve(policy.as_bytes())
            .ok_or_else(|| LimitError::NoPolicy(no_such_policy(policy)))?;
        policy_within(policy, &p.params, limits).map_err(LimitError::NoPolicy)?;
        return Ok((p.params, Some(p), rest));
    }
    let algo = Algorithm::from_name(name)
        .ok_or_else(|| LimitError::UnknownAlgorithm(shown_or_empty(name)))?;
    let names = param_names(algo);
    if tail.len() < names.len() {
        return Err(LimitError::Short(algo, names.join(", ")));
    }
    let (p, rest) = spec(algo, tail, limits).map_err(|e| LimitError::Bad(algo, e))?;
    Ok((p, None, rest))
}

/// `RL.PEEK key ALGO params... [COST n] [AT unix_ms]`: parses what follows
/// the key. The algorithm is named, as in `RL.ALL`, since the command is
/// the same for all of them.
pub fn peek_request(
    args: &[&[u8]],
    limits: &Limits,
    resolve: Resolve,
) -> Result<Request, ArgError> {
    let (params, _, rest) = limit(args, limits, resolve).map_err(|e| match e {
        LimitError::Missing => arity_error("RL.PEEK"),
        LimitError::NoPolicy(e) => e,
        LimitError::UnknownAlgorithm(got) => ArgError::new(format!(
            "the algorithm must be FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY, got{got}"
        )),
        LimitError::Short(algo, needs) => ArgError::new(format!("{} needs {needs}", algo.name())),
        LimitError::Bad(_, e) => e,
    })?;
    // A peek writes nothing, so it can start no block.
    let opts = options(rest, &[Opt::Cost, Opt::At])?;
    Ok(Request {
        params,
        cost: opts.cost.unwrap_or(1),
        at: opts.at,
        penalty: None,
        shadow: false,
    })
}

/// `RL.POLICY SET name ALGO params... [PENALTY d] [SHADOW]`: parses what
/// follows `SET`, validating the parameters exactly as the commands do.
pub fn policy_set<'a>(
    args: &[&'a [u8]],
    limits: &Limits,
) -> Result<(&'a str, crate::policy::Policy), ArgError> {
    let Some((&name, rest)) = args.split_first() else {
        return Err(arity_error("RL.POLICY|SET"));
    };
    let name = policy_name(name)?;
    let (params, _, rest) = limit(rest, limits, &no_policies).map_err(|e| match e {
        LimitError::Missing => ArgError::new("RL.POLICY SET needs an algorithm and its parameters"),
        LimitError::NoPolicy(_) => ArgError::new("a policy can't be defined by another policy"),
        LimitError::UnknownAlgorithm(got) => ArgError::new(format!(
            "the algorithm must be FIXED, SLIDING, LOG, TOKEN, LEAKY or GCRA, got{got}"
        )),
        LimitError::Short(algo, needs) => ArgError::new(format!("{} needs {needs}", algo.name())),
        LimitError::Bad(_, e) => e,
    })?;
    let opts = options(rest, &[Opt::Penalty, Opt::Shadow])?;
    Ok((
        name,
        crate::policy::Policy {
            params,
            penalty: opts.penalty,
            shadow: opts.shadow,
        },
    ))
}

/// `RL.CHECK policy key [COST n] [AT unix_ms]`: parses the options after
/// the key.
pub fn check_options<'a>(args: &[&'a [u8]]) -> Result<Options<'a>, ArgError> {
    options(args, &[Opt::Cost, Opt::At])
}

/// `RL.REFUND key n [AT unix_ms]`, once parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Units to give back; 0 gives back nothing, so a client can refund a
    /// computed cost without a special case.
    pub n: u64,
    pub at: Option<Instant>,
}

/// Parses what follows the key of `RL.REFUND`.
pub fn refund_request(args: &[&[u8]]) -> Result<Refund, ArgError> {
    let Some((n, rest)) = args.split_first() else {
        return Err(arity_error("RL.REFUND"));
    };
    let n = count("n", n, 0)?;
    let opts = options(rest, &[Opt::At])?;
    Ok(Refund { n, at: opts.at })
}

/// Default and hard ceiling of `RL.ACQUIRE`'s limit: each lease costs
/// about 50 bytes, so this bounds one key at about 500 KB by default.
pub const DEFAULT_LEASE_MAX: u64 = 10_000;

/// `RL.ACQUIRE key limit ttl [ID lease_id] [COST n] [AT unix_ms]`, once
/// parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquire<'a> {
    pub limit: Count,
    pub ttl: Period,
    /// `ID lease_id`; the server makes one up without it.
    pub id: Option<&'a [u8]>,
    /// Slots the lease takes (default 1); 0 asks without taking.
    pub cost: u64,
    pub at: Option<Instant>,
}

/// A lease id: 1 to 64 bytes, any bytes.
pub fn lease_id(arg: &[u8]) -> Result<&[u8], ArgError> {
    if crate::algo::Lease::is_valid_id(arg) {
        Ok(arg)
    } else {
        Err(ArgError::new(format!(
            "lease_id must be 1 to {} bytes",
            crate::algo::MAX_LEASE_ID_LEN
        )))
    }
}

/// Parses what follows the key of `RL.ACQUIRE`.
pub fn acquire_request<'a>(args: &[&'a [u8]], lease_max: u64) -> Result<Acquire<'a>, ArgError> {
    let [limit, ttl, rest @ ..] = args else {
        return Err(arity_error("RL.ACQUIRE"));
    };
    let limit = positive("limit", limit)?;
    if limit.get() > lease_max {
        return Err(ArgError::new(format!(
            "limit is too large for RL.ACQUIRE (at most {lease_max}, see ratelimit.lease-max)"
        )));
    }
    let ttl = duration("ttl", ttl)?;
    let opts = options(rest, &[Opt::Id, Opt::Cost, Opt::At])?;
    Ok(Acquire {
        limit,
        ttl,
        id: opts.id,
        cost: opts.cost.unwrap_or(1),
        at: opts.at,
    })
}

/// `RL.RENEW key lease_id ttl`: parses what follows the key.
pub fn renew_request<'a>(args: &[&'a [u8]]) -> Result<(&'a [u8], Period), ArgError> {
    let [id, ttl] = args else {
        return Err(arity_error("RL.RENEW"));
    };
    Ok((lease_id(id)?, duration("ttl", ttl)?))
}

/// `CL.THROTTLE key max_burst count period [quantity]`, redis-cell's syntax:
/// `period` is whole seconds, `quantity` defaults to 1. Parses what follows
/// the key.
pub fn throttle_request(args: &[&[u8]]) -> Result<Request, ArgError> {
    const COMMAND: &str = "CL.THROTTLE";
    if !(3..=4).contains(&args.len()) {
        return Err(arity_error(COMMAND));
    }
    let max_burst = burst(args[0])?;
    let rate = positive("count", args[1])?;
    let max_period_s = MAX_DURATION_US / 1_000_000;
    let period_s = count("period", args[2], 1)?;
    let period = Period::from_micros(period_s.saturating_mul(1_000_000)).ok_or_else(|| {
        ArgError::new(format!(
            "period is too long (at most {max_period_s} seconds)"
        ))
    })?;
    let cost = match args.get(3) {
        Some(q) => count("quantity", q, 0)?,
        None => 1,
    };
    Ok(Request {
        params: Params::Gcra(GcraParams {
            max_burst,
            rate,
            period,
        }),
        cost,
        at: None,
        penalty: None,
        shadow: false,
    })
}

/// Settings given as module arguments (`loadmodule ... log-max 5000`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    pub log_max: Option<u64>,
    pub lease_max: Option<u64>,
    pub cell_compat: Option<bool>,
}

/// Parses `name value` pairs given to `loadmodule`; names may also be
/// written with the `ratelimit.` prefix `CONFIG SET` uses. The error says
/// which argument is wrong, for the server log.
pub fn module_args(args: &[&[u8]], log_max_ceiling: u64) -> Result<ModuleArgs, String> {
    let lease_max_ceiling = crate::algo::MAX_LEASES;
    let mut out = ModuleArgs::default();
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "module arguments come in 'name value' pairs; '{}' has no value",
            String::from_utf8_lossy(args[args.len() - 1])
        ));
    }
    for pair in args.chunks(2) {
        let raw_name = String::from_utf8_lossy(pair[0]).to_ascii_lowercase();
        let name = raw_name.strip_prefix("ratelimit.").unwrap_or(&raw_name);
        let value = String::from_utf8_lossy(pair[1]);
        match name {
            "log-max" => {
                let v = count("log-max", pair[1], 1).map_err(|e| e.0)?;
                if v > log_max_ceiling {
                    return Err(format!(
                        "log-max is too large (at most {log_max_ceiling}), got '{value}'"
                    ));
                }
                if out.log_max.replace(v).is_some() {
                    return Err("log-max given more than once".into());
                }
            }
            "lease-max" => {
                let v = count("lease-max", pair[1], 1).map_err(|e| e.0)?;
                if v > lease_max_ceiling {
                    return Err(format!(
                        "lease-max is too large (at most {lease_max_ceiling}), got '{value}'"
                    ));
                }
                if out.lease_max.replace(v).is_some() {
                    return Err("lease-max given more than once".into());
                }
            }
            "cell-compat" => {
                let v = match value.to_ascii_lowercase().as_str() {
                    "yes" | "on" | "1" | "true" => true,
                    "no" | "off" | "0" | "false" => false,
                    _ => return Err(format!("cell-compat must be yes or no, got '{value}'")),
                };
                if out.cell_compat.replace(v).is_some() {
                    return Err("cell-compat given more than once".into());
                }
            }
            _ => {
                return Err(format!(
                "unknown module argument '{raw_name}' (expected log-max, lease-max or cell-compat)"
            ))
            }
        }
    }
    Ok(out)
}

/// `RL.TOP [COUNT n] [POLICY name] [SHADOW]`, once parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top<'a> {
    /// Entries to list at most (default [`TOP_DEFAULT_COUNT`]).
    pub count: usize,
    /// Only entries denied under this policy.
    pub policy: Option<&'a str>,
    /// The shadow summary: what `SHADOW` limits would have denied.
    pub shadow: bool,
}

/// Entries `RL.TOP` lists without `COUNT`.
pub(crate) const TOP_DEFAULT_COUNT: usize = 10;

/// Parses the arguments of `RL.TOP`, each option at most once, in any
/// order. `COUNT` is 1 to the largest `ratelimit.top-size`.
pub fn top_request<'a>(args: &[&'a [u8]]) -> Result<Top<'a>, ArgError> {
    let mut count = None;
    let mut policy = None;
    let mut shadow = false;
    let mut i = 0;
    while i < args.len() {
        let name = args[i];
        let twice = |option: &str| ArgError::new(format!("{option} given more than once"));
        if name.eq_ignore_ascii_case(b"SHADOW") {
            if shadow {
                return Err(twice("SHADOW"));
            }
            shadow = true;
            i += 1;
            continue;
        }
        let option = if name.eq_ignore_ascii_case(b"COUNT") {
            "COUNT"
        } else if name.eq_ignore_ascii_case(b"POLICY") {
            "POLICY"
        } else {
            return Err(ArgError::new(format!(
                "unknown option{} (expected COUNT, POLICY or SHADOW)",
                shown(name)
            )));
        };
        let v = args
            .get(i + 1)
            .copied()
            .ok_or_else(|| ArgError::new(format!("{option} needs a value")))?;
        match option {
            "COUNT" if count.is_none() => {
                let max = crate::top::MAX_CAPACITY as u64;
                let n = self::count("COUNT", v, 1)?;
                if n > max {
                    return Err(ArgError::new(format!("COUNT is too large (at most {max})")));
                }
                // At most MAX_CAPACITY: fits.
                count = Some(n as usize);
            }
            "POLICY" if policy.is_none() => policy = Some(policy_name(v)?),
            _ => return Err(twice(option)),
        }
        i += 2;
    }
    Ok(Top {
        count: count.unwrap_or(TOP_DEFAULT_COUNT),
        policy,
        shadow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, ArgError>) -> String {
        format!("ERR {}", r.expect_err("expected an error"))
    }

    #[test]
    fn top_requests() {
        let parse = |line: &str| {
            let argv: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            top_request(&argv).map(|t| (t.count, t.policy.map(str::to_owned), t.shadow))
        };
        assert_eq!(parse(""), Ok((TOP_DEFAULT_COUNT, None, false)));
        assert_eq!(
            parse("shadow count 3 POLICY free"),
            Ok((3, Some("free".into()), true))
        );
        assert_eq!(parse("COUNT 100000"), Ok((100_000, None, false)));
        for (line, want) in [
            ("COUNT 0", "ERR COUNT must be greater than 0"),
            ("COUNT 100001", "ERR COUNT is too large (at most 100000)"),
            ("COUNT -1", "ERR COUNT must be greater than 0"),
            ("COUNT", "ERR COUNT needs a value"),
            ("POLICY", "ERR POLICY needs a value"),
            ("SHADOW SHADOW", "ERR SHADOW given more than once"),
            ("COUNT 1 COUNT 1", "ERR COUNT given more than once"),
            ("POLICY a POLICY a", "ERR POLICY given more than once"),
            (
                "AT 5",
                "ERR unknown option 'AT' (expected COUNT, POLICY or SHADOW)",
            ),
        ] {
            assert_eq!(err(parse(line)), want, "{line}");
        }
        assert!(err(parse("POLICY a/b")).starts_with("ERR a policy name is"));
    }

    #[test]
    fn bad_policy_names_say_what_is_wrong() {
        let head = "ERR a policy name is 1 to 64 of A-Z a-z 0-9 _ . : -, got";
        for (name, got) in [
            (&b""[..], " an empty string".to_string()),
            (b"bad name", " a name with a space".into()),
            (b"tab\there", " a name with the byte 0x09".into()),
            ("caf\u{e9}".as_bytes(), " a name with the byte 0xc3".into()),
            (b"a/b", " 'a/b'".into()),
            (&[b'x'; 65], " a name of 65 bytes".into()),
            // Printable names up to the longest are shown whole.
            (&[b'!'; 64], format!(" '{}'", "!".repeat(64))),
        ] {
            assert_eq!(err(policy_name(name)), format!("{head}{got}"), "{name:?}");
        }
        assert_eq!(policy_name(b"paid-monthly:v2"), Ok("paid-monthly:v2"));
        assert_eq!(policy_name(&[b'x'; 64]).map(str::len), Ok(64));
    }

    #[test]
    fn durations() {
        let cases: &[(&str, u64)] = &[
            ("1", 1_000_000),
            ("60s", 60_000_000),
            ("500ms", 500_000),
            ("1m", 60_000_000),
            ("1h", 3_600_000_000),
            ("1d", 86_400_000_000),
            ("7us", 7),
            ("2H", 7_200_000_000),
            ("36500d", 3_153_600_000_000_000),
        ];
        for &(text, us) in cases {
            assert_eq!(
                duration("window", text.as_bytes()).map(|p| p.micros()),
                Ok(us),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_name_the_argument() {
        let cases: &[(&[u8], &str)] = &[
            (b"0", "ERR window must be greater than 0"),
            (b"-5s", "ERR window must be greater than 0"),
            (b"5w", "ERR window has an unknown unit 'w' (use us, ms, s, m, h or d)"),
            (b"s", "ERR window must be a positive integer with an optional unit (us, ms, s, m, h, d), got an empty string"),
            (b"1.5s", "ERR window has an unknown unit '.5s' (use us, ms, s, m, h or d)"),
            (b"99999999999999999999999d", "ERR window has too many digits"),
            (b"4000000d", "ERR window is too long (at most 1157407 days)"),
            (b"\xff\xfe", "ERR window is not valid UTF-8"),
        ];
        for &(arg, msg) in cases {
            assert_eq!(err(duration("window", arg)), msg, "{arg:?}");
        }
    }

    #[test]
    fn overlong_numbers_say_so() {
        let long = "1".repeat(40);
        assert_eq!(
            err(count("limit", long.as_bytes(), 1)),
            "ERR limit has too many digits"
        );
        assert_eq!(
            err(duration("window", format!("{long}s").as_bytes())),
            "ERR window has too many digits"
        );
    }

    #[test]
    fn counts() {
        assert_eq!(count("limit", b"10", 1), Ok(10));
        assert_eq!(
            err(count("limit", b"0", 1)),
            "ERR limit must be greater than 0"
        );
        assert_eq!(
            err(count("limit", b"-1", 1)),
            "ERR limit must be greater than 0"
        );
        assert_eq!(
            err(count("COST", b"-1", 0)),
            "ERR COST must not be negative"
        );
        assert_eq!(
            err(count("limit", b"abc", 1)),
            "ERR limit must be a positive integer, got 'abc'"
        );
        assert_eq!(
            err(count("limit", b"1e3", 1)),
            "ERR limit must be a positive integer, got '1e3'"
        );
        assert_eq!(
            err(count("limit", b"", 1)),
            "ERR limit must be a positive integer, got an empty string"
        );
        assert_eq!(
            err(count("limit", b"1000000000000001", 1)),
            "ERR limit is too large (at most 1000000000000000)"
        );
        assert_eq!(
            err(count("limit", b"\r\n", 1)),
            "ERR limit must be a positive integer, got a value that is not a number"
        );
    }

    #[test]
    fn refund_requests() {
        assert_eq!(refund_request(&[b"3"]), Ok(Refund { n: 3, at: None }));
        assert_eq!(
            refund_request(&[b"0", b"at", b"5"]),
            Ok(Refund {
                n: 0,
                at: Some(Instant::from_micros(5000))
            })
        );
        assert_eq!(
            err(refund_request(&[])),
            "ERR wrong number of arguments for 'RL.REFUND' command"
        );
        assert_eq!(err(refund_request(&[b"-1"])), "ERR n must not be negative");
        assert_eq!(
            err(refund_request(&[b"1", b"COST", b"2"])),
            "ERR unknown option 'COST' (expected AT)"
        );
        assert_eq!(err(refund_request(&[b"1", b"AT"])), "ERR AT needs a value");
    }

    #[test]
    fn requests() {
        let l = Limits::default();
        let r = request(
            Algorithm::Token,
            "RL.TOKEN",
            &[b"10", b"5", b"1s", b"cost", b"3", b"AT", b"1000"],
            &l,
        )
        .unwrap();
        assert_eq!(
            r,
            Request {
                params: Params::Token(BucketParams::new(10, 5, 1_000_000).unwrap()),
                cost: 3,
                at: Some(Instant::from_micros(1_000_000)),
                penalty: None,
                shadow: false,
            }
        );
        let r = request(
            Algorithm::Fixed,
            "RL.FIXED",
            &[b"10", b"1m", b"shadow", b"COST", b"2"],
            &l,
        )
        .unwrap();
        assert!(r.shadow);
        assert_eq!(r.cost, 2);
        let r = request(
            Algorithm::Fixed,
            "RL.FIXED",
            &[b"10", b"1m", b"penalty", b"15m"],
            &l,
        )
        .unwrap();
        assert_eq!(r.penalty, Some(Duration::from_micros(900_000_000)));
        let fixed = |opts: &[&[u8]]| {
            let mut a: Vec<&[u8]> = vec![b"10", b"1m"];
            a.extend_from_slice(opts);
            err(request(Algorithm::Fixed, "RL.FIXED", &a, &l))
        };
        assert_eq!(
            fixed(&[b"PENALTY", b"0"]),
            "ERR PENALTY must be greater than 0"
        );
        assert_eq!(fixed(&[b"PENALTY"]), "ERR PENALTY needs a value");
        assert_eq!(
            fixed(&[b"PENALTY", b"1s", b"PENALTY", b"2s"]),
            "ERR PENALTY given more than once"
        );
        assert_eq!(
            fixed(&[b"LIMIT", b"2"]),
            "ERR unknown option 'LIMIT' (expected COST, AT, PENALTY or SHADOW)"
        );
        let r = request(Algorithm::Gcra, "RL.GCRA", &[b"0", b"1", b"1"], &l).unwrap();
        assert_eq!(
            r.params,
            Params::Gcra(GcraParams::of_bucket(
                &BucketParams::new(1, 1, 1_000_000).unwrap()
            ))
        );
        assert_eq!(
            err(request(Algorithm::Fixed, "RL.FIXED", &[b"10"], &l)),
            "ERR wrong number of arguments for 'RL.FIXED' command"
        );
        assert_eq!(
            err(request(
                Algorithm::Fixed,
                "RL.FIXED",
                &[b"10", b"1", b"COST"],
                &l
            )),
            "ERR COST needs a value"
        );
        assert_eq!(
            err(request(
                Algorithm::Fixed,
                "RL.FIXED",
                &[b"10", b"1", b"COST", b"1", b"COST", b"2"],
                &l
            )),
            "ERR COST given more than once"
        );
        assert_eq!(
            err(request(
                Algorithm::Fixed,
                "RL.FIXED",
                &[b"10", b"1", b"FOO", b"1"],
                &l
            )),
            "ERR unknown option 'FOO' (expected COST, AT, PENALTY or SHADOW)"
        );
        assert_eq!(
            err(request(
                Algorithm::Fixed,
                "RL.FIXED",
                &[b"10", b"1", b"AT", b"-1"],
                &l
            )),
            "ERR AT must be between 0 and 253402300799999"
        );
        assert_eq!(
            err(request(Algorithm::Log, "RL.LOG", &[b"10001", b"1"], &l)),
            "ERR limit is too large for RL.LOG (at most 10000, see ratelimit.log-max)"
        );
        assert_eq!(
            err(request(
                Algorithm::Token,
                "RL.TOKEN",
                &[b"10", b"0", b"1"],
                &l
            )),
            "ERR rate must be greater than 0"
        );
        assert_eq!(
            err(request(
                Algorithm::Gcra,
                "RL.GCRA",
                &[b"-1", b"1", b"1"],
                &l
            )),
            "ERR max_burst must not be negative"
        );
    }

    fn all(line: &str) -> Result<AllRequest, ArgError> {
        let v: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        all_request(&v, &Limits::default(), &no_policies)
    }

    #[test]
    fn all_requests() {
        let r = all("2 a b TOKEN 10 10 1s FIXED 1000 1d COST 2 AT 5").unwrap();
        assert_eq!(r.numkeys, 2);
        assert_eq!(r.cost, 2);
        assert_eq!(r.at, Some(Instant::from_micros(5000)));
        assert_eq!(r.params[0].algorithm(), Algorithm::Token);
        assert_eq!(
            r.params[1],
            Params::Fixed(WindowParams::new(1000, 86_400_000_000).unwrap().into())
        );
        let cases = [
            ("1 a", "ERR wrong number of arguments for 'RL.ALL' command"),
            ("0 a FIXED 1 1", "ERR numkeys must be greater than 0"),
            ("x a FIXED 1 1", "ERR numkeys must be a positive integer, got 'x'"),
            ("65 a b", "ERR numkeys is too large for RL.ALL (at most 64)"),
            ("3 a b", "ERR numkeys is greater than the number of keys given"),
            ("2 a a FIXED 1 1 FIXED 1 1", "ERR key 2 of RL.ALL repeats key 1 'a'"),
            (
                "2 a b FIXED 1 1",
                "ERR RL.ALL needs one limit per key: limit 2 of 2 is missing",
            ),
            (
                "1 a BUCKET 1 1",
                "ERR limit 1 must start with FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY, got 'BUCKET'",
            ),
            ("1 a TOKEN 1 1", "ERR limit 1 (TOKEN) needs capacity, rate, period"),
            (
                "2 a b FIXED 1 1s TOKEN 1 x 1s",
                "ERR limit 2 (TOKEN): rate must be a positive integer, got 'x'",
            ),
            (
                "1 a LOG 10001 1s",
                "ERR limit 1 (LOG): limit is too large for RL.LOG (at most 10000, see ratelimit.log-max)",
            ),
            (
                "1 a FIXED 1 1s FIXED 1 1s",
                "ERR unknown option 'FIXED' (expected COST, AT, PENALTY, SHADOW or COMBINED)",
            ),
            ("1 a FIXED 1 1s COST -1", "ERR COST must not be negative"),
        ];
        for (line, want) in cases {
            assert_eq!(err(all(line)), want, "{line}");
        }
    }

    #[test]
    fn peek_requests() {
        let l = Limits::default();
        let p = |line: &str| {
            let v: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            peek_request(&v, &l, &no_policies)
        };
        let r = p("token 10 5 1s COST 3").unwrap();
        assert_eq!(
            r.params,
            Params::Token(BucketParams::new(10, 5, 1_000_000).unwrap())
        );
        assert_eq!((r.cost, r.at), (3, None));
        assert_eq!(p("FIXED 5 1m").unwrap().cost, 1);
        for (line, want) in [
            ("", "ERR wrong number of arguments for 'RL.PEEK' command"),
            (
                "BUCKET 1 1",
                "ERR the algorithm must be FIXED, SLIDING, LOG, TOKEN, LEAKY, GCRA or POLICY, got 'BUCKET'",
            ),
            ("TOKEN 1 1", "ERR TOKEN needs capacity, rate, period"),
            ("FIXED 0 1s", "ERR limit must be greater than 0"),
            ("FIXED 1 1s COST", "ERR COST needs a value"),
            (
                "LOG 10001 1s",
                "ERR limit is too large for RL.LOG (at most 10000, see ratelimit.log-max)",
            ),
        ] {
            assert_eq!(err(p(line)), want, "{line}");
        }
    }

    #[test]
    fn throttle_requests() {
        let t = |line: &str| {
            let v: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            throttle_request(&v)
        };
        let r = t("15 30 60").unwrap();
        assert_eq!(r.cost, 1);
        assert_eq!(
            r.params,
            Params::Gcra(GcraParams::of_bucket(
                &BucketParams::new(16, 30, 60_000_000).unwrap()
            ))
        );
        assert_eq!(t("0 1 1 0").unwrap().cost, 0);
        assert_eq!(
            err(t("15 30")),
            "ERR wrong number of arguments for 'CL.THROTTLE' command"
        );
        assert_eq!(
            err(t("15 30 1s")),
            "ERR period must be a positive integer, got '1s'"
        );
        assert_eq!(err(t("15 0 60")), "ERR count must be greater than 0");
        assert_eq!(err(t("-1 1 60")), "ERR max_burst must not be negative");
        assert_eq!(err(t("1 1 60 -2")), "ERR quantity must not be negative");
    }

    #[test]
    fn module_arguments() {
        let m = |line: &str| {
            let v: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            module_args(&v, 1_000_000)
        };
        assert_eq!(m("").unwrap(), ModuleArgs::default());
        assert_eq!(
            m("log-max 5 ratelimit.cell-compat yes lease-max 7").unwrap(),
            ModuleArgs {
                log_max: Some(5),
                lease_max: Some(7),
                cell_compat: Some(true)
            }
        );
        assert_eq!(
            m("lease-max 1000001").unwrap_err(),
            "lease-max is too large (at most 1000000), got '1000001'"
        );
        assert_eq!(
            m("LOG-MAX 5 cell-compat off").unwrap().cell_compat,
            Some(false)
        );
        assert_eq!(
            m("log-max").unwrap_err(),
            "module arguments come in 'name value' pairs; 'log-max' has no value"
        );
        assert_eq!(
            m("log-max 0").unwrap_err(),
            "log-max must be greater than 0"
        );
        assert_eq!(
            m("log-max 2000000").unwrap_err(),
            "log-max is too large (at most 1000000), got '2000000'"
        );
        assert_eq!(
            m("cell-compat maybe").unwrap_err(),
            "cell-compat must be yes or no, got 'maybe'"
        );
        assert_eq!(
            m("speed 9").unwrap_err(),
            "unknown module argument 'speed' (expected log-max, lease-max or cell-compat)"
        );
    }
}
