//! An algorithm's parameters (`limit window`, `capacity rate period`,
//! FIXED's `ALIGN`), and the server's bounds on them: shared by every
//! command that takes `ALGO params`, so a limit means the same everywhere.

use crate::algo::limiter::Shape;
use crate::algo::units::DAY_US;
use crate::algo::{
    Algorithm, BucketParams, Burst, FixedParams, FixedWindow, Months, Offset, Params, Span,
    WindowParams, MAX_ALIGNED_US, MAX_COUNT, MAX_MONTHS,
};

use super::{
    arity_error, count, duration, duration_or, integer, positive, shown_or_empty, ArgError,
};

/// Default and hard ceiling of `RL.LOG`'s limit: the log costs 8 bytes per
/// unit of limit, so this bounds one key at 80 KB by default.
pub const DEFAULT_LOG_MAX: u64 = 10_000;

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

/// How many positional parameters `algo` takes.
pub(crate) fn param_count(algo: Algorithm) -> usize {
    algo.shape().params().len()
}

/// Parses the parameters of `algo` at the start of `args`: its positional
/// ones, and for FIXED an `ALIGN [OFFSET ±hh:mm]` right after the window.
/// Answers them and what follows.
pub(crate) fn spec<'a, 'b>(
    algo: Algorithm,
    args: &'a [&'b [u8]],
    limits: &Limits,
) -> Result<(Params, &'a [&'b [u8]]), ArgError> {
    let n = param_count(algo);
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

/// Parses the positional parameters of `algo` (exactly `param_count(algo)` args).
/// FIXED's are read here as a first-hit window; [`spec`] reads `ALIGN`.
pub(crate) fn params(algo: Algorithm, args: &[&[u8]], limits: &Limits) -> Result<Params, ArgError> {
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
pub(crate) fn within(p: &Params, limits: &Limits) -> Result<(), ArgError> {
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

pub(super) fn burst(arg: &[u8]) -> Result<Burst, ArgError> {
    Burst::new(count("max_burst", arg, 0)?).ok_or_else(|| {
        ArgError::new(format!(
            "max_burst is too large (at most {})",
            MAX_COUNT - 1
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::limiter::ParamValue;

    /// The parser names each parameter as the algorithm table documents it
    /// (`COMMAND DOCS`) and takes the table's option words. They are spelled
    /// twice on purpose: a name is formatted only into an error, so the
    /// parser keeps literals rather than read the table on every call; this
    /// holds the two equal.
    #[test]
    fn the_parser_speaks_the_tables_names() {
        let limits = Limits::default();
        for algo in Algorithm::ALL {
            let names = algo.shape().params();
            let valid: &[&[u8]] = match names.len() {
                2 => &[b"10", b"1s"],
                _ => &[b"10", b"5", b"1s"],
            };
            assert!(spec(algo, valid, &limits).is_ok(), "{}", algo.name());
            for (i, p) in names.iter().enumerate() {
                let mut args = valid.to_vec();
                args[i] = b"x";
                let e = spec(algo, &args, &limits).expect_err("x is no value");
                assert!(
                    e.to_string().starts_with(&format!("{} ", p.text())),
                    "{}: {e} names {}",
                    algo.name(),
                    p.text()
                );
            }
            let mut args = valid.to_vec();
            let mut offset = false;
            for p in algo.shape().options() {
                let token = p.token.expect("an option has a word").to_bytes();
                args.push(token);
                if p.value == ParamValue::Offset {
                    args.push(b"+01:00");
                    offset = true;
                }
            }
            if let Params::Fixed(f) = spec(algo, &args, &limits).expect("the table's options").0 {
                let FixedWindow::Aligned(_, o) = f.window() else {
                    panic!("ALIGN aligns");
                };
                assert_eq!(offset, o.minutes() == 60);
            }
        }
    }
}
