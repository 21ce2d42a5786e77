//! [`RedisBackend`]: the [`Backend`] trait over the pool.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cachekit_core::backend::PoolState;
use cachekit_core::{Backend, Error, ErrorKind, Health, Invalidations, Result, Ttl};
use redis::Value;

use crate::config::RedisConfig;
use crate::errors::{self, Op};
use crate::pool::{Manager, Pool};
use crate::script::Scripts;
use crate::state::Inner;
use crate::wire::{px, px_arg, ttl_of};

mod commands;

/// How many keys one SCAN step asks for; the same bound applies to each
/// UNLINK batch.
const SCAN_COUNT: usize = 1000;

/// A pooled Redis (or Valkey) [`Backend`].
///
/// Cheap to clone: clones share the pool. Every operation takes one
/// in-flight slot and a handle to a pooled multiplexed connection for one
/// command or pipeline, with the configured response deadline. Commands
/// share one connection until 64 of them await replies, and only then
/// spread over more, up to `pool_size`. Keys are stored as
/// `{key_prefix}{key}`.
///
/// A key holding a hash, list or other non-string is a miss for `get`,
/// `get_with_ttl`, `get_many` and [`get_versioned`](Self::get_versioned),
/// and is replaced by `set`, `set_many`, `set_if_absent` and
/// [`set_if_version`](Self::set_if_version) with [`Version::absent`](crate::Version::absent).
/// `exists`, `ttl`, `expire` and `delete` act on the key whatever its type.
///
/// ```no_run
/// use std::time::Duration;
/// use cachekit::Backend;
/// use cachekit::redis::{RedisBackend, RedisConfig};
///
/// # async fn demo() -> cachekit::Result<()> {
/// let config = RedisConfig::builder()
///     .url("redis://localhost:6379/0")
///     .key_prefix("myapp:")
///     .build()?;
/// let redis = RedisBackend::new(config).await?;
/// redis.set("greeting", "hello".into(), Some(Duration::from_secs(60))).await?;
/// assert_eq!(redis.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) inner: Arc<Inner>,
}

impl RedisBackend {
    /// Connects to the server `config` names, failing now if it cannot.
    ///
    /// One connection is opened (and kept in the pool) to check the
    /// address, TLS, credentials and database; the rest open on demand, or
    /// up to `min_idle` in the background.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an invalid field or unreadable TLS file;
    /// [`ErrorKind::Connection`] when the server cannot be reached or the TLS
    /// handshake fails; [`ErrorKind::Auth`] when it refuses the credentials.
    /// The message names the server and the likely fix.
    pub async fn new(config: RedisConfig) -> Result<Self> {
        let backend = Self::build(config)?;
        backend.inner.pool.connect_now().await?;
        crate::topology::check_mode(&backend.inner).await?;
        Ok(backend)
    }

    /// [`RedisConfig::from_env`] then [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::from_env`] and [`new`](Self::new).
    pub async fn from_env() -> Result<Self> {
        Self::new(RedisConfig::from_env()?).await
    }

