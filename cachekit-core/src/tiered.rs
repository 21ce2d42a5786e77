//! The tiered cache: an in-process L1 in front of an optional shared L2.
//!
//! Reads go L1 -> L2 -> compute; an L2 hit fills L1 for at most the L2
//! entry's remaining lifetime. Writes go to L2 first, then L1; deletes remove
//! from L1 first, then L2. Concurrent callers of one cold key share a single
//! computation. Every L2 call has a deadline, passes a circuit breaker and a
//! bound on calls in flight; an L2 failure is logged, counted and skipped, and
//! the caller still gets a value (fail-open) unless its request is
//! [`strict`](Entry::strict) (fail-closed).
//!
//! With an L2 that can notify (Redis), L1 follows changes made by any
//! process: see [`crate::invalidation`]. A computation whose key is
//! changed, deleted or cleared (here or elsewhere) while it runs returns
//! its value to its caller without storing it.

mod blocking;
mod builder;
mod changes;
mod compute;
mod entry;
mod flight;
mod health;
mod l2;
mod outage;
mod policy;
mod refresh;
mod stampede;
mod stats;
mod tiers;
mod values;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::Backend;
use crate::clock::Clock;
use crate::codec::Codec;
use crate::error::Result;
use crate::invalidation::{InvalidationStats, Invalidations};
use crate::lock::{DistributedLock, StampedeConfig};
use crate::memory::MemoryBackend;
use crate::metrics::PoolMetrics;
pub use builder::{
    TieredCacheBuilder, DEFAULT_L1_MAX_TTL, DEFAULT_L1_TTL_UNSYNCED, DEFAULT_L2_TIMEOUT,
    DEFAULT_MAX_L2_IN_FLIGHT, DEFAULT_MAX_L2_QUEUED, DEFAULT_STALE_RETRY_INTERVAL,
    L1_INVALIDATION_ENV,
};
use changes::Changes;
pub use entry::{BlockingEntry, Entry, FailClosed, FailOpen, RefreshAhead};
use flight::Flights;
pub use health::{CacheHealth, L1Health};
use l2::GuardedL2;
pub use policy::Policy;
use stats::Counters;
pub use stats::{TierStats, TieredStats};

/// What a cached value must be: serializable for L2, cloneable to hand out
/// copies of the L1 entry, and shareable across threads.
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// An L1 (moka) in front of an optional L2 ([`Backend`]), with single-flight
/// and fail-open semantics. Cloning is cheap; clones share everything.
///
/// ```
/// use std::time::Duration;
/// use cachekit::TieredCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let cache = TieredCache::builder().build()?;
/// let ttl = Some(Duration::from_secs(60));
/// let v: u64 = cache.get_or_compute("demo:answer", ttl, || async { 42 }).await;
/// assert_eq!(v, 42);
/// assert_eq!(cache.get::<u64>("demo:answer").await, Some(42));
/// assert_eq!(cache.stats().computes, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TieredCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    l1: Option<MemoryBackend>,
    /// `Some` only when an L2 exists (see [`TieredCacheBuilder::l1_max_ttl`]).
    l1_max_ttl: Option<Duration>,
    /// The L2's invalidation channel, when it has one and it is wanted.
    invalidations: Option<Arc<Invalidations>>,
    /// The L1 lifetime while `invalidations` is down.
    l1_ttl_unsynced: Duration,
    /// Changes since reads and computations began (see [`changes`]).
    changes: Changes,
    /// Shared with caches made by [`TieredCache::with_l1`], so they share its
    /// breaker and in-flight bound too.
    l2: Option<Arc<GuardedL2>>,
    codec: Codec,
    defaults: Policy,
    stampede: Option<(Arc<dyn DistributedLock>, StampedeConfig)>,
    /// Keys whose recomputation failed recently: serve stale without retrying.
    recent_failures: moka::sync::Cache<String, ()>,
    flights: Flights,
    counters: Counters,
    /// The L2's pool gauges, sampled while the cache lives.
    pool_gauges: PoolMetrics,
    /// Built without the L2 it was configured for (see [`TieredStats::l2_unavailable`]).
    l2_unavailable: bool,
    /// Where TTLs, stale windows and refresh-ahead read the time.
    clock: Clock,
    /// The `cache` label of its metrics.
    name: String,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2)
            .field("l1_max_ttl", &self.inner.l1_max_ttl)
            .field("defaults", &self.inner.defaults)
            .finish_non_exhaustive()
    }
}

