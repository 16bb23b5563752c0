//! The `ratelimit` native data type: how a limiter is held as a Redis value,
//! and its callbacks (RDB, AOF rewrite, digest, memory, copy, free).
//!
//! A value is one allocation of exactly the algorithm's state (48 bytes for a
//! bucket), with the algorithm in the pointer's low bits: states are 8-byte
//! aligned, so those bits are free, and no separate tag word is needed.
//!
//! Every callback goes through [`crate::codec`], so RDB files, `DUMP`
//! payloads, AOF rewrites and digests all share one strictly validated
//! encoding.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;

use super::ffi::{self, ModuleValue};
use super::stats;
use crate::algo::limiter::STATE_ALIGN;
use crate::algo::{Algorithm, Blocked, LeaseState, Limiter, Value};
use crate::codec;

/// A key opened for writing, holding a [`Value`].
pub type WriteKey<'a> = ffi::WriteKey<'a, Value>;

/// The type's callbacks. The aux callbacks (server data saved with every
/// RDB, before the keys) are the caller's: the top of the module wires the
/// policy registry's, so the data type knows nothing of policies.
pub const fn methods(
    aux_load: raw::RedisModuleTypeAuxLoadFunc,
    aux_save: raw::RedisModuleTypeAuxSaveFunc,
) -> raw::RedisModuleTypeMethods {
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load,
        aux_save,
        aux_save2: None,
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    }
}

/// The command an AOF rewrite emits to recreate a key:
/// `RL.SETSTATE key encoding-version blob`.
pub const SETSTATE: &CStr = c"RL.SETSTATE";

/// The type Redis registered (null until [`registered`]).
static RAW_TYPE: AtomicPtr<raw::RedisModuleType> = AtomicPtr::new(std::ptr::null_mut());

/// Records the type Redis registered, before any key is opened.
pub fn registered(t: *mut raw::RedisModuleType) {
    RAW_TYPE.store(t, Ordering::Relaxed);
}

// SAFETY: `take` undoes `into_raw` (see both), and every value stored is one
// of this type, registered under `RAW_TYPE`.
unsafe impl ModuleValue for Value {
    fn raw_type() -> *mut raw::RedisModuleType {
        RAW_TYPE.load(Ordering::Relaxed)
    }

    fn into_raw(self) -> ffi::RawValue {
        into_raw(self)
    }

    unsafe fn take(raw: ffi::RawValue) -> Self {
        // SAFETY: the caller's contract.
        unsafe { take(raw) }
    }

    fn stored() {
        stats::key_created();
    }
}

/// Low pointer bits that hold the algorithm (0 to 5), [`BLOCKED`] or
/// [`LEASES`].
const TAG_MASK: usize = 0b111;

/// The tag of a limiter in the penalty box: the pointer is a `Blocked`.
const BLOCKED: usize = 6;

/// The tag of concurrency leases: the pointer is a `LeaseState`.
const LEASES: usize = 7;

const _: () = {
    // The tag needs the states' alignment to leave those bits free.
    assert!(STATE_ALIGN > TAG_MASK);
    assert!(align_of::<Blocked>() > TAG_MASK);
    assert!(align_of::<LeaseState>() > TAG_MASK);
    assert!(Algorithm::ALL.len() <= BLOCKED);
};

/// Hands a value over to Redis.
pub fn into_raw(value: Value) -> ffi::RawValue {
    match value {
        Value::Limiter(l) => {
            let (algo, ptr) = l.into_raw();
            ptr.map_addr(|a| a | algo.index()).cast()
        }
        Value::Blocked(b) => Box::into_raw(b).map_addr(|a| a | BLOCKED).cast(),
        Value::Leases(l) => Box::into_raw(l).map_addr(|a| a | LEASES).cast(),
    }
}

/// Takes a value back: the caller owns it again.
///
/// # Safety
/// `value` must come from [`into_raw`] and not have been taken back yet;
/// the caller then owns it (Redis must not use it again), unless it is
/// wrapped in `ManuallyDrop` as [`ffi::view`] does.
pub unsafe fn take(value: ffi::RawValue) -> Value {
    let tag = value.addr() & TAG_MASK;
    let ptr = value.map_addr(|a| a & !TAG_MASK);
    // SAFETY: `into_raw` stored the tag in the low bits of a pointer from
    // `Limiter::into_raw` of that algorithm, or from `Box::into_raw` of a
    // `Blocked` or a `LeaseState` (caller's contract).
    unsafe {
        match Algorithm::ALL.get(tag) {
            Some(&algo) => Value::Limiter(Limiter::from_raw(algo, ptr.cast())),
            None if tag == BLOCKED => Value::Blocked(Box::from_raw(ptr.cast())),
            None if tag == LEASES => Value::Leases(Box::from_raw(ptr.cast())),
            // `into_raw` never writes another tag.
            None => unreachable!("ratelimit value with tag {tag}"),
        }
    }
}

