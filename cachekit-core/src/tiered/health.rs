//! [`TieredCache::health`]: one report on every tier, for a health page.

use std::time::{Duration, Instant};

use crate::backend::Health;
use crate::breaker::BreakerState;
use crate::invalidation::ChannelState;
use crate::tiered::{TieredCache, TieredStats, DEFAULT_L2_TIMEOUT};

/// How a [`TieredCache`] is doing, from [`TieredCache::health`].
///
/// ```
/// use cachekit::{MemoryBackend, TieredCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let cache = TieredCache::builder().l2(MemoryBackend::builder().build()?).build()?;
/// let health = cache.health().await;
/// assert!(health.healthy);
/// assert_eq!(health.l2.map(|l2| l2.backend).as_deref(), Some("memory"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheHealth {
    /// Whether the cache works as configured: its L2 (if any) answered
    /// healthy within the L2 timeout, the circuit breaker is not open, the
    /// invalidation channel (if any) is not down, and the configured L2 is
    /// in use (see `l2_unavailable`). The L1 is always fine.
    pub healthy: bool,
    /// The in-process tier; `None` without one.
    pub l1: Option<L1Health>,
    /// The L2 backend's own report ([`Backend::health`](crate::Backend::health)),
    /// with its details as the backend gave them; `None` without an L2.
    /// A backend that did not answer within the cache's L2 timeout is
    /// reported unhealthy, with the wait as its latency and an `error` detail.
    pub l2: Option<Health>,
    /// The L2 circuit breaker's state ([`Closed`](BreakerState::Closed)
    /// without an L2 or a breaker).
    pub breaker: BreakerState,
    /// The L1 invalidation channel's state ([`Off`](ChannelState::Off)
    /// when the cache has none).
    pub invalidation: ChannelState,
    /// The cache runs without the L2 it was configured with (see
    /// [`TieredStats::l2_unavailable`]).
    pub l2_unavailable: bool,
    /// This cache's own hit ratio since it was built: reads answered by L1
    /// or L2 over all reads (L1 lookups; L2 reads when there is no L1).
    /// `None` before the first read. Not the Redis server's ratio, which
    /// counts every client of the server: see `server_keyspace_hit_ratio`.
    pub hit_ratio: Option<f64>,
    /// The L2 server's own, server-wide, ratio of key lookups that hit
    /// (Redis `keyspace_hits / (keyspace_hits + keyspace_misses)` from
    /// `INFO`, over every client and database since the server started);
    /// `None` when the backend reports no such counters or none were made.
    pub server_keyspace_hit_ratio: Option<f64>,
}

/// The in-process tier's size, as [`CacheHealth::l1`] reports it.
///
/// ```
/// use cachekit::TieredCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let cache = TieredCache::builder().build()?;
/// let l1 = cache.health().await.l1.expect("an L1");
/// assert_eq!(l1.capacity_bytes, 64 * 1024 * 1024);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct L1Health {
    /// Live entries (approximate: the L1 counts them lazily).
    pub entries: u64,
    /// Bytes charged against the budget (approximate, likewise).
    pub bytes: u64,
    /// The byte budget.
    pub capacity_bytes: u64,
}

impl TieredCache {
    /// How the cache is doing now: its tiers, its breaker, its
    /// invalidation channel and its hit ratio (see [`CacheHealth`]).
    ///
    /// Asks the L2 for its [`health`](crate::Backend::health), bounded by
    /// the cache's L2 timeout (or [`DEFAULT_L2_TIMEOUT`] when it has
    /// none), so a hung server makes it return unhealthy, not hang. The
    /// check bypasses the circuit breaker and is not counted in
    /// [`stats`](Self::stats).
    ///
    /// ```
    /// use cachekit::TieredCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
    /// let cache = TieredCache::builder().build()?;
    /// let _: Option<u64> = cache.get("demo:missing").await;
    /// let health = cache.health().await;
    /// assert!(health.healthy);
    /// assert_eq!(health.hit_ratio, Some(0.0));
    /// assert!(health.l2.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> CacheHealth {
        let stats = self.stats();
        let l1 = self.l1().map(|l1| L1Health {
            entries: l1.entry_count(),
            bytes: l1.weighted_size(),
            capacity_bytes: l1.max_bytes(),
        });
        let l2 = match &self.inner.l2 {
            Some(l2) => {
                let limit = l2.deadline().unwrap_or(DEFAULT_L2_TIMEOUT);
                Some(bounded_health(l2.backend.as_ref(), limit).await)
            }
            None => None,
        };
        let server_keyspace_hit_ratio = l2.as_ref().and_then(server_keyspace_hit_ratio);
        let l2_ok = l2.as_ref().is_none_or(|h| h.healthy);
        let healthy = l2_ok
            && stats.breaker != BreakerState::Open
            && stats.invalidation.state != ChannelState::Down
            && !stats.l2_unavailable;
        CacheHealth {
            healthy,
            l1,
            l2,
            breaker: stats.breaker,
            invalidation: stats.invalidation.state,
            l2_unavailable: stats.l2_unavailable,
            hit_ratio: hit_ratio(&stats, self.l1().is_some()),
            server_keyspace_hit_ratio,
        }
    }
}

/// The backend's report, or an unhealthy one once `limit` has passed.
async fn bounded_health(backend: &dyn crate::Backend, limit: Duration) -> Health {
    let started = Instant::now();
    match tokio::time::timeout(limit, backend.health()).await {
        Ok(health) => health,
        Err(_) => Health::new(backend.name(), false, started.elapsed()).detail(
            "error",
            format!("no health answer within {limit:?} (the cache's L2 timeout)"),
        ),
    }
}

/// L1 and L2 hits over reads: every read looks in L1 first, and L2 only
/// on an L1 miss, so L1 lookups are the reads (L2 reads without an L1).
fn hit_ratio(stats: &TieredStats, has_l1: bool) -> Option<f64> {
    let TieredStats { l1, l2, .. } = stats;
    let reads = if has_l1 {
        l1.hits + l1.misses
    } else {
        l2.hits + l2.misses
    };
    let hits = if has_l1 { l1.hits + l2.hits } else { l2.hits };
    ratio(hits, reads)
}

fn ratio(hits: u64, reads: u64) -> Option<f64> {
    // u64 -> f64 rounding is irrelevant for a ratio.
    #[allow(clippy::cast_precision_loss)]
    (reads > 0).then(|| (hits as f64 / reads as f64).min(1.0))
}

/// From the `keyspace_hits` and `keyspace_misses` details (Redis `INFO`).
fn server_keyspace_hit_ratio(health: &Health) -> Option<f64> {
    let count = |name: &str| health.details.get(name)?.parse::<u64>().ok();
    let hits = count("keyspace_hits")?;
    let misses = count("keyspace_misses")?;
    ratio(hits, hits.checked_add(misses)?)
}

#[cfg(test)]
mod tests;
