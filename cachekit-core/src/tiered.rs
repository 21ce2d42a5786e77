//! The tiered cache: an in-process L1 in front of an optional shared L2.
//!
//! Reads go L1 -> L2 -> compute; an L2 hit fills L1 for at most the L2
//! entry's remaining lifetime. Writes go to L2 first, then L1; deletes remove
//! from L1 first, then L2. Concurrent callers of one cold key share a single
//! computation. An L2 failure is logged, counted and skipped: the caller still
//! gets a value (fail-open).

mod blocking;
mod builder;
mod flight;
mod stats;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, Ttl};
use crate::codec::Codec;
use crate::error::Result;
use crate::keys::KeyBuilder;
use crate::memory::{MemoryBackend, Stored};
pub use builder::{TieredCacheBuilder, DEFAULT_L1_MAX_TTL};
use flight::{FlightState, Flights, Role};
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
/// use cachekit_core::TieredCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit_core::Result<()> {
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

struct Inner {
    l1: Option<MemoryBackend>,
    /// `Some` only when an L2 exists (see [`TieredCacheBuilder::l1_max_ttl`]).
    l1_max_ttl: Option<Duration>,
    l2: Option<Arc<dyn Backend>>,
    codec: Codec,
    default_ttl: Option<Duration>,
    flights: Flights,
    counters: Counters,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2)
            .field("l1_max_ttl", &self.inner.l1_max_ttl)
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

