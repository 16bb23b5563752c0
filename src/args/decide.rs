//! The decision commands' requests (`RL.<ALGO>`, `RL.ALL`, `RL.PEEK`,
//! `CL.THROTTLE`, `RL.REFUND`): what the hot path parses on every call,
//! apart from the rarer commands so its cost is easy to see.

use smallvec::SmallVec;

use crate::algo::{Algorithm, Duration, GcraParams, Instant, Params, Period, MAX_DURATION_US};

use super::limit::{limit, LimitError};
use super::{
    arity_error, burst, count, options, param_count, positive, shown, spec, ArgError, Limits, Opt,
    Resolve, ALL_OPTIONS, DECIDE_OPTIONS,
};

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
    pub(crate) shadow: bool,
}

/// Parses everything after the key of `RL.<algo> key ...`.
pub fn request(
    algo: Algorithm,
    command: &str,
    args: &[&[u8]],
    limits: &Limits,
) -> Result<Request, ArgError> {
    if args.len() < param_count(algo) {
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllRequest {
    pub numkeys: usize,
    /// Inline up to 8 limits: no allocation on a call's path.
    pub params: SmallVec<[Params; 8]>,
    pub cost: u64,
    pub at: Option<Instant>,
    pub penalty: Option<Duration>,
    pub(crate) shadow: bool,
    /// `COMBINED`: the reply is the combined decision's five integers
    /// alone, without one array per key.
    pub(crate) combined: bool,
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

/// Parses everything after `RL.ALL` (so `args[0]` is numkeys). Keys are
/// `args[1..=numkeys]`; the caller reads them from there.
pub fn all_request(
    args: &[&[u8]],
    limits: &Limits,
    resolve: Resolve,
) -> Result<AllRequest, ArgError> {
    let mut req = AllRequest::default();
    all_request_into(args, limits, resolve, &mut req)?;
    Ok(req)
}

/// [`all_request`] into the caller's `req` (an empty one: the default):
/// the command's own path, where a returned request (680 bytes, its
/// limits inline) was copied on its way out and again into place.
pub fn all_request_into(
    args: &[&[u8]],
    limits: &Limits,
    resolve: Resolve,
    req: &mut AllRequest,
) -> Result<(), ArgError> {
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
        req.params.push(p);
        req.policies.push(named.is_some().then_some(here + 1));
        req.modes.push(named.map_or(Mode::default(), |policy| Mode {
            shadow: policy.shadow,
            penalty: policy.penalty,
        }));
        rest = tail;
    }
    let opts = options(rest, ALL_OPTIONS)?;
    req.numkeys = numkeys;
    req.cost = opts.cost.unwrap_or(1);
    req.at = opts.at;
    req.penalty = opts.penalty;
    req.shadow = opts.shadow;
    req.combined = opts.combined;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{BucketParams, WindowParams};
    use crate::args::err;
    use crate::args::policy::no_policies;

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
}