impl TieredCache {
    /// A builder: L1 on (64 MiB), no L2, no default TTL.
    pub fn builder() -> TieredCacheBuilder {
        TieredCacheBuilder::default()
    }

    /// The in-process tier, if enabled.
    pub fn l1(&self) -> Option<&MemoryBackend> {
        self.inner.l1.as_ref()
    }

    /// The shared tier, if any.
    pub fn l2(&self) -> Option<&Arc<dyn Backend>> {
        self.inner.l2.as_ref().map(|l2| &l2.backend)
    }

    /// The cache-wide policy that per-call policies fall back to.
    pub fn defaults(&self) -> &Policy {
        &self.inner.defaults
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TieredStats {
        let mut stats = self.inner.counters.snapshot();
        stats.l2_unavailable = self.inner.l2_unavailable;
        if let Some(l2) = &self.inner.l2 {
            stats.breaker = l2.breaker_state();
            stats.breaker_opened = l2.breaker_opened();
        }
        stats.invalidation = self.invalidation_stats();
        stats
    }

    /// The L1 invalidation channel's state and counters (shared by every
    /// cache in front of the same L2); all zero and
    /// [`Off`](crate::ChannelState::Off) without one.
    pub fn invalidation_stats(&self) -> InvalidationStats {
        self.inner
            .invalidations
            .as_ref()
            .map(|channel| channel.stats())
            .unwrap_or_default()
    }

    /// Reads a value: L1, then L2 (filling L1). `None` on a miss.
    ///
    /// Never fails: an L2 error counts as a miss and is logged and counted.
    /// Stale values (see [`Policy::max_stale`]) are not returned.
    pub async fn get<T: Cacheable>(&self, key: &str) -> Option<T> {
        let defaults = &self.inner.defaults;
        if let tiers::Found::Fresh(v, _) = self.l1_get::<T>(key, defaults) {
            return Some(v);
        }
        self.l2_get::<T>(key).await
    }

    /// Stores a value in L2, then L1. `ttl: None` uses the cache's default TTL.
    ///
    /// # Errors
    /// Encoding errors ([`ErrorKind::Serialization`](crate::ErrorKind::Serialization),
    /// [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge)) and L2 errors. After an
    /// L2 error this process's L1 entry is dropped, so it does not serve a
    /// value the shared tier may not hold.
    pub async fn set<T>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let policy = Policy {
            ttl,
            ..Policy::default()
        };
        self.set_with(key, value, &policy).await
    }

