//! The cache a `#[cached]` function uses when it names no `backend`.
//!
//! Resolved once per process, on the first call of such a function, in
//! this order:
//!
//! 1. the cache given to [`set_default_backend`], if it was called first;
//! 2. Redis, if `CACHEKIT_REDIS_URL`, `REDIS_URL`,
//!    `CACHEKIT_REDIS_CLUSTER_NODES` or `REDIS_SENTINEL_HOST` is set (and
//!    not empty):
//!    a [`RedisBackend`](cachekit_redis::RedisBackend) configured from the
//!    environment (see `RedisConfig::from_env`), behind the default L1;
//! 3. otherwise an in-process L1 only.
//!
//! A Redis URL whose configuration is unusable falls back to 3 (fail-open):
//! [`default_backend_status`] then reports `Degraded` with the reason, and
//! the ERROR is repeated once a minute. [`init_default_backend`] chooses
//! the default at startup and returns that error instead of falling back.
//!
//! Every function without `backend` shares that one cache (one L1 budget,
//! one Redis pool); functions with `l1 = false` or `l1_ttl` put their own
//! L1 in front of its L2.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachekit_core::{Error, ErrorKind, Result, TieredCache};

static DEFAULT: OnceLock<Resolved> = OnceLock::new();

/// How often the ERROR about a degraded default is repeated, in ms.
static REMINDER_MS: AtomicU64 = AtomicU64::new(60_000);

struct Resolved {
    cache: Option<TieredCache>,
    status: DefaultBackendStatus,
    /// The kind of the error behind a degraded status.
    error_kind: ErrorKind,
}

/// What the cache of `#[cached]` functions without `backend = ...` is; see
/// [`default_backend_status`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultBackendStatus {
    /// Not chosen yet: no such function has run, and neither
    /// [`set_default_backend`] nor [`init_default_backend`] was called.
    Unresolved,
    /// The cache given to [`set_default_backend`].
    Custom,
    /// Redis configured from the environment (a URL, cluster nodes or
    /// sentinels), behind an L1.
    Redis,
    /// No Redis URL is set: an in-process L1 only, as configured.
    Memory,
    /// A Redis URL is set but its configuration is unusable: the functions
    /// cache in this process's memory only. `reason` is the error (it never
    /// contains a password); the ERROR log repeats it once a minute.
    Degraded {
        /// What is wrong with the configuration, and what fixes it.
        reason: String,
    },
    /// Not even an L1 could be built: the functions run uncached.
    Uncached {
        /// Why.
        reason: String,
    },
}

impl DefaultBackendStatus {
    /// Whether the process runs without the cache it was configured for.
    pub fn is_degraded(&self) -> bool {
        matches!(self, Self::Degraded { .. } | Self::Uncached { .. })
    }
}

/// What the default cache of `#[cached]` functions is, and whether it is
/// the one configured: a health check's way to learn that Redis is unused.
///
/// ```
/// let status = cachekit::default_backend_status();
/// assert!(!status.is_degraded());
/// ```
pub fn default_backend_status() -> DefaultBackendStatus {
    DEFAULT
        .get()
        .map_or(DefaultBackendStatus::Unresolved, |r| r.status.clone())
}

/// Chooses the default cache of `#[cached]` functions now, and fails instead
/// of falling back to memory when the configured Redis is unusable: a
/// strict start for applications that must not run without their L2.
///
/// Only the configuration is checked; the Redis connection is opened
/// lazily, so that a server still starting does not fail the application.
/// After an error nothing is chosen yet: fix the environment and call it
/// again, or call [`set_default_backend`].
///
/// ```no_run
/// # fn main() -> cachekit::Result<()> {
/// // At startup, before the first cached call:
/// let status = cachekit::init_default_backend()?;
/// println!("#[cached] default backend: {status:?}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// The configuration error (naming the variable, never the password) when
/// a Redis variable (`CACHEKIT_REDIS_URL`, `REDIS_URL`,
/// `CACHEKIT_REDIS_CLUSTER_NODES`, `REDIS_SENTINEL_HOST`) is set but unusable, or, if the default
/// was already chosen with a fallback, the error it fell back from.
pub fn init_default_backend() -> Result<DefaultBackendStatus> {
    if let Some(resolved) = DEFAULT.get() {
        return settled(resolved);
    }
    let resolved = match redis_url_var() {
        Some(_) => {
            let cache = crate::__private::in_runtime(redis_from_env)?;
            Resolved::ok(Some(cache), DefaultBackendStatus::Redis)
        }
        None => match TieredCache::builder().build() {
            Ok(cache) => Resolved::ok(Some(cache), DefaultBackendStatus::Memory),
            Err(err) => return Err(err),
        },
    };
    // Another thread may have chosen first; its choice stands.
    let _ = DEFAULT.set(resolved);
    match DEFAULT.get() {
        Some(resolved) => settled(resolved),
        None => Ok(DefaultBackendStatus::Unresolved),
    }
}

