//! Read-through requests: `cache.entry(key)`, its options, then what to run
//! on a miss.
//!
//! Every option is a method, so one request type covers what would
//! otherwise be a method per combination. The failure mode is part of the
//! type ([`FailOpen`], [`FailClosed`], [`RefreshAhead`]) because each asks
//! different things of the computation: a fail-closed one must accept the
//! cache's [`Error`], a refreshing one must own what it uses.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::tiers::Found;
use super::{Cacheable, Policy, TieredCache};
use crate::error::Error;
use crate::keys::KeyBuilder;

/// The default mode: a cache failure is logged and counted, and the
/// computation's value is returned anyway.
#[derive(Debug, Clone, Copy)]
pub struct FailOpen;

/// [`Entry::strict`]: a cache failure fails the call.
#[derive(Debug, Clone, Copy)]
pub struct FailClosed;

/// [`Entry::refresh_ahead`]: hits late in their TTL recompute in the
/// background.
#[derive(Debug, Clone, Copy)]
pub struct RefreshAhead;

/// A read-through request for one key, made by [`TieredCache::entry`] or
/// [`TieredCache::entry_for`]: set options, then finish with
/// [`or_compute`](Entry::or_compute) or
/// [`or_try_compute`](Entry::or_try_compute) (or their
/// [`blocking`](Entry::blocking) forms).
///
/// Unset options take the cache's defaults (see [`Policy`]). Concurrent
/// requests for the same cold key share one computation.
///
/// ```
/// use std::time::Duration;
/// use cachekit::TieredCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let cache = TieredCache::builder().build()?;
/// let name = cache
///     .entry("users:name:42")
///     .ttl(Duration::from_secs(60))
///     .max_stale(Duration::from_secs(600))
///     .or_try_compute(|| async { Ok::<_, std::io::Error>("Ada".to_owned()) })
///     .await?;
/// assert_eq!(name, "Ada");
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until `or_compute` or `or_try_compute` runs it"]
#[derive(Debug)]
pub struct Entry<'a, M = FailOpen> {
    cache: &'a TieredCache,
    key: Key<'a>,
    /// The function's key builder, when known: its namespace and operation
    /// name the call's span.
    keys: Option<&'a KeyBuilder>,
    policy: Policy,
    mode: PhantomData<M>,
}

/// The key of a request.
#[derive(Debug)]
enum Key<'a> {
    Borrowed(&'a str),
    /// A `#[cached]` call's key: the single-flight entry keeps this copy
    /// instead of copying the bytes.
    Shared(&'a Arc<str>),
    Derived(String),
    /// The arguments gave no key: the computation runs uncached.
    Underivable(&'a KeyBuilder, Box<Error>),
}

impl Key<'_> {
    /// The key and its shared copy, if any; `None` when there is no key.
    #[inline]
    fn parts(&self) -> Option<(&str, Option<&Arc<str>>)> {
        match self {
            Key::Borrowed(key) => Some((key, None)),
            Key::Shared(key) => Some((key, Some(*key))),
            Key::Derived(key) => Some((key, None)),
            Key::Underivable(..) => None,
        }
    }

    /// Why there is no key (a fail-closed request's error).
    fn into_error(self) -> Error {
        match self {
            Key::Underivable(_, err) => *err,
            _ => Error::new(crate::ErrorKind::InvalidInput, "no cache key"),
        }
    }
}

impl TieredCache {
    /// A read-through request for `key`: the cached value, or what the
    /// computation given to [`Entry::or_compute`] returns (cached).
    #[inline]
    pub fn entry<'a>(&'a self, key: &'a str) -> Entry<'a> {
        self.request(Key::Borrowed(key), None)
    }

    /// A read-through request keyed by a function's arguments: the key is
    /// `keys.key(args)`.
    ///
    /// If the arguments give no key (a NaN or an out-of-range integer among
    /// them), the computation runs uncached, with a warning, and the call
    /// never fails because of the cache.
    ///
    /// ```
    /// use cachekit::{KeyBuilder, TieredCache};
    ///
    /// # fn main() -> cachekit::Result<()> {
    /// let cache = TieredCache::builder().build()?;
    /// let users = KeyBuilder::new("users", "get_user")?;
    /// let name: String = cache.entry_for(&users, &(42,)).blocking().or_compute(|| "Ada".into());
    /// assert_eq!(name, "Ada");
    /// assert_eq!(cache.stats().computes, 1);
    /// # Ok(()) }
    /// ```
    pub fn entry_for<'a, A: Serialize + ?Sized>(
        &'a self,
        keys: &'a KeyBuilder,
        args: &A,
    ) -> Entry<'a> {
        let key = match keys.key(args) {
            Ok(key) => Key::Derived(key),
            Err(err) => Key::Underivable(keys, Box::new(err)),
        };
        self.request(key, Some(keys))
    }

    /// [`entry`](Self::entry) for a key the caller holds as an `Arc<str>`
    /// (a `#[cached]` call's, made by `keys`): a computation's single-flight
    /// entry keeps that copy instead of copying the key.
    #[doc(hidden)]
    #[inline]
    pub fn entry_shared<'a>(&'a self, keys: &'a KeyBuilder, key: &'a Arc<str>) -> Entry<'a> {
        self.request(Key::Shared(key), Some(keys))
    }

    #[inline]
    fn request<'a>(&'a self, key: Key<'a>, keys: Option<&'a KeyBuilder>) -> Entry<'a> {
        Entry {
            cache: self,
            key,
            keys,
            policy: Policy::new(),
            mode: PhantomData,
        }
    }

    /// The cached value under `key`, or `compute`'s (cached): the shortest
    /// form of [`entry`](Self::entry). `ttl: None` uses the cache's default.
    /// Cache failures are logged and counted, never returned.
    pub async fn get_or_compute<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let policy = self.policy_for_ttl(ttl);
        let infallible = || async { Ok::<T, Infallible>(compute().await) };
        self.read_through(key, None, None, &policy, None, infallible)
            .await
            .unwrap_or_else(|never| match never {})
    }

    /// Blocking [`get_or_compute`](Self::get_or_compute).
    pub fn get_or_compute_blocking<T, F>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> T + Send,
    {
        let policy = self.policy_for_ttl(ttl);
        let infallible = || Ok::<T, Infallible>(compute());
        self.read_through_blocking(key, None, None, &policy, None, infallible)
            .unwrap_or_else(|never| match never {})
    }

    /// The default policy with `ttl`, when given.
    fn policy_for_ttl(&self, ttl: Option<Duration>) -> Policy {
        Policy {
            ttl,
            ..Policy::default()
        }
        .or(&self.inner.defaults)
    }
}

