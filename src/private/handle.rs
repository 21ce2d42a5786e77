//! The per-function handle: its cache, key builder, TTL and counters, and
//! the calls generated code makes through it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::{build, in_runtime, operation_segment, with_tiers, Setup, Tiers, LOG};

use cachekit_core::keys::{CallKey, KeyCache, Recall, Recalled};

use super::keys::Want;
use cachekit_core::{Cacheable, KeyBuilder, Policy, Result, TieredCache};
use std::time::Duration;

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
struct Counters {
    hits: AtomicU64,
    computes: AtomicU64,
    uncached: AtomicU64,
}

impl Counters {
    fn call(&self, computed: bool) {
        let counter = if computed { &self.computes } else { &self.hits };
        counter.fetch_add(1, Relaxed);
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
    /// The function's own settings (`ttl`, `max_stale`, `compute_timeout`);
    /// unset fields take the cache's defaults.
    policy: Policy,
    counters: Counters,
}

#[derive(Debug)]
struct Active {
    cache: TieredCache,
    /// Remembers recent calls' keys and their L1 entries: a repeated call
    /// skips Blake2b and, while its entry stays in L1, moka's lookup.
    keys: KeyCache,
}

impl Active {
    /// Remembers the L1 entry `call`'s key has now, for the next call with
    /// the same arguments; only for arguments seen before, so that a
    /// function called with ever new arguments pays no extra L1 lookup.
    fn remember(&self, call: &CallKey) {
        if !call.is_repeat() {
            return;
        }
        if let Some(entry) = self.cache.l1_ref(call.key()) {
            self.keys.remember(call, &entry);
        }
    }
}

impl CachedFn {
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
        let keys = match KeyBuilder::new(setup.namespace, &operation) {
            Ok(keys) => keys,
            Err(err) => {
                tracing::error!(target: LOG, error = %err, "#[cached] function runs uncached: its key segments are invalid");
                return Self::uncached();
            }
        };
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        if zero(setup.ttl) || zero(setup.tiers.l1_ttl) || zero(setup.compute_timeout) {
            tracing::error!(target: LOG, prefix = keys.prefix(), "#[cached] function runs uncached: its `ttl`, `l1_ttl` or `compute_timeout` is zero");
            return Self::uncached();
        }
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
            return Self::uncached();
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
        // The entries its threads remember count against the cache's L1 budget.
        let keys = KeyCache::for_cache(keys, &cache);
        Self {
            active: Some(Active { cache, keys }),
            policy,
            counters: Counters::default(),
        }
    }

