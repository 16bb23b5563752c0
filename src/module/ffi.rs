//! The Redis module API, wrapped once, soundly.
//!
//! Every raw pointer Redis hands a command lives for the duration of that
//! callback, so the wrappers carry that lifetime: [`Ctx<'a>`] for the
//! context, [`RStr<'a>`] for arguments, [`ReadKey<'a>`] and [`WriteKey<'a>`]
//! for open keys (separate types, because a read-only open of a missing key
//! has no handle at all). Nothing outside this file and the data type's
//! callbacks dereferences a pointer from Redis, and nothing outside this
//! file calls the module API (tests/layers.rs checks): the callbacks above
//! keep only the `extern "C"` signatures Redis calls, and turn what they
//! receive into handles ([`Rdb`], [`Aof`], [`Digest`], [`Ctx::callback`]).
//! Registration's calls (commands, their docs, ACL categories, events,
//! configs, `INFO`) and the allocator are here too.
//!
//! The bottom layer: it imports nothing else of the module. Keys hold any
//! [`ModuleValue`] (the data type implements it), so this file knows how to
//! open, view and store a value but not what a value is made of.
//!
//! The command handlers use these rather than the `redis-module` crate's
//! `Context`, whose argument and reply helpers allocate on every call: this
//! path's whole budget is about that of the module API's own work. Off the hot
//! path (configs, `INFO`, module options, the server version) the crate's own
//! support is used.

use std::ffi::{c_char, c_int, c_long, c_longlong, c_void, CStr};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use redis_module::raw;

use crate::algo::{saturating_i64, UnixMs};

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

/// A Rust value that keys of one module type hold: Redis owns it as an
/// opaque pointer between calls, and this layer views it in place.
///
/// # Safety
/// [`take`](ModuleValue::take) of a pointer made by
/// [`into_raw`](ModuleValue::into_raw) gives that value back, and every
/// such pointer is stored under [`raw_type`](ModuleValue::raw_type).
pub unsafe trait ModuleValue: Sized {
    /// The registered module type (null before registration: no key then
    /// holds one).
    fn raw_type() -> *mut raw::RedisModuleType;

    /// Hands a value over to Redis.
    fn into_raw(self) -> RawValue;

    /// Takes a value back: the caller owns it again.
    ///
    /// # Safety
    /// `raw` comes from [`into_raw`](ModuleValue::into_raw) and was not
    /// taken back yet.
    unsafe fn take(raw: RawValue) -> Self;

    /// Redis now holds one more value (a key's value was stored).
    fn stored();
}

/// A view of a value Redis owns: usable (also mutably) while Redis keeps
/// it, never dropped.
///
/// # Safety
/// As [`ModuleValue::take`], except that ownership stays with Redis: the
/// view must not be used once Redis frees or replaces the value.
pub unsafe fn view<V: ModuleValue>(raw: RawValue) -> ManuallyDrop<V> {
    // SAFETY: the caller's contract; `ManuallyDrop` leaves the value to Redis.
    ManuallyDrop::new(unsafe { V::take(raw) })
}

/// A command's context; valid for the callback that received it.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    raw: NonNull<raw::RedisModuleCtx>,
    _callback: PhantomData<&'a raw::RedisModuleCtx>,
}

/// A Redis string argument of the current command.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct RStr<'a> {
    raw: NonNull<raw::RedisModuleString>,
    _callback: PhantomData<&'a raw::RedisModuleString>,
}

impl<'a> RStr<'a> {
    /// The string's bytes, valid for the callback.
    pub fn bytes(self) -> &'a [u8] {
        let mut len = 0usize;
        // SAFETY: `self` is a live string for 'a (see `Ctx::enter`);
        // StringPtrLen returns its buffer and length, which Redis does not
        // change while the command runs.
        unsafe {
            let p = api!(RedisModule_StringPtrLen)(self.raw.as_ptr(), &mut len);
            if p.is_null() || len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        }
    }

    fn ptr(self) -> *mut raw::RedisModuleString {
        self.raw.as_ptr()
    }
}

/// A key holds a value of another type.
pub struct WrongType;

