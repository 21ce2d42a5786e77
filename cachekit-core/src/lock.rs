//! Distributed locks, used by the tiered cache to keep several processes
//! from computing the same cold key at once (stampede protection).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};

/// A lock service shared by processes (implemented by the Redis backend).
///
/// Locks are leases: a holder that dies loses its lock after `lease`.
#[async_trait]
pub trait DistributedLock: Send + Sync + fmt::Debug {
    /// Tries once to take the lock guarding cache key `key` for `lease`.
    /// Returns the holder's token, or `None` if another holder has it.
    async fn try_lock(&self, key: &str, lease: Duration) -> Result<Option<String>>;

    /// Releases the lock if `token` still holds it; returns whether it did.
    async fn unlock(&self, key: &str, token: &str) -> Result<bool>;
}

/// How the tiered cache uses a [`DistributedLock`] on a miss.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StampedeConfig {
    /// How long a computing process holds the lock at most (default 10 s).
    /// Make it longer than the computation usually takes.
    pub lease: Duration,
    /// How long other processes wait for the holder's value before they
    /// compute anyway (default 10 s).
    pub max_wait: Duration,
    /// How often a waiting process re-reads L2 and retries the lock (default 25 ms).
    pub poll_interval: Duration,
}

impl Default for StampedeConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            max_wait: Duration::from_secs(10),
            poll_interval: Duration::from_millis(25),
        }
    }
}

impl StampedeConfig {
    /// Sets [`lease`](Self::lease).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// Sets [`max_wait`](Self::max_wait).
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
    /// Sets [`poll_interval`](Self::poll_interval).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("stampede.lease", self.lease),
            ("stampede.poll_interval", self.poll_interval),
        ] {
            if value < Duration::from_millis(1) {
                return Err(Error::config(field, "must be at least 1 ms"));
            }
        }
        Ok(())
    }
}
