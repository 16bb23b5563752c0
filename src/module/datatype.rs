//! The `ratelimit` native data type: RDB, AOF rewrite, digest, memory, copy.
//!
//! Every callback goes through [`crate::codec`], so RDB files, `DUMP`
//! payloads, AOF rewrites and digests all share one strictly validated
//! encoding.

use std::ffi::{c_int, c_void};

use redis_module::native_types::RedisType;
use redis_module::raw;

use crate::algo::Limiter;
use crate::codec;

pub static RATELIMIT_TYPE: RedisType = RedisType::new(
    "ratelimit",
    codec::ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// The command an AOF rewrite emits to recreate a key:
/// `RL.SETSTATE key encoding-version blob`.
pub const SETSTATE: &std::ffi::CStr = c"RL.SETSTATE";

pub fn raw_type() -> *mut raw::RedisModuleType {
    *RATELIMIT_TYPE.raw_type.borrow()
}

/// # Safety
/// `value` must be a pointer this module stored as a value of this type.
unsafe fn limiter<'a>(value: *mut c_void) -> &'a Limiter {
    &*value.cast::<Limiter>()
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    let buffer = match raw::load_string_buffer(rdb) {
        Ok(b) => b,
        Err(_) => return std::ptr::null_mut(),
    };
    match codec::decode(buffer.as_ref(), encver) {
        Ok(l) => {
            super::stats::key_created();
            Box::into_raw(Box::new(l)).cast()
        }
        Err(e) => {
            let ctx = raw::RedisModule_GetContextFromIO.map_or(std::ptr::null_mut(), |f| f(rdb));
            raw::redis_log(ctx, &format!("ratelimit: refusing to load a value: {e}"));
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    raw::save_slice(rdb, &codec::encode(limiter(value)));
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    let blob = codec::encode(limiter(value));
    raw::RedisModule_EmitAOF.unwrap()(
        aof,
        SETSTATE.as_ptr(),
        c"slb".as_ptr(),
        key,
        codec::ENCODING_VERSION as std::ffi::c_longlong,
        blob.as_ptr(),
        blob.len(),
    );
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    let l = &*value.cast::<Limiter>();
    std::mem::size_of::<Limiter>() + l.heap_size()
}

unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    let mut blob = codec::encode(limiter(value));
    raw::RedisModule_DigestAddStringBuffer.unwrap()(md, blob.as_mut_ptr().cast(), blob.len());
    raw::RedisModule_DigestEndSequence.unwrap()(md);
}

unsafe extern "C" fn free(value: *mut c_void) {
    drop(Box::from_raw(value.cast::<Limiter>()));
    super::stats::key_freed();
}

unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    let l = &*value.cast::<Limiter>();
    super::stats::key_created();
    Box::into_raw(Box::new(l.clone())).cast()
}