/// Redis refused to store a value in a key.
pub struct NotStored;

impl<'a> Ctx<'a> {
    /// The context and arguments of a command callback.
    ///
    /// # Safety
    /// `ctx`, `argv` and `argc` must be what Redis passed to a command
    /// handler, and the results must not outlive that call.
    pub unsafe fn enter(
        ctx: *mut raw::RedisModuleCtx,
        argv: *mut *mut raw::RedisModuleString,
        argc: c_int,
    ) -> Option<(Ctx<'a>, &'a [RStr<'a>])> {
        let raw = NonNull::new(ctx)?;
        let args = match usize::try_from(argc) {
            Ok(n) if n > 0 && !argv.is_null() => {
                // SAFETY: Redis passes `argc` non-null strings alive for the
                // call, and `RStr` is a transparent non-null pointer.
                unsafe { std::slice::from_raw_parts(argv.cast::<RStr<'a>>(), n) }
            }
            _ => &[],
        };
        Some((
            Ctx {
                raw,
                _callback: PhantomData,
            },
            args,
        ))
    }

    fn ptr(self) -> *mut raw::RedisModuleCtx {
        self.raw.as_ptr()
    }

    /// The context of an event or timer callback (no command, no
    /// arguments).
    ///
    /// # Safety
    /// `ctx` must be what Redis passed to the callback, and the result
    /// must not outlive that call.
    pub unsafe fn callback(ctx: *mut raw::RedisModuleCtx) -> Option<Ctx<'a>> {
        Some(Ctx {
            raw: NonNull::new(ctx)?,
            _callback: PhantomData,
        })
    }

    /// An integer field of an `INFO` section; `None` if the server has no
    /// such field.
    pub fn info_i64(self, section: &CStr, field: &CStr) -> Option<i64> {
        // SAFETY: a live context and NUL-terminated names; the data is
        // freed before returning and nothing borrowed from it escapes.
        unsafe {
            let data = api!(RedisModule_GetServerInfo)(self.ptr(), section.as_ptr());
            if data.is_null() {
                return None;
            }
            let mut err: c_int = 0;
            let v = api!(RedisModule_ServerInfoGetFieldSigned)(data, field.as_ptr(), &mut err);
            api!(RedisModule_FreeServerInfo)(self.ptr(), data);
            (err == 0).then_some(v)
        }
    }

    /// Propagates `cmd args...` to the AOF alone: replicas do not get it.
    pub fn replicate_to_aof(self, cmd: &CStr, args: &[&[u8]]) {
        // SAFETY: a live context; each string is created from a buffer
        // Redis copies, and freed once RedisModule_Replicate (which takes
        // its own references) has returned. "R" keeps it from replicas;
        // "v" takes an array of RedisModuleString pointers and its length.
        unsafe {
            let strings: Vec<*mut raw::RedisModuleString> = args
                .iter()
                .map(|a| api!(RedisModule_CreateString)(self.ptr(), a.as_ptr().cast(), a.len()))
                .collect();
            api!(RedisModule_Replicate)(
                self.ptr(),
                cmd.as_ptr(),
                c"Rv".as_ptr(),
                strings.as_ptr(),
                strings.len(),
            );
            for s in strings {
                api!(RedisModule_FreeString)(self.ptr(), s);
            }
        }
    }

    /// Has Redis call `callback` from its event loop in `ms` milliseconds
    /// (0: at its next iteration).
    pub fn timer(self, ms: i64, callback: TimerCallback) {
        // SAFETY: a live context and a callback with the timer signature;
        // no data is passed. Creating a timer cannot fail; its id is not
        // needed, as these timers are never stopped.
        unsafe {
            api!(RedisModule_CreateTimer)(self.ptr(), ms, Some(callback), std::ptr::null_mut())
        };
    }

    pub fn flags(self) -> c_int {
        // SAFETY: a live context (see `enter`).
        unsafe { api!(RedisModule_GetContextFlags)(self.ptr()) }
    }

    pub fn reply_i64(self, v: i64) {
        // SAFETY: a live context; replying never fails for integers.
        unsafe { api!(RedisModule_ReplyWithLongLong)(self.ptr(), v) };
    }

    pub fn reply_u64(self, v: u64) {
        self.reply_i64(saturating_i64(v));
    }

    pub fn reply_array(self, len: usize) {
        // SAFETY: a live context; the caller writes `len` elements next.
        unsafe { api!(RedisModule_ReplyWithArray)(self.ptr(), len as c_long) };
    }

    /// A map under RESP3, a flat array of `2 * len` under RESP2 (Redis
    /// does that conversion).
    pub fn reply_map(self, len: usize) {
        // SAFETY: a live context; the caller writes `len` pairs next.
        unsafe { api!(RedisModule_ReplyWithMap)(self.ptr(), len as c_long) };
    }

    pub fn reply_simple(self, s: &CStr) {
        // SAFETY: a live context and a NUL-terminated string.
        unsafe { api!(RedisModule_ReplyWithSimpleString)(self.ptr(), s.as_ptr()) };
    }

    pub fn reply_bulk(self, s: &[u8]) {
        // SAFETY: a live context; Redis copies `s.len()` bytes from `s`.
        unsafe { api!(RedisModule_ReplyWithStringBuffer)(self.ptr(), s.as_ptr().cast(), s.len()) };
    }

    pub fn reply_null(self) {
        // SAFETY: a live context.
        unsafe { api!(RedisModule_ReplyWithNull)(self.ptr()) };
    }

    pub fn reply_ok(self) {
        self.reply_simple(c"OK");
    }

    /// An error reply; `text` starts with the error code (`ERR ...`).
    pub fn reply_error(self, text: &str) {
        // Messages are our own text plus printable client bytes, so they
        // hold no NUL; fall back to a fixed text rather than panic.
        let c = std::ffi::CString::new(text).unwrap_or_else(|_| c"ERR invalid argument".into());
        self.reply_error_static(&c);
    }

    pub fn reply_error_static(self, text: &CStr) {
        // SAFETY: a live context and a NUL-terminated string Redis copies.
        unsafe { api!(RedisModule_ReplyWithError)(self.ptr(), text.as_ptr()) };
    }

    /// Opens `name` for reading; a missing key holds nothing.
    pub fn open_read<V: ModuleValue>(self, name: RStr<'a>) -> Result<ReadKey<'a, V>, WrongType> {
        // SAFETY: a live context and argument; the key is closed on drop.
        let key = unsafe {
            api!(RedisModule_OpenKey)(self.ptr(), name.ptr(), raw::REDISMODULE_READ as c_int)
        };
        let mut out = ReadKey {
            key: NonNull::new(key.cast::<raw::RedisModuleKey>()),
            held: None,
            _callback: PhantomData,
        };
        // SAFETY: the key is open (or absent); the view lives in the
        // `ReadKey`, which closes the key only when dropped, after the view,
        // and nothing replaces a value during a read.
        out.held = unsafe { held(out.key) }?;
        Ok(out)
    }

    /// Opens `name` for writing.
    pub fn open_write<V: ModuleValue>(self, name: RStr<'a>) -> Result<WriteKey<'a, V>, WrongType> {
        let mode = (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int;
        // SAFETY: a live context and argument; the key is closed on drop.
        let key = unsafe { api!(RedisModule_OpenKey)(self.ptr(), name.ptr(), mode) };
        // A write open always gives a handle; be safe if it did not.
        let Some(key) = NonNull::new(key.cast::<raw::RedisModuleKey>()) else {
            return Err(WrongType);
        };
        // SAFETY: `key` is open; the view lives in the `WriteKey`, which
        // closes the key only when dropped, after the view.
        let held = unsafe { held(Some(key)) };
        let mut out = WriteKey {
            ctx: self,
            name,
            key,
            held: None,
        };
        out.held = held?;
        Ok(out)
    }

    /// Propagates `cmd key blob` to replicas and the AOF instead of the
    /// command that ran.
    pub fn replicate(self, cmd: &CStr, key: RStr<'a>, blob: &[u8]) {
        // SAFETY: a live context; "sb" takes a RedisModuleString and a
        // buffer with its length, which Redis copies.
        unsafe {
            api!(RedisModule_Replicate)(
                self.ptr(),
                cmd.as_ptr(),
                c"sb".as_ptr(),
                key.ptr(),
                blob.as_ptr(),
                blob.len(),
            );
        }
    }

    /// Propagates `cmd numkeys key... blob`.
    pub fn replicate_keys(self, cmd: &CStr, keys: &[RStr<'a>], blob: &[u8]) {
        // SAFETY: a live context; "lvb" takes a long long, an array of
        // RedisModuleString pointers with its length (`RStr` is a
        // transparent pointer), and a buffer with its length.
        unsafe {
            api!(RedisModule_Replicate)(
                self.ptr(),
                cmd.as_ptr(),
                c"lvb".as_ptr(),
                keys.len() as c_longlong,
                keys.as_ptr().cast::<*mut raw::RedisModuleString>(),
                keys.len(),
                blob.as_ptr(),
                blob.len(),
            );
        }
    }

    pub fn replicate_verbatim(self) {
        // SAFETY: a live context.
        unsafe { api!(RedisModule_ReplicateVerbatim)(self.ptr()) };
    }

    /// Fires a keyspace event of the module class (`notify-keyspace-events`
    /// flag `d`); costs next to nothing when notifications are off.
    pub fn notify(self, event: &CStr, key: RStr<'a>) {
        // SAFETY: a live context, a NUL-terminated event name and a live key
        // name.
        unsafe {
            api!(RedisModule_NotifyKeyspaceEvent)(
                self.ptr(),
                raw::REDISMODULE_NOTIFY_MODULE as c_int,
                event.as_ptr(),
                key.ptr(),
            );
        }
    }

    /// Whether Redis only asks for the positions of the keys (getkeys-api).
    pub fn keys_position_request(self) -> bool {
        // SAFETY: a live context.
        unsafe { api!(RedisModule_IsKeysPositionRequest)(self.ptr()) != 0 }
    }

    pub fn key_at(self, pos: usize) {
        // SAFETY: a live context that is a keys-position request.
        unsafe { api!(RedisModule_KeyAtPos)(self.ptr(), pos as c_int) };
    }
}

/// What an open key holds, as a view of the value Redis owns.
///
/// # Safety
/// `key` must be an open key, and the view must not be used after the key
/// or its value changes hands (closing, deleting or replacing it).
unsafe fn held<V: ModuleValue>(
    key: Option<NonNull<raw::RedisModuleKey>>,
) -> Result<Option<ManuallyDrop<V>>, WrongType> {
    let Some(key) = key else {
        return Ok(None);
    };
    let key = key.as_ptr();
    // SAFETY: `key` is open (caller's contract).
    unsafe {
        let kind = api!(RedisModule_KeyType)(key);
        if kind == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
            return Ok(None);
        }
        if kind != raw::REDISMODULE_KEYTYPE_MODULE as c_int
            || api!(RedisModule_ModuleTypeGetType)(key) != V::raw_type()
        {
            return Err(WrongType);
        }
        let value = api!(RedisModule_ModuleTypeGetValue)(key);
        if value.is_null() {
            return Err(WrongType);
        }
        // SAFETY: a value of this type is a pointer made by `V::into_raw`.
        Ok(Some(view(value)))
    }
}

/// A key opened for reading.
pub struct ReadKey<'a, V: ModuleValue> {
    /// `None` when the key does not exist.
    key: Option<NonNull<raw::RedisModuleKey>>,
    held: Option<ManuallyDrop<V>>,
    _callback: PhantomData<&'a ()>,
}

impl<V: ModuleValue> ReadKey<'_, V> {
    /// What the key holds, if anything.
    pub fn value(&self) -> Option<&V> {
        self.held.as_deref()
    }

    /// Remaining time to live in ms, or `None` without an expiry.
    pub fn ttl_ms(&self) -> Option<i64> {
        let key = self.key?;
        // SAFETY: an open key.
        let ttl = unsafe { api!(RedisModule_GetExpire)(key.as_ptr()) };
        (ttl >= 0).then_some(ttl)
    }
}

impl<V: ModuleValue> Drop for ReadKey<'_, V> {
    fn drop(&mut self) {
        self.held = None;
        if let Some(key) = self.key {
            // SAFETY: opened by us and not closed yet.
            unsafe { api!(RedisModule_CloseKey)(key.as_ptr()) };
        }
    }
}

/// A key opened for writing, with a view of what it holds.
pub struct WriteKey<'a, V: ModuleValue> {
    ctx: Ctx<'a>,
    name: RStr<'a>,
    key: NonNull<raw::RedisModuleKey>,
    /// Kept in step with the key's value by `store`.
    held: Option<ManuallyDrop<V>>,
}

impl<V: ModuleValue> WriteKey<'_, V> {
    pub fn value(&self) -> Option<&V> {
        self.held.as_deref()
    }

