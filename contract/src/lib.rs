//! What the onsale binaries must agree on.
//!
//! - [`problem`]: the RFC 9457 `application/problem+json` body every binary answers errors with,
//!   so a client parses one shape whichever hop refused it.
//! - [`logging`]: the same `tracing` setup in every binary.
//! - [`metrics`]: one Prometheus registry per running server, with a shared naming scheme.
//! - [`tokens`]: admission JWTs (Ed25519), signed by the edge and verified everywhere; queue
//!   JWTs (HS256 under keys the edge nodes share), which only the edge reads; where a
//!   request carries them and its session.
//! - [`pow`]: the waiting room's proof-of-work puzzle, checked by the edge, solved by clients.
//! - [`polling`]: how soon a waiting-room client polls again, as the edge tells it.
//! - [`snapshot`]: where seat-map snapshots live in Redis and on disk, and how they are announced.
//! - [`clock`]: wall-clock time, manual in tests so time-dependent behaviour is driven, not slept.
//! - [`backoff`]: doubling retry delays with optional jitter.
//! - [`redis`]: one way to open a reconnecting Redis connection with timeouts.
//! - [`tasks`]: named, supervised background tasks that stop on shutdown and restart after a panic.
//! - [`config`]: strict TOML loading (unknown keys are errors that name the key), environment
//!   overrides for addresses and secrets, and secrets that never print.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod logging;
pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod polling;
pub mod pow;
pub mod problem;
pub mod redis;
pub mod snapshot;
pub mod tasks;
pub mod tickets;
pub mod tokens;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
