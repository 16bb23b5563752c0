//! What `COMMAND DOCS` and `COMMAND INFO` say of each command: summary,
//! complexity, since, exact arity, key specs and every argument, so
//! `redis-cli` shows hints and clients can generate typed methods.

use std::ffi::CStr;

use super::ffi;

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

/// `RL.FIXED`: a window's parameters, then `ALIGN [OFFSET ±hh:mm]` right
/// after the window.
pub const FIXED: &[Arg] = &[
    KEY,
    arg(c"limit", Kind::Integer),
    arg(c"window", Kind::String),
    option(c"ALIGN", c"align", Kind::PureToken),
    option(c"OFFSET", c"offset", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
];
pub const WINDOW: &[Arg] = &[
    KEY,
    arg(c"limit", Kind::Integer),
    arg(c"window", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
];
pub const BUCKET: &[Arg] = &[
    KEY,
    arg(c"capacity", Kind::Integer),
    arg(c"rate", Kind::Integer),
    arg(c"period", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
];
pub const GCRA: &[Arg] = &[
    KEY,
    arg(c"max_burst", Kind::Integer),
    arg(c"rate", Kind::Integer),
    arg(c"period", Kind::String),
    COST,
    AT,
    PENALTY,
    SHADOW,
];
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
