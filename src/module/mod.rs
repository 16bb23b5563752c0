//! The Redis layer, in layers that only point down (README "How it works"
//! has the map; `tests/layers.rs` holds it): [`ffi`] at the bottom, the
//! leaves ([`reply`], [`clock`], [`stats`], [`config`], [`docs`], `top`),
//! the data type, the policy registry, the kernel (decide on a snapshot,
//! then install), the command families (each command's metadata next to
//! its handler), and this file on top: the command table, registration and
//! `INFO ratelimit`.

pub mod clock;
pub mod config;
pub mod datatype;
pub mod docs;
pub mod ffi;
mod kernel;
mod leases;
mod monitor;
mod policies;
pub mod registry;
mod replay;
pub mod reply;
pub mod stats;
mod top;
mod windows;

use std::ffi::{c_int, CStr};

use redis_module::native_types::RedisType;
use redis_module::raw::{self, ModuleOptions, Version};
use redis_module::{redis_module, Context, RedisString, Status};

use crate::algo::Algorithm;
use crate::codec;
use docs::Keys;

/// The `ratelimit` data type; the server's policies travel with every RDB
/// as its aux data, before the keys.
static RATELIMIT_TYPE: RedisType = RedisType::new(
    "ratelimit",
    codec::ENCODING_VERSION,
    datatype::methods(Some(registry::aux_load), Some(registry::aux_save)),
);

/// Shown in `INFO ratelimit`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest server the module runs on: module configs, command info and
/// `SetAbsExpire` all exist from Redis 7.0 (Valkey reports 7.2.4).
pub const MIN_SERVER: (c_int, c_int) = (7, 0);

type Handler = ffi::CommandHandler;

/// A command as registered: what it is (its name, flags and docs, declared
/// next to its handler in its family's file) and the handler Redis calls.
struct CommandDef {
    spec: &'static docs::Command,
    handler: Handler,
}

/// A command handler's body over the safe context and arguments.
///
/// # Safety
/// `ctx`, `argv` and `argc` must be what Redis called a command handler
/// with, used only during that call.
#[inline(always)]
unsafe fn handle(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    body: impl FnOnce(ffi::Ctx, &[ffi::RStr]) -> kernel::Outcome,
) -> c_int {
    // SAFETY: the caller's contract.
    match unsafe { ffi::Ctx::enter(ctx, argv, argc) } {
        Some((ctx, args)) => kernel::guarded(ctx, || body(ctx, args)),
        None => raw::Status::Err as c_int,
    }
}

/// Defines `extern "C"` command handlers over safe bodies taking the
/// context and the arguments.
macro_rules! handlers {
    ($($name:ident => $body:expr;)*) => {$(
        unsafe extern "C" fn $name(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            // SAFETY: Redis calls a command handler with its live context
            // and arguments, which are used only during this call.
            unsafe { handle(ctx, argv, argc, $body) }
        }
    )*};
}

/// The handler of `RL.<ALGO>` for the algorithm in slot `SLOT` of the
/// table: one instance per algorithm, in which the algorithm is a constant,
/// as it was in a handler written for it.
unsafe extern "C" fn rl_decide<const SLOT: usize>(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let algo = const { Algorithm::ALL[SLOT] };
    // SAFETY: Redis calls a command handler with its live context and
    // arguments, which are used only during this call.
    unsafe {
        handle(ctx, argv, argc, |ctx, args| {
            windows::limit_command(ctx, args, algo)
        })
    }
}

/// Writes [`DECISIONS`] from the rows of the algorithm table.
macro_rules! decisions {
    ($($v:ident = $($_column:tt),* => $_algo:ty;)*) => {
        /// The algorithms' own commands, `RL.<ALGO>`: one per row of the
        /// algorithm table, in its order, each with its handler and the
        /// arguments of its shape.
        const DECISIONS: &[CommandDef] = &[$(CommandDef {
            spec: &const {
                windows::limit_spec(Algorithm::$v, &const {
                    let shape = Algorithm::$v.shape();
                    docs::decision::<{ docs::decision_len(Algorithm::$v.shape()) }>(shape)
                })
            },
            handler: rl_decide::<{ Algorithm::$v.index() }>,
        },)*];
    };
}

crate::algo::limiter::algorithm_table!(decisions);

handlers! {
    rl_all => |ctx, args| numkeys_command(ctx, args, windows::all_command);
    rl_info => windows::info_command;
    rl_peek => windows::peek_command;
    rl_refund => windows::refund_command;
    cl_throttle => windows::throttle_command;
    rl_acquire => leases::acquire_command;
    rl_release => leases::release_command;
    rl_renew => leases::renew_command;
    rl_policy => policies::policy_command;
    rl_check => policies::check_command;
    rl_apply => replay::apply_command;
    rl_apply_all => |ctx, args| numkeys_command(ctx, args, replay::apply_all_command);
    rl_setstate => replay::setstate_command;
    rl_top => monitor::top_command;
}

