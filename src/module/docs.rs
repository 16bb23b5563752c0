//! What `COMMAND DOCS` and `COMMAND INFO` say of each command: summary,
//! complexity, since, exact arity, key specs and every argument, so
//! `redis-cli` shows hints and clients can generate typed methods.

use std::ffi::{c_int, CStr};

use redis_module::raw;

/// How a command touches its keys.
#[derive(Clone, Copy)]
pub enum Access {
    /// Reads only (`RL.INFO`).
    Read,
    /// Reads and updates in place (every decision).
    Update,
    /// Replaces the value (`RL.SETSTATE`).
    Overwrite,
}

/// Where the keys are.
#[derive(Clone, Copy)]
pub enum Keys {
    /// One key, right after the name.
    One(Access),
    /// One key, second after the name (`RL.CHECK policy key`).
    Second(Access),
    /// `numkeys key [key ...]` right after the name.
    Numkeys,
    /// No key (`RL.POLICY`: server state).
    None,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Key,
    Integer,
    String,
    UnixTime,
    /// A flag: the token alone (`SHADOW`).
    PureToken,
}

/// One argument.
pub struct Arg {
    pub name: &'static CStr,
    pub kind: Kind,
    /// Optional arguments are introduced by this word (`COST n`).
    pub token: Option<&'static CStr>,
    pub optional: bool,
    pub multiple: bool,
}

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

/// What a command's documentation says.
pub struct Doc {
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
    pub since: &'static CStr,
    /// Including the name; negative: at least that many.
    pub arity: c_int,
    pub keys: Keys,
    pub args: &'static [Arg],
}

/// The module's own ACL category, `@ratelimit`, where the server can add
/// one (Redis 7.4 and later). `true` if it exists now.
pub fn add_acl_category(ctx: &redis_module::Context) -> bool {
    // SAFETY: Redis fills the API table once, before calling the module.
    let Some(add) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_AddACLCategory) }) else {
        return false;
    };
    // SAFETY: the load-time context and a NUL-terminated name Redis copies.
    unsafe { add(ctx.ctx, c"ratelimit".as_ptr()) == raw::Status::Ok as c_int }
}

/// Whether the server lets a module set its commands' ACL categories.
pub fn can_set_acl_categories() -> bool {
    // SAFETY: Redis fills the API table once, before calling the module.
    unsafe { (*std::ptr::addr_of!(raw::RedisModule_SetCommandACLCategories)).is_some() }
}

/// Puts the command in ACL categories (`write fast`, plus `ratelimit` when
/// the server has it), where the server lets a module do so (Redis 7.2 and
/// later); Redis 7.0 puts module commands in none, see README.
fn set_acl_categories(command: *mut raw::RedisModuleCommand, categories: &CStr) -> bool {
    // SAFETY: Redis fills the API table once, before calling the module.
    let Some(set) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_SetCommandACLCategories) })
    else {
        return true;
    };
    // SAFETY: a command of this module and a NUL-terminated list Redis
    // parses and does not keep.
    unsafe { set(command, categories.as_ptr()) == raw::Status::Ok as c_int }
}

/// Declares `doc` for the command just created as `name`, and its ACL
/// categories. `false` if the server refused either.
fn unsafe_zeroed_spec() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: a plain C struct, for which all-zero means "end of list".
    unsafe { std::mem::zeroed() }
}

pub fn declare(ctx: &redis_module::Context, name: &CStr, doc: &Doc, categories: &CStr) -> bool {
    let mut args: Vec<raw::RedisModuleCommandArg> = doc
        .args
        .iter()
        .map(|a| {
            // SAFETY: a plain C struct, for which all-zero means "unset".
            let mut out: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
            out.name = a.name.as_ptr();
            out.type_ = match a.kind {
                Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
                Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
                Kind::String => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                Kind::UnixTime => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_UNIX_TIME,
                Kind::PureToken => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
            };
            // Every key argument is found by the one key spec.
            out.key_spec_index = if matches!(a.kind, Kind::Key) { 0 } else { -1 };
            out.token = a.token.map_or(std::ptr::null(), CStr::as_ptr);
            let mut flags = 0;
            if a.optional {
                flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
            }
            if a.multiple {
                flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
            }
            out.flags = flags as c_int;
            out
        })
        .collect();
    // SAFETY: as above; a zeroed entry ends the list.
    args.push(unsafe { std::mem::zeroed() });

    // SAFETY: as above; a zeroed spec ends the list.
    let mut specs: [raw::RedisModuleCommandKeySpec; 2] = unsafe { std::mem::zeroed() };
    let spec = &mut specs[0];
    spec.begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    spec.bs.index.pos = 1;
    match doc.keys {
        // No key spec: the zeroed first entry ends the (empty) list.
        Keys::None => *spec = unsafe_zeroed_spec(),
        Keys::One(access) | Keys::Second(access) => {
            if let Keys::Second(_) = doc.keys {
                spec.bs.index.pos = 2;
            }
            spec.flags = match access {
                Access::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
                Access::Update => {
                    raw::REDISMODULE_CMD_KEY_RW
                        | raw::REDISMODULE_CMD_KEY_ACCESS
                        | raw::REDISMODULE_CMD_KEY_UPDATE
                }
                Access::Overwrite => raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
            } as u64;
            spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
            spec.fk.range.lastkey = 0;
            spec.fk.range.keystep = 1;
            spec.fk.range.limit = 0;
        }
        Keys::Numkeys => {
            spec.flags = (raw::REDISMODULE_CMD_KEY_RW
                | raw::REDISMODULE_CMD_KEY_ACCESS
                | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
            spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM;
            spec.fk.keynum.keynumidx = 0;
            spec.fk.keynum.firstkey = 1;
            spec.fk.keynum.keystep = 1;
        }
    }
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: size_of::<raw::RedisModuleCommandArg>(),
    };
    // SAFETY: as above.
    let mut info: raw::RedisModuleCommandInfo = unsafe { std::mem::zeroed() };
    info.version = &version;
    info.summary = doc.summary.as_ptr();
    info.complexity = doc.complexity.as_ptr();
    info.since = doc.since.as_ptr();
    info.arity = doc.arity;
    info.key_specs = specs.as_mut_ptr();
    info.args = args.as_mut_ptr();
    // SAFETY: the load-time context and the name of a command it created.
    let command = unsafe { raw::RedisModule_GetCommand.unwrap()(ctx.ctx, name.as_ptr()) };
    if command.is_null() {
        return false;
    }
    // SAFETY: a command of this module; every pointer in `info` lives until
    // SetCommandInfo returns, having copied what it keeps.
    let declared = unsafe { raw::RedisModule_SetCommandInfo.unwrap()(command, &info) };
    declared == raw::Status::Ok as c_int && set_acl_categories(command, categories)
}
