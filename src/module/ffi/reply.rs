//! Replies, written straight through the module API: the hot path's one
//! output, kept apart from the context's other calls because every command
//! handler uses them and nothing else here does.

use std::ffi::{c_long, CStr};

use redis_module::raw;

use crate::algo::saturating_i64;

use super::Ctx;

impl Ctx<'_> {
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
}
