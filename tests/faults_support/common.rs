//! Helpers shared by the `faults_*` tests: latency records and Redis-backed
//! caches with short deadlines (polling for a condition is
//! `cachekit_testkit::eventually`).
//!
//! Included by each test file with `#[path]` (the directory is not a test
//! target of its own); not every file uses every helper.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachekit::{RedisBackend, RedisConfig};

/// The most any single user call may take while Redis misbehaves. Deadlines
/// in these tests are 100-200 ms; the rest is headroom for a loaded 2-core
/// CI machine, so that the bound catches a call that waited on Redis (which
/// would take seconds) without flaking on scheduling noise.
pub const CALL_BOUND: Duration = Duration::from_millis(1500);

/// The longest a failover (Sentinel or Cluster) may take before a test
/// gives up: far above the few seconds it takes, so only a client that
/// never recovers fails.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// A call during a failover that takes this long is hung, not slow.
pub const HUNG: Duration = Duration::from_secs(10);

/// Wall-clock durations of user calls, summarised as p50 / p99 / max.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Arc<Mutex<Vec<Duration>>>);

/// p50, p99 and max of a [`Latencies`].
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub calls: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "calls={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
            self.calls,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Latencies {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, took: Duration) {
        self.0.lock().unwrap().push(took);
    }

    /// Runs `call`, records how long it took and returns its output.
    pub async fn time<T>(&self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.record(started.elapsed());
        out
    }

    pub fn summary(&self) -> Summary {
        let mut all = self.0.lock().unwrap().clone();
        assert!(!all.is_empty(), "no calls were measured");
        all.sort_unstable();
        let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        Summary {
            calls: all.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: all[all.len() - 1],
        }
    }

    /// Prints the summary on one greppable line (`cargo test -- --nocapture`
    /// shows it) and asserts that the slowest call stayed within `bound`.
    pub fn report_and_check(&self, fault: &str, bound: Duration) -> Summary {
        let summary = self.summary();
        println!("FAULT-LATENCY | {fault} | {summary}");
        assert!(
            summary.max <= bound,
            "{fault}: the slowest call took {:?}, more than {bound:?} ({summary})",
            summary.max
        );
        summary
    }
}

/// A Redis backend for `url` that connects on first use, so that it can be
/// built while the server is down.
pub fn lazy_redis(url: &str) -> RedisBackend {
    let config = RedisConfig::builder()
        .url(url)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisBackend::connect_lazy(config).unwrap()
}

/// A connected Redis backend for `url`.
pub async fn redis(url: &str) -> RedisBackend {
    let config = RedisConfig::builder().url(url).build().unwrap();
    RedisBackend::new(config).await.unwrap()
}

/// Runs a blocking testkit fault (kill, restart, pause...) off the async
/// worker threads, so that the calls under test keep running meanwhile.
pub async fn fault<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The server's `keyspace_hits` (`INFO stats`): GETs that found their key.
pub fn keyspace_hits(server: &cachekit_testkit::RedisServer) -> u64 {
    let info = server.command(&["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("keyspace_hits:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no keyspace_hits in {info}"))
}

/// Waits (up to 10 s) until `cache`'s L1 invalidation channel is live, so
/// that the echo of the test's first write is expected rather than taken
/// for another process's change (which would drop the value from L1).
pub async fn invalidation_live(cache: &cachekit::TieredCache) {
    let started = Instant::now();
    while cache.stats().invalidation.state != cachekit::ChannelState::Live {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the invalidation channel never came up: {:?}",
            cache.stats().invalidation
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (up to 10 s) until `cache`'s invalidation channel has announced
/// `keys` keys in all: the echo of a cache's own write drops its L1 entry
/// (Redis announces every write, the writer's too), so a test that needs
/// the value in L1 waits for the echo, then reads it back from L2.
pub async fn announced(cache: &cachekit::TieredCache, keys: u64) {
    let started = Instant::now();
    while cache.stats().invalidation.keys < keys {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the echo never came: {:?}",
            cache.stats().invalidation
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
