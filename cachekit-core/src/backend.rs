//! The storage contract every tier implements: async, object safe, bytes in and out.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::invalidation::Invalidations;

/// How long a stored key has left to live.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key exists and expires after this long.
    Remaining(Duration),
}

impl Ttl {
    /// The remaining lifetime, `None` when the key is missing or persistent.
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Ttl::Remaining(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the key exists.
    pub fn exists(self) -> bool {
        !matches!(self, Ttl::Missing)
    }
}

/// What a backend reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether the backend answered a trivial request.
    pub healthy: bool,
    /// How long that request took.
    pub latency: Duration,
    /// The backend's name (`"memory"`, `"redis"`, `"file"`, ...).
    pub backend: String,
    /// Backend-specific facts (server version, entry count, pool state, ...).
    pub details: BTreeMap<String, String>,
}

impl Health {
    /// A report with no details.
    pub fn new(backend: impl Into<String>, healthy: bool, latency: Duration) -> Self {
        Self {
            healthy,
            latency,
            backend: backend.into(),
            details: BTreeMap::new(),
        }
    }

    /// Adds one detail.
    #[must_use]
    pub fn detail(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.details.insert(name.into(), value.to_string());
        self
    }
}

/// A connection pool's occupancy, for backends that keep one (Redis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// The configured `pool_size`: the most connections.
    pub max_size: u32,
    /// Connections open.
    pub connections: u32,
    /// Open connections no command is using (Redis: not held by a lane;
    /// see `docs/architecture.md`).
    pub idle: u32,
    /// The configured `max_in_flight`: the most commands awaiting replies.
    pub max_in_flight: u32,
    /// Commands awaiting replies now.
    pub in_flight: u32,
}

impl PoolState {
    /// A pool of at most `max_size` connections, `connections` of them open
    /// and `idle` of those unused, with `in_flight` of at most
    /// `max_in_flight` commands awaiting replies.
    pub fn new(
        max_size: u32,
        connections: u32,
        idle: u32,
        max_in_flight: u32,
        in_flight: u32,
    ) -> Self {
        Self {
            max_size,
            connections,
            idle,
            max_in_flight,
            in_flight,
        }
    }

    /// Open connections in use: `connections - idle`.
    pub fn in_use(&self) -> u32 {
        self.connections.saturating_sub(self.idle)
    }
}

