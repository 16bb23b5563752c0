//! The few raw Redis module API calls the hot path needs, wrapped once.
//!
//! The command handlers use the API directly rather than the crate's
//! high-level `Context`: that saves an allocation per argument and per reply
//! on a path whose whole budget is about one `INCR`.

use std::ffi::{c_int, c_void, CStr};
use std::ptr::NonNull;

use redis_module::raw;

pub type Ctx = *mut raw::RedisModuleCtx;
pub type RString = *mut raw::RedisModuleString;

/// Bytes of a Redis string; valid while the string is (for the duration of
/// the command for arguments).
///
/// # Safety
/// `s` must be a live `RedisModuleString`.
pub unsafe fn bytes<'a>(s: RString) -> &'a [u8] {
    let mut len = 0usize;
    let p = raw::RedisModule_StringPtrLen.unwrap()(s, &mut len);
    if p.is_null() || len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(p.cast::<u8>(), len)
}

pub fn context_flags(ctx: Ctx) -> c_int {
    unsafe { raw::RedisModule_GetContextFlags.unwrap()(ctx) }
}

pub fn reply_error(ctx: Ctx, msg: &str) -> c_int {
    // Messages are built from our own text and printable client bytes, so
    // they hold no NUL; fall back to a fixed text rather than panic.
    let c = std::ffi::CString::new(msg).unwrap_or_else(|_| c"ERR invalid argument".to_owned());
    unsafe { raw::RedisModule_ReplyWithError.unwrap()(ctx, c.as_ptr()) }
}

pub fn reply_error_static(ctx: Ctx, msg: &CStr) -> c_int {
    unsafe { raw::RedisModule_ReplyWithError.unwrap()(ctx, msg.as_ptr()) }
}

pub fn reply_i64(ctx: Ctx, v: i64) {
    unsafe {
        raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, v);
    }
}

pub fn reply_array(ctx: Ctx, len: usize) {
    unsafe {
        raw::RedisModule_ReplyWithArray.unwrap()(ctx, len as _);
    }
}

pub fn reply_map(ctx: Ctx, len: usize) {
    unsafe {
        raw::RedisModule_ReplyWithMap.unwrap()(ctx, len as _);
    }
}

pub fn reply_bool(ctx: Ctx, v: bool) {
    unsafe {
        raw::RedisModule_ReplyWithBool.unwrap()(ctx, v as c_int);
    }
}

pub fn reply_simple(ctx: Ctx, s: &CStr) {
    unsafe {
        raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, s.as_ptr());
    }
}

pub fn reply_bulk(ctx: Ctx, s: &[u8]) {
    unsafe {
        raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, s.as_ptr().cast(), s.len());
    }
}

pub fn reply_ok(ctx: Ctx) -> c_int {
    reply_simple(ctx, c"OK");
    raw::Status::Ok as c_int
}

/// What an opened key holds.
pub enum Holding<T> {
    Nothing,
    Ours(NonNull<T>),
    Other,
}

/// An open key, closed when dropped (also while unwinding from a panic).
pub struct Key(*mut raw::RedisModuleKey);

impl Key {
    pub fn open(ctx: Ctx, name: RString, write: bool) -> Key {
        let mode = if write {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        Key(unsafe { raw::RedisModule_OpenKey.unwrap()(ctx, name, mode as c_int).cast() })
    }

    pub fn holding<T>(&self, ty: *mut raw::RedisModuleType) -> Holding<T> {
        // A read-only open of a missing key gives no handle at all.
        if self.0.is_null() {
            return Holding::Nothing;
        }
        unsafe {
            let kind = raw::RedisModule_KeyType.unwrap()(self.0);
            if kind == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
                return Holding::Nothing;
            }
            if kind != raw::REDISMODULE_KEYTYPE_MODULE as c_int
                || raw::RedisModule_ModuleTypeGetType.unwrap()(self.0) != ty
            {
                return Holding::Other;
            }
            match NonNull::new(raw::RedisModule_ModuleTypeGetValue.unwrap()(self.0).cast::<T>()) {
                Some(p) => Holding::Ours(p),
                None => Holding::Other,
            }
        }
    }

    /// Stores `value` (boxed, owned by Redis from now on) in the key.
    pub fn set_value<T>(&self, ty: *mut raw::RedisModuleType, value: Box<T>) -> bool {
        let p = Box::into_raw(value).cast::<c_void>();
        let status = unsafe { raw::RedisModule_ModuleTypeSetValue.unwrap()(self.0, ty, p) };
        if status != raw::Status::Ok as c_int {
            // Redis did not take it: reclaim it.
            drop(unsafe { Box::from_raw(p.cast::<T>()) });
            return false;
        }
        true
    }

    /// Sets the key's expiry to the absolute Unix time `at_ms`. Redis 7.2+
    /// takes it as is. On 7.0 only a relative TTL exists, which Redis adds to
    /// its own clock reading; reading the same clock just before and just
    /// after, and redoing the rare call during which the millisecond ticked,
    /// makes the stored time exactly `at_ms`, so master, replicas and reloads
    /// agree to the millisecond.
    pub fn expire_at(&self, at_ms: i64) {
        unsafe {
            if let Some(set_abs) = raw::RedisModule_SetAbsExpire {
                set_abs(self.0, at_ms);
                return;
            }
            let set = raw::RedisModule_SetExpire.unwrap();
            for _ in 0..8 {
                let before = super::clock::wall_now_ms();
                set(self.0, (at_ms - before).max(1));
                if super::clock::wall_now_ms() == before {
                    return;
                }
            }
        }
    }

    /// Remaining time to live in ms, or `None` without an expiry.
    pub fn ttl_ms(&self) -> Option<i64> {
        if self.0.is_null() {
            return None;
        }
        let ttl = unsafe { raw::RedisModule_GetExpire.unwrap()(self.0) };
        (ttl >= 0).then_some(ttl)
    }

    pub fn signal_modified(&self, ctx: Ctx, name: RString) {
        unsafe {
            raw::RedisModule_SignalModifiedKey.unwrap()(ctx, name);
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { raw::RedisModule_CloseKey.unwrap()(self.0) }
        }
    }
}

/// Propagates `cmd key blob` to replicas and the AOF instead of the command
/// that ran.
pub fn replicate(ctx: Ctx, cmd: &CStr, key: RString, blob: &[u8]) {
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx,
            cmd.as_ptr(),
            c"sb".as_ptr(),
            key,
            blob.as_ptr(),
            blob.len(),
        );
    }
}

pub fn replicate_verbatim(ctx: Ctx) {
    unsafe {
        raw::RedisModule_ReplicateVerbatim.unwrap()(ctx);
    }
}

pub fn log_warning(ctx: Ctx, msg: &str) {
    raw::redis_log(ctx, msg);
}

/// Fires a keyspace event of the module class (`notify-keyspace-events` flag
/// `d`); costs next to nothing when notifications are off.
pub fn notify(ctx: Ctx, event: &CStr, key: RString) {
    unsafe {
        raw::RedisModule_NotifyKeyspaceEvent.unwrap()(
            ctx,
            raw::REDISMODULE_NOTIFY_MODULE,
            event.as_ptr(),
            key,
        );
    }
}

pub fn reply_null(ctx: Ctx) -> c_int {
    unsafe { raw::RedisModule_ReplyWithNull.unwrap()(ctx) }
}