    /// [`set`](Self::set) with a per-call [`Policy`] (TTL, jitter, and the
    /// serve-stale window the entry is kept for).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub async fn set_with<T>(&self, key: &str, value: &T, policy: &Policy) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let policy = policy.or(&self.inner.defaults);
        // Computations of this key that began before lose to this value.
        self.inner.changes.key(key);
        let (result, _) = self.store(key, value, &policy, None, None).await;
        if result.is_err() {
            self.invalidate_local(key);
        }
        result
    }

    /// Removes a key from L1, then L2; returns whether either held it.
    ///
    /// # Errors
    /// L2 errors (the L1 entry is gone regardless).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let in_l1 = self.inner.changed(key);
        let in_l2 = match &self.inner.l2 {
            Some(l2) => {
                l2.call("delete", &self.inner.counters.l2, None, |b| b.delete(key))
                    .await?
            }
            None => false,
        };
        Ok(in_l1 || in_l2)
    }

    /// Removes every key starting with `prefix` from L1, then L2; returns the
    /// number removed from L2 (or from L1 when there is no L2).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an
    /// empty `prefix`, which would match every key of L2, including keys
    /// cachekit did not write (nothing is removed from either tier); L2
    /// errors.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        crate::backend::check_prefix(prefix)?;
        let mut removed = self.inner.changed_prefix(prefix);
        if let Some(l2) = &self.inner.l2 {
            removed = l2
                .call("delete_prefix", &self.inner.counters.l2, None, |b| {
                    b.delete_prefix(prefix)
                })
                .await?;
        }
        Ok(removed)
    }

    /// A cache with its own L1 settings in front of this one's L2, sharing
    /// everything else: the L2 guards (deadline, circuit breaker, in-flight
    /// bound), the default policy, the stampede lock and the codec.
    ///
    /// `l1: None` runs without an in-process tier; `l1_max_ttl` caps how long
    /// this cache's L1 entries are served without asking L2.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when no tier would be
    /// left or `l1_max_ttl` is zero.
    pub fn with_l1(&self, l1: Option<MemoryBackend>, l1_max_ttl: Duration) -> Result<TieredCache> {
        if l1_max_ttl.is_zero() {
            return Err(crate::Error::config(
                "l1_max_ttl",
                "must be greater than zero",
            ));
        }
        if l1.is_none() && self.inner.l2.is_none() {
            return Err(crate::Error::config(
                "l1",
                "a cache without L1 needs an L2 backend",
            ));
        }
        let inner = &self.inner;
        let clock = l1
            .as_ref()
            .map_or(inner.clock.clone(), |l1| l1.clock().clone());
        let invalidations = match &l1 {
            Some(_) => inner.invalidations.clone(),
            None => None,
        };
        Ok(TieredCache::attached(Inner {
            l1,
            l1_max_ttl: inner.l2.as_ref().map(|_| l1_max_ttl),
            invalidations,
            l1_ttl_unsynced: inner.l1_ttl_unsynced,
            changes: Changes::default(),
            l2: inner.l2.clone(),
            codec: inner.codec.clone(),
            defaults: inner.defaults.clone(),
            stampede: inner.stampede.clone(),
            recent_failures: inner.recent_failures.clone(),
            flights: Flights::default(),
            counters: Counters::published(&inner.name),
            pool_gauges: inner.pool_gauges.clone(),
            l2_unavailable: inner.l2_unavailable,
            clock,
            name: inner.name.clone(),
        }))
    }

    /// A cache around `inner`, attached to its invalidation channel.
    fn attached(inner: Inner) -> TieredCache {
        let inner = Arc::new(inner);
        if let Some(channel) = &inner.invalidations {
            channel.attach(Arc::downgrade(&inner));
        }
        TieredCache { inner }
    }

    /// Drops a key from this process's L1 only, for a change this process
    /// learned of by its own means. Changes made through any cache on a
    /// Redis L2 reach every process's L1 by themselves (see
    /// [`TieredCacheBuilder::l1_invalidation`]); [`delete`](Self::delete)
    /// is the fleet-wide removal.
    ///
    /// A computation of the key that began before does not store its result.
    pub fn invalidate_local(&self, key: &str) {
        self.inner.changed(key);
    }

    /// The L1 entry under `key` as stored, for [`crate::remembered`].
    pub(crate) fn l1_stored(&self, key: &str) -> Option<Arc<crate::memory::Stored>> {
        self.inner.l1.as_ref()?.get_stored(key)
    }

    /// The cache's clock.
    #[inline(always)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The current L1 generation: entries stamped with an older one are stale.
    #[inline(always)]
    pub(crate) fn l1_generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Counts an L1 hit served outside the tiers' own lookups.
    #[inline(always)]
    pub(crate) fn count_l1_hit(&self) {
        self.inner.counters.l1.hit();
    }
}

impl Inner {
    /// `key` changed: in-flight reads and computations of it do not store
    /// what they bring back, and L1 drops it. Whether L1 held it.
    pub(crate) fn changed(&self, key: &str) -> bool {
        self.changes.key(key);
        self.l1.as_ref().is_some_and(|l1| l1.remove(key))
    }

    /// Every key under `prefix` was removed; how many L1 held.
    pub(crate) fn changed_prefix(&self, prefix: &str) -> u64 {
        self.changes.all();
        self.l1.as_ref().map_or(0, |l1| l1.remove_prefix(prefix))
    }

    /// Every key was deleted (the server was flushed): L1 drops everything.
    pub(crate) fn changed_all(&self) {
        self.changes.all();
        self.changes.flushed();
        if let Some(l1) = &self.l1 {
            l1.flush();
        }
    }

    /// Marks every L1 entry stale, including those held through an
    /// `L1Ref`: no longer served as fresh, but still there for a
    /// caller whose policy serves stale values when recomputing fails.
    pub(crate) fn flush_l1(&self) {
        self.changes.flushed();
    }

    /// The L1 generation: entries stamped with an older one are stale.
    #[inline]
    fn generation(&self) -> u64 {
        self.changes.generation()
    }

    /// How long an L1 entry may be served without asking L2: `l1_max_ttl`,
    /// or less while the invalidation channel is down.
    fn l1_cap(&self) -> Option<Duration> {
        match &self.invalidations {
            Some(channel) if !channel.is_live() => {
                self.l1_max_ttl.map(|cap| cap.min(self.l1_ttl_unsynced))
            }
            _ => self.l1_max_ttl,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "metrics"))]
mod tests_metrics;
#[cfg(test)]
mod tests_reliability;
#[cfg(test)]
mod tests_spans;
#[cfg(test)]
mod tests_values;
