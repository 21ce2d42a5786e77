//! Test harness for cachekit (not published).
//!
//! - [`RedisServer`]: a real `redis-server` on a free loopback port, plain,
//!   with a password, with an ACL user or with TLS, and real faults: kill,
//!   SIGSTOP/SIGCONT, restart on the same port.
//! - [`LoopbackProxy`]: a TCP proxy whose [`ProxyMode`] stalls or drops the
//!   traffic between a client and a server.
//! - [`conformance_tests!`]: the behavioural suite every
//!   [`Backend`](cachekit_core::Backend) must pass, one `#[tokio::test]` per
//!   check; [`run_conformance`] runs the whole suite in one test.
//! - [`eventually`]: wait for a condition instead of sleeping a guess.
//! - [`logs`]: capture what `tracing` logs, for assertions on log lines.
//! - [`tagged`]: the interop vectors' tagged JSON, as values the key
//!   encoder takes.
//!
//! Everything here panics on setup failure with a message that includes
//! the server's log: it is meant for tests, where a panic is a clear failure.
//!
//! `redis-server` and, for TLS, `openssl` must be on `PATH`
//! (`sudo apt-get install -y redis-server openssl`).

mod cluster;
mod conformance;
pub mod logs;
mod proxy;
pub mod recorded;
mod redis_server;
mod sentinel;
pub mod tagged;
mod topology;
mod wait;

pub use cluster::{RedisCluster, RedisClusterBuilder, SlotMigration};
pub use conformance::{run_conformance, Check, ConformanceSubject, WithGuard, CHECKS};
pub use proxy::{LoopbackProxy, ProxyMode};
pub use redis_server::{RedisServer, RedisServerBuilder};
pub use sentinel::{SentinelSet, SentinelSetBuilder};
pub use wait::{eventually, PATIENCE};