/// Runs `f` on the limiter behind a value a callback received.
///
/// # Safety
/// `value` must be a live value of this type, not used mutably elsewhere
/// during the call.
unsafe fn with<R>(value: *const c_void, f: impl FnOnce(&Value) -> R) -> R {
    // SAFETY: the caller's contract.
    let l = unsafe { ffi::view::<Value>(value.cast_mut()) };
    f(&l)
}

// The callbacks below keep the `unsafe extern "C"` signatures Redis calls;
// every module API call in them goes through `ffi`'s handles.

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    // SAFETY: Redis passes a live IO handle, used only during this call.
    let Some(rdb) = (unsafe { ffi::Rdb::callback(rdb) }) else {
        return std::ptr::null_mut();
    };
    let Some(buffer) = rdb.load() else {
        return std::ptr::null_mut();
    };
    match codec::decode_value(buffer.as_ref(), encver) {
        Ok(l) => {
            stats::key_created();
            into_raw(l)
        }
        Err(e) => {
            ffi::log_warning(&format!("refusing to load a value: {e}"));
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: Redis passes a live IO handle, used only during this call.
    let Some(rdb) = (unsafe { ffi::Rdb::callback(rdb) }) else {
        return;
    };
    // SAFETY: Redis passes a live value of this type.
    unsafe { with(value, |l| rdb.save(&codec::encode_value(l))) };
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    // SAFETY: Redis passes a live IO handle and key, used only during this
    // call.
    let Some((aof, key)) = (unsafe { ffi::Aof::callback(aof, key) }) else {
        return;
    };
    // SAFETY: Redis passes a live value of this type.
    let blob = unsafe { with(value, codec::encode_value) };
    aof.emit(SETSTATE, key, codec::ENCODING_VERSION.into(), &blob);
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis passes a live value of this type.
    unsafe { with(value, Value::memory) }
}

unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    // SAFETY: Redis passes a live digest handle, used only during this call.
    let Some(mut md) = (unsafe { ffi::Digest::callback(md) }) else {
        return;
    };
    // SAFETY: Redis passes a live value of this type.
    let blob = unsafe { with(value, codec::encode_value) };
    md.add_sequence(&blob);
}

unsafe extern "C" fn free(value: *mut c_void) {
    // SAFETY: Redis hands back a value of this type it no longer uses.
    drop(unsafe { take(value) });
    stats::key_freed();
}

unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    // SAFETY: Redis passes a live value of this type.
    let l = unsafe { with(value, Value::clone) };
    stats::key_created();
    into_raw(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::testing::every_algorithm;
    use crate::algo::{BucketParams, Instant, WindowParams};

    #[test]
    fn a_value_round_trips_through_its_tagged_pointer() {
        let w = WindowParams::new(3, 1000).unwrap();
        let b = BucketParams::new(3, 1, 1000).unwrap();
        for params in every_algorithm(w, b) {
            let mut l = Limiter::new(&params);
            l.decide(&params, 2, Instant::from_micros(5)).unwrap();
            let blocked = Value::Blocked(Box::new(Blocked {
                until: Instant::from_micros(99),
                limiter: l.clone(),
            }));
            for value in [Value::Limiter(l.clone()), blocked] {
                let raw = into_raw(value.clone());
                // SAFETY: made by `into_raw` just above, taken back once.
                let mut v = unsafe { ffi::view::<Value>(raw) };
                assert_eq!(*v, value);
                v.limiter_mut()
                    .unwrap()
                    .decide(&params, 1, Instant::from_micros(6))
                    .unwrap();
                // SAFETY: as above; this takes ownership back for good.
                let back = unsafe { take(raw) };
                assert_eq!(back, *v);
                assert_ne!(back, value);
                assert_eq!(back.block(), value.block());
            }
        }
    }
}