/// A key-value store that a [`TieredCache`](crate::TieredCache) can use as a tier.
///
/// Keys are UTF-8 strings (cachekit keys are ASCII), values are opaque bytes;
/// serialization happens above this trait. Every method may fail with an
/// [`Error`](crate::Error); a backend that cannot do something returns
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) rather than
/// silently doing nothing.
///
/// TTLs mean the same on every backend: `None` is no expiry; a zero TTL is
/// "expired at once" (a `set` removes any previous value and the key reads
/// as missing, `expire(key, Some(ZERO))` deletes the key); a TTL beyond what
/// the backend can store is clamped to its maximum, never refused, and the
/// key keeps an expiry (Redis and memory: `i64::MAX / 2` milliseconds, about
/// 146 million years; file: `u64::MAX` seconds). The conformance suite in
/// `cachekit-testkit` pins these.
///
/// The trait is object safe: `Arc<dyn Backend>` is the usual way to hold one.
///
/// ```
/// use std::sync::Arc;
/// use cachekit::{Backend, MemoryBackend};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::builder().build()?);
/// backend.set("greeting", "hello".into(), None).await?;
/// assert_eq!(backend.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A short name for logs and stats (`"redis"`, `"file"`, `"memory"`).
    fn name(&self) -> &str;

    /// Whether every operation of this backend ends by the
    /// [current deadline](crate::deadline::current), if one is set, failing
    /// with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) once it passes.
    ///
    /// A [`TieredCache`](crate::TieredCache) then runs its L2 operations
    /// [`within`](crate::deadline::within) its deadline instead of under a
    /// timer of its own. The default, `false`, is always safe.
    fn enforces_deadline(&self) -> bool {
        false
    }

    /// Reads a value; `None` when the key is missing or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Reads a value together with its remaining lifetime.
    ///
    /// The default issues `get` then `ttl`; backends that can do both in one
    /// round trip should override it. A key that expires between the two
    /// reports [`Ttl::Missing`] alongside the value it had.
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        match self.get(key).await? {
            Some(value) => Ok(Some((value, self.ttl(key).await?))),
            None => Ok(None),
        }
    }

    /// Stores a value, replacing any previous one; `ttl: None` means no expiry.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;

    /// Removes a key; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Whether the key exists.
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.ttl(key).await?.exists())
    }

    /// The key's remaining lifetime.
    async fn ttl(&self, key: &str) -> Result<Ttl>;

    /// Changes the key's lifetime (`None` removes the expiry); returns whether
    /// the key existed.
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool>;

    /// Reads several keys; the result has one slot per key, in order.
    ///
    /// The default reads them one by one.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Stores several values with one lifetime.
    ///
    /// Not atomic: after an error some entries may be stored. The default
    /// writes them one by one.
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    /// Stores a value only if the key is absent; returns whether it was stored.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;

    /// Removes every key that starts with `prefix`; returns how many were removed.
    ///
    /// An empty prefix is refused, before anything is removed: on a
    /// backend without a key prefix of its own it would match every key
    /// of the database or directory, including keys cachekit never wrote.
    /// Implementations start with [`check_prefix`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an
    /// empty `prefix`; otherwise the
    /// backend's errors (after which some matching keys may remain).
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Probes the backend. Never fails: an unreachable backend is reported
    /// as unhealthy with the reason in `details["error"]`.
    async fn health(&self) -> Health;

    /// The channel through which this backend reports keys changed anywhere
    /// (by any process or client), for the L1s in front of it; `None` (the
    /// default) when it cannot notify. Called once per cache built on it;
    /// a backend may start its listener on the first call.
    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        None
    }

    /// The backend's connection pool now, if it keeps one; `None` (the
    /// default) otherwise. Cheap and synchronous: caches sample it once a
    /// second for their pool gauges.
    fn pool(&self) -> Option<PoolState> {
        None
    }

    /// Whether the backend keeps deletion marks (see
    /// [`deletion_mark`](Self::deletion_mark)); `false` by default, and
    /// then computations store plainly.
    fn keeps_deletion_marks(&self) -> bool {
        false
    }

    /// A mark of where `key`'s deletions stand, read before a value of it
    /// is computed, for [`set_unless_deleted`](Self::set_unless_deleted);
    /// `None` (the default) when the backend keeps no such record.
    async fn deletion_mark(&self, _key: &str) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// Stores a computed value unless `key` was deleted (or its prefix
    /// cleared) by anyone since `mark` was read, checked atomically with
    /// the write; whether it was stored. The default, for backends without
    /// marks, always stores.
    async fn set_unless_deleted(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        _mark: &[u8],
    ) -> Result<bool> {
        self.set(key, value, ttl).await.map(|()| true)
    }
}

/// Refuses the empty prefix that [`Backend::delete_prefix`] must not
/// accept; every implementation calls it first.
///
/// ```
/// use cachekit::check_prefix;
/// use cachekit::ErrorKind;
///
/// assert!(check_prefix("app:users:").is_ok());
/// assert_eq!(check_prefix("").unwrap_err().kind(), ErrorKind::InvalidInput);
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when
/// `prefix` is empty.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::new(
            crate::error::ErrorKind::InvalidInput,
            "delete_prefix(\"\") refused: an empty prefix matches every key in the cache, \
             including keys cachekit did not write; pass the prefix of the keys to remove, \
             such as \"namespace:\" or \"namespace:operation:\"",
        ));
    }
    Ok(())
}

/// Shared backends are backends: `Arc<RedisBackend>` or `Arc<dyn Backend>`
/// can go wherever an `impl Backend` is expected.
#[async_trait]
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn enforces_deadline(&self) -> bool {
        (**self).enforces_deadline()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get(key).await
    }
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        (**self).get_with_ttl(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        (**self).set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        (**self).exists(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        (**self).ttl(key).await
    }
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        (**self).expire(key, ttl).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        (**self).get_many(keys).await
    }
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        (**self).set_many(entries, ttl).await
    }
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        (**self).set_if_absent(key, value, ttl).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        (**self).delete_prefix(prefix).await
    }
    async fn health(&self) -> Health {
        (**self).health().await
    }

    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        (**self).invalidations()
    }
    fn pool(&self) -> Option<PoolState> {
        (**self).pool()
    }
    fn keeps_deletion_marks(&self) -> bool {
        (**self).keeps_deletion_marks()
    }
    async fn deletion_mark(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).deletion_mark(key).await
    }
    async fn set_unless_deleted(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mark: &[u8],
    ) -> Result<bool> {
        (**self).set_unless_deleted(key, value, ttl, mark).await
    }
}
