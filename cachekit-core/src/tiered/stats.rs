//! Counters per tier, readable at any time without locking.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::breaker::BreakerState;
use crate::counter::ThreadCounter;
use crate::invalidation::InvalidationStats;
use crate::metrics::{CacheMetrics, Event, Fault, TierMetrics};

#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    /// Per thread: L1 hits are the hottest path there is. Shared with
    /// `published`, which publishes them in batches.
    hits: Arc<ThreadCounter>,
    misses: AtomicU64,
    errors: AtomicU64,
    sets: AtomicU64,
    corrupt: AtomicU64,
    foreign: AtomicU64,
    undecryptable: AtomicU64,
    /// When a foreign value was last logged, in ms since [`log_epoch`] plus
    /// one (0: never); see [`foreign`](Self::foreign).
    foreign_logged: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
    full: AtomicU64,
    /// The same events, published (see [`crate::metrics`]).
    published: TierMetrics,
}

impl TierCounters {
    /// Counters whose events are also published as `cache`'s `tier`.
    pub(crate) fn published(cache: &str, tier: &'static str) -> Self {
        let hits = Arc::new(ThreadCounter::default());
        let read = hits.clone();
        Self {
            published: TierMetrics::new(cache, tier, move || read.get()),
            hits,
            ..Self::default()
        }
    }
    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.add();
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
        self.published.miss();
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
        self.published.fault(Fault::Error);
    }
    pub(crate) fn set(&self) {
        self.sets.fetch_add(1, Relaxed);
        self.published.set();
    }
    pub(crate) fn corrupt(&self) {
        self.corrupt.fetch_add(1, Relaxed);
        self.published.fault(Fault::Corrupt);
    }
    /// Counts a foreign value; `true` when it should be logged, at most
    /// once per [`FOREIGN_LOG_EVERY`] (a key that another program writes
    /// may be read on every call).
    pub(crate) fn foreign(&self) -> bool {
        let now = u64::try_from(log_epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.foreign_at(now)
    }

    /// Counts an encrypted value that did not verify; `true` when it
    /// should be logged (the same limit as [`foreign`](Self::foreign)).
    pub(crate) fn undecryptable(&self) -> bool {
        self.undecryptable.fetch_add(1, Relaxed);
        self.published.fault(Fault::Undecryptable);
        let now = u64::try_from(log_epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.log_due(now)
    }

    /// [`foreign`](Self::foreign) at `now_ms` after [`log_epoch`].
    fn foreign_at(&self, now_ms: u64) -> bool {
        self.foreign.fetch_add(1, Relaxed);
        self.published.fault(Fault::Foreign);
        self.log_due(now_ms)
    }

    /// Whether an unreadable value read at `now_ms` should be logged: the
    /// first one, then one per [`FOREIGN_LOG_EVERY`].
    fn log_due(&self, now_ms: u64) -> bool {
        let now = now_ms.saturating_add(1);
        let last = self.foreign_logged.load(Relaxed);
        let every = FOREIGN_LOG_EVERY.as_millis() as u64;
        (last == 0 || now.saturating_sub(last) >= every)
            && self
                .foreign_logged
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
    pub(crate) fn timeout(&self) {
        self.timeouts.fetch_add(1, Relaxed);
        self.published.fault(Fault::Timeout);
    }
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Relaxed);
        self.published.fault(Fault::Skipped);
    }
    pub(crate) fn full(&self) {
        self.full.fetch_add(1, Relaxed);
        self.published.fault(Fault::Full);
    }
    /// Publishes how long one operation took.
    pub(crate) fn latency(&self, op: &'static str, took: std::time::Duration) {
        self.published.latency(op, took);
    }

    fn snapshot(&self) -> TierStats {
        TierStats {
            hits: self.hits.get(),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            sets: self.sets.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            foreign: self.foreign.load(Relaxed),
            undecryptable: self.undecryptable.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            full: self.full.load(Relaxed),
        }
    }
}

/// How often a tier logs the foreign values it reads, at most.
pub(crate) const FOREIGN_LOG_EVERY: Duration = Duration::from_secs(60);

/// The origin of the foreign-value log's clock.
fn log_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1: TierCounters,
    pub(crate) l2: TierCounters,
    computes: AtomicU64,
    coalesced: AtomicU64,
    uncached: AtomicU64,
    stale_served: AtomicU64,
    refreshes: AtomicU64,
    lock_waits: AtomicU64,
    superseded: AtomicU64,
    /// The cache's own published events, latencies and gauges.
    pub(crate) published: CacheMetrics,
}

