//! Argument parsing for the `RL.*` commands: raw bytes in, typed request or
//! a precise error message out. Pure Rust (no Redis types), so it is unit
//! tested and fuzzed directly.
//!
//! One file per job, all re-exported here, so callers (the module, fuzz
//! targets, benches) name everything `args::...` as if this were one file:
//! `error` (messages and how client bytes are shown), `number` (counts and
//! durations), `params` (an algorithm's parameters and their bounds),
//! `options` (the trailing options), `limit` (`ALGO params` or `POLICY
//! name`), then each command family's requests: `decide`, `policy`,
//! `lease`, `top`, and `module_args` for `loadmodule`.

mod decide;
mod error;
mod lease;
mod limit;
mod module_args;
mod number;
mod options;
mod params;
mod policy;
mod top;

pub use decide::{
    all_request, all_request_into, peek_request, refund_request, request, throttle_request, Mode,
    ALL_MAX_KEYS,
};
pub(crate) use decide::{AllRequest, Request};
use error::shown_or_empty;
pub use error::ArgError;
pub(crate) use error::{arity_error, shown};
pub(crate) use lease::lease_id;
pub use lease::{acquire_request, release_request, renew_request, Acquire, DEFAULT_LEASE_MAX};
pub use module_args::module_args;
pub(crate) use number::{count, duration};
use number::{duration_or, integer, positive};
pub(crate) use options::{options, Opt, Options, ALL_OPTIONS, DECIDE_OPTIONS};
use params::burst;
pub(crate) use params::{param_count, policy_within, spec};
pub use params::{Limits, DEFAULT_LOG_MAX};
pub use policy::{check_options, policy_name, policy_set};
pub(crate) use policy::{no_such_policy, Resolve};
pub use top::{top_request, Top};

/// An error's reply text, for the children's tests.
#[cfg(test)]
fn err(r: Result<impl std::fmt::Debug, ArgError>) -> String {
    format!("ERR {}", r.expect_err("expected an error"))
}