    fn uncached() -> Self {
        Self {
            active: None,
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
    /// generated `keyN` call.
    #[doc(hidden)]
    #[inline(always)]
    pub fn lookup<'h>(
        &'h self,
        call: Call,
        derive: impl FnOnce(&'h KeyCache, Want) -> Found<'h>,
    ) -> Found<'h> {
        let Some(active) = self.active.as_ref() else {
            return Found::Key(None);
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
        derive: impl FnOnce(&'h KeyCache, Want) -> Found<'h>,
    ) -> Option<CallKey> {
        match self.lookup(Call::Refresh, derive) {
            Found::Key(key) => key,
            // `_refresh` lookups ask for the key only.
            Found::Remembered(_) => None,
        }
    }

    /// The value of a remembered entry, borrowed from it, counted as a
    /// hit; `None` if the entry no longer serves.
    #[inline(always)]
    fn remembered<'r, T: Cacheable>(&self, recalled: &'r Recalled<'_>) -> Option<&'r T> {
        let cache = &self.active.as_ref()?.cache;
        let value = cache.value_ref::<T>(recalled.entry()?)?;
        recalled.hit();
        Some(value)
    }

    /// Where a call goes that its remembered entry did not answer: its key
    /// for the cache, or `None` when it runs uncached (counted here).
    #[inline(always)]
    fn target(&self, key: Option<CallKey>) -> Option<(&Active, CallKey)> {
        match (self.active.as_ref(), key) {
            (Some(active), Some(key)) => Some((active, key)),
            _ => {
                self.counters.uncached.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// `_refresh`: counts a compute and stores the value, if any (fail-open).
    async fn store<T: Cacheable>(&self, key: Option<CallKey>, value: Option<&T>) {
        self.counters.computes.fetch_add(1, Relaxed);
        if let (Some(active), Some(key), Some(value)) = (&self.active, key, value) {
            if let Err(err) = active.cache.set_with(key.key(), value, &self.policy).await {
                // The L2 guard logs backend failures, rate-limited; per call, debug only.
                tracing::debug!(target: LOG, key = key.key(), error = %err, "refreshed value not stored");
            }
        }
    }

    fn store_blocking<T: Cacheable>(&self, key: Option<CallKey>, value: Option<&T>) {
        self.counters.computes.fetch_add(1, Relaxed);
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

/// A call's remembered hit: returns the value, cloned straight into the
/// caller's return value (moving a just-written struct through a few frames
/// cost more than the clone of a small one); else gives the key (`None`:
/// the call runs uncached).
macro_rules! remembered_or_key {
    ($handle:expr, $found:expr, $wrap:expr) => {{
        // Read in place: a hit moves nothing out of `found`, so there is no
        // copy of it to make (see `Want::lookup` for what copies cost).
        let found = $found;
        if let Found::Remembered(recalled) = &found {
            if let Some(value) = $handle.remembered(recalled) {
                return $wrap(Clone::clone(value));
            }
        }
        match found {
            Found::Remembered(recalled) => recalled.forget(),
            Found::Key(key) => key,
        }
    }};
}

/// The value of a call's remembered entry, cloned; else the call's key
/// (`None`: it runs uncached). An async call settles this before its first
/// `.await`, so that its future does not hold the thread's table.
#[doc(hidden)]
#[inline]
pub fn settle<T: Cacheable>(handle: &CachedFn, found: Found<'_>) -> Result<T, Option<CallKey>> {
    Err(remembered_or_key!(handle, found, Ok))
}

// The calls generated code makes, one per return kind. Each serves both the
// function and its `_refresh` companion, so that a return type which cannot
// be cached is reported once, not once per companion. Free functions rather
// than methods: their paths print the same in every compiler diagnostic.
// The async ones take what [`settle`] left: the call's key, or `None`.

/// A call of a function whose every value is cached.
#[doc(hidden)]
pub async fn value<T, F, Fut>(handle: &CachedFn, call: Call, key: Option<CallKey>, compute: F) -> T
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let always = || {
        let fut = compute();
        async move { Ok::<T, Infallible>(fut.await) }
    };
    match result(handle, call, key, always).await {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// A call of a function whose `Ok` values are cached.
#[doc(hidden)]
pub async fn result<T, E, F, Fut>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: F,
) -> Result<T, E>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // The refresh and the uncached call are boxed: inline, their futures
    // (the body's, and the store's of some 800 bytes) would be part of every
    // call's future, which is moved whole (memcpy) on its way to the caller.
    if call == Call::Refresh {
        return Box::pin(refresh(handle, key, compute)).await;
    }
    let Some((active, key)) = handle.target(key) else {
        return Box::pin(compute()).await;
    };
    let ran = AtomicBool::new(false);
    let result = active
        .cache
        .try_get_or_compute_call(&key, &handle.policy, || {
            ran.store(true, Relaxed);
            compute()
        })
        .await;
    handle.counters.call(ran.into_inner());
    active.remember(&key);
    result
}

/// A `_refresh` call: runs the body and stores what it returns.
async fn refresh<T, E, F, Fut>(handle: &CachedFn, key: Option<CallKey>, compute: F) -> Result<T, E>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let result = compute().await;
    handle.store(key, result.as_ref().ok()).await;
    result
}

/// A call of a function whose `Some` values are cached.
#[doc(hidden)]
pub async fn option<T, F, Fut>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: F,
) -> Option<T>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let some = || {
        let fut = compute();
        async move { fut.await.ok_or(NotCached) }
    };
    result(handle, call, key, some).await.ok()
}

/// Blocking [`value`].
#[doc(hidden)]
#[inline]
pub fn value_blocking<T: Cacheable>(
    handle: &CachedFn,
    call: Call,
    found: Found<'_>,
    compute: impl FnOnce() -> T + Send,
) -> T {
    let key = remembered_or_key!(handle, found, std::convert::identity);
    match lookup_blocking(handle, call, key, || Ok::<T, Infallible>(compute())) {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Blocking [`result`].
#[doc(hidden)]
#[inline]
pub fn result_blocking<T: Cacheable, E: Send>(
    handle: &CachedFn,
    call: Call,
    found: Found<'_>,
    compute: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    let key = remembered_or_key!(handle, found, Ok);
    lookup_blocking(handle, call, key, compute)
}

/// Blocking [`option`].
#[doc(hidden)]
#[inline]
pub fn option_blocking<T: Cacheable>(
    handle: &CachedFn,
    call: Call,
    found: Found<'_>,
    compute: impl FnOnce() -> Option<T> + Send,
) -> Option<T> {
    let key = remembered_or_key!(handle, found, Some);
    lookup_blocking(handle, call, key, || compute().ok_or(NotCached)).ok()
}

/// The blocking calls past the remembered entry: `_refresh`, or the
/// cache's normal lookup.
#[inline(never)]
fn lookup_blocking<T: Cacheable, E: Send>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    if call == Call::Refresh {
        let result = compute();
        handle.store_blocking(key, result.as_ref().ok());
        return result;
    }
    let Some((active, key)) = handle.target(key) else {
        return compute();
    };
    let mut ran = false;
    let result = active
        .cache
        .try_get_or_compute_call_blocking(&key, &handle.policy, || {
            ran = true;
            compute()
        });
    handle.counters.call(ran);
    active.remember(&key);
    result
}

/// What the first step of a call found (see [`CachedFn::lookup`]).
#[doc(hidden)]
#[derive(Debug)]
pub enum Found<'h> {
    /// The remembered L1 entry, borrowed from this thread's table.
    Remembered(Recalled<'h>),
    /// The key, for the cache's normal lookup; `None`: no key (or no
    /// cache), the body runs uncached.
    ///
    /// (Two variants, not a third for "uncached": with three, `Found` no
    /// longer fits the one spare value of the table pointer and gets a tag
    /// of its own, and the compiler moved it with the same partial stores
    /// and wide loads as described at `Want::lookup`.)
    Key(Option<CallKey>),
}

impl<'h> From<Recall<'h>> for Found<'h> {
    #[inline(always)]
    fn from(recall: Recall<'h>) -> Self {
        match recall {
            Recall::Entry(recalled) => Found::Remembered(recalled),
            Recall::Key(key) => Found::Key(Some(key)),
        }
    }
}

/// The "error" that keeps a `None` out of the cache.
struct NotCached;

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
