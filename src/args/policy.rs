//! Policy names and `RL.POLICY SET`/`RL.CHECK`'s arguments: how a name is
//! checked and a missing one worded, shared by every command that takes
//! `POLICY name`.

use super::limit::{limit, LimitError};
use super::{arity_error, options, ArgError, Limits, Opt, Options};
use crate::policy::Policy;

/// Finds a named policy (the server's registry).
pub(crate) type Resolve<'r> = &'r dyn Fn(&[u8]) -> Option<Policy>;

/// No policies (tests, and commands that take none).
pub(crate) fn no_policies(_: &[u8]) -> Option<Policy> {
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::err;

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
}
