//! The process's `#[cached]` functions, for dashboards and health pages.
//!
//! A function's handle registers itself here once, when its first call
//! builds it; calls after that never touch the registry.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cachekit_core::TieredStats;

use crate::__private::{CachedFn, FnStats};

/// Every handle built so far, in the order of their functions' first calls.
static REGISTERED: Mutex<Vec<&'static CachedFn>> = Mutex::new(Vec::new());

/// Lists `handle`; called once per handle, by the call that built it.
pub(crate) fn register(handle: &'static CachedFn) {
    REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(handle);
}

/// Every `#[cached]` function of this process that has been called (or
/// whose `_cache()` handle was asked for), in the order of their first
/// calls, with its settings and counters as they are now.
///
/// A function never called has no handle yet, so it is not listed.
///
/// ```
/// use cachekit::cached;
///
/// #[cached(namespace = "demo", name = "square", ttl = 60)]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// square(3);
/// square(3);
/// for f in cachekit::registry() {
///     println!(
///         "{}:{} on {}: {} hits, {} computes",
///         f.namespace, f.operation, f.backend, f.stats.hits, f.stats.computes
///     );
/// }
/// let functions = cachekit::registry();
/// assert_eq!(functions.len(), 1);
/// assert_eq!(functions[0].namespace, "demo");
/// assert_eq!(functions[0].ttl, Some(std::time::Duration::from_secs(60)));
/// assert_eq!((functions[0].stats.computes, functions[0].stats.hits), (1, 1));
/// ```
pub fn registry() -> Vec<CachedFnInfo> {
    // Copied out first: describing a handle reads its cache's counters,
    // which needs no lock of ours.
    let handles = REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    handles.into_iter().map(CachedFnInfo::of).collect()
}

/// One `#[cached]` function as [`registry`] lists it.
///
/// ```
/// #[cachekit::cached(namespace = "demo", name = "double")]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// double(1);
/// let info = &cachekit::registry()[0];
/// assert_eq!(info.stats.computes, 1);
/// assert!(!info.interop && !info.encrypted);
/// assert_eq!(info.handle.stats(), info.stats);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachedFnInfo {
    /// The first segment of the function's keys.
    pub namespace: String,
    /// The second segment of its keys (with its `.vN` version suffix).
    pub operation: String,
    /// The TTL its entries are stored with; `None` takes the cache's default.
    pub ttl: Option<Duration>,
    /// Its L2 backend's name (`"redis"`, `"file"`, `"memory"` ...), else
    /// `"memory"` for an in-process cache only, or `"uncached"` when the
    /// function runs without any cache (see [`CachedFn::cache`]).
    pub backend: String,
    /// Whether it stores values in the interop format (`interop`).
    pub interop: bool,
    /// Whether it was declared `encrypted`.
    pub encrypted: bool,
    /// Its own counters.
    pub stats: FnStats,
    /// Its cache's counters; a cache shared by several functions (the
    /// process-wide default is) counts all of them. `None` when uncached.
    pub cache_stats: Option<TieredStats>,
    /// The function's handle, for its cache (and
    /// [`TieredCache::health`](crate::TieredCache::health)) or fresh counters.
    pub handle: &'static CachedFn,
}

impl CachedFnInfo {
    fn of(handle: &'static CachedFn) -> Self {
        let declared = &handle.declared;
        let cache = handle.cache();
        let backend = match cache {
            Some(cache) => cache.l2().map_or("memory", |l2| l2.name()),
            None => "uncached",
        };
        Self {
            namespace: declared.namespace.to_owned(),
            operation: declared.operation.clone(),
            ttl: handle.ttl(),
            backend: backend.to_owned(),
            interop: declared.interop,
            encrypted: declared.encrypted,
            stats: handle.stats(),
            cache_stats: cache.map(|cache| cache.stats()),
            handle,
        }
    }
}
