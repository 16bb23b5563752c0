//! What `COMMAND DOCS` and `COMMAND INFO` say of a command, and its
//! encoding into the module API's C structs: the one place that knows
//! their layout, so the docs themselves (`docs.rs`, above) stay plain data.

use std::ffi::{c_int, CStr};

use redis_module::raw;

use super::{Command, OK};

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
#[derive(Clone, Copy)]
pub struct Arg {
    pub name: &'static CStr,
    pub kind: Kind,
    /// Optional arguments are introduced by this word (`COST n`).
    pub token: Option<&'static CStr>,
    pub optional: bool,
    pub multiple: bool,
}

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

fn zeroed_spec() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: a plain C struct, for which all-zero means "end of list".
    unsafe { std::mem::zeroed() }
}

impl Arg {
    fn raw(&self) -> raw::RedisModuleCommandArg {
        // SAFETY: a plain C struct, for which all-zero means "unset".
        let mut out: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
        out.name = self.name.as_ptr();
        out.type_ = match self.kind {
            Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
            Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
            Kind::String => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
            Kind::UnixTime => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_UNIX_TIME,
            Kind::PureToken => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
        };
        // Every key argument is found by the one key spec.
        out.key_spec_index = if matches!(self.kind, Kind::Key) {
            0
        } else {
            -1
        };
        out.token = self.token.map_or(std::ptr::null(), CStr::as_ptr);
        let mut flags = 0;
        if self.optional {
            flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
        }
        if self.multiple {
            flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
        }
        out.flags = flags as c_int;
        out
    }
}

impl Keys {
    /// The one key spec (all zero, ending the list at once, for no keys).
    fn raw(self) -> raw::RedisModuleCommandKeySpec {
        let mut spec = zeroed_spec();
        spec.begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        spec.bs.index.pos = 1;
        match self {
            Keys::None => return zeroed_spec(),
            Keys::One(access) | Keys::Second(access) => {
                if let Keys::Second(_) = self {
                    spec.bs.index.pos = 2;
                }
                spec.flags = match access {
                    Access::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
                    Access::Update => {
                        raw::REDISMODULE_CMD_KEY_RW
                            | raw::REDISMODULE_CMD_KEY_ACCESS
                            | raw::REDISMODULE_CMD_KEY_UPDATE
                    }
                    Access::Overwrite => {
                        raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE
                    }
                } as u64;
                spec.find_keys_type =
                    raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
                spec.fk.range.lastkey = 0;
                spec.fk.range.keystep = 1;
                spec.fk.range.limit = 0;
            }
            Keys::Numkeys => {
                spec.flags = (raw::REDISMODULE_CMD_KEY_RW
                    | raw::REDISMODULE_CMD_KEY_ACCESS
                    | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
                spec.find_keys_type =
                    raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM;
                spec.fk.keynum.keynumidx = 0;
                spec.fk.keynum.firstkey = 1;
                spec.fk.keynum.keystep = 1;
            }
        }
        spec
    }
}

impl Command {
    /// Declares what `COMMAND DOCS` and `COMMAND INFO` say of it.
    pub fn set_info(self, doc: &Doc) -> bool {
        let mut args: Vec<raw::RedisModuleCommandArg> = doc.args.iter().map(Arg::raw).collect();
        // SAFETY: a plain C struct, for which all-zero ends the list.
        args.push(unsafe { std::mem::zeroed() });
        // A zeroed second spec ends the list; with no keys, so does the first.
        let mut specs = [doc.keys.raw(), zeroed_spec()];
        let version = raw::RedisModuleCommandInfoVersion {
            version: 1,
            sizeof_historyentry: size_of::<raw::RedisModuleCommandHistoryEntry>(),
            sizeof_keyspec: size_of::<raw::RedisModuleCommandKeySpec>(),
            sizeof_arg: size_of::<raw::RedisModuleCommandArg>(),
        };
        // SAFETY: a plain C struct, for which all-zero means "unset".
        let mut info: raw::RedisModuleCommandInfo = unsafe { std::mem::zeroed() };
        info.version = &version;
        info.summary = doc.summary.as_ptr();
        info.complexity = doc.complexity.as_ptr();
        info.since = doc.since.as_ptr();
        info.arity = doc.arity;
        info.key_specs = specs.as_mut_ptr();
        info.args = args.as_mut_ptr();
        // SAFETY: a command of this module; every pointer in `info` lives
        // until SetCommandInfo returns, having copied what it keeps.
        unsafe { api!(RedisModule_SetCommandInfo)(self.0.as_ptr(), &info) == OK }
    }
}
