//! The module's `INFO` section, written field by field: its own writer
//! because the `redis-module` crate's builder made the section quadratic
//! in the number of policies.

use std::ffi::{c_char, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

use redis_module::raw;

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