fn settled(resolved: &Resolved) -> Result<DefaultBackendStatus> {
    match &resolved.status {
        DefaultBackendStatus::Degraded { reason } | DefaultBackendStatus::Uncached { reason } => {
            Err(Error::new(resolved.error_kind, reason.clone()))
        }
        status => Ok(status.clone()),
    }
}

impl Resolved {
    fn ok(cache: Option<TieredCache>, status: DefaultBackendStatus) -> Self {
        Self {
            cache,
            status,
            error_kind: ErrorKind::Config,
        }
    }
}

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
/// [`ErrorKind::Config`] if a default was already
/// set, or already resolved by a cached function's first call.
pub fn set_default_backend(cache: TieredCache) -> Result<()> {
    DEFAULT
        .set(Resolved::ok(Some(cache), DefaultBackendStatus::Custom))
        .map_err(|_| {
            Error::config(
                "default backend",
                "it is already set, or a #[cached] function already used it; call \
                 cachekit::set_default_backend once, before the first cached call",
            )
        })
}

/// How often the ERROR about a degraded default repeats (default one
/// minute); for tests.
#[doc(hidden)]
pub fn __set_degraded_reminder_interval(interval: Duration) {
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    REMINDER_MS.store(ms, Ordering::Relaxed);
}

/// The process-wide default, resolving it on first use.
pub(crate) fn default_cache() -> Option<&'static TieredCache> {
    DEFAULT.get_or_init(resolve).cache.as_ref()
}

const DEGRADED: &str = "#[cached] default backend: Redis is configured but unusable; caching in this process's memory only";

fn resolve() -> Resolved {
    let mut degraded = None;
    if let Some(var) = redis_url_var() {
        match crate::__private::in_runtime(redis_from_env) {
            Ok(cache) => {
                tracing::info!(target: "cachekit", source = var, "#[cached] default backend: Redis");
                return Resolved::ok(Some(cache), DefaultBackendStatus::Redis);
            }
            Err(err) => {
                tracing::error!(target: "cachekit", source = var, error = %err, "{DEGRADED}");
                remind(var, err.to_string());
                degraded = Some((err.kind(), err.to_string()));
            }
        }
    }
    let builder = TieredCache::builder();
    let builder = if degraded.is_some() {
        builder.l2_unavailable()
    } else {
        builder
    };
    match (builder.build(), degraded) {
        (Ok(cache), None) => Resolved::ok(Some(cache), DefaultBackendStatus::Memory),
        (Ok(cache), Some((error_kind, reason))) => Resolved {
            cache: Some(cache),
            status: DefaultBackendStatus::Degraded { reason },
            error_kind,
        },
        (Err(err), _) => {
            tracing::error!(target: "cachekit", error = %err, "#[cached] default backend: cannot build an L1; cached functions run uncached");
            Resolved {
                cache: None,
                error_kind: err.kind(),
                status: DefaultBackendStatus::Uncached {
                    reason: err.to_string(),
                },
            }
        }
    }
}

/// Repeats the ERROR of a degraded default for the life of the process,
/// so that it is not lost among old log lines (one thread, sleeping).
fn remind(var: &'static str, error: String) {
    let spawned = std::thread::Builder::new()
        .name("cachekit-default-backend".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(REMINDER_MS.load(Ordering::Relaxed)));
            tracing::error!(target: "cachekit", source = var, error = %error, "{DEGRADED} (still)");
        });
    if let Err(err) = spawned {
        tracing::warn!(target: "cachekit", error = %err, "#[cached] default backend: cannot start the thread that repeats the ERROR above");
    }
}

/// The first of the variables that name a Redis deployment that is set,
/// by name (a URL may hold a password and is never logged).
#[cfg(feature = "redis")]
fn redis_url_var() -> Option<&'static str> {
    cachekit_redis::RedisConfig::env_source()
}

#[cfg(not(feature = "redis"))]
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
