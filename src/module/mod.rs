//! The Redis layer: registration, commands, the data type, clock, replies.
//!
//! - [`command`]: the handlers (parse, evaluate, install, replicate, reply);
//! - [`ffi`]: the module API wrapped with lifetimes, the only place that
//!   dereferences Redis' pointers on the command path;
//! - [`datatype`]: how a limiter is held as a Redis value, and its callbacks;
//! - [`reply`], [`clock`], [`config`], [`stats`]: one concern each.

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
use redis_module::raw::{self, ModuleOptions, Version};
use redis_module::{redis_module, Context, RedisString, Status};

use datatype::RATELIMIT_TYPE;

/// Shown in `INFO ratelimit`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest server the module runs on: module configs, command info and
/// `SetAbsExpire` all exist from Redis 7.0 (Valkey reports 7.2.4).
pub const MIN_SERVER: (c_int, c_int) = (7, 0);

/// Redis' allocator once the module is loaded (so memory shows in
/// `used_memory` and `maxmemory` applies), the system one otherwise: unit
/// tests, benches and fuzz targets link this crate without a server.
pub struct ModuleAlloc;

fn in_redis() -> bool {
    // SAFETY: written once by Redis when the module is initialised, before
    // any allocation of ours, and never again.
    unsafe { (*std::ptr::addr_of!(raw::RedisModule_Alloc)).is_some() }
}

// SAFETY: both allocators honour the layout; a pointer is always freed by
// the allocator that made it, since `in_redis` never changes once the
// module's first allocation is made.
unsafe impl GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }
}

type Handler = unsafe extern "C" fn(
    *mut raw::RedisModuleCtx,
    *mut *mut raw::RedisModuleString,
    c_int,
) -> c_int;

/// Where a command's keys are.
#[derive(Clone, Copy)]
enum Keys {
    /// One key, right after the name.
    One,
    /// `numkeys key [key ...]` right after the name.
    Numkeys,
}

struct CommandDef {
    name: &'static CStr,
    handler: Handler,
    flags: &'static CStr,
    keys: Keys,
}

const fn def(
    name: &'static CStr,
    handler: Handler,
    flags: &'static CStr,
    keys: Keys,
) -> CommandDef {
    CommandDef {
        name,
        handler,
        flags,
        keys,
    }
}

const DECIDE: &CStr = c"write deny-oom fast";

/// Every command, with its metadata next to it.
const COMMANDS: &[CommandDef] = &[
    def(c"RL.FIXED", command::rl_fixed, DECIDE, Keys::One),
    def(c"RL.SLIDING", command::rl_sliding, DECIDE, Keys::One),
    def(c"RL.LOG", command::rl_log, DECIDE, Keys::One),
    def(c"RL.TOKEN", command::rl_token, DECIDE, Keys::One),
    def(c"RL.LEAKY", command::rl_leaky, DECIDE, Keys::One),
    def(c"RL.GCRA", command::rl_gcra, DECIDE, Keys::One),
    def(c"RL.ALL", command::rl_all, DECIDE, Keys::Numkeys),
    def(c"RL.INFO", command::rl_info, c"readonly fast", Keys::One),
    // What replicas and the AOF receive.
    def(c"RL.APPLY", command::rl_apply, DECIDE, Keys::One),
    def(c"RL.APPLYALL", command::rl_apply_all, DECIDE, Keys::Numkeys),
    def(
        c"RL.SETSTATE",
        command::rl_setstate,
        c"write deny-oom",
        Keys::One,
    ),
];

/// Only with `cell-compat yes`.
const CELL: CommandDef = def(c"CL.THROTTLE", command::cl_throttle, DECIDE, Keys::One);