/// How a waiting caller's turn ended when it did not get a shared value.
enum Turn<'a> {
    Lead(flight::LeaderGuard<'a>),
    Alone,
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
        self.inner.l2.as_ref()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TieredStats {
        self.inner.counters.snapshot()
    }

    /// Reads a value: L1, then L2 (filling L1). `None` on a miss.
    ///
    /// Never fails: an L2 error counts as a miss and is logged and counted.
    pub async fn get<T: Cacheable>(&self, key: &str) -> Option<T> {
        if let Some(v) = self.l1_get(key) {
            return Some(v);
        }
        self.l2_read(key).await.map(|(v, _)| v)
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
        let ttl = ttl.or(self.inner.default_ttl);
        let bytes = self.inner.codec.encode(value)?;
        if let Some(l2) = &self.inner.l2 {
            if let Err(err) = l2.set(key, bytes.clone(), ttl).await {
                self.inner.counters.l2.error();
                self.invalidate_local(key);
                return Err(err);
            }
            self.inner.counters.l2.set();
        }
        self.l1_put(key, bytes, Arc::new(value.clone()), ttl);
        Ok(())
    }

    /// Removes a key from L1, then L2; returns whether either held it.
    ///
    /// # Errors
    /// L2 errors (the L1 entry is gone regardless).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let in_l1 = self.inner.l1.as_ref().is_some_and(|l1| l1.remove(key));
        let in_l2 = match &self.inner.l2 {
            Some(l2) => l2
                .delete(key)
                .await
                .inspect_err(|_| self.inner.counters.l2.error())?,
            None => false,
        };
        Ok(in_l1 || in_l2)
    }

    /// Removes every key starting with `prefix` from L1, then L2; returns the
    /// number removed from L2 (or from L1 when there is no L2).
    ///
    /// # Errors
    /// L2 errors.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let mut removed = match &self.inner.l1 {
            Some(l1) => l1.delete_prefix(prefix).await?,
            None => 0,
        };
        if let Some(l2) = &self.inner.l2 {
            removed = l2
                .delete_prefix(prefix)
                .await
                .inspect_err(|_| self.inner.counters.l2.error())?;
        }
        Ok(removed)
    }

    /// Drops a key from this process's L1 only.
    ///
    /// This is where "this key changed elsewhere" events enter: a listener on
    /// Redis pub/sub or client-side tracking calls it to keep L1 coherent.
    pub fn invalidate_local(&self, key: &str) {
        if let Some(l1) = &self.inner.l1 {
            l1.remove(key);
        }
    }

    /// Returns the cached value, or runs `compute`, caches and returns its result.
    ///
    /// Concurrent callers of the same cold key share one computation.
    /// Cache failures are logged and counted, never returned.
    pub async fn get_or_compute<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(v) = self.l1_get(key) {
            return v;
        }
        // Boxed so that the hit path's future stays small.
        let result =
            Box::pin(self.fill(key, ttl, || async { Ok::<T, Infallible>(compute().await) })).await;
        match result {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`get_or_compute`](Self::get_or_compute) keyed by a function's arguments:
    /// the key is `keys.key(args)`.
    ///
    /// If no key can be derived (a NaN or an out-of-range integer among the
    /// arguments) the computation runs uncached, with a warning; the call
    /// never fails because of the cache.
    pub async fn get_or_compute_with<A, T, F, Fut>(
        &self,
        keys: &KeyBuilder,
        args: &A,
        ttl: Option<Duration>,
        compute: F,
    ) -> T
    where
        A: Serialize + ?Sized,
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match keys.key(args) {
            Ok(key) => self.get_or_compute(&key, ttl, compute).await,
            Err(err) => {
                self.uncached(keys, &err);
                compute().await
            }
        }
    }

    /// [`try_get_or_compute`](Self::try_get_or_compute) keyed by a function's
    /// arguments; see [`get_or_compute_with`](Self::get_or_compute_with).
    ///
    /// # Errors
    /// Only the computation's own error.
    pub async fn try_get_or_compute_with<A, T, E, F, Fut>(
        &self,
        keys: &KeyBuilder,
        args: &A,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        A: Serialize + ?Sized,
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match keys.key(args) {
            Ok(key) => self.try_get_or_compute(&key, ttl, compute).await,
            Err(err) => {
                self.uncached(keys, &err);
                compute().await
            }
        }
    }

    fn uncached(&self, keys: &KeyBuilder, err: &crate::Error) {
        self.inner.counters.uncached();
        tracing::warn!(
            target: "cachekit",
            namespace = keys.namespace(),
            operation = keys.operation(),
            error = %err,
            "no cache key for these arguments; calling uncached"
        );
    }

    /// Like [`get_or_compute`](Self::get_or_compute) for a fallible computation:
    /// `Ok` is cached and returned, `Err` is returned and not cached.
    ///
    /// Errors are not shared between callers: when the computation that
    /// others were waiting for fails, each waiting caller runs its own.
    ///
    /// # Errors
    /// Only the computation's own error.
    pub async fn try_get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.l1_get(key) {
            return Ok(v);
        }
        Box::pin(self.fill(key, ttl, compute)).await
    }

    /// The miss path: single-flight, L2, compute, store.
    async fn fill<T, E, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let turn = loop {
            match self.inner.flights.join(key) {
                Role::Leader(guard) => break Turn::Lead(guard),
                Role::Follower(rx) => match flight::wait(rx).await {
                    FlightState::Done(shared) => match shared.downcast_ref::<T>() {
                        Some(v) => {
                            self.inner.counters.coalesced();
                            return Ok(v.clone());
                        }
                        None => break Turn::Alone,
                    },
                    FlightState::Failed => break Turn::Alone,
                    FlightState::Abandoned | FlightState::Running => {
                        if let Some(v) = self.l1_peek(key) {
                            return Ok(v);
                        }
                    }
                },
            }
        };
        let guard = match turn {
            Turn::Lead(guard) => {
                // The previous flight may have filled the cache after our L1 check.
                if let Some(v) = self.l1_peek::<T>(key) {
                    guard.finish(FlightState::Done(Arc::new(v.clone())));
                    return Ok(v);
                }
                if let Some((v, shared)) = self.l2_read::<T>(key).await {
                    guard.finish(FlightState::Done(shared));
                    return Ok(v);
                }
                Some(guard)
            }
            Turn::Alone => None,
        };
        self.inner.counters.compute();
        match compute().await {
            Ok(value) => {
                let shared = Arc::new(value);
                self.store(key, &shared, ttl).await;
                if let Some(guard) = guard {
                    guard.finish(FlightState::Done(shared.clone()));
                }
                Ok(T::clone(&shared))
            }
            Err(err) => {
                if let Some(guard) = guard {
                    guard.finish(FlightState::Failed);
                }
                Err(err)
            }
        }
    }

    /// L1 lookup that counts a hit or a miss.
    fn l1_get<T: Cacheable>(&self, key: &str) -> Option<T> {
        self.inner.l1.as_ref()?;
        let found = self.l1_peek(key);
        match &found {
            Some(_) => self.inner.counters.l1.hit(),
            None => self.inner.counters.l1.miss(),
        }
        found
    }

    /// L1 lookup without counting; decodes (and remembers) a value that was
    /// stored as bytes only or under another type.
    fn l1_peek<T: Cacheable>(&self, key: &str) -> Option<T> {
        let l1 = self.inner.l1.as_ref()?;
        let stored = l1.get_stored(key)?;
        if let Some(v) = stored.decoded.as_ref().and_then(|d| d.downcast_ref::<T>()) {
            return Some(v.clone());
        }
        match self.inner.codec.decode::<T>(&stored.bytes) {
            Ok(v) => {
                l1.insert_stored(
                    key,
                    Stored {
                        bytes: stored.bytes.clone(),
                        decoded: Some(Arc::new(v.clone())),
                        expires_at: stored.expires_at,
                    },
                );
                Some(v)
            }
            Err(err) => {
                self.inner.counters.l1.corrupt();
                tracing::warn!(target: "cachekit", key, error = %err, "dropping undecodable L1 entry");
                l1.remove(key);
                None
            }
        }
    }

    /// Reads L2 and fills L1 on a hit. Errors and undecodable values are
    /// logged and counted and read as a miss; undecodable values are deleted.
    async fn l2_read<T: Cacheable>(&self, key: &str) -> Option<(T, flight::Shared)> {
        let l2 = self.inner.l2.as_ref()?;
        let counters = &self.inner.counters.l2;
        let (bytes, ttl) = match l2.get_with_ttl(key).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                counters.miss();
                return None;
            }
            Err(err) => {
                counters.error();
                tracing::warn!(target: "cachekit", key, backend = l2.name(), error = %err, "L2 read failed; treating as a miss");
                return None;
            }
        };
        let value = match self.inner.codec.decode::<T>(&bytes) {
            Ok(v) => v,
            Err(err) => {
                counters.corrupt();
                counters.miss();
                tracing::warn!(target: "cachekit", key, backend = l2.name(), error = %err, "deleting undecodable L2 entry");
                if let Err(err) = l2.delete(key).await {
                    counters.error();
                    tracing::warn!(target: "cachekit", key, error = %err, "could not delete undecodable L2 entry");
                }
                return None;
            }
        };
        counters.hit();
        let shared: Arc<T> = Arc::new(value.clone());
        match ttl {
            Ttl::Remaining(left) => self.l1_put(key, bytes, shared.clone(), Some(left)),
            Ttl::Persistent => self.l1_put(key, bytes, shared.clone(), None),
            // Expired between the read and the TTL probe: serve it once, don't keep it.
            _ => {}
        }
        Some((value, shared))
    }

    /// Writes a computed value to L2 (fail-open), then L1.
    async fn store<T: Cacheable>(&self, key: &str, value: &Arc<T>, ttl: Option<Duration>) {
        let ttl = ttl.or(self.inner.default_ttl);
        let bytes = match self.inner.codec.encode(value.as_ref()) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(target: "cachekit", key, error = %err, "value not cached: cannot encode it");
                return;
            }
        };
        if let Some(l2) = &self.inner.l2 {
            match l2.set(key, bytes.clone(), ttl).await {
                Ok(()) => self.inner.counters.l2.set(),
                Err(err) => {
                    self.inner.counters.l2.error();
                    tracing::warn!(target: "cachekit", key, backend = l2.name(), error = %err, "L2 write failed; value kept in L1 only");
                }
            }
        }
        self.l1_put(key, bytes, value.clone(), ttl);
    }

    /// Inserts into L1 with `min(ttl, l1_max_ttl)`.
    fn l1_put<T: Send + Sync + 'static>(
        &self,
        key: &str,
        bytes: Bytes,
        value: Arc<T>,
        ttl: Option<Duration>,
    ) {
        let Some(l1) = &self.inner.l1 else { return };
        let ttl = match (ttl, self.inner.l1_max_ttl) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (t, max) => t.or(max),
        };
        l1.insert_stored(
            key,
            Stored {
                bytes,
                decoded: Some(value),
                expires_at: ttl.and_then(|t| Instant::now().checked_add(t)),
            },
        );
        self.inner.counters.l1.set();
    }
}

#[cfg(test)]
mod tests;