    /// The value, to change in place through its states' own methods.
    /// Never assign a new value (or any box inside it) through this
    /// reference: the boxes belong to Redis, which would keep the old
    /// pointer; `store` replaces a value.
    pub fn value_mut(&mut self) -> Option<&mut V> {
        self.held.as_deref_mut()
    }

    /// Stores `value` as the key's value, replacing (and freeing) any
    /// value it held.
    pub fn store(&mut self, value: V) -> Result<(), NotStored> {
        let value = value.into_raw();
        // The old value, if any, is freed by Redis below: forget the view first.
        self.held = None;
        // SAFETY: an open key; on success Redis owns `value` and frees it
        // through our type's `free` callback.
        let status = unsafe {
            api!(RedisModule_ModuleTypeSetValue)(self.key.as_ptr(), V::raw_type(), value)
        };
        if status != OK {
            // SAFETY: Redis did not take `value`; it is still ours.
            drop(unsafe { V::take(value) });
            return Err(NotStored);
        }
        V::stored();
        // SAFETY: the value just stored, owned by Redis for as long as the
        // key holds it, and only replaced through `self`.
        self.held = Some(unsafe { view(value) });
        Ok(())
    }

    /// Deletes the key (its value is freed through our `free` callback).
    pub fn delete(&mut self) {
        self.held = None;
        // SAFETY: an open key; the view was dropped first.
        unsafe { api!(RedisModule_DeleteKey)(self.key.as_ptr()) };
    }