fn register(ctx: &Context, c: &CommandDef) -> bool {
    let ok = raw::Status::Ok as c_int;
    let (flags, (first, last, step)) = match c.keys {
        Keys::One => (c.flags.to_bytes().to_vec(), (1, 1, 1)),
        Keys::Numkeys => ([c.flags.to_bytes(), b" getkeys-api"].concat(), (0, 0, 0)),
    };
    let Ok(flags) = std::ffi::CString::new(flags) else {
        return false;
    };
    // SAFETY: the load-time context, NUL-terminated strings that Redis
    // copies, and a handler with the command signature.
    let created = unsafe {
        raw::RedisModule_CreateCommand.unwrap()(
            ctx.ctx,
            c.name.as_ptr(),
            Some(c.handler),
            flags.as_ptr(),
            first,
            last,
            step,
        )
    };
    if created != ok {
        return false;
    }
    match c.keys {
        Keys::One => true,
        Keys::Numkeys => set_numkeys_spec(ctx, c.name),
    }
}

/// Declares keys `numkeys key [key ...]` right after the command name as a
/// key spec (what `COMMAND INFO` shows clients); the handler answers the
/// getkeys API too (what Redis 7.0's own cluster routing uses).
fn set_numkeys_spec(ctx: &Context, name: &CStr) -> bool {
    let ok = raw::Status::Ok as c_int;
    // SAFETY: the load-time context and a command just created; the spec
    // structures are zeroed C structs (all-zero is their documented
    // "unset") that live until SetCommandInfo, which copies them, returns.
    unsafe {
        let command = raw::RedisModule_GetCommand.unwrap()(ctx.ctx, name.as_ptr());
        if command.is_null() {
            return false;
        }
        let version = raw::RedisModuleCommandInfoVersion {
            version: 1,
            sizeof_historyentry: size_of::<raw::RedisModuleCommandHistoryEntry>(),
            sizeof_keyspec: size_of::<raw::RedisModuleCommandKeySpec>(),
            sizeof_arg: size_of::<raw::RedisModuleCommandArg>(),
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
        raw::RedisModule_SetCommandInfo.unwrap()(command, &info) == ok
    }
}

/// Logs a panic's message and location before it unwinds into the
/// handler's guard, which answers an error instead of failing the server.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "an unknown location".into());
        ffi::log_warning(&format!("panic at {at}: {msg}"));
    }));
}

/// Refuses servers the module can't run on, with the reason.
fn check_server(ctx: &Context) -> Result<(), String> {
    if let Some(name) = ffi::missing_api() {
        return Err(format!(
            "this server lacks {name}: Redis {}.{} or later is needed",
            MIN_SERVER.0, MIN_SERVER.1
        ));
    }
    let Version {
        major,
        minor,
        patch,
    } = ctx
        .get_redis_version()
        .map_err(|e| format!("could not read the server version: {e}"))?;
    if (major, minor) < MIN_SERVER {
        return Err(format!(
            "Redis {}.{} or later is needed, this server is {major}.{minor}.{patch}",
            MIN_SERVER.0, MIN_SERVER.1
        ));
    }
    Ok(())
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let refuse = |why: &str| {
        ctx.log_warning(&format!("not loading: {why}"));
        Status::Err
    };
    if let Err(why) = check_server(ctx) {
        return refuse(&why);
    }
    install_panic_hook();
    if let Err(why) = config::load(ctx, args) {
        return refuse(&why);
    }
    // Corrupt RDB/RESTORE input must come back to us as an error, not abort
    // the server; and we signal modified keys ourselves, only when a request
    // really changed one (a denied call must not fire WATCH).
    ctx.set_module_options(
        ModuleOptions::HANDLE_IO_ERRORS | ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED,
    );
    let cell = config::cell_compat().then_some(&CELL);
    for c in COMMANDS.iter().chain(cell) {
        if !register(ctx, c) {
            return refuse(&format!(
                "could not register {} (is another module using that name?)",
                c.name.to_string_lossy()
            ));
        }
    }
    // Replaces the crate's default handler: the section is ours.
    raw::register_info_function(ctx.ctx, Some(stats::info));
    if !clock::init(ctx) {
        return refuse("could not subscribe to the event loop");
    }
    Status::Ok
}

redis_module! {
    name: "ratelimit",
    version: 1,
    allocator: (crate::module::ModuleAlloc, crate::module::ModuleAlloc),
    data_types: [RATELIMIT_TYPE],
    init: init,
}
