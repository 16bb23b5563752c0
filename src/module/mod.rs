//! The Redis layer: registration, commands, the data type, clock, replies.

// Every raw pointer handled here (contexts, keys, strings) comes from Redis
// for the duration of a callback; wrapping each use in an `unsafe fn` would
// only move the same `unsafe` blocks to the callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod clock;
pub mod command;
pub mod config;
pub mod datatype;
pub mod ffi;
pub mod reply;
pub mod stats;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_int, CStr};

use redis_module::alloc::RedisAlloc;
use redis_module::{raw, redis_module, Context, RedisString, Status};

use datatype::RATELIMIT_TYPE;

/// Shown in `INFO ratelimit`.
pub const VERSION: &CStr = c"0.1.0";

/// Redis' allocator once the module is loaded (so memory shows in
/// `used_memory` and `maxmemory` applies), the system one otherwise: unit
/// tests, benches and fuzz targets link this crate without a server.
pub struct ModuleAlloc;

fn in_redis() -> bool {
    // Written once by Redis when the module is initialised, before any
    // allocation of ours.
    unsafe { (*std::ptr::addr_of!(raw::RedisModule_Alloc)).is_some() }
}

unsafe impl GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_redis() {
            RedisAlloc.alloc(layout)
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_redis() {
            RedisAlloc.dealloc(ptr, layout)
        } else {
            System.dealloc(ptr, layout)
        }
    }
}

type Handler = unsafe extern "C" fn(ffi::Ctx, *mut ffi::RString, c_int) -> c_int;

/// name, handler, flags, first key, last key, key step.
const COMMANDS: &[(&CStr, Handler, &CStr, c_int, c_int, c_int)] = &[
    (
        c"RL.FIXED",
        command::rl_fixed,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (
        c"RL.SLIDING",
        command::rl_sliding,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (c"RL.LOG", command::rl_log, c"write deny-oom fast", 1, 1, 1),
    (
        c"RL.TOKEN",
        command::rl_token,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (
        c"RL.LEAKY",
        command::rl_leaky,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (
        c"RL.GCRA",
        command::rl_gcra,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (
        c"RL.APPLY",
        command::rl_apply,
        c"write deny-oom fast",
        1,
        1,
        1,
    ),
    (
        c"RL.SETSTATE",
        command::rl_setstate,
        c"write deny-oom",
        1,
        1,
        1,
    ),
    (c"RL.INFO", command::rl_info, c"readonly fast", 1, 1, 1),
];

/// Registers `name` with movable keys `numkeys key [key ...]` right after the
/// command name, both as a key spec (what `COMMAND INFO` shows clients) and
/// through the getkeys API (what Redis 7.0's own cluster routing and CROSSSLOT
/// check use), so every path finds the same keys.
fn create_numkeys_command(ctx: *mut raw::RedisModuleCtx, name: &CStr, handler: Handler) -> bool {
    let ok = raw::Status::Ok as c_int;
    unsafe {
        if raw::RedisModule_CreateCommand.unwrap()(
            ctx,
            name.as_ptr(),
            Some(handler),
            c"write deny-oom fast getkeys-api".as_ptr(),
            0,
            0,
            0,
        ) != ok
        {
            return false;
        }
        let (Some(get), Some(set_info)) =
            (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo)
        else {
            return false;
        };
        let command = get(ctx, name.as_ptr());
        if command.is_null() {
            return false;
        }
        let version = raw::RedisModuleCommandInfoVersion {
            version: 1,
            sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
            sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
            sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
        };
        let mut specs: [raw::RedisModuleCommandKeySpec; 2] = std::mem::zeroed();
        specs[0].flags = (raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
        specs[0].begin_search_type =
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        specs[0].bs.index.pos = 1;
        specs[0].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM;
        specs[0].fk.keynum.keynumidx = 0;
        specs[0].fk.keynum.firstkey = 1;
        specs[0].fk.keynum.keystep = 1;
        let mut info: raw::RedisModuleCommandInfo = std::mem::zeroed();
        info.version = &version;
        // Only the name and numkeys: the handler checks the rest and says
        // precisely what is missing.
        info.arity = -2;
        info.key_specs = specs.as_mut_ptr();
        set_info(command, &info) == ok
    }
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let raw_ctx = ctx.ctx;
    if let Err(why) = config::load(ctx, args) {
        ctx.log_warning(&format!("not loading: {why}"));
        return Status::Err;
    }
    unsafe {
        // Corrupt RDB/RESTORE input must come back to us as an error, not
        // abort the server; and we signal modified keys ourselves, only when
        // a request really changed one (a denied call must not fire WATCH).
        raw::RedisModule_SetModuleOptions.unwrap()(
            raw_ctx,
            (raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS
                | raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED) as c_int,
        );
    }
    let cell: &[_] = if config::cell_compat() {
        &[(
            c"CL.THROTTLE",
            command::cl_throttle as Handler,
            c"write deny-oom fast",
            1,
            1,
            1,
        )]
    } else {
        &[]
    };
    for &(name, handler, flags, first, last, step) in COMMANDS.iter().chain(cell) {
        let status = unsafe {
            raw::RedisModule_CreateCommand.unwrap()(
                raw_ctx,
                name.as_ptr(),
                Some(handler),
                flags.as_ptr(),
                first,
                last,
                step,
            )
        };
        if status != raw::Status::Ok as c_int {
            ctx.log_warning(&format!(
                "ratelimit: could not register {} (is another module using that name?)",
                name.to_string_lossy()
            ));
            return Status::Err;
        }
    }
    if !create_numkeys_command(raw_ctx, c"RL.ALL", command::rl_all) {
        ctx.log_warning("ratelimit: could not register RL.ALL");
        return Status::Err;
    }
    unsafe {
        // Replaces the crate's default handler: the section is ours.
        raw::RedisModule_RegisterInfoFunc.unwrap()(raw_ctx, Some(stats::info));
    }
    clock::init(raw_ctx);
    Status::Ok
}

redis_module! {
    name: "ratelimit",
    version: 1,
    allocator: (crate::module::ModuleAlloc, crate::module::ModuleAlloc),
    data_types: [RATELIMIT_TYPE],
    init: init,
}