    /// Sets the key's expiry to the absolute time `at`, so master,
    /// replicas and reloads expire it at the same millisecond (a time past
    /// what Redis can hold is its latest).
    #[inline]
    pub fn expire_at(&self, at: UnixMs) {
        let at_ms = saturating_i64(at.as_millis());
        // SAFETY: an open key holding a value.
        unsafe { api!(RedisModule_SetAbsExpire)(self.key.as_ptr(), at_ms) };
    }

    /// The key's absolute expiry, if it has one.
    #[inline]
    pub fn expire_at_ms(&self) -> Option<UnixMs> {
        // SAFETY: an open key.
        let at = unsafe { api!(RedisModule_GetAbsExpire)(self.key.as_ptr()) };
        u64::try_from(at).ok().map(UnixMs::from_millis)
    }

    /// Tells `WATCH` and client-side caching that the key changed.
    pub fn signal_modified(&self) {
        // SAFETY: a live context and key name.
        unsafe { api!(RedisModule_SignalModifiedKey)(self.ctx.ptr(), self.name.ptr()) };
    }
}

impl<V: ModuleValue> Drop for WriteKey<'_, V> {
    fn drop(&mut self) {
        self.held = None;
        // SAFETY: opened by us and not closed yet.
        unsafe { api!(RedisModule_CloseKey)(self.key.as_ptr()) };
    }
}

