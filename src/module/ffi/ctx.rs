//! A callback's context and a command's arguments: every other handle of
//! this layer borrows their lifetime, so it is decided here once. The
//! context's own calls (server info, propagation, keyspace events, timers,
//! getkeys-api) stay with it; replies and keys have files of their own.

use std::ffi::{c_int, c_longlong, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use redis_module::raw;

/// A command's context; valid for the callback that received it.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub(super) raw: NonNull<raw::RedisModuleCtx>,
    pub(super) _callback: PhantomData<&'a raw::RedisModuleCtx>,
}

/// A Redis string argument of the current command.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct RStr<'a> {
    pub(super) raw: NonNull<raw::RedisModuleString>,
    pub(super) _callback: PhantomData<&'a raw::RedisModuleString>,
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

    pub(super) fn ptr(self) -> *mut raw::RedisModuleString {
        self.raw.as_ptr()
    }
}

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

    pub(super) fn ptr(self) -> *mut raw::RedisModuleCtx {
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
        // Up to 8 keys, each is passed as an argument of its own ("s") and
        // numkeys as a C string ("c"): a vector ("v") makes Redis grow the
        // argument array it has just allocated, and a long long ("l") takes
        // two allocations where a C string of a digit takes one. About 500
        // instructions of an RL.ALL of 4; the stream is the same bytes.
        macro_rules! by_keys {
            ($($n:literal => $fmt:literal, $count:literal, [$($i:literal),+];)+) => {
                match keys.len() {
                    $(
                        $n => {
                            // SAFETY: a live context; the format has a "c"
                            // for the NUL-terminated count, an "s" for each
                            // key (a live RedisModuleString) and a "b" for
                            // the buffer with its length, which Redis copies.
                            unsafe {
                                api!(RedisModule_Replicate)(
                                    self.ptr(),
                                    cmd.as_ptr(),
                                    $fmt.as_ptr(),
                                    $count.as_ptr(),
                                    $(keys[$i].ptr(),)+
                                    blob.as_ptr(),
                                    blob.len(),
                                );
                            }
                            return;
                        }
                    )+
                    _ => {}
                }
            };
        }
        by_keys! {
            1 => c"csb", c"1", [0];
            2 => c"cssb", c"2", [0, 1];
            3 => c"csssb", c"3", [0, 1, 2];
            4 => c"cssssb", c"4", [0, 1, 2, 3];
            5 => c"csssssb", c"5", [0, 1, 2, 3, 4];
            6 => c"cssssssb", c"6", [0, 1, 2, 3, 4, 5];
            7 => c"csssssssb", c"7", [0, 1, 2, 3, 4, 5, 6];
            8 => c"cssssssssb", c"8", [0, 1, 2, 3, 4, 5, 6, 7];
        }
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

/// What Redis calls when a timer fires.
pub type TimerCallback = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut c_void);
