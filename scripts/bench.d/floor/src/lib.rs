//! The module-API floor: what `scripts/bench` compares the `RL.*` commands
//! with. Bench-only: never shipped, never loaded outside the benchmark.
//!
//! Why it exists: `INCR` is no fair yardstick for a module command. A module
//! command pays Redis' module API on every call (a module context, opening
//! the key through `RedisModuleKey`, a module value behind the key,
//! `RedisModule_Replicate` looking its command up by name and building an
//! argument vector, replies through the module reply API) that `INCR` does
//! not, and no module can avoid. `FLOOR.HIT key` does exactly that
//! unavoidable work of a native rate limiter and nothing else, so
//! "RL.X ÷ floor" is what the module's own code costs on top of the API:
//!
//! - `RedisModule_OpenKey` (read and write); an empty key gets a value of
//!   this module's own type (32 bytes: four `u64`s) through
//!   `ModuleTypeSetValue`, else the value is found (`KeyType`,
//!   `ModuleTypeGetType`, `ModuleTypeGetValue`) and updated in place;
//! - reads the clock (`RedisModule_Milliseconds`) and sets the expiry to
//!   now + 60 s (`RedisModule_SetAbsExpire`);
//! - `RedisModule_SignalModifiedKey` (implicit signalling is off, as in the
//!   ratelimit module);
//! - `RedisModule_Replicate(ctx, "FLOOR.APPLY", "sb", key, 16-byte op)`, a
//!   real module command that replicas and the AOF apply;
//! - replies an array of five integers, like an `RL.*` decision:
//!   `[1, count, 0, -1, 60000]`.
//!
//! Only the raw API on the call path (no `Context`, no allocation but the
//! value of a new key), no argument parsing beyond the key, no panic guard.
//! The data type has minimal, correct RDB save/load, AOF rewrite, memory
//! usage and free callbacks.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::native_types::RedisType;
use redis_module::{raw, redis_module, Context, RedisString, Status};

type Ctx = *mut raw::RedisModuleCtx;
type RString = *mut raw::RedisModuleString;

const ENCODING_VERSION: i32 = 1;
const TTL_MS: i64 = 60_000;
const APPLY: &CStr = c"FLOOR.APPLY";
const WRONGTYPE: &CStr = c"WRONGTYPE Operation against a key holding the wrong kind of value";

/// The value behind a key: 32 bytes.
#[repr(C)]
struct Counter {
    count: u64,
    first_ms: u64,
    last_ms: u64,
    expire_at_ms: u64,
}

static FLOOR_TYPE: RedisType = RedisType::new(
    "rl-floor0",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: None,
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// The registered type, read once at load (the `RefCell` in `RedisType`
/// is not touched on the call path).
static TYPE: AtomicPtr<raw::RedisModuleType> = AtomicPtr::new(ptr::null_mut());

fn new_counter(count: u64, now_ms: u64, expire_at_ms: u64) -> *mut Counter {
    unsafe {
        let p = raw::RedisModule_Alloc.unwrap()(std::mem::size_of::<Counter>()).cast::<Counter>();
        p.write(Counter {
            count,
            first_ms: now_ms,
            last_ms: now_ms,
            expire_at_ms,
        });
        p
    }
}

/// The value of `key`: created (and stored) when the key is empty, null
/// when the key holds something else.
unsafe fn open_counter(key: *mut raw::RedisModuleKey, now_ms: u64) -> *mut Counter {
    let ty = TYPE.load(Ordering::Relaxed);
    let kind = raw::RedisModule_KeyType.unwrap()(key);
    if kind == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
        let v = new_counter(0, now_ms, 0);
        if raw::RedisModule_ModuleTypeSetValue.unwrap()(key, ty, v.cast())
            != raw::Status::Ok as c_int
        {
            raw::RedisModule_Free.unwrap()(v.cast());
            return ptr::null_mut();
        }
        return v;
    }
    if kind != raw::REDISMODULE_KEYTYPE_MODULE as c_int
        || raw::RedisModule_ModuleTypeGetType.unwrap()(key) != ty
    {
        return ptr::null_mut();
    }
    raw::RedisModule_ModuleTypeGetValue.unwrap()(key).cast()
}

fn op_blob(count: u64, expire_at_ms: u64) -> [u8; 16] {
    let mut blob = [0u8; 16];
    blob[..8].copy_from_slice(&count.to_le_bytes());
    blob[8..].copy_from_slice(&expire_at_ms.to_le_bytes());
    blob
}

