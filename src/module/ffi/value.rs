//! The values keys hold, as this layer sees them: a pointer Redis owns
//! between calls. Apart from the keys because the type callbacks turn the
//! same pointer back into Rust under the same contract.

use std::ffi::c_void;
use std::mem::ManuallyDrop;

use redis_module::raw;

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

/// Opaque pointer type of Redis values, re-exported for the data type.
pub type RawValue = *mut c_void;
