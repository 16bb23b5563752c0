//! What `COMMAND DOCS` and `COMMAND INFO` say of each command: summary,
//! complexity, since, exact arity, key specs and every argument, so
//! `redis-cli` shows hints and clients can generate typed methods.

use std::ffi::CStr;

use super::ffi;
use crate::algo::limiter::{Param, ParamValue, Shape};

pub use super::ffi::{Access, Arg, Doc, Keys, Kind};

/// What a command is, as `COMMAND DOCS`, `COMMAND INFO` and ACL categories
/// say: declared next to its handler, in its family's file; the top layer
/// pairs it with the `extern "C"` handler Redis calls.
pub struct Command {
    pub name: &'static CStr,
    pub flags: &'static CStr,
    /// Replication and AOF only: also flagged `internal` where the server
    /// knows that flag (Redis 8), which hides it from clients altogether.
    pub internal: bool,
    /// Changes what other clients' calls decide with (policy writes): in
    /// `@admin @dangerous`, never in `@write` or `@ratelimit`, so that the
    /// grants an application gets don't include it.
    pub operator: bool,
    pub doc: Doc,
}

/// The flags of a command that decides.
pub const DECIDE: &CStr = c"write deny-oom fast";
/// The release a command came in, for most.
pub const SINCE: &CStr = c"0.1.0";
pub const O1: &CStr = c"O(1)";

/// How many of `args` are not optional.
pub const fn required(args: &[Arg]) -> std::ffi::c_int {
    let mut n = 0;
    let mut i = 0;
    while i < args.len() {
        if !args[i].optional {
            n += 1;
        }
        i += 1;
    }
    n
}

pub(super) const fn arg(name: &'static CStr, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
    }
}

pub(super) const fn many(name: &'static CStr, kind: Kind) -> Arg {
    Arg {
        multiple: true,
        ..arg(name, kind)
    }
}

pub(super) const fn option(token: &'static CStr, name: &'static CStr, kind: Kind) -> Arg {
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