/// The server's clock, in Unix milliseconds.
pub fn wall_ms() -> i64 {
    // SAFETY: takes nothing, reads the server's cached clock.
    unsafe { api!(RedisModule_Milliseconds)() }
}

/// Writes `msg` to the server log at warning level; usable with no context
/// (from a panic hook or a type callback).
pub fn log_warning(msg: &str) {
    log(c"warning", msg);
}

/// Writes `msg` to the server log at notice level (the default verbosity).
pub fn log_notice(msg: &str) {
    log(c"notice", msg);
}

fn log(level: &CStr, msg: &str) {
    let Ok(msg) = std::ffi::CString::new(msg) else {
        return;
    };
    // SAFETY: Redis fills the API table once, before calling the module.
    let Some(log) = (unsafe { *std::ptr::addr_of!(raw::RedisModule_Log) }) else {
        return;
    };
    // SAFETY: a NULL context is allowed; "%s" makes `msg` data, not a
    // format.
    unsafe {
        log(
            std::ptr::null_mut(),
            level.as_ptr(),
            c"ratelimit: %s".as_ptr(),
            msg.as_ptr() as *const c_char,
        )
    };
}

/// What Redis calls when a timer fires.
pub type TimerCallback = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut c_void);

/// Whether clients are paused for writes (`CLIENT PAUSE`, `FAILOVER`):
/// then the server must not propagate anything (it asserts that it does
/// not, and would crash).
pub fn writes_paused() -> bool {
    // SAFETY: takes nothing, reads the server's pause state.
    unsafe { api!(RedisModule_AvoidReplicaTraffic)() != 0 }
}

