//! The server's named policies: the registry `RL.POLICY` and `RL.CHECK`
//! (in `policies.rs`) and `RL.ALL ... POLICY` read, its place in the
//! RDB (aux data), and its counters in `INFO ratelimit`.
//!
//! Policies are server state, not keys. `RL.POLICY SET` and `DEL` are
//! replicated verbatim (to replicas and the AOF), and the whole set is
//! saved with every RDB (before the keys), so a full sync, a restart and
//! `DEBUG RELOAD` all bring it back. An AOF rewrite without an RDB
//! preamble has no place for them in its base, so each rewrite is followed
//! by the whole set as `RL.POLICY SET` commands in the AOF alone (see
//! [`on_fork`]). When the server starts loading (an RDB, an AOF or a
//! master's payload) the set is emptied first, so what is loaded replaces
//! it rather than adding to it. On a cluster, each master holds its own set
//! (as with Redis Functions): set them on every master.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis_module::raw;

use super::ffi::{self, Ctx, InfoWriter};
use super::stats::Counters;
use crate::codec;
use crate::policy::{Policies, Policy};

/// A policy and its traffic since the server started (or since it was
/// first defined; replacing a definition keeps its counters).
pub(super) struct Entry {
    pub(super) policy: Policy,
    /// Shared, so a call counts without looking the policy up again.
    pub(super) counters: Arc<Counters>,
}

/// Only the main thread runs commands and loads data; the lock is never
/// contended and just avoids `static mut`.
static REGISTRY: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

pub(super) fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Entry>> {
    // A panic while holding the lock (a bug) must not disable policies.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The parameters of policy `name`, for `RL.ALL ... POLICY name`.
pub fn resolve(name: &[u8]) -> Option<Policy> {
    let name = std::str::from_utf8(name).ok()?;
    registry().get(name).map(|e| e.policy)
}

/// The parameters of policy `name` and its counters: a call that counts
/// through them looks the policy up once (`RL.ALL ... POLICY name`).
pub fn resolve_counted(name: &[u8]) -> Option<(Policy, Arc<Counters>)> {
    let name = std::str::from_utf8(name).ok()?;
    registry()
        .get(name)
        .map(|e| (e.policy, Arc::clone(&e.counters)))
}

fn snapshot() -> Policies {
    registry()
        .iter()
        .map(|(name, e)| (name.clone(), e.policy))
        .collect()
}

/// Replaces the whole set (loading), keeping the counters of names kept.
fn replace_all(policies: Policies) {
    let mut reg = registry();
    let mut old = std::mem::take(&mut *reg);
    for (name, policy) in policies {
        let counters = old
            .remove(&name)
            .map_or_else(|| Arc::new(Counters::new()), |e| e.counters);
        reg.insert(name, Entry { policy, counters });
    }
}

/// `INFO ratelimit`: how many policies, and each one's counters as one
/// field (`policy_<i>:name=free,calls=..,allowed=..,denied=..,shadow_denied=..`);
/// names may hold `:` and `.`, so they go in the value, not the field name.
/// One append per policy, nothing allocated per policy.
pub fn write_info(w: &mut InfoWriter) {
    use std::io::Write;
    let reg = registry();
    w.u64("policies", reg.len() as u64);
    for (i, (name, e)) in reg.iter().enumerate() {
        w.text(|field, value| {
            // Writes to a Vec can't fail.
            let _ = write!(field, "policy_{i}");
            let _ = write!(value, "name={name}");
            for (label, n) in e.counters.snapshot() {
                let _ = write!(value, ",{label}={n}");
            }
        });
    }
}

/// Saves the policies with the RDB, before the keys.
///
/// # Safety
/// Called by Redis with a live IO handle.
pub unsafe extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if when != raw::REDISMODULE_AUX_BEFORE_RDB as c_int {
        return;
    }
    // SAFETY: the IO handle Redis passed to this callback, used only in it.
    if let Some(rdb) = unsafe { ffi::Rdb::callback(rdb) } {
        rdb.save(&codec::encode_policies(&snapshot()));
    }
}

/// Loads the policies an RDB holds; a record that fails to decode fails
/// the load (with the reason in the log) rather than lose them silently.
///
/// # Safety
/// Called by Redis with a live IO handle.
pub unsafe extern "C" fn aux_load(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
    when: c_int,
) -> c_int {
    if when != raw::REDISMODULE_AUX_BEFORE_RDB as c_int {
        return raw::Status::Ok as c_int;
    }
    if encver > codec::ENCODING_VERSION {
        let e = codec::DecodeError::UnsupportedVersion(encver);
        ffi::log_warning(&format!("refusing to load the policies: {e}"));
        return raw::Status::Err as c_int;
    }
    // SAFETY: the IO handle Redis passed to this callback, used only in it.
    let Some(buffer) = unsafe { ffi::Rdb::callback(rdb) }.and_then(|rdb| rdb.load()) else {
        return raw::Status::Err as c_int;
    };
    match codec::decode_policies(buffer.as_ref()) {
        Ok(p) => {
            replace_all(p);
            raw::Status::Ok as c_int
        }
        Err(e) => {
            ffi::log_warning(&format!("refusing to load the policies: {e}"));
            raw::Status::Err as c_int
        }
    }
}

