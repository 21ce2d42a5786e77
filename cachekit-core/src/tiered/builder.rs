//! Configuration of a [`TieredCache`].

use std::sync::Arc;
use std::time::Duration;

use super::l2::GuardedL2;
use super::stats::Counters;
use super::{Inner, Policy, TieredCache};
use crate::backend::Backend;
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::clock::Clock;
use crate::codec::{Codec, CodecConfig};
use crate::error::{Error, Result};
use crate::lock::{DistributedLock, StampedeConfig};
use crate::memory::MemoryBackend;
use crate::metrics::PoolMetrics;

/// The `cache` label of a cache that was not named.
const DEFAULT_NAME: &str = "default";

/// Default cap on an L1 entry's freshness when an L2 exists: how stale this
/// process may be after another process changes a key when no invalidation
/// channel tells it (a file L2, or invalidation turned off).
pub const DEFAULT_L1_MAX_TTL: Duration = Duration::from_secs(60);

/// Default cap on an L1 entry's lifetime while the L2's invalidation
/// channel is down (or not yet up): how stale this process may be then.
pub const DEFAULT_L1_TTL_UNSYNCED: Duration = Duration::from_secs(1);

/// The environment variable that turns L1 invalidation off (`off`,
/// `false`, `0` or `no`) when the builder does not choose.
pub const L1_INVALIDATION_ENV: &str = "CACHEKIT_L1_INVALIDATION";

/// Default deadline of one L2 operation.
///
/// A healthy Redis answers in well under a millisecond on a LAN and in a few
/// milliseconds at p99.9 under load; 250 ms is two orders of magnitude of
/// headroom, yet bounds what a hung server can add to a user's call (a miss
/// makes at most a read and a write).
pub const DEFAULT_L2_TIMEOUT: Duration = Duration::from_millis(250);

/// Default bound on L2 operations in flight at once.
pub const DEFAULT_MAX_L2_IN_FLIGHT: usize = 512;

/// Default bound on calls waiting for a place under
/// [`DEFAULT_MAX_L2_IN_FLIGHT`].
///
/// The deadline is what keeps a wait short; this bounds the waiters'
/// memory (about 100 bytes each) when a burst outruns the backend.
pub const DEFAULT_MAX_L2_QUEUED: usize = 65_536;

/// Default pause before a key whose recomputation failed is retried while
/// its stale value is served.
pub const DEFAULT_STALE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

enum L1Choice {
    Default,
    Bytes(u64),
    Given(MemoryBackend),
    Disabled,
}

/// Builds a [`TieredCache`]; start with [`TieredCache::builder`].
///
/// The L2 guards (deadline, circuit breaker, in-flight bound) need a tokio
/// runtime with its timer enabled, as `#[tokio::main]` provides.
#[must_use]
pub struct TieredCacheBuilder {
    l1: L1Choice,
    l1_max_ttl: Duration,
    l1_invalidation: Option<bool>,
    l1_ttl_unsynced: Duration,
    l2: Option<Arc<dyn Backend>>,
    l2_timeout: Option<Duration>,
    breaker: Option<BreakerConfig>,
    max_l2_in_flight: Option<usize>,
    max_l2_queued: usize,
    defaults: Policy,
    stale_retry_interval: Duration,
    stampede: Option<(Arc<dyn DistributedLock>, StampedeConfig)>,
    codec: CodecConfig,
    l2_unavailable: bool,
    clock: Clock,
    name: String,
}

impl Default for TieredCacheBuilder {
    fn default() -> Self {
        Self {
            l1: L1Choice::Default,
            l1_max_ttl: DEFAULT_L1_MAX_TTL,
            l1_invalidation: None,
            l1_ttl_unsynced: DEFAULT_L1_TTL_UNSYNCED,
            l2: None,
            l2_timeout: Some(DEFAULT_L2_TIMEOUT),
            breaker: Some(BreakerConfig::default()),
            max_l2_in_flight: Some(DEFAULT_MAX_L2_IN_FLIGHT),
            max_l2_queued: DEFAULT_MAX_L2_QUEUED,
            defaults: Policy::default(),
            stale_retry_interval: DEFAULT_STALE_RETRY_INTERVAL,
            stampede: None,
            codec: CodecConfig::default(),
            l2_unavailable: false,
            clock: Clock::system(),
            name: DEFAULT_NAME.to_owned(),
        }
    }
}

