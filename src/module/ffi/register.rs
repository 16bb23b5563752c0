//! Load time: what the module's `init` calls, with the load-time context
//! (commands, ACL categories, events, configs, the `INFO` function). Apart
//! from the command path because it runs once and uses the `redis-module`
//! crate's context.

use std::ffi::{c_int, c_void, CStr};
use std::ptr::NonNull;

use redis_module::raw;

use super::OK;

/// What Redis calls on a server event (see [`subscribe`]).
pub type EventCallback =
    unsafe extern "C" fn(*mut raw::RedisModuleCtx, raw::RedisModuleEvent, u64, *mut c_void);

/// Has Redis call `callback` on the server events `id`
/// (`raw::REDISMODULE_EVENT_*`); `false` if it refused.
pub fn subscribe(ctx: &redis_module::Context, id: u64, callback: EventCallback) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the load-time context and a callback with the event
    // signature.
    let status =
        unsafe { api!(RedisModule_SubscribeToServerEvent)(ctx.ctx, event, Some(callback)) };
    status == OK
}

/// The database a `REDISMODULE_EVENT_FLUSHDB` event empties: `None` for
/// `FLUSHALL` (every database).
///
/// # Safety
/// `data` is the `data` argument of a flush event's callback.
pub unsafe fn flushed_db(data: *mut c_void) -> Option<i32> {
    // SAFETY: for a flush event Redis passes a live RedisModuleFlushInfo
    // (the caller's contract); only its `dbnum` is read.
    let db = unsafe { (*data.cast::<raw::RedisModuleFlushInfo>()).dbnum };
    (db >= 0).then_some(db)
}

/// Applies the `ratelimit.*` settings of the server's configuration to the
/// module configs registered so far; `false` if one is invalid.
pub fn load_configs(ctx: &redis_module::Context) -> bool {
    // SAFETY: the load-time context, after the configs were registered.
    unsafe { api!(RedisModule_LoadConfigs)(ctx.ctx) == OK }
}

/// What Redis calls to fill the module's `INFO` section.
pub type InfoCallback = unsafe extern "C" fn(*mut raw::RedisModuleInfoCtx, c_int);

/// Makes `callback` the module's `INFO` function (replacing the
/// `redis-module` crate's default one).
pub fn set_info_function(ctx: &redis_module::Context, callback: InfoCallback) {
    // Registering cannot fail on a context that is loading the module.
    raw::register_info_function(ctx.ctx, Some(callback));
}

/// What Redis calls to run a command.
pub type CommandHandler = unsafe extern "C" fn(
    *mut raw::RedisModuleCtx,
    *mut *mut raw::RedisModuleString,
    c_int,
) -> c_int;

/// Creates the command `name` (a container for subcommands when `handler`
/// is `None`), with its keys at `first..=last` by `step` (all 0: none, or
/// the handler says); `false` if the server refused it.
pub fn create_command(
    ctx: &redis_module::Context,
    name: &CStr,
    handler: Option<CommandHandler>,
    flags: &CStr,
    (first, last, step): (c_int, c_int, c_int),
) -> bool {
    // SAFETY: the load-time context, NUL-terminated strings that Redis
    // copies, and a handler with the command signature.
    let created = unsafe {
        api!(RedisModule_CreateCommand)(
            ctx.ctx,
            name.as_ptr(),
            handler,
            flags.as_ptr(),
            first,
            last,
            step,
        )
    };
    created == OK
}

/// A command this module created.
#[derive(Clone, Copy)]
pub struct Command(pub(super) NonNull<raw::RedisModuleCommand>);

/// The command `name` (`None` if none was created under that name).
pub fn command(ctx: &redis_module::Context, name: &CStr) -> Option<Command> {
    // SAFETY: the load-time context and a NUL-terminated name.
    let raw = unsafe { api!(RedisModule_GetCommand)(ctx.ctx, name.as_ptr()) };
    NonNull::new(raw).map(Command)
}

impl Command {
    /// Creates the keyless subcommand `name` of this container.
    pub fn create_subcommand(self, name: &CStr, handler: CommandHandler, flags: &CStr) -> bool {
        // SAFETY: a command of this module, NUL-terminated strings Redis
        // copies, and a handler with the command signature.
        let created = unsafe {
            api!(RedisModule_CreateSubcommand)(
                self.0.as_ptr(),
                name.as_ptr(),
                Some(handler),
                flags.as_ptr(),
                0,
                0,
                0,
            )
        };
        created == OK
    }

    /// Puts the command in ACL categories (a space-separated list) where
    /// the server lets a module do so (Redis 7.2 and later); `true` on a
    /// server that can't (see [`can_set_acl_categories`]).
    pub fn set_acl_categories(self, categories: &CStr) -> bool {
        // SAFETY: Redis fills the API table once, before calling the module.
        let Some(set) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_SetCommandACLCategories) })
        else {
            return true;
        };
        // SAFETY: a command of this module and a NUL-terminated list Redis
        // parses and does not keep.
        unsafe { set(self.0.as_ptr(), categories.as_ptr()) == OK }
    }
}

/// Adds the ACL category `name` where the server can (Redis 7.4 and
/// later); `true` if it exists now.
pub fn add_acl_category(ctx: &redis_module::Context, name: &CStr) -> bool {
    // SAFETY: Redis fills the API table once, before calling the module.
    let Some(add) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_AddACLCategory) }) else {
        return false;
    };
    // SAFETY: the load-time context and a NUL-terminated name Redis copies.
    unsafe { add(ctx.ctx, name.as_ptr()) == OK }
}

/// Whether the server lets a module set its commands' ACL categories.
pub fn can_set_acl_categories() -> bool {
    // SAFETY: Redis fills the API table once, before calling the module.
    unsafe { (*std::ptr::addr_of!(raw::RedisModule_SetCommandACLCategories)).is_some() }
}
