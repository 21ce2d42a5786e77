//! The per-function handle: its cache, recent calls, policy and counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit_core::metrics::FnMetrics;
use cachekit_core::remembered::{CallKey, Probe, RecentCalls, RememberedEntry, Want};
use cachekit_core::{Cacheable, KeyBuilder, Policy, Result, TieredCache, ValueFormat};

use super::{build, in_runtime, operation_segment, with_tiers, Setup, Tiers, LOG};

/// A snapshot of one cached function's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FnStats {
    /// Calls answered without running the body: from L1, from L2, or by
    /// waiting for a concurrent call with the same arguments.
    pub hits: u64,
    /// Times the body ran to fill the cache (including `_refresh` calls).
    pub computes: u64,
    /// Calls that ran the body without the cache: no key could be derived
    /// from the arguments (a NaN, say), or the function has no cache (see
    /// [`CachedFn::cache`]).
    pub uncached: u64,
}

impl FnStats {
    /// Every call counted: `hits + computes + uncached`.
    pub fn calls(&self) -> u64 {
        self.hits + self.computes + self.uncached
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Hits other than remembered ones (which the remembered tables count).
    hits: Arc<AtomicU64>,
    computes: AtomicU64,
    uncached: AtomicU64,
    /// The same calls, published (hits in batches, from `hits` and the
    /// remembered tables' counts).
    published: FnMetrics,
}

impl Counters {
    /// Counters of the function `keys` remembers calls of, published.
    fn published(keys: &RecentCalls, serializer: &'static str) -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        let (others, remembered) = (hits.clone(), keys.hits_reader());
        let builder = keys.builder();
        let published = FnMetrics::new(
            builder.namespace(),
            builder.operation(),
            serializer,
            move || others.load(Relaxed).wrapping_add(remembered()),
        );
        Self {
            hits,
            published,
            ..Self::default()
        }
    }

    /// A call that went through the cache (not a remembered hit), which
    /// took `took`.
    pub(super) fn call(&self, computed: bool, took: Duration) {
        if computed {
            self.computes.fetch_add(1, Relaxed);
            self.published.miss();
        } else {
            self.hits.fetch_add(1, Relaxed);
        }
        self.published.duration(took);
    }

    /// A `_refresh`: the body ran to fill the cache.
    fn refreshed(&self) {
        self.computes.fetch_add(1, Relaxed);
        self.published.miss();
    }

    fn uncached(&self) {
        self.uncached.fetch_add(1, Relaxed);
        self.published.uncached();
    }
}

/// The runtime side of one `#[cached]` function: its cache, its key
/// builder, its TTL and its counters.
///
/// The attribute generates `<fn>_cache()`, which returns this handle:
///
/// ```
/// #[cachekit::cached(namespace = "demo", name = "square")]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// assert_eq!(square(4), 16);
/// assert_eq!(square(4), 16);
/// let handle = square_cache();
/// assert_eq!(handle.stats().computes, 1);
/// assert_eq!(handle.stats().hits, 1);
/// assert_eq!(handle.keys().map(|k| k.prefix()), Some("demo:square:"));
/// ```
#[derive(Debug)]
pub struct CachedFn {
    active: Option<Active>,
    /// What the attribute declared, for [`crate::registry()`]: kept even when
    /// the function runs uncached (and has no key builder).
    pub(crate) declared: Declared,
    /// The function's own settings (`ttl`, `max_stale`, `compute_timeout`);
    /// unset fields take the cache's defaults.
    pub(super) policy: Policy,
    pub(super) counters: Counters,
}

/// A function's key segments and value options as declared.
#[derive(Debug)]
pub(crate) struct Declared {
    pub(crate) namespace: &'static str,
    pub(crate) operation: String,
    pub(crate) interop: bool,
    pub(crate) encrypted: bool,
}

#[derive(Debug)]
pub(super) struct Active {
    pub(super) cache: TieredCache,
    /// Remembers recent calls' keys and their L1 entries: a repeated call
    /// skips Blake2b and, while its entry stays in L1, moka's lookup.
    keys: RecentCalls,
}

impl Active {
    /// Remembers the L1 entry `call`'s key has now, for the next call with
    /// the same arguments.
    pub(super) fn remember(&self, call: &CallKey) {
        self.keys.remember(call, &self.cache);
    }