    /// A backend that connects only when first used, so that an application
    /// can start while Redis is down (operations fail until it is up).
    ///
    /// Must be called within a Tokio runtime: the pool starts a background
    /// task.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an invalid field, an unreadable TLS file,
    /// or when no Tokio runtime is running.
    pub fn connect_lazy(config: RedisConfig) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "RedisBackend::connect_lazy must be called within a Tokio runtime",
            ));
        }
        Self::build(config)
    }

    fn build(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let manager = Manager::new(&config)?;
        let tracking = manager.tracking();
        let pool = Pool::new(manager, &config);
        let inner = Inner {
            pool,
            key_prefix: config.key_prefix.clone(),
            lock_wait: config.lock_wait,
            shown: config.to_string(),
            scripts: Scripts::new(),
            tracking,
            invalidations: std::sync::OnceLock::new(),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            deletion_marks: !config.bench.no_deletion_marks,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The prefix prepended to every key.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    /// How many connections are open and how many commands are in flight.
    pub fn pool_state(&self) -> PoolState {
        self.inner.pool.state()
    }

    /// Removes every key under this backend's [`key_prefix`](Self::key_prefix),
    /// whoever wrote it; returns how many were removed. This is what
    /// `delete_prefix("")` would do, which [`Backend::delete_prefix`]
    /// refuses so that no call clears a database by accident.
    ///
    /// ```no_run
    /// # async fn demo() -> cachekit::Result<()> {
    /// use cachekit::redis::{RedisBackend, RedisConfig};
    ///
    /// let config = RedisConfig::builder().key_prefix("myapp:").build()?;
    /// let removed = RedisBackend::new(config).await?.clear_key_prefix().await?;
    /// println!("removed {removed} keys under myapp:");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the backend has no key prefix: it
    /// would remove every key in the database. Otherwise the errors of
    /// `SCAN` and `UNLINK`, after which some keys may remain.
    pub async fn clear_key_prefix(&self) -> Result<u64> {
        if self.inner.key_prefix.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "clear_key_prefix refused: the backend for {} has no key_prefix, so it would \
                     remove every key in the database; set key_prefix (such as \"myapp:\") in \
                     RedisConfig, or remove your keys with delete_prefix(\"namespace:\")",
                    self.inner.shown
                ),
            ));
        }
        self.inner.unlink_matching("").await
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.inner.shown)
            .field("pool", &self.inner.pool.state())
            .finish()
    }
}

