//! `ratelimit`: native rate-limiting commands for Redis.
//!
//! - [`algo`]: the algorithms, pure Rust, no Redis types;
//! - [`args`]: command-line parsing, pure Rust;
//! - [`codec`]: binary encodings of the state and of replicated operations;
//! - [`policy`]: named server-side policies, pure Rust;
//! - [`top`]: the heavy hitters of denials `RL.TOP` lists, pure Rust;
//! - [`module`]: the thin Redis layer (commands, data type, clock, replies).

// Every `unsafe` block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod algo;
pub mod args;
pub mod codec;
// Loaded by Redis, not linked against: nothing in it is public API, so
// the compiler reports what it does not use.
mod module;
pub mod policy;
pub mod top;