    /// The function's key builder: its namespace and operation name the
    /// spans of its calls.
    pub(super) fn builder(&self) -> &KeyBuilder {
        self.keys.builder()
    }
}

impl CachedFn {
    /// The handle in `cell`, built by `init` on the first call and then
    /// listed by [`crate::registry()`]. The generated `_cache()` calls this
    /// instead of [`OnceLock::get_or_init`]: the same check once built.
    #[doc(hidden)]
    #[inline(always)]
    pub fn get_or_init(
        cell: &'static OnceLock<Self>,
        init: impl FnOnce() -> Self,
    ) -> &'static Self {
        match cell.get() {
            Some(handle) => handle,
            None => Self::first_call(cell, init),
        }
    }

    #[cold]
    #[inline(never)]
    fn first_call(cell: &'static OnceLock<Self>, init: impl FnOnce() -> Self) -> &'static Self {
        let mut built = false;
        let handle = cell.get_or_init(|| {
            built = true;
            init()
        });
        // Only the thread whose `init` won registers, so each handle once.
        if built {
            crate::registry::register(handle);
        }
        handle
    }

    /// The handle of a function without `backend = ...`: the process-wide
    /// default (see [`set_default_backend`](crate::set_default_backend)).
    pub fn with_default(setup: Setup) -> Self {
        Self::with_backend(setup, |tiers| {
            match crate::default_backend::default_cache() {
                Some(cache) => with_tiers(cache, tiers),
                None => Ok(None),
            }
        })
    }

    /// The handle of a function with `backend = ...`; `backend` evaluates
    /// the expression and is called once, inside a Tokio runtime context
    /// (the caller's, else a small one cachekit keeps for this), so that
    /// constructors such as `RedisBackend::connect_lazy` work from
    /// synchronous code too.
    pub fn with_backend<F>(setup: Setup, backend: F) -> Self
    where
        F: FnOnce(&Tiers) -> Result<Option<TieredCache>>,
    {
        let operation = operation_segment(setup.operation, setup.version);
        let declared = Declared {
            namespace: setup.namespace,
            operation: operation.clone(),
            interop: setup.interop,
            encrypted: setup.encrypted,
        };
        let keys = match KeyBuilder::new(setup.namespace, &operation) {
            Ok(keys) => keys,
            Err(err) => {
                tracing::error!(target: LOG, error = %err, "#[cached] function runs uncached: its key segments are invalid");
                return Self::uncached(declared);
            }
        };
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        if zero(setup.ttl) || zero(setup.tiers.l1_ttl) || zero(setup.compute_timeout) {
            tracing::error!(target: LOG, prefix = keys.prefix(), "#[cached] function runs uncached: its `ttl`, `l1_ttl` or `compute_timeout` is zero");
            return Self::uncached(declared);
        }
        let encryption = if setup.encrypted {
            match crate::default_encryption() {
                Ok(Some(encryption)) => Some(encryption),
                Ok(None) => {
                    tracing::error!(target: LOG, prefix = keys.prefix(), "#[cached(encrypted)] function runs uncached: no encryption key; set CACHEKIT_MASTER_KEY (hex) or call cachekit::set_default_encryption");
                    return Self::uncached(declared);
                }
                Err(err) => {
                    tracing::error!(target: LOG, prefix = keys.prefix(), error = %err, "#[cached(encrypted)] function runs uncached: its encryption key is unusable");
                    return Self::uncached(declared);
                }
            }
        } else {
            None
        };
        let tiers = setup.tiers;
        let cache = match in_runtime(|| backend(&tiers)) {
            Ok(cache) => cache,
            Err(err) => {
                tracing::error!(target: LOG, prefix = keys.prefix(), error = %err, "#[cached] function's backend is unavailable; caching in this process's memory only");
                build(None, &tiers).unwrap_or_default()
            }
        };
        let Some(cache) = cache else {
            tracing::warn!(target: LOG, prefix = keys.prefix(), "#[cached] function runs uncached: it has `l1 = false` but its backend has no L2");
            return Self::uncached(declared);
        };
        // Without an L2 the cache applies no L1 cap, so `l1_ttl` caps the TTL itself.
        let ttl = match (setup.ttl, tiers.l1_ttl, cache.l2().is_some()) {
            (Some(t), Some(cap), false) => Some(t.min(cap)),
            (None, Some(cap), false) => Some(cap),
            (t, _, _) => t,
        };
        let mut policy = Policy::new();
        policy.ttl = ttl;
        policy.max_stale = setup.max_stale;
        policy.compute_timeout = setup.compute_timeout;
        policy.format = setup.interop.then_some(ValueFormat::Interop);
        policy.encryption = encryption;
        let serializer = if setup.interop { "default" } else { "envelope" };
        // The entries its threads remember count against the cache's L1 budget.
        let keys = RecentCalls::for_cache(keys, &cache);
        Self {
            counters: Counters::published(&keys, serializer),
            active: Some(Active { cache, keys }),
            declared,
            policy,
        }
    }

    fn uncached(declared: Declared) -> Self {
        Self {
            active: None,
            declared,
            policy: Policy::new(),
            counters: Counters::default(),
        }
    }

    /// This function's counters. The cache may be shared with other
    /// functions: its own [`TieredCache::stats`] covers all of them.
    pub fn stats(&self) -> FnStats {
        let c = &self.counters;
        let remembered = self.active.as_ref().map_or(0, |a| a.keys.hits());
        FnStats {
            hits: c.hits.load(Relaxed) + remembered,
            computes: c.computes.load(Relaxed),
            uncached: c.uncached.load(Relaxed),
        }
    }

    /// The cache this function uses; `None` when it runs uncached (its
    /// setup failed, or `l1 = false` left it without any tier).
    pub fn cache(&self) -> Option<&TieredCache> {
        self.active.as_ref().map(|a| &a.cache)
    }

    /// The function's namespace and operation segments; `keys().prefix()`
    /// starts every key of the function. `None` when it runs uncached.
    pub fn keys(&self) -> Option<&KeyBuilder> {
        self.active.as_ref().map(|a| a.keys.builder())
    }

    /// The TTL the function stores entries with.
    pub fn ttl(&self) -> Option<Duration> {
        self.policy.ttl
    }

    /// The first step of a call: its remembered L1 entry (not for
    /// `_refresh`), else its key; `Key(None)` when the arguments give no
    /// key (`derive` logs it) or the function has no cache. `derive` is the
    /// generated probe (`keyN` or `probe_encoded`).
    #[doc(hidden)]
    #[inline(always)]
    pub fn lookup<'h>(
        &'h self,
        call: Call,
        derive: impl FnOnce(&'h RecentCalls, Want) -> Probe<'h>,
    ) -> Probe<'h> {
        let Some(active) = self.active.as_ref() else {
            return Probe::Key(None);
        };
        let want = match call {
            Call::Cached => Want::Entry,
            Call::Refresh => Want::Key,
        };
        derive(&active.keys, want)
    }