fn bytes_of(value: Value, target: &crate::errors::Target, op: Op<'_>) -> Result<Option<Bytes>> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(data) => Ok(Some(Bytes::from(data))),
        Value::ServerError(err) if err.code() == "WRONGTYPE" => Ok(None),
        other => Err(errors::command_error(
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "expected a string or nil",
                format!("{other:?}"),
            )),
            target,
            op,
        )),
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &str {
        "redis"
    }

    /// Every command waits at most until the current deadline (or its
    /// response timeout, whichever is nearer): one deadline per command,
    /// kept by the process's reply-deadline thread.
    fn enforces_deadline(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.get_one(key).await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        if self.inner.pool.is_cluster() {
            return crate::topology::get_with_ttl_scripted(&self.inner, key).await;
        }
        let op = Op::new("GET+PTTL", Some(key));
        let full = self.inner.prefixed(key);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(full).cmd("PTTL").arg(full);
        // Per-reply errors, so that WRONGTYPE on GET is a miss.
        pipe.ignore_errors();
        let replies: Vec<Value> = self.inner.pool.query(&pipe, op).await?;
        let mut replies = replies.into_iter();
        let (Some(value), Some(pttl)) = (replies.next(), replies.next()) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "{op} on {}: the pipeline returned too few replies",
                    self.inner.pool.target()
                ),
            ));
        };
        let Some(value) = bytes_of(value, self.inner.pool.target(), op)? else {
            return Ok(None);
        };
        let ttl = match pttl {
            Value::Int(n) => ttl_of(n),
            _ => Ttl::Missing,
        };
        Ok(Some((value, ttl)))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        if ttl.is_some_and(|t| t.is_zero()) {
            // Stored and expired at once (`PX 0` is refused): the key is gone.
            return self.delete(key).await.map(drop);
        }
        self.inner.set_one(key, &value, ttl).await
    }

    /// Also counts the deletion (see [`deletion_mark`](Backend::deletion_mark)).
    async fn delete(&self, key: &str) -> Result<bool> {
        if self.inner.deletion_marks {
            return self.inner.delete_and_mark(key).await;
        }
        let cmd = self.inner.command("UNLINK", key, 0, 0);
        let removed: i64 = self
            .inner
            .pool
            .query(&cmd, Op::new("UNLINK", Some(key)))
            .await?;
        Ok(removed > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let cmd = self.inner.command("EXISTS", key, 0, 0);
        let found: i64 = self
            .inner
            .pool
            .query(&cmd, Op::new("EXISTS", Some(key)))
            .await?;
        Ok(found > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        let cmd = self.inner.command("PTTL", key, 0, 0);
        let pttl: i64 = self
            .inner
            .pool
            .query(&cmd, Op::new("PTTL", Some(key)))
            .await?;
        Ok(ttl_of(pttl))
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        match ttl {
            Some(ttl) => {
                let mut cmd = self.inner.command("PEXPIRE", key, 1, 20);
                // PEXPIRE 0 deletes the key (and says whether it existed).
                cmd.arg(if ttl.is_zero() { 0 } else { px(ttl) });
                let set: i64 = self
                    .inner
                    .pool
                    .query(&cmd, Op::new("PEXPIRE", Some(key)))
                    .await?;
                Ok(set > 0)
            }
            None => {
                // PERSIST alone cannot tell "missing" from "had no expiry".
                let full = self.inner.prefixed(key);
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("EXISTS")
                    .arg(full)
                    .cmd("PERSIST")
                    .arg(full)
                    .ignore();
                let (found,): (i64,) = self
                    .inner
                    .pool
                    .query(&pipe, Op::new("PERSIST", Some(key)))
                    .await?;
                Ok(found > 0)
            }
        }
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.pool.is_cluster() {
            return crate::topology::get_each(&self.inner, keys).await;
        }
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.inner.prefixed(key));
        }
        // MGET answers nil for keys of other types: they are misses already.
        self.inner.pool.query(&cmd, Op::new("MGET", None)).await
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if ttl.is_some_and(|t| t.is_zero()) {
            let mut cmd = redis::cmd("UNLINK");
            for (key, _) in entries {
                cmd.arg(self.inner.prefixed(key));
            }
            return self
                .inner
                .pool
                .query::<()>(&cmd, Op::new("UNLINK (zero TTL)", None))
                .await;
        }
        if self.inner.pool.is_cluster() {
            return crate::topology::set_each(&self.inner, entries, ttl).await;
        }
        self.inner.set_pipelined(entries.iter(), ttl).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let full = self.inner.prefixed(key);
        let px_arg = px_arg(ttl);
        let stored: i64 = self
            .inner
            .scripts
            .set_if_absent
            .run(&self.inner.pool, Op::new("SET NX", Some(key)), 1, |cmd| {
                cmd.arg(full).arg(value.as_ref()).arg(&px_arg);
            })
            .await?;
        Ok(stored == 1)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        // With no key prefix configured, "" would SCAN and UNLINK the whole
        // database, keys of other applications included.
        cachekit_core::backend::check_prefix(prefix)?;
        // Counted before the keys go: a computation that read the counter
        // before can no longer store, and one that stored before the count
        // is removed below. (Counted after, a store landing behind the
        // SCAN would outlive the clear.)
        if let Err(err) = self.inner.mark_clear().await {
            tracing::debug!(target: "cachekit", error = %err, "could not count a prefix clear");
        }
        let removed = self.inner.unlink_matching(prefix).await?;
        self.inner.announce_clear(prefix).await;
        Ok(removed)
    }

    fn keeps_deletion_marks(&self) -> bool {
        self.inner.deletion_marks
    }

    /// The deletion counters of `key`'s hash slot and of prefix clears.
    async fn deletion_mark(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.deletion_mark(key).await.map(Some)
    }

    /// Stores with a script that first checks the counters read by
    /// [`deletion_mark`](Backend::deletion_mark).
    async fn set_unless_deleted(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mark: &[u8],
    ) -> Result<bool> {
        self.inner
            .set_unless_deleted(key, value, px_arg(ttl), mark)
            .await
    }

    async fn health(&self) -> Health {
        crate::health::probe(&self.inner).await
    }

    /// Redis notifies through server-assisted client-side caching: the
    /// first call starts this backend's listener (see the crate docs).
    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        Some(
            self.inner
                .invalidations
                .get_or_init(|| crate::tracking::start(&self.inner))
                .clone(),
        )
    }

    fn pool(&self) -> Option<PoolState> {
        Some(self.pool_state())
    }
}