/// The handler of commands whose keys are `numkeys key [key ...]` after the
/// name: answers Redis 7.0's key-position requests (its cluster routing asks
/// the handler rather than reading the key spec) with the same keys.
fn numkeys_command(
    ctx: ffi::Ctx,
    args: &[ffi::RStr],
    body: impl FnOnce(ffi::Ctx, &[ffi::RStr]) -> kernel::Outcome,
) -> kernel::Outcome {
    if ctx.keys_position_request() {
        let numkeys = args
            .get(1)
            .and_then(|n| crate::args::count("numkeys", n.bytes(), 1).ok())
            .unwrap_or(0);
        let last = usize::try_from(numkeys)
            .unwrap_or(usize::MAX)
            .min(args.len().saturating_sub(2));
        for pos in 2..2 + last {
            ctx.key_at(pos);
        }
        return Ok(());
    }
    body(ctx, args)
}

/// Every other command, with its metadata next to it.
const COMMANDS: &[CommandDef] = &[
    CommandDef {
        spec: &windows::RL_ALL,
        handler: rl_all,
    },
    CommandDef {
        spec: &windows::RL_INFO,
        handler: rl_info,
    },
    CommandDef {
        spec: &windows::RL_PEEK,
        handler: rl_peek,
    },
    CommandDef {
        spec: &windows::RL_REFUND,
        handler: rl_refund,
    },
    CommandDef {
        spec: &leases::RL_ACQUIRE,
        handler: rl_acquire,
    },
    CommandDef {
        spec: &leases::RL_RELEASE,
        handler: rl_release,
    },
    CommandDef {
        spec: &leases::RL_RENEW,
        handler: rl_renew,
    },
    CommandDef {
        spec: &policies::RL_POLICY_SET,
        handler: rl_policy,
    },
    CommandDef {
        spec: &policies::RL_POLICY_GET,
        handler: rl_policy,
    },
    CommandDef {
        spec: &policies::RL_POLICY_DEL,
        handler: rl_policy,
    },
    CommandDef {
        spec: &policies::RL_POLICY_LIST,
        handler: rl_policy,
    },
    CommandDef {
        spec: &policies::RL_CHECK,
        handler: rl_check,
    },
    CommandDef {
        spec: &monitor::RL_TOP,
        handler: rl_top,
    },
    CommandDef {
        spec: &replay::RL_APPLY,
        handler: rl_apply,
    },
    CommandDef {
        spec: &replay::RL_APPLYALL,
        handler: rl_apply_all,
    },
    CommandDef {
        spec: &replay::RL_SETSTATE,
        handler: rl_setstate,
    },
];

/// Only with `cell-compat yes`.
const CELL: CommandDef = CommandDef {
    spec: &windows::CL_THROTTLE,
    handler: cl_throttle,
};

/// Creates the command with `flags`; `false` if the server refused them.
fn create(ctx: &Context, c: &CommandDef, flags: &[u8]) -> bool {
    let (flags, (first, last, step)) = match c.spec.doc.keys {
        Keys::One(_) => (flags.to_vec(), (1, 1, 1)),
        Keys::Second(_) => (flags.to_vec(), (2, 2, 1)),
        Keys::None => (flags.to_vec(), (0, 0, 0)),
        // Redis 7.0's cluster routing asks the handler for the keys
        // (getkeys-api) rather than reading the key spec.
        Keys::Numkeys => ([flags, b" getkeys-api"].concat(), (0, 0, 0)),
    };
    let Ok(flags) = std::ffi::CString::new(flags) else {
        return false;
    };
    if let Some((parent, sub)) = split_subcommand(c.spec.name) {
        return create_subcommand(ctx, &parent, &sub, c.handler, &flags);
    }
    ffi::create_command(
        ctx,
        c.spec.name,
        Some(c.handler),
        &flags,
        (first, last, step),
    )
}

/// `PARENT|SUB` as its two names.
fn split_subcommand(name: &CStr) -> Option<(std::ffi::CString, std::ffi::CString)> {
    let bytes = name.to_bytes();
    let bar = bytes.iter().position(|&b| b == b'|')?;
    let parent = std::ffi::CString::new(&bytes[..bar]).ok()?;
    let sub = std::ffi::CString::new(&bytes[bar + 1..]).ok()?;
    Some((parent, sub))
}

