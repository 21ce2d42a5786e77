//! The engine of [cachekit](https://docs.rs/cachekit): the [`Backend`] trait,
//! errors, interop cache keys, the value codec, the moka-based
//! [`MemoryBackend`] and the [`TieredCache`].
//!
//! Most users depend on the `cachekit` facade crate, which re-exports
//! everything here.

pub mod backend;
pub mod breaker;
#[doc(hidden)]
pub mod clock;
pub mod codec;
mod counter;
pub mod deadline;
#[doc(hidden)]
pub mod encryption;
pub mod error;
pub mod interop;
pub mod invalidation;
pub mod keys;
pub mod lock;
pub mod memory;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod remembered;
#[doc(hidden)]
pub mod runtime;
pub mod tiered;

pub use backend::{Backend, Health, Ttl};
pub use breaker::{BreakerConfig, BreakerState};
pub use codec::{Codec, CodecConfig, ValueFormat};
pub use encryption::Encryption;
pub use error::{Error, ErrorKind, Result};
pub use invalidation::{ChannelState, InvalidationStats, Invalidations};
pub use keys::{derive_key, KeyBuilder};
pub use lock::{DistributedLock, StampedeConfig};
pub use memory::{MemoryBackend, MemoryBackendBuilder};
pub use tiered::{
    BlockingEntry, CacheHealth, Cacheable, Entry, L1Health, Policy, TierStats, TieredCache,
    TieredCacheBuilder, TieredStats,
};
