//! The cache's counters, histograms and gauges, published through the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, on by
//! default). Names and labels: `docs/observability.md`.
//!
//! Handles are registered once, when a cache is built, and kept (install
//! the exporter first, at startup). Hits cost nothing here: they are
//! counted per thread where they are anyway and published in batches, once
//! a second and on [`publish`] (see `publisher`). Other events cost one
//! increment of a handle. Labels are the cache's name and the tier, or a
//! function's namespace and name, never a key. Without the feature every
//! type here is empty and every method does nothing.

#[cfg(feature = "metrics")]
mod enabled;
#[cfg(feature = "metrics")]
mod publisher;
#[cfg(feature = "metrics")]
pub use enabled::FnMetrics;
#[cfg(feature = "metrics")]
pub(crate) use enabled::{CacheMetrics, ChannelMetrics, PoolMetrics, TierMetrics};
#[cfg(feature = "metrics")]
pub use publisher::publish;

#[cfg(not(feature = "metrics"))]
mod disabled;
#[cfg(not(feature = "metrics"))]
pub use disabled::{publish, FnMetrics};
#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::{CacheMetrics, ChannelMetrics, PoolMetrics, TierMetrics};

/// What a counted tier event was; the `kind` label of `cachekit_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Error,
    Timeout,
    Skipped,
    Full,
    Corrupt,
    Foreign,
    Undecryptable,
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
impl Fault {
    pub(crate) const ALL: [Fault; 7] = [
        Fault::Error,
        Fault::Timeout,
        Fault::Skipped,
        Fault::Full,
        Fault::Corrupt,
        Fault::Foreign,
        Fault::Undecryptable,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Fault::Error => "error",
            Fault::Timeout => "timeout",
            Fault::Skipped => "skipped",
            Fault::Full => "full",
            Fault::Corrupt => "corrupt",
            Fault::Foreign => "foreign",
            Fault::Undecryptable => "undecryptable",
        }
    }
}

/// What a cache-level counter counts; `cachekit_<name>_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Compute,
    Coalesced,
    StaleServed,
    Refresh,
    Superseded,
    Uncached,
    LockWait,
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
impl Event {
    pub(crate) const ALL: [Event; 7] = [
        Event::Compute,
        Event::Coalesced,
        Event::StaleServed,
        Event::Refresh,
        Event::Superseded,
        Event::Uncached,
        Event::LockWait,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::Compute => "cachekit_computes_total",
            Event::Coalesced => "cachekit_single_flight_joins_total",
            Event::StaleServed => "cachekit_stale_served_total",
            Event::Refresh => "cachekit_refreshes_total",
            Event::Superseded => "cachekit_superseded_total",
            Event::Uncached => "cachekit_uncached_total",
            Event::LockWait => "cachekit_lock_waits_total",
        }
    }
}
