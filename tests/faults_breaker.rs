//! Every circuit breaker setting, the in-flight bound and fail-closed
//! mode, each checked against a real dead (killed) or hung (SIGSTOP)
//! redis-server.
//!
//! `TieredCache::get` makes exactly one L2 read per L1 miss, which lets
//! these tests count breaker decisions one by one.
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
use std::time::{Duration, Instant};

use cachekit::{BreakerConfig, BreakerState, Error, ErrorKind, TieredCache};
use cachekit_testkit::eventually;
use cachekit_testkit::RedisServer;
use common::{fault, redis, Latencies, CALL_BOUND};

const TTL: Option<Duration> = Some(Duration::from_secs(60));
const LONG: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_millis(150);

/// Without L1 invalidation: its channel breaks with the server and marks L1
/// stale, and these tests are about L2's breaker (invalidation_faults.rs
/// pins what L1 does then).
async fn cache_with(server: &RedisServer, breaker: BreakerConfig) -> TieredCache {
    TieredCache::builder()
        .l2(redis(&server.url()).await)
        .l1_invalidation(false)
        .l2_timeout(DEADLINE)
        .breaker(breaker)
        .build()
        .unwrap()
}

/// One L2 read; `None` whatever the reason (Redis is down in these tests).
async fn read(cache: &TieredCache, key: &str) {
    assert_eq!(cache.get::<u64>(key).await, None, "{key}");
}

#[tokio::test]
async fn failure_threshold_failures_open_the_breaker_and_l1_keeps_serving() {
    let server = RedisServer::start();
    let breaker = BreakerConfig::default()
        .failure_threshold(4)
        .window(LONG)
        .recovery_timeout(LONG);
    let cache = cache_with(&server, breaker).await;
    cache.set("faults:breaker:warm", &7u64, TTL).await.unwrap();
    server.stop();

    for i in 0..3 {
        read(&cache, &format!("faults:breaker:cold{i}")).await;
    }
    let s = cache.stats();
    assert_eq!(
        (s.l2.errors, s.l2.skipped, s.breaker),
        (3, 0, BreakerState::Closed)
    );
    read(&cache, "faults:breaker:cold3").await;
    let s = cache.stats();
    assert_eq!(
        (s.l2.errors, s.breaker, s.breaker_opened),
        (4, BreakerState::Open, 1)
    );
    for i in 4..9 {
        read(&cache, &format!("faults:breaker:cold{i}")).await;
    }
    let s = cache.stats();
    assert_eq!(
        (s.l2.errors, s.l2.skipped),
        (4, 5),
        "open: L2 is not called"
    );

    // L1 is consulted before the breaker.
    assert_eq!(cache.get::<u64>("faults:breaker:warm").await, Some(7));
    let after = cache.stats();
    assert_eq!(after.l1.hits, s.l1.hits + 1);
    assert_eq!(after.l2.skipped, s.l2.skipped);
}

#[tokio::test]
async fn failures_further_apart_than_the_window_do_not_open_the_breaker() {
    const WINDOW: Duration = Duration::from_millis(200);
    let server = RedisServer::start();
    let breaker = BreakerConfig::default()
        .failure_threshold(2)
        .window(WINDOW)
        .recovery_timeout(LONG);
    let cache = cache_with(&server, breaker).await;
    server.stop();

    read(&cache, "faults:window:a").await;
    // The window is the quantity under test: let the first failure age out.
    tokio::time::sleep(WINDOW + Duration::from_millis(100)).await;
    read(&cache, "faults:window:b").await;
    let s = cache.stats();
    assert_eq!((s.l2.errors, s.breaker), (2, BreakerState::Closed));
    read(&cache, "faults:window:c").await;
    let s = cache.stats();
    assert_eq!(
        (s.l2.errors, s.breaker, s.breaker_opened),
        (3, BreakerState::Open, 1)
    );
}