/// Opaque pointer type of Redis values, re-exported for the data type.
pub type RawValue = *mut c_void;

/// Fields of an `INFO` section written straight to the server's buffer.
/// Each field costs one append: the `redis-module` crate's builder checks
/// every field against all those added before it, which made the section
/// quadratic in the number of policies (110 ms at 10,000).
pub struct InfoWriter<'a> {
    ctx: NonNull<raw::RedisModuleInfoCtx>,
    /// A field's name, NUL-terminated, reused from field to field.
    name: Vec<u8>,
    /// A text field's value, likewise.
    value: Vec<u8>,
    /// Some field could not be written (the server refused it).
    failed: bool,
    _life: PhantomData<&'a mut raw::RedisModuleInfoCtx>,
}

impl<'a> InfoWriter<'a> {
    /// Starts the module's default section (`# ratelimit`, fields prefixed
    /// `ratelimit_`).
    ///
    /// # Safety
    /// `ctx` is the live info context of an info callback, used only during
    /// that callback.
    pub unsafe fn default_section(ctx: *mut raw::RedisModuleInfoCtx) -> Option<InfoWriter<'a>> {
        let ctx = NonNull::new(ctx)?;
        // SAFETY: a live info context (the caller's guarantee); NULL names
        // the module's default section.
        let added = unsafe { api!(RedisModule_InfoAddSection)(ctx.as_ptr(), std::ptr::null_mut()) };
        (added == raw::Status::Ok as c_int).then_some(InfoWriter {
            ctx,
            name: Vec::with_capacity(32),
            value: Vec::with_capacity(64),
            failed: false,
            _life: PhantomData,
        })
    }

    /// `name` NUL-terminated in the reused buffer; `name` has no NUL (field
    /// names are the module's own or made of a number).
    fn name_ptr(&mut self, name: &[u8]) -> *const c_char {
        self.name.clear();
        self.name.extend_from_slice(name);
        self.name.push(0);
        self.name.as_ptr().cast()
    }

    fn check(&mut self, status: c_int) {
        self.failed |= status != raw::Status::Ok as c_int;
    }

    pub fn u64(&mut self, name: &str, v: u64) {
        let name = self.name_ptr(name.as_bytes());
        // SAFETY: a live info context and a NUL-terminated name Redis copies.
        let status = unsafe { api!(RedisModule_InfoAddFieldULongLong)(self.ctx.as_ptr(), name, v) };
        self.check(status);
    }

    pub fn i64(&mut self, name: &str, v: i64) {
        let name = self.name_ptr(name.as_bytes());
        // SAFETY: as in `u64`.
        let status = unsafe { api!(RedisModule_InfoAddFieldLongLong)(self.ctx.as_ptr(), name, v) };
        self.check(status);
    }

    /// A text field whose name and value are written by `fill` into two
    /// buffers; bytes that would break the `name:value` line format (NUL,
    /// CR, LF) are left out.
    pub fn text(&mut self, fill: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        let (mut name, mut value) = (
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.value),
        );
        name.clear();
        value.clear();
        fill(&mut name, &mut value);
        name.retain(|&b| !matches!(b, 0 | b'\r' | b'\n'));
        value.retain(|&b| !matches!(b, 0 | b'\r' | b'\n'));
        name.push(0);
        value.push(0);
        // SAFETY: a live info context and NUL-terminated strings Redis copies.
        let status = unsafe {
            api!(RedisModule_InfoAddFieldCString)(
                self.ctx.as_ptr(),
                name.as_ptr().cast(),
                value.as_ptr().cast(),
            )
        };
        self.check(status);
        (self.name, self.value) = (name, value);
    }

    /// Whether every field was written.
    pub fn ok(&self) -> bool {
        !self.failed
    }
}

