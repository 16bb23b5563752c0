//! Open keys, generic over the value they hold: the only place a key's
//! value is viewed in place or replaced, so the rules for when a view of a
//! value Redis owns stays valid are kept in one file.

use std::ffi::c_int;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use redis_module::raw;

use crate::algo::{saturating_i64, UnixMs};

use super::{view, Ctx, ModuleValue, RStr, OK};

/// A key holds a value of another type.
pub struct WrongType;

/// Redis refused to store a value in a key.
pub struct NotStored;

impl<'a> Ctx<'a> {
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
