//! Counters per tier, readable at any time without locking.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    sets: AtomicU64,
    corrupt: AtomicU64,
}

impl TierCounters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn set(&self) {
        self.sets.fetch_add(1, Relaxed);
    }
    pub(crate) fn corrupt(&self) {
        self.corrupt.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> TierStats {
        TierStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            sets: self.sets.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1: TierCounters,
    pub(crate) l2: TierCounters,
    computes: AtomicU64,
    coalesced: AtomicU64,
    uncached: AtomicU64,
}

impl Counters {
    pub(crate) fn compute(&self) {
        self.computes.fetch_add(1, Relaxed);
    }
    pub(crate) fn uncached(&self) {
        self.uncached.fetch_add(1, Relaxed);
    }
    pub(crate) fn coalesced(&self) {
        self.coalesced.fetch_add(1, Relaxed);
    }
    pub(crate) fn snapshot(&self) -> TieredStats {
        TieredStats {
            l1: self.l1.snapshot(),
            l2: self.l2.snapshot(),
            computes: self.computes.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            uncached: self.uncached.load(Relaxed),
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
    /// Values that did not decode (garbage, foreign format, bad checksum) and were deleted.
    pub corrupt: u64,
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
}