/// The calling user, to check which key names it may read (`RL.TOP` lists
/// key names, so it lists only those): freed when dropped.
pub struct KeyReader<'a> {
    ctx: Ctx<'a>,
    user: NonNull<raw::RedisModuleUser>,
}

impl<'a> Ctx<'a> {
    /// The calling user's key permissions, or why they can't be checked
    /// (the server lacks the API, or names no user): then nothing may be
    /// listed.
    pub fn key_reader(self) -> Result<KeyReader<'a>, &'static str> {
        // SAFETY: Redis fills the API table once, before calling the module.
        let (Some(name_of), Some(user_of), Some(_), Some(_)) = (unsafe {
            (
                *std::ptr::addr_of!(raw::RedisModule_GetCurrentUserName),
                *std::ptr::addr_of!(raw::RedisModule_GetModuleUserFromUserName),
                *std::ptr::addr_of!(raw::RedisModule_ACLCheckKeyPermissions),
                *std::ptr::addr_of!(raw::RedisModule_FreeModuleUser),
            )
        }) else {
            return Err("this server lacks the module API to check a user's key permissions (RedisModule_ACLCheckKeyPermissions)");
        };
        // SAFETY: a live command context; the name is ours to free, and
        // the user is looked up by it (a copy Redis makes, freed on drop).
        let user = unsafe {
            let name = name_of(self.ptr());
            if name.is_null() {
                return Err("the server names no user for this call");
            }
            let user = user_of(name);
            api!(RedisModule_FreeString)(self.ptr(), name);
            user
        };
        let user = NonNull::new(user).ok_or("the calling user is unknown to the server")?;
        Ok(KeyReader { ctx: self, user })
    }
}

impl KeyReader<'_> {
    /// Whether the user may read the key `name`, under its ACL key
    /// patterns.
    pub fn may_read(&self, name: &[u8]) -> bool {
        // SAFETY: a live context and user (checked present when made); the
        // string is made here and freed after the check.
        unsafe {
            let s =
                api!(RedisModule_CreateString)(self.ctx.ptr(), name.as_ptr().cast(), name.len());
            if s.is_null() {
                return false;
            }
            let ok = api!(RedisModule_ACLCheckKeyPermissions)(
                self.user.as_ptr(),
                s,
                raw::REDISMODULE_CMD_KEY_ACCESS as c_int,
            ) == OK;
            api!(RedisModule_FreeString)(self.ctx.ptr(), s);
            ok
        }
    }
}

impl Drop for KeyReader<'_> {
    fn drop(&mut self) {
        // SAFETY: the user was made by GetModuleUserFromUserName and is
        // freed once, here.
        unsafe { api!(RedisModule_FreeModuleUser)(self.user.as_ptr()) };
    }
}

// Type callbacks: the handles Redis passes the data type's and the aux
// data's callbacks, each valid for the callback that received it.

/// An RDB being saved or loaded (also a `DUMP`/`RESTORE` payload).
pub struct Rdb<'a> {
    raw: NonNull<raw::RedisModuleIO>,
    _callback: PhantomData<&'a raw::RedisModuleIO>,
}