impl TieredCacheBuilder {
    /// Marks a cache built without the L2 it was configured for (the
    /// default `#[cached]` cache when its Redis configuration is
    /// unusable): [`TieredStats::l2_unavailable`](crate::TieredStats::l2_unavailable)
    /// then says so.
    #[doc(hidden)]
    pub fn l2_unavailable(mut self) -> Self {
        self.l2_unavailable = true;
        self
    }

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

    /// The clock every TTL, stale window, refresh-ahead and breaker
    /// decision reads (tests pass a mock; see [`Clock`]). A given L1
    /// ([`l1`](Self::l1)) keeps its own clock, and the cache then uses that.
    #[doc(hidden)]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs without an in-process tier: every read goes to L2.
    pub fn without_l1(mut self) -> Self {
        self.l1 = L1Choice::Disabled;
        self
    }

    /// Caps how long an L1 entry is served without asking L2 again, when an
    /// L2 exists (default 60 s).
    ///
    /// L1 is private to the process, so this bounds how long it can serve a
    /// value that another process has since changed in L2. Without an L2 the
    /// cap does not apply.
    pub fn l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Whether L1 follows changes made by other processes, through the L2's
    /// invalidation channel (Redis: client-side caching in BCAST mode).
    /// Default: on when the L2 has such a channel, unless
    /// `CACHEKIT_L1_INVALIDATION=off`; this setting wins over the variable.
    /// Without it, another process's change is seen after at most
    /// [`l1_max_ttl`](Self::l1_max_ttl).
    pub fn l1_invalidation(mut self, on: bool) -> Self {
        self.l1_invalidation = Some(on);
        self
    }

    /// The L1 lifetime while the invalidation channel is down or not yet up
    /// (default 1 s): a process that cannot hear about changes keeps
    /// entries only this long. Capped by [`l1_max_ttl`](Self::l1_max_ttl).
    pub fn l1_ttl_unsynced(mut self, ttl: Duration) -> Self {
        self.l1_ttl_unsynced = ttl;
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

    /// The deadline of each L2 operation (default [`DEFAULT_L2_TIMEOUT`]). A
    /// read that misses it is a miss; a write that misses it is dropped.
    pub fn l2_timeout(mut self, timeout: Duration) -> Self {
        self.l2_timeout = Some(timeout);
        self
    }

    /// Lets L2 operations take as long as the backend's own timeouts allow.
    pub fn without_l2_timeout(mut self) -> Self {
        self.l2_timeout = None;
        self
    }

    /// Circuit breaker settings (on by default with [`BreakerConfig::default`]).
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }

    /// Turns the circuit breaker off.
    pub fn without_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// Bounds L2 operations in flight (default [`DEFAULT_MAX_L2_IN_FLIGHT`]).
    ///
    /// A call beyond the bound waits for a place, first come first served,
    /// for at most what is left of its L2 deadline ([`l2_timeout`](Self::l2_timeout)),
    /// and skips L2 (a miss; counted in `skipped`) only when that passes.
    /// At most [`max_l2_queued`](Self::max_l2_queued) calls wait.
    pub fn max_l2_in_flight(mut self, max: usize) -> Self {
        self.max_l2_in_flight = Some(max);
        self
    }

    /// Bounds the calls waiting for a place under
    /// [`max_l2_in_flight`](Self::max_l2_in_flight) (default
    /// [`DEFAULT_MAX_L2_QUEUED`]). A call that finds this many waiting skips
    /// L2 at once (counted in `skipped`); `0` makes every call beyond the
    /// bound skip at once.
    pub fn max_l2_queued(mut self, max: usize) -> Self {
        self.max_l2_queued = max;
        self
    }

