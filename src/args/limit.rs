//! One limit as the commands that name their algorithm read it: `ALGO
//! params...` or `POLICY name`. Shared by `RL.ALL`, `RL.PEEK` and
//! `RL.POLICY SET`, which each word its errors (hence [`LimitError`]).

use crate::algo::limiter::Param;
use crate::algo::{Algorithm, Params};
use crate::policy::Policy;

use super::{
    no_such_policy, policy_name, policy_within, shown_or_empty, spec, ArgError, Limits, Resolve,
};

/// Why `ALGO params...` could not be read; each command words it.
pub(super) enum LimitError {
    Missing,
    /// The name as shown in a message (` 'X'`, or a description).
    UnknownAlgorithm(String),
    /// The parameters it needs, comma-separated.
    Short(Algorithm, String),
    Bad(Algorithm, ArgError),
    /// `POLICY name` with a bad or unknown name.
    NoPolicy(ArgError),
}

/// A limit read from the arguments: its parameters, the policy they came
/// from, and the arguments after it.
pub(super) type Limit<'a, 'b> = (Params, Option<Policy>, &'a [&'b [u8]]);

/// `ALGO params...` (or `POLICY name`) at the start of `args`.
pub(super) fn limit<'a, 'b>(
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
    let params = algo.shape().params();
    if tail.len() < params.len() {
        let names: Vec<_> = params.iter().map(Param::text).collect();
        return Err(LimitError::Short(algo, names.join(", ")));
    }
    let (p, rest) = spec(algo, tail, limits).map_err(|e| LimitError::Bad(algo, e))?;
    Ok((p, None, rest))
}