/// `FLOOR.HIT key`
unsafe extern "C" fn floor_hit(ctx: Ctx, argv: *mut RString, argc: c_int) -> c_int {
    if argc != 2 {
        return raw::RedisModule_WrongArity.unwrap()(ctx);
    }
    let name = *argv.add(1);
    let key = raw::RedisModule_OpenKey.unwrap()(
        ctx,
        name,
        (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
    );
    let now = raw::RedisModule_Milliseconds.unwrap()();
    let v = open_counter(key, now as u64);
    if v.is_null() {
        raw::RedisModule_CloseKey.unwrap()(key);
        return raw::RedisModule_ReplyWithError.unwrap()(ctx, WRONGTYPE.as_ptr());
    }
    let expire_at = now + TTL_MS;
    let count = (*v).count + 1;
    (*v).count = count;
    (*v).last_ms = now as u64;
    (*v).expire_at_ms = expire_at as u64;
    raw::RedisModule_SetAbsExpire.unwrap()(key, expire_at);
    raw::RedisModule_SignalModifiedKey.unwrap()(ctx, name);
    let blob = op_blob(count, expire_at as u64);
    raw::RedisModule_Replicate.unwrap()(
        ctx,
        APPLY.as_ptr(),
        c"sb".as_ptr(),
        name,
        blob.as_ptr().cast::<c_char>(),
        blob.len(),
    );
    let reply = raw::RedisModule_ReplyWithLongLong.unwrap();
    raw::RedisModule_ReplyWithArray.unwrap()(ctx, 5);
    reply(ctx, 1);
    reply(ctx, count as i64);
    reply(ctx, 0);
    reply(ctx, -1);
    reply(ctx, TTL_MS);
    raw::RedisModule_CloseKey.unwrap()(key);
    raw::Status::Ok as c_int
}

/// `FLOOR.APPLY key op`: what replicas and the AOF receive; sets the count
/// and the expiry that the op carries.
unsafe extern "C" fn floor_apply(ctx: Ctx, argv: *mut RString, argc: c_int) -> c_int {
    if argc != 3 {
        return raw::RedisModule_WrongArity.unwrap()(ctx);
    }
    let mut len = 0usize;
    let op = raw::RedisModule_StringPtrLen.unwrap()(*argv.add(2), &mut len);
    if len != 16 {
        return raw::RedisModule_ReplyWithError.unwrap()(
            ctx,
            c"ERR invalid FLOOR.APPLY op".as_ptr(),
        );
    }
    let op = std::slice::from_raw_parts(op.cast::<u8>(), 16);
    let count = u64::from_le_bytes(op[..8].try_into().unwrap());
    let expire_at = u64::from_le_bytes(op[8..].try_into().unwrap());
    let name = *argv.add(1);
    let key = raw::RedisModule_OpenKey.unwrap()(
        ctx,
        name,
        (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
    );
    let v = open_counter(key, raw::RedisModule_Milliseconds.unwrap()() as u64);
    if v.is_null() {
        raw::RedisModule_CloseKey.unwrap()(key);
        return raw::RedisModule_ReplyWithError.unwrap()(ctx, WRONGTYPE.as_ptr());
    }
    (*v).count = count;
    (*v).expire_at_ms = expire_at;
    raw::RedisModule_SetAbsExpire.unwrap()(key, i64::try_from(expire_at).unwrap_or(i64::MAX));
    raw::RedisModule_SignalModifiedKey.unwrap()(ctx, name);
    raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
    raw::RedisModule_CloseKey.unwrap()(key);
    raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, c"OK".as_ptr())
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    let v = &*value.cast::<Counter>();
    let save = raw::RedisModule_SaveUnsigned.unwrap();
    save(rdb, v.count);
    save(rdb, v.first_ms);
    save(rdb, v.last_ms);
    save(rdb, v.expire_at_ms);
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver != ENCODING_VERSION {
        return ptr::null_mut();
    }
    let load = raw::RedisModule_LoadUnsigned.unwrap();
    let fields = [load(rdb), load(rdb), load(rdb), load(rdb)];
    if raw::RedisModule_IsIOError.unwrap()(rdb) != 0 {
        return ptr::null_mut();
    }
    let v = new_counter(fields[0], fields[1], fields[3]);
    (*v).last_ms = fields[2];
    v.cast()
}

unsafe extern "C" fn aof_rewrite(aof: *mut raw::RedisModuleIO, key: RString, value: *mut c_void) {
    let v = &*value.cast::<Counter>();
    let blob = op_blob(v.count, v.expire_at_ms);
    raw::RedisModule_EmitAOF.unwrap()(
        aof,
        APPLY.as_ptr(),
        c"sb".as_ptr(),
        key,
        blob.as_ptr().cast::<c_char>(),
        blob.len(),
    );
}

unsafe extern "C" fn mem_usage(_value: *const c_void) -> usize {
    std::mem::size_of::<Counter>()
}

unsafe extern "C" fn free(value: *mut c_void) {
    raw::RedisModule_Free.unwrap()(value);
}

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let raw_ctx = ctx.ctx;
    TYPE.store(*FLOOR_TYPE.raw_type.borrow(), Ordering::Relaxed);
    type Handler = unsafe extern "C" fn(Ctx, *mut RString, c_int) -> c_int;
    let commands: [(&CStr, Handler); 2] = [(c"FLOOR.HIT", floor_hit), (APPLY, floor_apply)];
    unsafe {
        // As the ratelimit module: corrupt RDB input is an error, not an
        // abort, and modified keys are signalled explicitly.
        raw::RedisModule_SetModuleOptions.unwrap()(
            raw_ctx,
            (raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS
                | raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED) as c_int,
        );
        for (name, handler) in commands {
            if raw::RedisModule_CreateCommand.unwrap()(
                raw_ctx,
                name.as_ptr(),
                Some(handler),
                c"write deny-oom fast".as_ptr(),
                1,
                1,
                1,
            ) != raw::Status::Ok as c_int
            {
                return Status::Err;
            }
        }
    }
    Status::Ok
}

redis_module! {
    name: "floor",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [FLOOR_TYPE],
    init: init,
}
