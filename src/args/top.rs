//! `RL.TOP`'s arguments: its own option set (`COUNT`, `POLICY`, `SHADOW`),
//! apart from the decision commands' options, which it shares no value with.

use super::{count, policy_name, shown, ArgError};

/// `RL.TOP [COUNT n] [POLICY name] [SHADOW]`, once parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top<'a> {
    /// Entries to list at most (default [`TOP_DEFAULT_COUNT`]).
    pub count: usize,
    /// Only entries denied under this policy.
    pub policy: Option<&'a str>,
    /// The shadow summary: what `SHADOW` limits would have denied.
    pub(crate) shadow: bool,
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
    use crate::args::err;

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
}
