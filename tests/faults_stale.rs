//! Serve-stale and refresh-ahead while Redis is down or hung and the
//! source of truth fails or is slow: the caller gets the last good value,
//! quickly, and the source is not hammered.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachekit::{BreakerConfig, Policy, TieredCache};
use cachekit_testkit::eventually;
use cachekit_testkit::RedisServer;
use common::{announced, fault, invalidation_live, lazy_redis, redis, Latencies, CALL_BOUND};

const FRESH: Duration = Duration::from_millis(300);
const RETRY: Duration = Duration::from_millis(400);

/// A source of truth that answers `Ok(generation)` or fails, counting calls.
#[derive(Clone, Default)]
struct Source {
    calls: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    delay: Option<Duration>,
}

impl Source {
    fn fetch(&self) -> impl std::future::Future<Output = Result<u64, String>> + Send + 'static {
        let this = self.clone();
        async move {
            this.calls.fetch_add(1, SeqCst);
            if let Some(delay) = this.delay {
                tokio::time::sleep(delay).await;
            }
            if this.failing.load(SeqCst) {
                Err("database unavailable".to_owned())
            } else {
                Ok(this.generation.load(SeqCst))
            }
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_and_the_source_failing_the_stale_value_is_served_and_throttled() {
    let server = RedisServer::start();
    let cache = TieredCache::builder()
        .l2(lazy_redis(&server.url()))
        .l2_timeout(Duration::from_millis(150))
        .policy(Policy::new().ttl(FRESH).max_stale(Duration::from_secs(30)))
        .stale_retry_interval(RETRY)
        .build()
        .unwrap();
    invalidation_live(&cache).await;
    let key = "faults:stale:down";
    let source = Source::default();
    source.generation.store(1, SeqCst);
    let call = |source: &Source| {
        let (cache, fetch) = (cache.clone(), source.fetch());
        async move { cache.entry(key).or_try_compute(|| fetch).await }
    };
    assert_eq!(call(&source).await, Ok(1));
    // The echo of the store drops the entry; read it back into L1.
    announced(&cache, 1).await;
    assert_eq!(call(&source).await, Ok(1));
    assert_eq!(cache.stats().l2.hits, 1);
    server.stop();
    source.failing.store(true, SeqCst);
    // Expiry is what is under test: let the value go stale.
    tokio::time::sleep(FRESH + Duration::from_millis(50)).await;

    let latencies = Latencies::new();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (latencies, fut) = (latencies.clone(), call(&source));
            tokio::spawn(async move { latencies.time(fut).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(1));
    }
    assert_eq!(source.calls(), 2, "one failed refresh for twenty callers");
    for _ in 0..10 {
        assert_eq!(latencies.time(call(&source)).await, Ok(1));
    }
    assert_eq!(source.calls(), 2, "the failed key is not retried at once");
    let s = cache.stats();
    assert_eq!(s.stale_served + s.coalesced, 30, "{s:?}");
    assert!(s.stale_served >= 11, "{s:?}");
    latencies.report_and_check(
        "Redis killed + source failing: stale value served",
        CALL_BOUND,
    );

    // After the retry interval one call tries the source again.
    tokio::time::sleep(RETRY + Duration::from_millis(50)).await;
    assert_eq!(call(&source).await, Ok(1));
    assert_eq!(source.calls(), 3);

    // The source recovers (Redis still down): fresh values again.
    source.failing.store(false, SeqCst);
    source.generation.store(2, SeqCst);
    tokio::time::sleep(RETRY + Duration::from_millis(50)).await;
    assert_eq!(call(&source).await, Ok(2));
    assert_eq!(call(&source).await, Ok(2));
    assert_eq!(source.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_hung_and_the_source_slow_the_stale_value_comes_within_the_deadlines() {
    const DEADLINE: Duration = Duration::from_millis(150);
    const COMPUTE_TIMEOUT: Duration = Duration::from_millis(200);
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .l2(redis(&server.url()).await)
        .l2_timeout(DEADLINE)
        .without_breaker()
        .policy(
            Policy::new()
                .ttl(FRESH)
                .max_stale(Duration::from_secs(30))
                .compute_timeout(COMPUTE_TIMEOUT),
        )
        .build()
        .unwrap();
    invalidation_live(&cache).await;
    let key = "faults:stale:hung";
    let mut source = Source::default();
    source.generation.store(1, SeqCst);
    let first = source.fetch();
    let got = cache.entry(key).or_try_compute(|| first).await;
    assert_eq!(got, Ok(1));
    // The echo of the store drops the entry; read it back into L1.
    announced(&cache, 1).await;
    assert_eq!(cache.get::<u64>(key).await, Some(1));
    assert_eq!(cache.stats().l2.hits, 1);

    let paused = server.clone();
    fault(move || paused.pause()).await;
    source.delay = Some(Duration::from_secs(10));
    source.generation.store(2, SeqCst);
    tokio::time::sleep(FRESH + Duration::from_millis(50)).await;

    let latencies = Latencies::new();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (cache, latencies, fetch) = (cache.clone(), latencies.clone(), source.fetch());
            tokio::spawn(async move {
                latencies
                    .time(cache.entry(key).or_try_compute(|| fetch))
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(1));
    }
    assert_eq!(source.calls(), 2, "one slow refresh for twenty callers");
    let s = cache.stats();
    assert_eq!(s.l2.timeouts, 1, "one L2 read, cut at the deadline: {s:?}");
    let summary = latencies.report_and_check(
        "Redis SIGSTOP + source slow: stale value after deadline + compute_timeout",
        CALL_BOUND,
    );
    assert!(summary.max >= DEADLINE + COMPUTE_TIMEOUT, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_with_redis_down_refreshes_once_and_keeps_serving() {
    const TTL: Duration = Duration::from_millis(600);
    const REFRESH_TIME: Duration = Duration::from_millis(200);
    let server = RedisServer::start();
    let cache = TieredCache::builder()
        .l2(lazy_redis(&server.url()))
        .l2_timeout(Duration::from_millis(150))
        .breaker(BreakerConfig::default().failure_threshold(2))
        .build()
        .unwrap();
    server.stop();
    let key = "faults:refresh:down";
    let policy = Policy::new().ttl(TTL).refresh_ahead(0.5);
    let mut source = Source::default();
    source.generation.store(1, SeqCst);
    let call = |source: &Source| {
        let (cache, fetch, policy) = (cache.clone(), source.fetch(), policy.clone());
        async move {
            cache
                .entry(key)
                .policy(policy.clone())
                .refreshing()
                .or_try_compute(move || fetch)
                .await
        }
    };
    assert_eq!(call(&source).await, Ok(1));
    source.generation.store(2, SeqCst);
    // A slow refresh: callers that waited for it would see generation 2.
    source.delay = Some(REFRESH_TIME);
    // Into the last half of the TTL: the refresh window under test.
    tokio::time::sleep(TTL / 2 + Duration::from_millis(50)).await;

    let latencies = Latencies::new();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (latencies, fut) = (latencies.clone(), call(&source));
            tokio::spawn(async move { latencies.time(fut).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(1), "answered at once, from L1");
    }
    eventually("the background refresh", || source.calls() == 2).await;
    let refreshed_cache = cache.clone();
    eventually("the refreshed value in L1", move || {
        refreshed_cache.stats().l1.sets >= 2
    })
    .await;
    assert_eq!(call(&source).await, Ok(2));
    let s = cache.stats();
    assert_eq!((s.refreshes, s.computes), (1, 1), "{s:?}");
    assert_eq!(source.calls(), 2, "one refresh for twenty callers");
    latencies.report_and_check("refresh-ahead hits, Redis killed", CALL_BOUND);
}