impl<'a> Rdb<'a> {
    /// # Safety
    /// `rdb` must be what Redis passed to an RDB callback, and the result
    /// must not outlive that call.
    #[inline]
    pub unsafe fn callback(rdb: *mut raw::RedisModuleIO) -> Option<Rdb<'a>> {
        Some(Rdb {
            raw: NonNull::new(rdb)?,
            _callback: PhantomData,
        })
    }

    /// Writes `bytes` as one string.
    #[inline]
    pub fn save(&self, bytes: &[u8]) {
        // A live IO handle (see `callback`); Redis copies the bytes.
        raw::save_slice(self.raw.as_ptr(), bytes);
    }

    /// Reads one string; `None` if the file is cut short or unreadable
    /// (the module handles IO errors, so this returns rather than aborts).
    #[inline]
    pub fn load(&self) -> Option<impl AsRef<[u8]>> {
        raw::load_string_buffer(self.raw.as_ptr()).ok()
    }
}

/// An AOF rewrite, writing the commands that recreate one key.
pub struct Aof<'a> {
    raw: NonNull<raw::RedisModuleIO>,
    _callback: PhantomData<&'a raw::RedisModuleIO>,
}

impl<'a> Aof<'a> {
    /// The rewrite and the name of the key it is at.
    ///
    /// # Safety
    /// `aof` and `key` must be what Redis passed to an AOF rewrite
    /// callback, and the results must not outlive that call.
    #[inline]
    pub unsafe fn callback(
        aof: *mut raw::RedisModuleIO,
        key: *mut raw::RedisModuleString,
    ) -> Option<(Aof<'a>, RStr<'a>)> {
        Some((
            Aof {
                raw: NonNull::new(aof)?,
                _callback: PhantomData,
            },
            RStr {
                raw: NonNull::new(key)?,
                _callback: PhantomData,
            },
        ))
    }

    /// Emits `cmd key n blob`.
    pub fn emit(&self, cmd: &CStr, key: RStr<'a>, n: i64, blob: &[u8]) {
        // SAFETY: a live IO handle and key (see `callback`); "slb" takes a
        // RedisModuleString, a long long and a buffer with its length,
        // which Redis copies.
        unsafe {
            api!(RedisModule_EmitAOF)(
                self.raw.as_ptr(),
                cmd.as_ptr(),
                c"slb".as_ptr(),
                key.ptr(),
                n as c_longlong,
                blob.as_ptr(),
                blob.len(),
            );
        }
    }
}

/// A `DEBUG DIGEST` in progress.
pub struct Digest<'a> {
    raw: NonNull<raw::RedisModuleDigest>,
    _callback: PhantomData<&'a raw::RedisModuleDigest>,
}

impl<'a> Digest<'a> {
    /// # Safety
    /// `md` must be what Redis passed to a digest callback, and the result
    /// must not outlive that call.
    #[inline]
    pub unsafe fn callback(md: *mut raw::RedisModuleDigest) -> Option<Digest<'a>> {
        Some(Digest {
            raw: NonNull::new(md)?,
            _callback: PhantomData,
        })
    }

    /// Adds `bytes` as one element, then ends the value's sequence.
    pub fn add_sequence(&mut self, bytes: &[u8]) {
        // SAFETY: a live digest handle (see `callback`); Redis reads
        // `bytes.len()` bytes and keeps none.
        unsafe {
            api!(RedisModule_DigestAddStringBuffer)(
                self.raw.as_ptr(),
                bytes.as_ptr().cast(),
                bytes.len(),
            );
            api!(RedisModule_DigestEndSequence)(self.raw.as_ptr());
        }
    }
}

// Load time: what the module's `init` calls, with the load-time context.

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
pub struct Command(NonNull<raw::RedisModuleCommand>);

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
unsafe impl std::alloc::GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use redis_module::alloc::RedisAlloc;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.alloc(layout)
            } else {
                std::alloc::System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        use redis_module::alloc::RedisAlloc;
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if in_redis() {
                RedisAlloc.dealloc(ptr, layout)
            } else {
                std::alloc::System.dealloc(ptr, layout)
            }
        }
    }
}
