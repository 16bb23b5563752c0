//! The Redis layer: registration, commands, the data type, clock, replies.

// Every raw pointer handled here (contexts, keys, strings) comes from Redis
// for the duration of a callback; wrapping each use in an `unsafe fn` would
// only move the same `unsafe` blocks to the callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod clock;
pub mod command;
pub mod datatype;
pub mod ffi;
pub mod reply;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_int, CStr};

use redis_module::alloc::RedisAlloc;
use redis_module::{raw, redis_module, Context, RedisString, Status};

use datatype::RATELIMIT_TYPE;

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
];

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let raw_ctx = ctx.ctx;
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
    for &(name, handler, flags, first, last, step) in COMMANDS {
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
                "ratelimit: could not register {}",
                name.to_string_lossy()
            ));
            return Status::Err;
        }
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
