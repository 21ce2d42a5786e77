//! A distributed lock: `SET key token NX PX lease` to take it, a
//! compare-and-delete script to release it, compare-and-PEXPIRE to extend.
//!
//! The lock for `name` lives at `{key_prefix}{name}:lock`, so that the lock
//! guarding a cache key sits beside it (and `delete_prefix` of a namespace
//! also clears its locks).
//!
//! A lease bounds how long a crashed holder blocks others. It also means a
//! holder that stalls longer than its lease loses the lock without knowing
//! until `extend` or `release` reports [`ErrorKind::Conflict`]: work that
//! must never overlap needs fencing beyond this lock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Error, ErrorKind, Result};
use redis::Value;
use tokio::time::Instant;

use crate::backend::RedisBackend;
use crate::errors::Op;
use crate::pool::Retry;
use crate::state::Inner;
use crate::wire::px;

const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(50);

impl RedisBackend {
    /// Takes the lock `name` if it is free; `None` when someone holds it.
    ///
    /// The lock expires after `lease` unless [extended](LockGuard::extend).
    ///
    /// # Errors
    ///
    /// As any Redis command ([`ErrorKind::Connection`],
    /// [`ErrorKind::Timeout`], ...); [`ErrorKind::Io`] if the system cannot
    /// supply randomness for the token.
    pub async fn try_lock(&self, name: &str, lease: Duration) -> Result<Option<LockGuard>> {
        let key = lock_key(&self.inner, name);
        let token = new_token()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(&token).arg("NX").arg("PX").arg(px(lease));
        let op = Op::new("lock", Some(name));
        // Not resent: a first SET that landed would make the second fail and
        // the lock would sit unused until its lease ran out.
        let reply: Value = self
            .inner
            .pool
            .run(&cmd, op, Retry::Never)
            .await?
            .map_err(|err| crate::errors::command_error(err, self.inner.pool.target(), op))?;
        if matches!(reply, Value::Nil) {
            return Ok(None);
        }
        Ok(Some(LockGuard {
            inner: self.inner.clone(),
            name: name.to_owned(),
            key,
            token,
            released: false,
        }))
    }

    /// Takes the lock `name`, waiting up to the configured `lock_wait` while
    /// someone else holds it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(redis: cachekit::redis::RedisBackend) -> cachekit::Result<()> {
    /// let guard = redis.lock("report:2024", Duration::from_secs(30)).await?;
    /// // ... work that must not run twice at once ...
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when the lock stayed taken for `lock_wait`;
    /// otherwise as [`try_lock`](Self::try_lock).
    pub async fn lock(&self, name: &str, lease: Duration) -> Result<LockGuard> {
        // `Duration::MAX` waits a century, without overflowing.
        let deadline = Instant::from_std(cachekit_core::deadline::later(
            std::time::Instant::now(),
            self.inner.lock_wait,
        ));
        let mut backoff = FIRST_BACKOFF;
        loop {
            if let Some(guard) = self.try_lock(name, lease).await? {
                return Ok(guard);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "lock `{name}` on {}: still held by another owner after lock_wait ({:?}); raise lock_wait, or check that holders release it",
                        self.inner.pool.target(),
                        self.inner.lock_wait
                    ),
                ));
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// A held lock. Release it with [`release`](Self::release); dropping the
/// guard releases it in the background (best effort, needs a running Tokio
/// runtime), and the lease expires it in any case.
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    inner: Arc<Inner>,
    name: String,
    key: String,
    token: String,
    released: bool,
}

impl LockGuard {
    /// The lock's name as given to [`RedisBackend::lock`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Resets the lease to `lease` from now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when the lock was lost (its lease ran out,
    /// and it may now be someone else's); otherwise as any Redis command.
    pub async fn extend(&mut self, lease: Duration) -> Result<()> {
        let op = Op::new("extend lock", Some(&self.name));
        let extended: i64 = self
            .inner
            .scripts
            .extend_lock
            .run(&self.inner.pool, op, 1, |cmd| {
                cmd.arg(&self.key).arg(&self.token).arg(px(lease));
            })
            .await?;
        if extended == 1 {
            Ok(())
        } else {
            Err(self.lost(op))
        }
    }

    /// Releases the lock now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when the lock had already been lost (its
    /// lease ran out): whatever it guarded may have run concurrently.
    /// Otherwise as any Redis command; the lease then still expires it.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        let op = Op::new("release lock", Some(&self.name));
        let deleted = release(&self.inner, &self.key, &self.token, op).await?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(self.lost(op))
        }
    }

    fn lost(&self, op: Op<'_>) -> Error {
        Error::new(
            ErrorKind::Conflict,
            format!(
                "{op} on {}: the lock is no longer ours (its lease ran out); take it again, and use a longer lease or extend it sooner",
                self.inner.pool.target()
            ),
        )
    }
}

async fn release(inner: &Inner, key: &str, token: &str, op: Op<'_>) -> Result<i64> {
    inner
        .scripts
        .release_lock
        .run(&inner.pool, op, 1, |cmd| {
            cmd.arg(key).arg(token);
        })
        .await
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Not on a current-thread runtime, which a blocking call may block.
        let Some(runtime) = cachekit_core::runtime::task_runtime() else {
            return;
        };
        let inner = self.inner.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        let name = std::mem::take(&mut self.name);
        runtime.spawn(async move {
            let op = Op::new("release lock", Some(&name));
            if let Err(err) = release(&inner, &key, &token, op).await {
                tracing::warn!(error = %err, "cachekit-redis: releasing a dropped lock failed; its lease will expire it");
            }
        });
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The tiered cache's stampede protection: the lock guarding cache key `key`
/// is this backend's lock `key` (stored at `{prefix}{key}:lock`).
#[async_trait::async_trait]
impl cachekit_core::DistributedLock for RedisBackend {
    async fn try_lock(&self, key: &str, lease: Duration) -> Result<Option<String>> {
        let guard = RedisBackend::try_lock(self, key, lease).await?;
        Ok(guard.map(|mut guard| {
            // The cache releases by token; the guard must not release on drop.
            guard.released = true;
            std::mem::take(&mut guard.token)
        }))
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool> {
        let op = Op::new("release lock", Some(key));
        let deleted = release(&self.inner, &lock_key(&self.inner, key), token, op).await?;
        Ok(deleted == 1)
    }
}

fn lock_key(inner: &Inner, name: &str) -> String {
    format!("{}{name}:lock", inner.key_prefix)
}

/// 128 random bits, hex: unique across holders and processes.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| {
        Error::new(
            ErrorKind::Io,
            format!("cannot get randomness for a lock token: {err}"),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