impl Counters {
    /// Counters published under the cache name `cache`.
    pub(crate) fn published(cache: &str) -> Self {
        Self {
            l1: TierCounters::published(cache, "l1"),
            l2: TierCounters::published(cache, "l2"),
            published: CacheMetrics::new(cache),
            ..Self::default()
        }
    }
    pub(crate) fn superseded(&self) {
        self.superseded.fetch_add(1, Relaxed);
        self.published.event(Event::Superseded);
    }
    pub(crate) fn compute(&self) {
        self.computes.fetch_add(1, Relaxed);
        self.published.event(Event::Compute);
    }
    pub(crate) fn stale_served(&self) {
        self.stale_served.fetch_add(1, Relaxed);
        self.published.event(Event::StaleServed);
    }
    pub(crate) fn refresh(&self) {
        self.refreshes.fetch_add(1, Relaxed);
        self.published.event(Event::Refresh);
    }
    pub(crate) fn lock_wait(&self) {
        self.lock_waits.fetch_add(1, Relaxed);
        self.published.event(Event::LockWait);
    }
    pub(crate) fn uncached(&self) {
        self.uncached.fetch_add(1, Relaxed);
        self.published.event(Event::Uncached);
    }
    pub(crate) fn coalesced(&self) {
        self.coalesced.fetch_add(1, Relaxed);
        self.published.event(Event::Coalesced);
    }
    pub(crate) fn snapshot(&self) -> TieredStats {
        TieredStats {
            l1: self.l1.snapshot(),
            l2: self.l2.snapshot(),
            computes: self.computes.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            uncached: self.uncached.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            lock_waits: self.lock_waits.load(Relaxed),
            superseded: self.superseded.load(Relaxed),
            breaker: BreakerState::Closed,
            breaker_opened: 0,
            l2_unavailable: false,
            invalidation: InvalidationStats::default(),
        }
    }
}

/// A snapshot of one tier's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Reads that found a usable value.
    pub hits: u64,
    /// Reads that found nothing (or nothing usable).
    pub misses: u64,
    /// Operations that failed and were skipped (fail-open).
    pub errors: u64,
    /// Values written.
    pub sets: u64,
    /// cachekit envelopes that did not decode (bad checksum, cut short, or
    /// holding another type, or nested deeper than the codec's `max_depth`)
    /// and were deleted; each is a miss too.
    pub corrupt: u64,
    /// Values read that are not cachekit envelopes (another library's value,
    /// plain text, an envelope version this build does not read) or, in
    /// interop mode, that do not decode into the requested type: misses,
    /// left in place (a read-through's store then replaces them).
    pub foreign: u64,
    /// Encrypted values whose authentication tag did not verify (another
    /// master key or tenant, a value copied from another key, damaged
    /// bytes): misses, never returned, left in place.
    pub undecryptable: u64,
    /// Operations that missed their deadline (also counted in `errors`).
    pub timeouts: u64,
    /// Operations not attempted: the circuit breaker was open, or no place
    /// under `max_l2_in_flight` came free within the call's deadline (or the
    /// line of calls waiting for one, `max_l2_queued`, was full).
    pub skipped: u64,
    /// Writes the backend refused for lack of memory (Redis `maxmemory`
    /// under `noeviction`; also counted in `errors`). They never open the
    /// circuit breaker: reads go on.
    pub full: u64,
}

impl TierStats {
    /// `hits / (hits + misses)`, or 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// A snapshot of a [`TieredCache`](crate::TieredCache)'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredStats {
    /// The in-process tier.
    pub l1: TierStats,
    /// The shared tier (all zero when there is none).
    pub l2: TierStats,
    /// Times the user's function ran to fill the cache.
    pub computes: u64,
    /// Callers that waited for another caller's computation instead of running their own.
    pub coalesced: u64,
    /// Calls that ran without the cache because no key could be derived
    /// from their arguments.
    pub uncached: u64,
    /// Stale values returned because recomputing failed or was too slow.
    pub stale_served: u64,
    /// Background refresh-ahead computations started.
    pub refreshes: u64,
    /// Polls spent waiting for another process's computation (stampede lock).
    pub lock_waits: u64,
    /// Computed values not stored because their key was changed (set,
    /// deleted, invalidated or cleared, here or in another process) after
    /// the computation began; the caller still got the value.
    pub superseded: u64,
    /// The L2 circuit breaker's state now.
    pub breaker: BreakerState,
    /// How often the circuit breaker has opened.
    pub breaker_opened: u64,
    /// The cache runs without the L2 it was configured with: the default
    /// `#[cached]` cache whose Redis configuration is unusable, caching in
    /// this process's memory only (`cachekit::default_backend_status()`
    /// says why).
    pub l2_unavailable: bool,
    /// The L1 invalidation channel (see [`ChannelState`](crate::ChannelState)).
    pub invalidation: InvalidationStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_values_are_all_counted_but_logged_once_a_minute() {
        let counters = TierCounters::default();
        let minute = FOREIGN_LOG_EVERY.as_millis() as u64;
        assert!(counters.foreign_at(5), "the first one is logged");
        for ms in 5..5 + minute {
            assert!(!counters.foreign_at(ms), "not again within a minute");
        }
        assert!(counters.foreign_at(5 + minute), "a minute later");
        assert!(!counters.foreign_at(6 + minute));
        assert_eq!(counters.snapshot().foreign, minute + 3);
    }
}
