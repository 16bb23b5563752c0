//! The Redis module API, wrapped once, soundly.
//!
//! Every raw pointer Redis hands a command lives for the duration of that
//! callback, so the wrappers carry that lifetime: [`Ctx<'a>`] for the
//! context, [`RStr<'a>`] for arguments, [`ReadKey<'a>`](key::ReadKey) and
//! [`WriteKey<'a>`]
//! for open keys (separate types, because a read-only open of a missing key
//! has no handle at all). Nothing outside this folder and the data type's
//! callbacks dereferences a pointer from Redis, and nothing outside this
//! folder calls the module API (tests/layers.rs checks): the callbacks above
//! keep only the `extern "C"` signatures Redis calls, and turn what they
//! receive into handles ([`Rdb`], [`Aof`], [`Digest`], [`Ctx::callback`]).
//! Registration's calls (commands, their docs, ACL categories, events,
//! configs, `INFO`) and the allocator are here too.
//!
//! The bottom layer: it imports nothing else of the module (its files
//! import only each other). Keys hold any [`ModuleValue`] (the data type
//! implements it), so this layer knows how to open, view and store a value
//! but not what a value is made of.
//!
//! The command handlers use these rather than the `redis-module` crate's
//! `Context`, whose argument and reply helpers allocate on every call: this
//! path's whole budget is about that of the module API's own work. Off the hot
//! path (configs, `INFO`, module options, the server version) the crate's own
//! support is used.
//!
//! One file per job, all re-exported here, so the rest of the module names
//! them `ffi::...` as if this were one file: `ctx` (the context, arguments
//! and the context's own calls), `reply`, `key` (open keys), `value` (the
//! [`ModuleValue`] contract), `io` (the type callbacks' handles), `info`
//! (the `INFO` writer), `user` (ACL key permissions), `server` (calls
//! without a context), `register` and `command_info` (load time), `alloc`.
//! This file keeps what they all share: the [`missing_api`] check and the
//! `api!` macro that relies on it.

use std::ffi::c_int;

use redis_module::raw;

/// Functions of the module API this module calls; checked once at load
/// (see [`missing_api`]), so the `unwrap`s on them below cannot fail.
macro_rules! api {
    ($name:ident) => {
        raw::$name.unwrap()
    };
}

/// The first module API function this module needs that the server lacks.
pub fn missing_api() -> Option<&'static str> {
    macro_rules! check {
        ($($name:ident),* $(,)?) => {
            $(
                // SAFETY: Redis fills the API table once, before calling
                // the module; it is only read afterwards.
                if unsafe { (*std::ptr::addr_of!(raw::$name)).is_none() } {
                    return Some(stringify!($name));
                }
            )*
        };
    }
    check!(
        RedisModule_StringPtrLen,
        RedisModule_InfoAddSection,
        RedisModule_InfoAddFieldULongLong,
        RedisModule_InfoAddFieldLongLong,
        RedisModule_InfoAddFieldCString,
        RedisModule_GetContextFlags,
        RedisModule_ReplyWithError,
        RedisModule_ReplyWithLongLong,
        RedisModule_ReplyWithArray,
        RedisModule_ReplyWithMap,
        RedisModule_ReplyWithSimpleString,
        RedisModule_ReplyWithStringBuffer,
        RedisModule_ReplyWithNull,
        RedisModule_OpenKey,
        RedisModule_CloseKey,
        RedisModule_KeyType,
        RedisModule_ModuleTypeGetType,
        RedisModule_ModuleTypeGetValue,
        RedisModule_ModuleTypeSetValue,
        RedisModule_SetAbsExpire,
        RedisModule_GetExpire,
        RedisModule_GetAbsExpire,
        RedisModule_SignalModifiedKey,
        RedisModule_Replicate,
        RedisModule_ReplicateVerbatim,
        RedisModule_NotifyKeyspaceEvent,
        RedisModule_Milliseconds,
        RedisModule_Log,
        RedisModule_IsKeysPositionRequest,
        RedisModule_KeyAtPos,
        RedisModule_CreateCommand,
        RedisModule_GetCommand,
        RedisModule_SetCommandInfo,
        RedisModule_SubscribeToServerEvent,
        RedisModule_EmitAOF,
        RedisModule_DigestAddStringBuffer,
        RedisModule_DigestEndSequence,
        RedisModule_GetContextFromIO,
        RedisModule_DeleteKey,
        RedisModule_GetRandomHexChars,
        RedisModule_CreateSubcommand,
        RedisModule_CreateString,
        RedisModule_FreeString,
        RedisModule_CreateTimer,
        RedisModule_AvoidReplicaTraffic,
        RedisModule_GetServerInfo,
        RedisModule_FreeServerInfo,
        RedisModule_ServerInfoGetFieldSigned,
        RedisModule_LoadConfigs,
        RedisModule_RegisterInfoFunc,
        RedisModule_SaveStringBuffer,
        RedisModule_LoadStringBuffer,
    );
    None
}

const OK: c_int = raw::Status::Ok as c_int;

mod alloc;
mod command_info;
mod ctx;
mod info;
mod io;
mod key;
mod register;
mod reply;
mod server;
mod user;
mod value;

pub use alloc::ModuleAlloc;
pub use command_info::{Access, Arg, Doc, Keys, Kind};
pub use ctx::{Ctx, RStr};
pub use info::InfoWriter;
pub use io::{Aof, Digest, Rdb};
pub use key::{NotStored, WriteKey, WrongType};
pub use register::{
    add_acl_category, can_set_acl_categories, command, create_command, flushed_db, load_configs,
    set_info_function, subscribe, Command, CommandHandler,
};
pub use server::{command_time_us, log_notice, log_warning, wall_ms, writes_paused};
pub use value::{view, ModuleValue, RawValue};