#[tokio::test]
async fn the_breaker_stays_open_for_recovery_timeout_then_probes() {
    const RECOVERY: Duration = Duration::from_millis(400);
    let server = RedisServer::start();
    let breaker = BreakerConfig::default()
        .failure_threshold(1)
        .recovery_timeout(RECOVERY);
    let cache = cache_with(&server, breaker).await;
    server.stop();

    let before_open = Instant::now();
    read(&cache, "faults:recovery:a").await;
    assert_eq!(cache.stats().breaker, BreakerState::Open);
    read(&cache, "faults:recovery:b").await;
    assert_eq!(cache.stats().l2.skipped, 1);

    eventually("the breaker to go half-open", || {
        cache.stats().breaker == BreakerState::HalfOpen
    })
    .await;
    let open_for = before_open.elapsed();
    println!("breaker open for {open_for:?} (recovery_timeout {RECOVERY:?})");
    assert!(open_for >= RECOVERY, "{open_for:?}");
    assert!(open_for <= RECOVERY + CALL_BOUND, "{open_for:?}");

    // The probe meets a Redis that is still dead: open again.
    read(&cache, "faults:recovery:c").await;
    let s = cache.stats();
    assert_eq!((s.l2.errors, s.l2.skipped), (2, 1), "{s:?}");
    assert_eq!((s.breaker, s.breaker_opened), (BreakerState::Open, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_lets_exactly_half_open_max_probes_through() {
    const RECOVERY: Duration = Duration::from_millis(200);
    let server = Arc::new(RedisServer::start());
    let breaker = BreakerConfig::default()
        .failure_threshold(1)
        .recovery_timeout(RECOVERY)
        .half_open_max_probes(3);
    let cache = cache_with(&server, breaker).await;
    let paused = server.clone();
    fault(move || paused.pause()).await;

    read(&cache, "faults:probes:open").await;
    assert_eq!(cache.stats().breaker_opened, 1);
    eventually("the breaker to go half-open", || {
        cache.stats().breaker == BreakerState::HalfOpen
    })
    .await;

    // Ten concurrent reads; the probes hang on the stopped server until
    // their deadline, so the other seven find every probe slot taken.
    let latencies = Latencies::new();
    let reads: Vec<_> = (0..10)
        .map(|i| {
            let (cache, latencies) = (cache.clone(), latencies.clone());
            tokio::spawn(async move {
                latencies
                    .time(read(&cache, &format!("faults:probes:{i}")))
                    .await
            })
        })
        .collect();
    for r in reads {
        r.await.unwrap();
    }
    let s = cache.stats();
    assert_eq!(s.l2.timeouts, 1 + 3, "{s:?}");
    assert_eq!(s.l2.skipped, 7, "{s:?}");
    assert_eq!(
        (s.breaker, s.breaker_opened),
        (BreakerState::Open, 2),
        "{s:?}"
    );
    latencies.report_and_check("half-open probes on a hung Redis", CALL_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_threshold_successful_probes_close_the_breaker() {
    const RECOVERY: Duration = Duration::from_millis(200);
    let server = Arc::new(RedisServer::start());
    let breaker = BreakerConfig::default()
        .failure_threshold(1)
        .recovery_timeout(RECOVERY)
        .success_threshold(3);
    let cache = cache_with(&server, breaker).await;
    cache.set("faults:success:k", &5u64, TTL).await.unwrap();
    let paused = server.clone();
    fault(move || paused.pause()).await;
    read(&cache, "faults:success:open").await;
    assert_eq!(cache.stats().breaker, BreakerState::Open);
    let resumed = server.clone();
    fault(move || resumed.resume()).await;
    eventually("the breaker to go half-open", || {
        cache.stats().breaker == BreakerState::HalfOpen
    })
    .await;

    for probe in 1..=3 {
        cache.invalidate_local("faults:success:k");
        assert_eq!(
            cache.get::<u64>("faults:success:k").await,
            Some(5),
            "probe {probe}"
        );
        let expected = if probe < 3 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        };
        assert_eq!(cache.stats().breaker, expected, "after probe {probe}");
    }
    let s = cache.stats();
    assert_eq!(
        (s.l2.hits, s.l2.skipped, s.breaker_opened),
        (3, 0, 1),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_l2_in_flight_calls_skip_a_hung_redis_at_once() {
    const SLOW_DEADLINE: Duration = Duration::from_millis(500);
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .l2(redis(&server.url()).await)
        .l2_timeout(SLOW_DEADLINE)
        .without_breaker()
        .max_l2_in_flight(4)
        .max_l2_queued(0)
        .build()
        .unwrap();
    let paused = server.clone();
    fault(move || paused.pause()).await;

    let latencies = Latencies::new();
    let reads: Vec<_> = (0..20)
        .map(|i| {
            let (cache, latencies) = (cache.clone(), latencies.clone());
            tokio::spawn(async move {
                latencies
                    .time(read(&cache, &format!("faults:inflight:{i}")))
                    .await
            })
        })
        .collect();
    for r in reads {
        r.await.unwrap();
    }
    let s = cache.stats();
    assert_eq!(
        (s.l2.timeouts, s.l2.errors, s.l2.skipped),
        (4, 4, 16),
        "{s:?}"
    );
    let summary = latencies.report_and_check("in-flight bound reached on a hung Redis", CALL_BOUND);
    // Four calls waited for the deadline; the others did not queue behind them.
    assert!(summary.max >= SLOW_DEADLINE, "{summary}");
    assert!(summary.p50 < SLOW_DEADLINE, "{summary}");
}

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(ErrorKind),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Cache(err.kind())
    }
}

#[tokio::test]
async fn fail_closed_calls_get_the_cache_error_instead_of_running_uncached() {
    let server = RedisServer::start();
    let breaker = BreakerConfig::default()
        .failure_threshold(2)
        .recovery_timeout(LONG);
    let cache = cache_with(&server, breaker).await;
    server.stop();
    let runs = Arc::new(AtomicU64::new(0));
    let mut kinds = Vec::new();
    for i in 0..4u64 {
        let runs = runs.clone();
        let result = cache
            .entry(&format!("faults:strict:{i}"))
            .strict()
            .or_try_compute(|| async move {
                runs.fetch_add(1, SeqCst);
                Ok::<u64, AppError>(i)
            })
            .await;
        match result {
            Err(AppError::Cache(kind)) => kinds.push(kind),
            Ok(v) => panic!("a fail-closed call ran uncached and returned {v}"),
        }
    }
    assert_eq!(runs.load(SeqCst), 0, "the computation never ran");
    assert_eq!(
        kinds,
        [
            ErrorKind::Connection,
            ErrorKind::Connection,
            ErrorKind::CircuitOpen,
            ErrorKind::CircuitOpen
        ]
    );
    // The same calls fail open: values, computed.
    let v: u64 = cache
        .get_or_compute("faults:strict:open", TTL, || async { 9 })
        .await;
    assert_eq!(v, 9);
    assert_eq!(cache.stats().computes, 1);
}
