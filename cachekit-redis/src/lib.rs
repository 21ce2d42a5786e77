//! The Redis tier of [cachekit](https://docs.rs/cachekit): a pooled
//! [`RedisBackend`] (bb8 + redis-rs) configured in code or from the
//! environment, with TLS, compare-and-set and distributed locks.
//!
//! ```no_run
//! use cachekit::Backend;
//! use cachekit::redis::RedisBackend;
//!
//! # async fn demo() -> cachekit::Result<()> {
//! // CACHEKIT_REDIS_URL, else REDIS_URL, else redis://localhost:6379
//! let redis = RedisBackend::from_env().await?;
//! redis.set("k", "v".into(), None).await?;
//! println!("{:?}", redis.health().await);
//! # Ok(()) }
//! ```
//!
//! Errors are cachekit [`Error`](cachekit_core::Error)s whose message names
//! the server (`host:port`), the cause and the fix; no message, log line or
//! `Debug` output contains the password.
//!
//! Caches in front of a `RedisBackend` keep their L1 coherent across
//! processes: the backend listens for changed keys with Redis's
//! server-assisted client-side caching (`CLIENT TRACKING ON BCAST`, RESP3,
//! one connection per primary) and announces prefix clears on the
//! `__cachekit__:clear` channel. See
//! [`TieredCacheBuilder::l1_invalidation`](cachekit_core::TieredCacheBuilder::l1_invalidation).
//!
//! TLS (the `tls` feature, on by default) uses rustls with the *ring*
//! crypto provider, installed as the process default the first time a
//! `rediss://` backend is built (unless the application installed one
//! first). Without the feature, a `rediss://` URL is refused with an error
//! that names it.

mod backend;
mod cas;
mod config;
mod deletions;
mod errors;
mod health;
mod lock;
mod pool;
mod script;
mod state;
mod topology;
mod tracking;
mod wire;

pub use backend::RedisBackend;
pub use cachekit_core::backend::PoolState;
pub use cas::Version;
#[doc(hidden)]
pub use config::bench::{BenchCheckout, BenchDeadlines, BenchSwitches};
pub use config::{Protocol, RedisConfig, RedisConfigBuilder, DEFAULT_URL};
pub use lock::LockGuard;
