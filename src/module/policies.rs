//! The policy commands: `RL.POLICY SET|GET|DEL|LIST` and `RL.CHECK`, over
//! the registry in [`super::registry`].

use std::ffi::c_int;
use std::sync::Arc;

use redis_module::raw;

use super::config;
use super::docs::{
    arg, many, Access, Arg, Command, Doc, Keys, Kind, AT, COST, DECIDE, KEY, PENALTY, SHADOW,
};
use super::ffi::{Ctx, RStr};
use super::kernel::{client_decide_with, with_bytes, Error, Outcome};
use super::registry::{registry, Entry};
use super::reply;
use super::stats::Counters;
use crate::args::{self, Request};
use crate::policy::MAX_POLICIES;

const POLICY_SET_ARGS: &[Arg] = &[
    arg(c"name", Kind::String),
    arg(c"algorithm", Kind::String),
    many(c"parameters", Kind::String),
    PENALTY,
    SHADOW,
];
// RL.POLICY is a container: reading subcommands run on replicas.
pub(super) const RL_POLICY_SET: Command = Command {
    name: c"RL.POLICY|SET",
    flags: c"write deny-oom",
    internal: false,
    operator: true,
    doc: Doc {
        summary:
            c"Defines or replaces a named policy: SET name ALGO params... [PENALTY d] [SHADOW].",
        complexity: c"O(log N) where N is the number of policies",
        since: c"0.3.0",
        arity: -3,
        keys: Keys::None,
        args: POLICY_SET_ARGS,
    },
};

const POLICY_NAME_ARGS: &[Arg] = &[arg(c"name", Kind::String)];
pub(super) const RL_POLICY_GET: Command = Command {
    name: c"RL.POLICY|GET",
    flags: c"readonly fast",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"A policy's definition as an argument list, nil if none.",
        complexity: c"O(log N) where N is the number of policies",
        since: c"0.3.0",
        arity: 3,
        keys: Keys::None,
        args: POLICY_NAME_ARGS,
    },
};

pub(super) const RL_POLICY_DEL: Command = Command {
    name: c"RL.POLICY|DEL",
    flags: c"write fast",
    internal: false,
    operator: true,
    doc: Doc {
        summary: c"Deletes a policy: 1 if it existed, 0 otherwise.",
        complexity: c"O(log N) where N is the number of policies",
        since: c"0.3.0",
        arity: 3,
        keys: Keys::None,
        args: POLICY_NAME_ARGS,
    },
};

pub(super) const RL_POLICY_LIST: Command = Command {
    name: c"RL.POLICY|LIST",
    flags: c"readonly",
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"The names of every policy, in order.",
        complexity: c"O(N) where N is the number of policies",
        since: c"0.3.0",
        arity: 2,
        keys: Keys::None,
        args: &[],
    },
};

/// `RL.POLICY SET|GET|DEL|LIST ...`
pub(super) fn policy_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, sub, rest @ ..] = args else {
        return Err(args::arity_error("RL.POLICY").into());
    };
    let sub = sub.bytes();
    let arity = |name: &str| Error::from(args::arity_error(&format!("RL.POLICY|{name}")));
    if sub.eq_ignore_ascii_case(b"SET") {
        // A definition the master or the AOF holds was accepted when it was
        // made; a log-max lowered since then must not make a replica or a
        // restart refuse it (so the AOF would not load). Every use checks
        // the ceiling in force (`args::policy_within`).
        let replayed = raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING;
        let limits = if ctx.flags() & replayed as c_int != 0 {
            args::Limits {
                log_max: config::LOG_MAX_CEILING,
            }
        } else {
            config::limits()
        };
        let (name, policy) = with_bytes(rest, |a| {
            args::policy_set(a, &limits).map(|(n, p)| (n.to_string(), p))
        })?;
        {
            let mut reg = registry();
            if !reg.contains_key(&name) && reg.len() >= MAX_POLICIES {
                return Err(Error::Refused(format!(
                    "too many policies (at most {MAX_POLICIES}): delete one first"
                )));
            }
            match reg.get_mut(&name) {
                Some(e) => e.policy = policy,
                None => {
                    reg.insert(
                        name,
                        Entry {
                            policy,
                            counters: Arc::new(Counters::new()),
                        },
                    );
                }
            }
        }
        ctx.replicate_verbatim();
        ctx.reply_ok();
    } else if sub.eq_ignore_ascii_case(b"GET") {
        let [name] = rest else {
            return Err(arity("GET"));
        };
        let name = args::policy_name(name.bytes())?;
        match registry().get(name) {
            Some(e) => {
                let words = e.policy.definition();
                ctx.reply_array(words.len());
                for w in &words {
                    ctx.reply_bulk(w.as_bytes());
                }
            }
            None => ctx.reply_null(),
        }
    } else if sub.eq_ignore_ascii_case(b"DEL") {
        let [name] = rest else {
            return Err(arity("DEL"));
        };
        let name = args::policy_name(name.bytes())?;
        let gone = registry().remove(name).is_some();
        if gone {
            ctx.replicate_verbatim();
        }
        ctx.reply_i64(gone as i64);
    } else if sub.eq_ignore_ascii_case(b"LIST") {
        if !rest.is_empty() {
            return Err(arity("LIST"));
        }
        let names: Vec<String> = registry().keys().cloned().collect();
        ctx.reply_array(names.len());
        for n in &names {
            ctx.reply_bulk(n.as_bytes());
        }
    } else {
        return Err(Error::Arg(args::ArgError(format!(
            "unknown RL.POLICY subcommand{} (expected SET, GET, DEL or LIST)",
            args::shown(sub)
        ))));
    }
    Ok(())
}

const CHECK_ARGS: &[Arg] = &[arg(c"policy", Kind::String), KEY, COST, AT];
pub(super) const RL_CHECK: Command = Command {
    name: c"RL.CHECK",
    flags: DECIDE,
    internal: false,
    operator: false,
    doc: Doc {
        summary: c"Decides with a named policy's algorithm, parameters, penalty and shadow mode: the reply of the algorithm's own command.",
        complexity: c"O(1), O(log N) for a LOG policy where N is its limit",
        since: c"0.3.0",
        arity: -3,
        keys: Keys::Second(Access::Update),
        args: CHECK_ARGS,
    },
};

/// `RL.CHECK policy key [COST n] [AT unix_ms]`: what the policy's own
/// command would answer, with its penalty and shadow mode.
pub(super) fn check_command(ctx: Ctx, args: &[RStr]) -> Outcome {
    let [_, name, key, rest @ ..] = args else {
        return Err(args::arity_error("RL.CHECK").into());
    };
    let name = args::policy_name(name.bytes())?;
    let opts = with_bytes(rest, |a| args::check_options(a).map(|o| (o.cost, o.at)))?;
    let Some((policy, counters)) = registry()
        .get(name)
        .map(|e| (e.policy, Arc::clone(&e.counters)))
    else {
        return Err(args::no_such_policy(name).into());
    };
    args::policy_within(name, &policy.params, &config::limits())?;
    let req = Request {
        params: policy.params,
        cost: opts.0.unwrap_or(1),
        at: opts.1,
        penalty: policy.penalty,
        shadow: policy.shadow,
    };
    let (told, verdict) = client_decide_with(ctx, *key, &req, Some(name.as_bytes()))?;
    counters.count(verdict);
    reply::decision(ctx, &told);
    Ok(())
}
