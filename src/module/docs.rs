//! What `COMMAND DOCS` and `COMMAND INFO` say of each command: summary,
//! complexity, since, exact arity, key specs and every argument, so
//! `redis-cli` shows hints and clients can generate typed methods.

use std::ffi::CStr;

use super::ffi;
use crate::algo::limiter::{Param, ParamValue, Shape};

pub use super::ffi::{Access, Arg, Doc, Keys, Kind};

const fn arg(name: &'static CStr, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
    }
}

const fn many(name: &'static CStr, kind: Kind) -> Arg {
    Arg {
        multiple: true,
        ..arg(name, kind)
    }
}

const fn option(token: &'static CStr, name: &'static CStr, kind: Kind) -> Arg {
    Arg {
        token: Some(token),
        optional: true,
        ..arg(name, kind)
    }
}

pub const KEY: Arg = arg(c"key", Kind::Key);
pub const COST: Arg = option(c"COST", c"cost", Kind::Integer);
pub const AT: Arg = option(c"AT", c"unix-time-milliseconds", Kind::UnixTime);
pub const PENALTY: Arg = option(c"PENALTY", c"duration", Kind::String);
pub const SHADOW: Arg = option(c"SHADOW", c"shadow", Kind::PureToken);

/// The options every decision takes, after the algorithm's own arguments.
const DECISION_OPTIONS: [Arg; 4] = [COST, AT, PENALTY, SHADOW];

/// How many arguments [`decision`] lists for `shape`.
pub const fn decision_len(shape: Shape) -> usize {
    1 + shape.params().len() + shape.options().len() + DECISION_OPTIONS.len()
}

/// The arguments of an algorithm's own command, `RL.<ALGO>`, from its
/// shape: the key, the shape's parameters and options (FIXED's `ALIGN`
/// right after the window), then [`DECISION_OPTIONS`]. `N` is
/// [`decision_len`]`(shape)`.
pub const fn decision<const N: usize>(shape: Shape) -> [Arg; N] {
    let mut out = [KEY; N];
    let mut n = 1;
    let (params, options) = (shape.params(), shape.options());
    let mut i = 0;
    while i < params.len() {
        out[n] = param(&params[i]);
        n += 1;
        i += 1;
    }
    i = 0;
    while i < options.len() {
        out[n] = param(&options[i]);
        n += 1;
        i += 1;
    }
    i = 0;
    while i < DECISION_OPTIONS.len() {
        out[n] = DECISION_OPTIONS[i];
        n += 1;
        i += 1;
    }
    assert!(n == N, "N is not decision_len(shape)");
    out
}

/// One of an algorithm's parameters as `COMMAND DOCS` lists it.
const fn param(p: &Param) -> Arg {
    let kind = match p.value {
        ParamValue::Count => Kind::Integer,
        ParamValue::Duration | ParamValue::Offset => Kind::String,
        ParamValue::Flag => Kind::PureToken,
    };
    match p.token {
        Some(token) => option(token, p.name, kind),
        None => arg(p.name, kind),
    }
}

pub const ALL: &[Arg] = &[
    arg(c"numkeys", Kind::Integer),
    many(c"key", Kind::Key),
    many(c"algorithm-and-parameters", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
    option(c"COMBINED", c"combined", Kind::PureToken),
];
pub const INFO: &[Arg] = &[KEY];
pub const REFUND: &[Arg] = &[KEY, arg(c"n", Kind::Integer), AT];
pub const POLICY_SET: &[Arg] = &[
    arg(c"name", Kind::String),
    arg(c"algorithm", Kind::String),
    many(c"parameters", Kind::String),
    PENALTY,
    SHADOW,
];
pub const TOP: &[Arg] = &[
    option(c"COUNT", c"count", Kind::Integer),
    option(c"POLICY", c"policy", Kind::String),
    SHADOW,
];
pub const POLICY_NAME: &[Arg] = &[arg(c"name", Kind::String)];
pub const CHECK: &[Arg] = &[arg(c"policy", Kind::String), KEY, COST, AT];
pub const ACQUIRE: &[Arg] = &[
    KEY,
    arg(c"limit", Kind::Integer),
    arg(c"ttl", Kind::String),
    option(c"ID", c"lease_id", Kind::String),
    COST,
    AT,
];
pub const RELEASE: &[Arg] = &[KEY, arg(c"lease_id", Kind::String)];
pub const RENEW: &[Arg] = &[
    KEY,
    arg(c"lease_id", Kind::String),
    arg(c"ttl", Kind::String),
];
pub const PEEK: &[Arg] = &[
    KEY,
    arg(c"algorithm", Kind::String),
    many(c"parameters", Kind::String),
    COST,
    AT,
];
pub const APPLY: &[Arg] = &[KEY, arg(c"operation", Kind::String)];
pub const APPLY_ALL: &[Arg] = &[
    arg(c"numkeys", Kind::Integer),
    many(c"key", Kind::Key),
    arg(c"operation", Kind::String),
];
pub const SETSTATE: &[Arg] = &[
    KEY,
    arg(c"encoding-version", Kind::Integer),
    arg(c"state", Kind::String),
];
pub const THROTTLE: &[Arg] = &[
    KEY,
    arg(c"max_burst", Kind::Integer),
    arg(c"count", Kind::Integer),
    arg(c"period", Kind::Integer),
    Arg {
        optional: true,
        ..arg(c"quantity", Kind::Integer)
    },
];

/// The module's own ACL category, `@ratelimit`, where the server can add
/// one (Redis 7.4 and later). `true` if it exists now.
pub fn add_acl_category(ctx: &redis_module::Context) -> bool {
    ffi::add_acl_category(ctx, c"ratelimit")
}

pub use super::ffi::can_set_acl_categories;

/// Declares `doc` for the command just created as `name`, and its ACL
/// categories (`write fast`, plus `ratelimit` when the server has it),
/// where the server lets a module set them (Redis 7.2 and later; Redis 7.0
/// puts module commands in none, see README). `false` if the server
/// refused either.
pub fn declare(ctx: &redis_module::Context, name: &CStr, doc: &Doc, categories: &CStr) -> bool {
    let Some(command) = ffi::command(ctx, name) else {
        return false;
    };
    command.set_info(doc) && command.set_acl_categories(categories)
}
