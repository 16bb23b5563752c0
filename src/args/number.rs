//! Counts and durations, the arguments every command has: the hot path's
//! one-pass parsers and the careful path that words the errors, kept
//! together so the two always agree on what they accept.

use crate::algo::units::{unit_scale, DAY_US, DURATION_UNITS};
use crate::algo::{Count, Period, MAX_COUNT, MAX_DURATION_US};

use super::{shown, shown_or_empty, ArgError};

fn utf8<'a>(name: &str, arg: &'a [u8]) -> Result<&'a str, ArgError> {
    std::str::from_utf8(arg).map_err(|_| ArgError::new(format!("{name} is not valid UTF-8")))
}

/// Parses a decimal integer: optional `-`, then 1 to 20 digits. Runs on
/// every argument of every call, so the common case is a plain byte loop;
/// UTF-8 is only examined to word an error.
pub(super) fn integer(name: &str, arg: &[u8], what: &str) -> Result<i128, ArgError> {
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
pub(crate) fn count(name: &str, arg: &[u8], min: u64) -> Result<u64, ArgError> {
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
pub(super) fn positive(name: &str, arg: &[u8]) -> Result<Count, ArgError> {
    let v = count(name, arg, 1)?;
    Count::new(v).ok_or_else(|| ArgError::new(format!("{name} must be greater than 0")))
}

/// A duration: an integer with an optional unit (`us`, `ms`, `s`, `m`, `h`,
/// `d`); a bare integer is seconds.
pub(crate) fn duration(name: &str, arg: &[u8]) -> Result<Period, ArgError> {
    duration_or(name, arg, "us, ms, s, m, h or d")
}

/// [`duration`], naming `units` as the ones to use when the unit is unknown
/// (FIXED's window also takes months).
pub(super) fn duration_or(name: &str, arg: &[u8], units: &str) -> Result<Period, ArgError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::err;

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
}