/// Creates `sub` under the container `parent`, creating the container (a
/// command with no handler of its own) the first time. Subcommands are
/// keyless here.
fn create_subcommand(
    ctx: &Context,
    parent: &CStr,
    sub: &CStr,
    handler: Handler,
    flags: &CStr,
) -> bool {
    let container = match ffi::command(ctx, parent) {
        Some(c) => c,
        None => {
            if !ffi::create_command(ctx, parent, None, c"", (0, 0, 0)) {
                return false;
            }
            let Some(c) = ffi::command(ctx, parent) else {
                return false;
            };
            c
        }
    };
    container.create_subcommand(sub, handler, flags)
}

fn register(ctx: &Context, c: &CommandDef, own_category: bool) -> bool {
    let flags = c.spec.flags.to_bytes();
    // Servers that don't know the `internal` flag refuse it, and create
    // nothing: the command then refuses clients itself.
    let created = (c.spec.internal && create(ctx, c, &[flags, b" internal"].concat()))
        || create(ctx, c, flags);
    // The core categories follow the flags; O(N) commands are not `fast`.
    let mut categories = if c.spec.operator {
        String::from("admin dangerous")
    } else if c.spec.flags.to_bytes().starts_with(b"readonly") {
        String::from("read")
    } else {
        String::from("write")
    };
    categories.push_str(if c.spec.flags.to_bytes().ends_with(b"fast") {
        " fast"
    } else {
        " slow"
    });
    if own_category && !c.spec.operator {
        categories.push_str(" ratelimit");
    }
    let Ok(categories) = std::ffi::CString::new(categories) else {
        return false;
    };
    created && docs::declare(ctx, c.spec.name, &c.spec.doc, &categories)
}

/// Fills `INFO ratelimit`: the version, the counters, the policies, the
/// other counters, then the settings. Composed here, at the top, so that
/// `stats`, the registry and `config` know nothing of each other.
extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    // SAFETY: Redis calls an info callback with a live info context, used
    // only during this call.
    let Some(mut w) = (unsafe { ffi::InfoWriter::default_section(ctx) }) else {
        return;
    };
    w.text(|name, value| {
        name.extend_from_slice(b"version");
        value.extend_from_slice(VERSION.as_bytes());
    });
    stats::write_head(&mut w);
    registry::write_info(&mut w);
    stats::write_tail(&mut w);
    top::write_info(&mut w);
    w.u64("log_max", config::log_max());
    w.u64("lease_max", config::lease_max());
    w.u64("cell_compat", config::cell_compat() as u64);
    w.u64("compact_ops", config::compact_ops() as u64);
    if !w.ok() {
        ffi::log_warning("could not fill INFO ratelimit: the server refused a field");
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
    datatype::registered(*RATELIMIT_TYPE.raw_type.borrow());
    if let Err(why) = config::load(ctx, args, top::resize) {
        return refuse(&why);
    }
    // Corrupt RDB/RESTORE input must come back to us as an error, not abort
    // the server; and we signal modified keys ourselves, only when a request
    // really changed one (a denied call must not fire WATCH).
    ctx.set_module_options(
        ModuleOptions::HANDLE_IO_ERRORS | ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED,
    );
    let cell = config::cell_compat().then_some(&CELL);
    let own_category = docs::add_acl_category(ctx);
    if !docs::can_set_acl_categories() {
        ctx.log_notice(
            "this server cannot put module commands in ACL categories (Redis 7.2+ can): grant RL.* commands by name",
        );
    }
    for c in DECISIONS.iter().chain(COMMANDS).chain(cell) {
        if !register(ctx, c, own_category) {
            return refuse(&format!(
                "could not register {} (is another module using that name?)",
                c.spec.name.to_string_lossy()
            ));
        }
    }
    // Replaces the crate's default handler: the section is ours.
    ffi::set_info_function(ctx, info);
    if !clock::init(ctx) {
        return refuse("could not subscribe to the event loop");
    }
    if !registry::init(ctx) {
        return refuse("could not subscribe to loading events");
    }
    if !top::init(ctx) {
        return refuse("could not subscribe to flush events");
    }
    Status::Ok
}

redis_module! {
    name: "ratelimit",
    version: 1,
    allocator: (crate::module::ffi::ModuleAlloc, crate::module::ffi::ModuleAlloc),
    data_types: [RATELIMIT_TYPE],
    init: init,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of algorithms and the commands registered agree: every
    /// algorithm has its command, in its slot, under the name its messages
    /// give it, and no other command takes that name.
    #[test]
    fn every_algorithm_has_its_command() {
        assert_eq!(DECISIONS.len(), Algorithm::ALL.len());
        for (a, c) in Algorithm::ALL.into_iter().zip(DECISIONS) {
            let name = a.info().command;
            assert_eq!(c.spec.name.to_bytes(), name.as_bytes());
            assert!(
                !COMMANDS
                    .iter()
                    .chain([&CELL])
                    .any(|c| c.spec.name.to_bytes() == name.as_bytes()),
                "{name} is registered twice"
            );
        }
    }
}