impl<'a, M> Entry<'a, M> {
    /// How long the value is fresh.
    #[inline]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = Some(ttl);
        self
    }

    /// Serve-stale: keep the value this long past its TTL, and return it
    /// when its recomputation fails (or, with
    /// [`compute_timeout`](Self::compute_timeout), is slow); the key is then
    /// not recomputed again for a while.
    #[inline]
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.policy.max_stale = Some(max_stale);
        self
    }

    /// With serve-stale: how long a recomputation may take before the
    /// stale value is returned instead.
    #[inline]
    pub fn compute_timeout(mut self, timeout: Duration) -> Self {
        self.policy.compute_timeout = Some(timeout);
        self
    }

    /// Read and write the family's interop/v1 value (see
    /// [`ValueFormat::Interop`](crate::ValueFormat::Interop)) instead of the
    /// cache's default format.
    #[inline]
    pub fn interop(mut self) -> Self {
        self.policy.format = Some(crate::ValueFormat::Interop);
        self
    }

    /// Every option at once; fields left `None` take the cache's defaults.
    /// (A `refresh_ahead` in it takes effect only through
    /// [`refresh_ahead`](Entry::refresh_ahead), which needs a computation
    /// that can run later.)
    #[inline]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    #[inline]
    fn with_mode<N>(self) -> Entry<'a, N> {
        Entry {
            cache: self.cache,
            key: self.key,
            keys: self.keys,
            policy: self.policy,
            mode: PhantomData,
        }
    }

    /// The policy with the cache's defaults filling the gaps.
    #[inline]
    fn resolved(&self) -> Policy {
        self.policy.or(&self.cache.inner.defaults)
    }

    /// A fail-open request's key, its shared copy and its resolved policy;
    /// `None`, logged and counted, when the arguments gave no key (the
    /// computation then runs uncached).
    #[inline]
    fn target(&self) -> Option<(&str, Option<&Arc<str>>, Policy)> {
        if let Some((key, shared)) = self.key.parts() {
            return Some((key, shared, self.resolved()));
        }
        if let Key::Underivable(keys, err) = &self.key {
            self.uncached(keys, err);
        }
        None
    }

    /// No key: logged, counted, and the computation runs uncached.
    #[cold]
    fn uncached(&self, keys: &KeyBuilder, err: &Error) {
        self.cache.inner.counters.uncached();
        tracing::warn!(
            target: "cachekit",
            namespace = keys.namespace(),
            operation = keys.operation(),
            error = %err,
            "no cache key for these arguments; calling uncached"
        );
    }

    /// The blocking form of this request, for synchronous code (see
    /// [`BlockingEntry`]).
    #[inline]
    pub fn blocking(self) -> BlockingEntry<'a, M> {
        BlockingEntry(self)
    }
}

