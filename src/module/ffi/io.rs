//! Type callbacks: the handles Redis passes the data type's and the aux
//! data's callbacks (RDB, AOF rewrite, digest), each valid for the callback
//! that received it. Apart from the command context because these run
//! outside any command, from saving, loading and rewriting.

use std::ffi::{c_longlong, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use redis_module::raw;

use super::RStr;

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
