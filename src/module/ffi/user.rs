//! The calling user's ACL key permissions (`RL.TOP` lists only the key
//! names its caller may read): optional API, looked up at call time, so a
//! server without it refuses the listing rather than failing to load.

use std::ffi::c_int;
use std::ptr::NonNull;

use redis_module::raw;

use super::{Ctx, OK};

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