impl<'a> Entry<'a, FailOpen> {
    /// Fail-closed: when L2 cannot be read (error, deadline, circuit open)
    /// or the computed value cannot be stored, the call fails with the
    /// cache's error instead of running uncached. For callers whose
    /// correctness depends on the shared cache (a rate limiter, say).
    pub fn strict(self) -> Entry<'a, FailClosed> {
        self.with_mode()
    }

    /// Refresh-ahead: a hit in the last `fraction` of its TTL (0 < f < 1)
    /// returns at once and recomputes the value in the background, once
    /// however many callers see it. The computation must therefore own
    /// what it uses. Without a tokio runtime no refresh starts; the key
    /// then expires and is recomputed on the next miss.
    pub fn refresh_ahead(mut self, fraction: f64) -> Entry<'a, RefreshAhead> {
        self.policy.refresh_ahead = Some(fraction);
        self.with_mode()
    }

    /// Refresh-ahead with the fraction of the request's
    /// [`policy`](Self::policy), else the cache's default; without either,
    /// a plain read-through.
    pub fn refreshing(self) -> Entry<'a, RefreshAhead> {
        self.with_mode()
    }

    /// The cached value, or `compute`'s, which is cached.
    pub async fn or_compute<T, F, Fut>(self, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let infallible = || async { Ok::<T, Infallible>(compute().await) };
        self.or_try_compute(infallible)
            .await
            .unwrap_or_else(|never| match never {})
    }

    /// The cached value, or `compute`'s: `Ok` is cached and returned, `Err`
    /// is returned and not cached. Errors are not shared: when the
    /// computation others were waiting for fails, each runs its own.
    ///
    /// # Errors
    /// Only the computation's own error, when there is no stale value to
    /// serve.
    pub async fn or_try_compute<T, E, F, Fut>(self, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some((key, shared, policy)) = self.target() else {
            return compute().await;
        };
        self.cache
            .read_through(key, shared, self.keys, &policy, None, compute)
            .await
    }
}

impl Entry<'_, FailClosed> {
    /// As [`Entry::or_try_compute`], failing with the cache's error
    /// (converted with `E::from`) where that one would run uncached.
    ///
    /// # Errors
    /// The computation's error, or the cache's.
    pub async fn or_try_compute<T, E, F, Fut>(self, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some((key, shared)) = self.key.parts() else {
            return Err(E::from(self.key.into_error()));
        };
        let policy = self.resolved();
        self.cache
            .read_through(key, shared, self.keys, &policy, Some(E::from), compute)
            .await
    }
}

impl Entry<'_, RefreshAhead> {
    /// As [`Entry::or_compute`], with refresh-ahead.
    pub async fn or_compute<T, F, Fut>(self, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let infallible = move || async move { Ok::<T, Infallible>(compute().await) };
        self.or_try_compute(infallible)
            .await
            .unwrap_or_else(|never| match never {})
    }

    /// As [`Entry::or_try_compute`], with refresh-ahead.
    ///
    /// # Errors
    /// Only the computation's own error.
    pub async fn or_try_compute<T, E, F, Fut>(self, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let open = self.with_mode::<FailOpen>();
        let Some((key, _)) = open.key.parts() else {
            return open.or_try_compute(compute).await;
        };
        let cache = open.cache;
        let policy = open.resolved();
        if let Found::Fresh(v, true) = cache.l1_peek::<T>(key, &policy) {
            cache.inner.counters.l1.hit();
            cache.spawn_refresh(key, &policy, compute);
            return Ok(v);
        }
        open.or_try_compute(compute).await
    }
}

/// The blocking form of an [`Entry`], from [`Entry::blocking`].
///
/// L1 hits are served on the calling thread; everything else runs the
/// async path to completion without nesting runtimes (see the module docs
/// of [`TieredCache`]'s blocking methods), so the computation may run on a
/// helper thread and must be `Send`.
#[must_use = "a request does nothing until `or_compute` or `or_try_compute` runs it"]
#[derive(Debug)]
pub struct BlockingEntry<'a, M = FailOpen>(Entry<'a, M>);

impl BlockingEntry<'_, FailOpen> {
    /// Blocking [`Entry::or_compute`].
    pub fn or_compute<T, F>(self, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> T + Send,
    {
        self.or_try_compute(|| Ok::<T, Infallible>(compute()))
            .unwrap_or_else(|never| match never {})
    }

    /// Blocking [`Entry::or_try_compute`].
    ///
    /// # Errors
    /// Only the computation's own error, when there is no stale value to
    /// serve.
    pub fn or_try_compute<T, E, F>(self, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        E: Send,
        F: FnOnce() -> Result<T, E> + Send,
    {
        let entry = self.0;
        let Some((key, shared, policy)) = entry.target() else {
            return compute();
        };
        entry
            .cache
            .read_through_blocking(key, shared, entry.keys, &policy, None, compute)
    }
}

impl BlockingEntry<'_, FailClosed> {
    /// Blocking [`Entry::or_try_compute`] of a [`strict`](Entry::strict)
    /// request.
    ///
    /// # Errors
    /// The computation's error, or the cache's.
    pub fn or_try_compute<T, E, F>(self, compute: F) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error> + Send,
        F: FnOnce() -> Result<T, E> + Send,
    {
        let entry = self.0;
        let Some((key, shared)) = entry.key.parts() else {
            return Err(E::from(entry.key.into_error()));
        };
        let policy = entry.resolved();
        entry
            .cache
            .read_through_blocking(key, shared, entry.keys, &policy, Some(E::from), compute)
    }
}
