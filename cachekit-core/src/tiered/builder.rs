//! Configuration of a [`TieredCache`].

use std::sync::Arc;
use std::time::Duration;

use super::{Inner, TieredCache};
use crate::backend::Backend;
use crate::codec::{Codec, CodecConfig};
use crate::error::{Error, Result};
use crate::memory::MemoryBackend;

/// Default cap on an L1 entry's life when an L2 exists: how stale this
/// process may be after another process changes a key.
pub const DEFAULT_L1_MAX_TTL: Duration = Duration::from_secs(60);

enum L1Choice {
    Default,
    Bytes(u64),
    Given(MemoryBackend),
    Disabled,
}

/// Builds a [`TieredCache`]; start with [`TieredCache::builder`].
#[must_use]
pub struct TieredCacheBuilder {
    l1: L1Choice,
    l1_max_ttl: Duration,
    l2: Option<Arc<dyn Backend>>,
    default_ttl: Option<Duration>,
    codec: CodecConfig,
}

impl Default for TieredCacheBuilder {
    fn default() -> Self {
        Self {
            l1: L1Choice::Default,
            l1_max_ttl: DEFAULT_L1_MAX_TTL,
            l2: None,
            default_ttl: None,
            codec: CodecConfig::default(),
        }
    }
}

impl TieredCacheBuilder {
    /// Uses this memory backend as L1 (by default a 64 MiB [`MemoryBackend`]).
    pub fn l1(mut self, l1: MemoryBackend) -> Self {
        self.l1 = L1Choice::Given(l1);
        self
    }

    /// Gives the default L1 this byte budget.
    pub fn l1_max_bytes(mut self, bytes: u64) -> Self {
        self.l1 = L1Choice::Bytes(bytes);
        self
    }

    /// Runs without an in-process tier: every read goes to L2.
    pub fn without_l1(mut self) -> Self {
        self.l1 = L1Choice::Disabled;
        self
    }

    /// Caps how long an entry lives in L1 when an L2 exists (default 60 s).
    ///
    /// L1 is private to the process, so this bounds how long it can serve a
    /// value that another process has since changed in L2. Without an L2 the
    /// cap does not apply.
    pub fn l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Adds a shared tier behind L1.
    pub fn l2(self, backend: impl Backend + 'static) -> Self {
        self.l2_arc(Arc::new(backend))
    }

    /// Adds a shared tier behind L1, given as a trait object.
    pub fn l2_arc(mut self, backend: Arc<dyn Backend>) -> Self {
        self.l2 = Some(backend);
        self
    }

    /// The TTL used when a call passes `None` (default: no expiry).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Compression threshold and maximum value size.
    pub fn codec(mut self, config: CodecConfig) -> Self {
        self.codec = config;
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field when
    /// a TTL is zero, the L1 budget is zero, or no tier is left.
    pub fn build(self) -> Result<TieredCache> {
        if self.l1_max_ttl.is_zero() {
            return Err(Error::config("l1_max_ttl", "must be greater than zero"));
        }
        if self.default_ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::config("default_ttl", "must be greater than zero"));
        }
        let l1 = match self.l1 {
            L1Choice::Default => Some(MemoryBackend::builder().build()?),
            L1Choice::Bytes(bytes) => Some(MemoryBackend::builder().max_bytes(bytes).build()?),
            L1Choice::Given(l1) => Some(l1),
            L1Choice::Disabled => None,
        };
        if l1.is_none() && self.l2.is_none() {
            return Err(Error::config(
                "l2",
                "a cache without L1 needs an L2 backend; add one with .l2(...) or keep L1",
            ));
        }
        let l1_max_ttl = self.l2.is_some().then_some(self.l1_max_ttl);
        Ok(TieredCache {
            inner: Arc::new(Inner {
                l1,
                l1_max_ttl,
                l2: self.l2,
                codec: Codec::new(self.codec),
                default_ttl: self.default_ttl,
                flights: Default::default(),
                counters: Default::default(),
            }),
        })
    }
}