    /// The key of one call, for `_invalidate`; `None` (logged) when the
    /// arguments give no key or the function has no cache.
    #[doc(hidden)]
    pub fn key<'h>(
        &'h self,
        derive: impl FnOnce(&'h RecentCalls, Want) -> Probe<'h>,
    ) -> Option<CallKey> {
        match self.lookup(Call::Refresh, derive) {
            Probe::Key(key) => key,
            // `_refresh` probes ask for the key only.
            Probe::Remembered(_) => None,
        }
    }

    /// The value of a remembered entry, borrowed from it, counted as a
    /// hit; `None` if the entry no longer serves.
    #[inline(always)]
    pub(super) fn remembered<'r, T: Cacheable>(
        &self,
        entry: &'r RememberedEntry<'_>,
    ) -> Option<&'r T> {
        entry.value::<T>(&self.active.as_ref()?.cache)
    }

    /// Where a call goes that its remembered entry did not answer: its key
    /// for the cache, or `None` when it runs uncached (counted here).
    #[inline(always)]
    pub(super) fn target(&self, key: Option<CallKey>) -> Option<(&Active, CallKey)> {
        match (self.active.as_ref(), key) {
            (Some(active), Some(key)) => Some((active, key)),
            _ => {
                self.counters.uncached();
                None
            }
        }
    }

    /// `_refresh`: counts a compute and stores the value, if any (fail-open).
    pub(super) async fn store<T: Cacheable>(&self, key: Option<CallKey>, value: Option<&T>) {
        self.counters.refreshed();
        if let (Some(active), Some(key), Some(value)) = (&self.active, key, value) {
            if let Err(err) = active.cache.set_with(key.key(), value, &self.policy).await {
                // The L2 guard logs backend failures, rate-limited; per call, debug only.
                tracing::debug!(target: LOG, key = key.key(), error = %err, "refreshed value not stored");
            }
        }
    }

    pub(super) fn store_blocking<T: Cacheable>(&self, key: Option<CallKey>, value: Option<&T>) {
        self.counters.refreshed();
        if let (Some(active), Some(key), Some(value)) = (&self.active, key, value) {
            if let Err(err) = active
                .cache
                .set_with_blocking(key.key(), value, &self.policy)
            {
                // The L2 guard logs backend failures, rate-limited; per call, debug only.
                tracing::debug!(target: LOG, key = key.key(), error = %err, "refreshed value not stored");
            }
        }
    }

    /// Removes one call's entry from every tier; whether one existed.
    ///
    /// # Errors
    /// The L2 error, when the L2 entry may still be there.
    #[doc(hidden)]
    pub async fn invalidate(&self, key: Option<CallKey>) -> Result<bool> {
        match (&self.active, key) {
            (Some(active), Some(key)) => active.cache.delete(key.key()).await,
            _ => Ok(false),
        }
    }

    /// Blocking [`invalidate`](Self::invalidate).
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
    #[doc(hidden)]
    pub fn invalidate_blocking(&self, key: Option<CallKey>) -> Result<bool> {
        match (&self.active, key) {
            (Some(active), Some(key)) => active.cache.delete_blocking(key.key()),
            _ => Ok(false),
        }
    }

    /// Removes every entry of the function from every tier.
    ///
    /// # Errors
    /// The L2 error, when L2 entries may remain.
    #[doc(hidden)]
    pub async fn clear(&self) -> Result<u64> {
        match &self.active {
            Some(active) => {
                active
                    .cache
                    .delete_prefix(active.keys.builder().prefix())
                    .await
            }
            None => Ok(0),
        }
    }

    /// Blocking [`clear`](Self::clear).
    ///
    /// # Errors
    /// As [`clear`](Self::clear).
    #[doc(hidden)]
    pub fn clear_blocking(&self) -> Result<u64> {
        match &self.active {
            Some(active) => active
                .cache
                .delete_prefix_blocking(active.keys.builder().prefix()),
            None => Ok(0),
        }
    }
}

/// Whether a generated call reads the cache (the function) or recomputes
/// and stores (its `_refresh` companion).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Answer from the cache, computing on a miss.
    Cached,
    /// Compute, store, return.
    Refresh,
}
