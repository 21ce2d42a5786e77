//! The cache a `#[cached]` function uses when it names no `backend`.
//!
//! Resolved once per process, on the first call of such a function, in
//! this order:
//!
//! 1. the cache given to [`set_default_backend`], if it was called first;
//! 2. Redis, if `CACHEKIT_REDIS_URL` or `REDIS_URL` is set (and not empty):
//!    a [`RedisBackend`](cachekit_redis::RedisBackend) configured from the
//!    environment (see `RedisConfig::from_env`), behind the default L1;
//! 3. otherwise an in-process L1 only.
//!
//! Every function without `backend` shares that one cache (one L1 budget,
//! one Redis pool); functions with `l1 = false` or `l1_ttl` put their own
//! L1 in front of its L2.

use std::sync::OnceLock;

use cachekit_core::{Error, Result, TieredCache};

static DEFAULT: OnceLock<Option<TieredCache>> = OnceLock::new();

/// Sets the cache that `#[cached]` functions without `backend = ...` use.
///
/// Call it once, at startup, before the first cached call: the default is
/// fixed when it is first used.
///
/// ```
/// use cachekit::{MemoryBackend, TieredCache};
///
/// # fn main() -> cachekit::Result<()> {
/// // L1 in front of a shared tier (here a second MemoryBackend; in
/// // production a RedisBackend or FileBackend).
/// let cache = TieredCache::builder().l2(MemoryBackend::builder().build()?).build()?;
/// cachekit::set_default_backend(cache.clone())?;
///
/// #[cachekit::cached(namespace = "docs", name = "double")]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
/// assert_eq!(double(21), 42);
/// assert_eq!(cache.stats().l2.sets, 1);
///
/// // Only the first call counts.
/// assert!(cachekit::set_default_backend(TieredCache::builder().build()?).is_err());
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) if a default was already
/// set, or already resolved by a cached function's first call.
pub fn set_default_backend(cache: TieredCache) -> Result<()> {
    DEFAULT.set(Some(cache)).map_err(|_| {
        Error::config(
            "default backend",
            "it is already set, or a #[cached] function already used it; call \
             cachekit::set_default_backend once, before the first cached call",
        )
    })
}

/// The process-wide default, resolving it on first use.
pub(crate) fn default_cache() -> Option<&'static TieredCache> {
    DEFAULT.get_or_init(resolve).as_ref()
}

fn resolve() -> Option<TieredCache> {
    if let Some(var) = redis_url_var() {
        match crate::__private::in_runtime(redis_from_env) {
            Ok(cache) => {
                tracing::info!(target: "cachekit", source = var, "#[cached] default backend: Redis");
                return Some(cache);
            }
            Err(err) => tracing::error!(
                target: "cachekit",
                source = var,
                error = %err,
                "#[cached] default backend: Redis is configured but unusable; caching in this process's memory only"
            ),
        }
    }
    match TieredCache::builder().build() {
        Ok(cache) => Some(cache),
        Err(err) => {
            tracing::error!(target: "cachekit", error = %err, "#[cached] default backend: cannot build an L1; cached functions run uncached");
            None
        }
    }
}

/// The first of the Redis URL variables that is set, by name (its value
/// may hold a password and is never logged).
fn redis_url_var() -> Option<&'static str> {
    ["CACHEKIT_REDIS_URL", "REDIS_URL"]
        .into_iter()
        .find(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// The Redis branch: L1 in front of a lazily connecting Redis pool, so that
/// an application starts (and caches in L1) while Redis is down.
#[cfg(feature = "redis")]
fn redis_from_env() -> Result<TieredCache> {
    let config = cachekit_redis::RedisConfig::from_env()?;
    let redis = cachekit_redis::RedisBackend::connect_lazy(config)?;
    TieredCache::builder().l2(redis).build()
}

#[cfg(not(feature = "redis"))]
fn redis_from_env() -> Result<TieredCache> {
    Err(Error::config(
        "default backend",
        "a Redis URL is set but cachekit was built without its `redis` feature",
    ))
}
