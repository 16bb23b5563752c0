//! Named server-side policies (`RL.POLICY SET name ALGO params... [PENALTY
//! d] [SHADOW]`): limits kept as data in the server, so a tier changes in
//! one place for every service. Pure Rust: the names, the definitions and
//! how they read back.

use std::collections::BTreeMap;

use crate::algo::limiter::Argument;
use crate::algo::units::DURATION_UNITS;
use crate::algo::{Duration, Offset, Params};

/// Longest policy name.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Most policies one server holds: far above any set of tiers, and it
/// keeps `RL.POLICY LIST`, `INFO` and the RDB record bounded.
pub const MAX_POLICIES: usize = 10_000;

/// A policy name: 1 to 64 of `A-Z a-z 0-9 _ . : -`, so it can be shown in
/// messages and `INFO` as it is.
pub fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// What a policy decides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub params: Params,
    /// Blocks a key denied under this policy for this long.
    pub penalty: Option<Duration>,
    /// Decides and applies for real but answers allowed.
    pub shadow: bool,
}

impl Policy {
    /// The definition as an argument list of `RL.POLICY SET`, with every
    /// duration in its largest exact unit: what `RL.POLICY GET` answers.
    pub fn definition(&self) -> Vec<String> {
        let mut out = vec![self.params.algorithm().name().to_string()];
        self.params.arguments(|arg| match arg {
            Argument::Count(n) => out.push(n.to_string()),
            Argument::Duration(d) => out.push(duration(d)),
            Argument::Months(n) => out.push(format!("{n}mo")),
            Argument::Align(offset) => {
                out.push("ALIGN".into());
                // UTC is the default, so it is not written.
                if offset != Offset::UTC {
                    out.push("OFFSET".into());
                    out.push(offset.to_string());
                }
            }
        });
        if let Some(p) = self.penalty {
            out.push("PENALTY".into());
            out.push(duration(p));
        }
        if self.shadow {
            out.push("SHADOW".into());
        }
        out
    }
}

/// A duration in the largest unit that divides it exactly (`90s`, `1500ms`,
/// `1d`), which the parser reads back as the same duration.
pub(crate) fn duration(d: Duration) -> String {
    let us = d.as_micros();
    // The largest unit it is a whole number of; every duration is a whole
    // number of the last, µs.
    for (unit, scale) in DURATION_UNITS {
        if us >= scale && us.is_multiple_of(scale) {
            return format!("{}{unit}", us / scale);
        }
    }
    format!("{us}us")
}

/// Every policy of a server, by name (so `RL.POLICY LIST` is in order).
pub type Policies = BTreeMap<String, Policy>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{self, Limits};

    #[test]
    fn names() {
        for ok in ["free", "paid-v2", "tier:gold", "a.b_c", &"x".repeat(64)] {
            assert!(valid_name(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "a b", "é", "a/b", "a{b}", &"x".repeat(65)] {
            assert!(!valid_name(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_definition_reads_back_as_the_same_policy() {
        for line in [
            "TOKEN 10 5 1s",
            "GCRA 0 30 1m PENALTY 15m SHADOW",
            "FIXED 100000 30d",
            "LOG 10 1500ms",
            "LEAKY 3 7 90061001us PENALTY 1h",
            "SLIDING 5 1h SHADOW",
        ] {
            let set = |words: &mut dyn Iterator<Item = &[u8]>| {
                let all: Vec<&[u8]> = std::iter::once(&b"n"[..]).chain(words).collect();
                args::policy_set(&all, &Limits::default()).map(|(_, p)| p)
            };
            let p = set(&mut line.split(' ').map(str::as_bytes)).unwrap();
            let back = p.definition();
            let again = set(&mut back.iter().map(|s| s.as_bytes())).unwrap();
            assert_eq!(again, p, "{line}");
        }
        assert_eq!(duration(Duration::from_micros(90_000_000)), "90s");
        assert_eq!(duration(Duration::from_micros(1_500_000)), "1500ms");
        assert_eq!(duration(Duration::from_micros(7)), "7us");
        assert_eq!(duration(Duration::from_micros(172_800_000_000)), "2d");
    }
}