unsafe extern "C" fn on_loading(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    let starts = [
        raw::REDISMODULE_SUBEVENT_LOADING_RDB_START,
        raw::REDISMODULE_SUBEVENT_LOADING_AOF_START,
        raw::REDISMODULE_SUBEVENT_LOADING_REPL_START,
    ];
    if starts.contains(&subevent) {
        replace_all(Policies::new());
    }
}

/// Whether a timer is armed to write the set into the AOF.
static RESTATE_ARMED: AtomicBool = AtomicBool::new(false);

/// An AOF rewrite's base holds the policies only in its RDB preamble
/// (`aof-use-rdb-preamble yes`); without one it holds just the keys'
/// commands. So whenever a rewrite starts, the whole set is written into
/// the AOF again, as `RL.POLICY SET` commands: Redis opens the new
/// incremental file before it forks, so they land after the new base.
unsafe extern "C" fn on_fork(
    ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    // BORN fires in the parent, after the server has recorded what the
    // child is for.
    if subevent != raw::REDISMODULE_SUBEVENT_FORK_CHILD_BORN {
        return;
    }
    // SAFETY: the context Redis passed to this callback, used only in it.
    let Some(ctx) = (unsafe { Ctx::callback(ctx) }) else {
        return;
    };
    // An RDB (BGSAVE, a full sync) carries the set as aux data. A server
    // without this field gets the set written anyway: only redundant.
    if ctx.info_i64(c"persistence", c"aof_rewrite_in_progress") == Some(0) {
        return;
    }
    // Not from here: this event can fire inside a command (BGREWRITEAOF,
    // CONFIG SET appendonly yes), and anything propagated during a command
    // makes the server propagate that command too, which would put
    // BGREWRITEAOF in the AOF (replayed at load, it starts a rewrite) and
    // send it to replicas. Writing the set a moment later is as right:
    // the set as it is then, after whatever changed it since the fork
    // (those changes are in the new file too).
    arm(ctx, 0);
}

fn arm(ctx: Ctx, ms: i64) {
    if !RESTATE_ARMED.swap(true, Ordering::Relaxed) {
        ctx.timer(ms, restate);
    }
}

/// How long to wait before trying again while writes are paused.
const PAUSED_RETRY_MS: i64 = 100;

/// Whether the set is waiting for a pause to end (logged once per pause).
static WAITED_FOR_PAUSE: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn restate(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    RESTATE_ARMED.store(false, Ordering::Relaxed);
    // SAFETY: the context Redis passed to this callback, used only in it.
    let Some(ctx) = (unsafe { Ctx::callback(ctx) }) else {
        return;
    };
    // The AOF may have been turned off since: nothing to write to.
    if ctx.flags() & raw::REDISMODULE_CTX_FLAGS_AOF as c_int == 0 {
        WAITED_FOR_PAUSE.store(false, Ordering::Relaxed);
        return;
    }
    // During CLIENT PAUSE WRITE or a FAILOVER the server must not
    // propagate anything (it asserts so, and would crash). Writing the set
    // when the pause ends is as right, for the reason given in `on_fork`.
    if ffi::writes_paused() {
        if !WAITED_FOR_PAUSE.swap(true, Ordering::Relaxed) {
            ffi::log_notice(
                "an AOF rewrite started while writes are paused: the policies will be written to the AOF when the pause ends",
            );
        }
        arm(ctx, PAUSED_RETRY_MS);
        return;
    }
    if WAITED_FOR_PAUSE.swap(false, Ordering::Relaxed) {
        ffi::log_notice("writes resumed: the policies are written to the AOF");
    }
    for (name, policy) in snapshot() {
        let words = policy.definition();
        let mut args: Vec<&[u8]> = vec![b"SET", name.as_bytes()];
        args.extend(words.iter().map(|w| w.as_bytes()));
        ctx.replicate_to_aof(c"RL.POLICY", &args);
    }
}

/// Empties the set whenever loading starts (see the module docs), and
/// writes it into the AOF whenever a rewrite starts.
pub fn init(ctx: &redis_module::Context) -> bool {
    ffi::subscribe(ctx, raw::REDISMODULE_EVENT_LOADING, on_loading)
        && ffi::subscribe(ctx, raw::REDISMODULE_EVENT_FORK_CHILD, on_fork)
}