    /// The TTL used when a call passes `None` (default: no expiry).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.defaults.ttl = Some(ttl);
        self
    }

    /// The cache-wide [`Policy`] (TTL, serve-stale, refresh-ahead, jitter,
    /// compute timeout) that per-call policies fall back to.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.defaults = policy;
        self
    }

    /// With serve-stale: how long a key whose recomputation failed is served
    /// stale before it is tried again (default 1 s).
    pub fn stale_retry_interval(mut self, interval: Duration) -> Self {
        self.stale_retry_interval = interval;
        self
    }

    /// Distributed stampede protection: on a miss, take `lock` for the key so
    /// that one process computes while the others wait for its value.
    pub fn stampede_lock(mut self, lock: Arc<dyn DistributedLock>, config: StampedeConfig) -> Self {
        self.stampede = Some((lock, config));
        self
    }

    /// The cache's name: the `cache` label of its metrics (default
    /// `"default"`). Metrics handles are registered when the cache is
    /// built, with the recorder installed then: install the exporter first.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Write and read values in the cachekit family's interop/v1 format by
    /// default (a request can still choose), so that cachekit-py and
    /// cachekit-rs in interop mode share the entries. Interop keys carry no
    /// prefix: a backend that prefixes keys (such as a Redis `key_prefix`)
    /// stores them where the other languages do not look.
    pub fn interop(mut self) -> Self {
        self.defaults.format = Some(crate::ValueFormat::Interop);
        self
    }

    /// Encrypt every value (AES-256-GCM under a tenant key, bound to the
    /// value's cache key), in either format; see [`Encryption`](crate::Encryption).
    pub fn encryption(mut self, encryption: crate::Encryption) -> Self {
        self.defaults.encryption = Some(encryption);
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
    /// a value is out of range or no tier is left.
    pub fn build(self) -> Result<TieredCache> {
        if self.l1_max_ttl.is_zero() {
            return Err(Error::config("l1_max_ttl", "must be greater than zero"));
        }
        if self.l1_ttl_unsynced.is_zero() {
            return Err(Error::config(
                "l1_ttl_unsynced",
                "must be greater than zero",
            ));
        }
        if self.l2_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::config("l2_timeout", "must be greater than zero"));
        }
        if self.max_l2_in_flight == Some(0) {
            return Err(Error::config("max_l2_in_flight", "must be at least 1"));
        }
        if self.stale_retry_interval.is_zero() {
            return Err(Error::config(
                "stale_retry_interval",
                "must be greater than zero",
            ));
        }
        self.defaults.validate("policy.")?;
        if let Some(breaker) = &self.breaker {
            breaker.validate()?;
        }
        if let Some((_, stampede)) = &self.stampede {
            stampede.validate()?;
        }
        let memory = || MemoryBackend::builder().clock(self.clock.clone());
        let l1 = match self.l1 {
            L1Choice::Default => Some(memory().build()?),
            L1Choice::Bytes(bytes) => Some(memory().max_bytes(bytes).build()?),
            L1Choice::Given(l1) => Some(l1),
            L1Choice::Disabled => None,
        };
        let clock = l1.as_ref().map_or(self.clock, |l1| l1.clock().clone());
        if l1.is_none() && self.l2.is_none() {
            return Err(Error::config(
                "l2",
                "a cache without L1 needs an L2 backend; add one with .l2(...) or keep L1",
            ));
        }
        let l1_max_ttl = self.l2.is_some().then_some(self.l1_max_ttl);
        let wanted = self.l1_invalidation.unwrap_or_else(invalidation_from_env);
        let invalidations = match (&l1, &self.l2) {
            (Some(_), Some(l2)) if wanted => l2.invalidations(),
            _ => None,
        };
        let counters = Counters::published(&self.name);
        let pool = PoolMetrics::new(&self.name, self.l2.as_ref());
        let l2 = self.l2.map(|backend| {
            Arc::new(GuardedL2::new(
                backend,
                self.l2_timeout,
                self.breaker.map(|config| {
                    CircuitBreaker::new(config, clock.clone()).published(counters.published.clone())
                }),
                self.max_l2_in_flight,
                self.max_l2_queued,
            ))
        });
        Ok(TieredCache::attached(Inner {
            l1,
            l1_max_ttl,
            invalidations,
            l1_ttl_unsynced: self.l1_ttl_unsynced,
            changes: Default::default(),
            l2,
            codec: Codec::new(self.codec),
            // Resolved once, so that TTLs past a century are shortened.
            defaults: self.defaults.or(&Policy::default()),
            stampede: self.stampede,
            recent_failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                // moka refuses lifetimes past 1,000 years; a century
                // is as good as never.
                .time_to_live(self.stale_retry_interval.min(crate::deadline::FAR))
                .build(),
            flights: Default::default(),
            counters,
            pool_gauges: pool,
            name: self.name,
            l2_unavailable: self.l2_unavailable,
            clock,
        }))
    }
}

/// `CACHEKIT_L1_INVALIDATION`: on unless it says off; an unreadable value
/// is reported once and leaves it on.
fn invalidation_from_env() -> bool {
    let Ok(value) = std::env::var(L1_INVALIDATION_ENV) else {
        return true;
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "0" | "no" => false,
        "on" | "true" | "1" | "yes" | "" => true,
        _ => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(target: "cachekit", variable = L1_INVALIDATION_ENV, value = %value, "not on/off; L1 invalidation stays on");
            });
            true
        }
    }
}
