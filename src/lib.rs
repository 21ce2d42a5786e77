//! # cachekit
//!
//! A multi-tier cache for Rust: an in-process L1 ([moka]) in front of a
//! shared L2 (Redis, or a directory of files), with single-flight,
//! fail-open semantics and cache keys that are byte-identical to the
//! cachekit family's interop/v1 keys, so a Rust service and a Python service
//! can share one Redis.
//!
//! ```
//! use std::time::Duration;
//! use cachekit::TieredCache;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
//! let cache = TieredCache::builder().build()?; // L1 only; add .l2(backend) to share
//! let key = cachekit::derive_key("users", "get_user", &(42u64,))?;
//! let name: String = cache
//!     .get_or_compute(&key, Some(Duration::from_secs(60)), || async { "alice".to_string() })
//!     .await;
//! assert_eq!(name, "alice");
//! # Ok(()) }
//! ```
//!
//! [moka]: https://docs.rs/moka

/// The byte buffer the [`Backend`] trait reads and writes.
pub use bytes::Bytes;
pub use cachekit_core::backend::{check_prefix, Backend, Health, Ttl};
pub use cachekit_core::breaker::{BreakerConfig, BreakerState};
pub use cachekit_core::codec::{Codec, CodecConfig, ValueFormat};
pub use cachekit_core::encryption::Encryption;
pub use cachekit_core::error::{Error, ErrorKind, Result};
pub use cachekit_core::interop;
pub use cachekit_core::invalidation::{ChannelState, InvalidationStats, Invalidations};
pub use cachekit_core::keys::{self, derive_key, KeyBuilder};
pub use cachekit_core::lock::{DistributedLock, StampedeConfig};
pub use cachekit_core::memory::{MemoryBackend, MemoryBackendBuilder};
pub use cachekit_core::tiered::{
    BlockingEntry, CacheHealth, Cacheable, Entry, FailClosed, FailOpen, L1Health, Policy,
    RefreshAhead, TierStats, TieredCache, TieredCacheBuilder, TieredStats, DEFAULT_L1_MAX_TTL,
    DEFAULT_L1_TTL_UNSYNCED, DEFAULT_L2_TIMEOUT, DEFAULT_MAX_L2_IN_FLIGHT, DEFAULT_MAX_L2_QUEUED,
    DEFAULT_STALE_RETRY_INTERVAL, L1_INVALIDATION_ENV,
};

#[cfg(feature = "file")]
pub use cachekit_file::{FileBackend, FileConfig, FileConfigBuilder};
#[cfg(feature = "redis")]
pub use cachekit_redis::{RedisBackend, RedisConfig, RedisConfigBuilder};

mod default_backend;
mod default_encryption;
mod registry;
pub use cachekit_core::metrics::publish as publish_metrics;
#[doc(hidden)]
pub use default_backend::__set_degraded_reminder_interval;
pub use default_backend::{
    default_backend_status, init_default_backend, set_default_backend, DefaultBackendStatus,
};
pub use default_encryption::{default_encryption, set_default_encryption};
pub use registry::{registry, CachedFnInfo};

#[cfg(feature = "macros")]
pub use cachekit_macros::cached;

/// What `#[cached]` expands to; not a public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub use __private::{CachedFn, FnStats};

/// Redis specifics: compare-and-set versions, locks, protocol choice, pool state.
#[cfg(feature = "redis")]
pub mod redis {
    pub use cachekit_redis::{
        LockGuard, PoolState, Protocol, RedisBackend, RedisConfig, RedisConfigBuilder, Version,
        DEFAULT_URL,
    };
}

/// File backend specifics.
#[cfg(feature = "file")]
pub mod file {
    pub use cachekit_file::{
        FileBackend, FileConfig, FileConfigBuilder, SweepStats, DEFAULT_MAX_VALUE_SIZE, DIR_ENV,
    };
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
