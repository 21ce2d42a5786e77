//! What a cache publishes when a real redis-server hangs (SIGSTOP) and
//! comes back: timeouts, skipped calls and the breaker's transitions, and
//! the pool's connections and commands in flight, read from metrics-util's
//! debugging recorder.
#![cfg(all(feature = "redis", feature = "metrics"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cachekit::redis::{RedisBackend, RedisConfig};
use cachekit::{BreakerConfig, BreakerState, TieredCache};
use cachekit_testkit::RedisServer;
use common::{fault, redis};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

fn counters(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    cachekit::publish_metrics();
    cachekit_testkit::recorded::numbers(snapshotter)
}

#[tokio::test]
async fn a_hung_redis_shows_as_timeouts_skips_and_breaker_transitions() {
    let server = Arc::new(RedisServer::start());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let l2 = redis(&server.url()).await;
    let cache = metrics::with_local_recorder(&recorder, || {
        TieredCache::builder()
            .name("faults")
            .l2(l2)
            .without_l1()
            .l1_invalidation(false)
            .l2_timeout(Duration::from_millis(100))
            .breaker(
                BreakerConfig::default()
                    .failure_threshold(2)
                    .window(Duration::from_secs(60))
                    .recovery_timeout(Duration::from_millis(300))
                    .success_threshold(1),
            )
            .build()
            .unwrap()
    });
    cache
        .set("m:k", &1u8, Some(Duration::from_secs(60)))
        .await
        .unwrap();

    let paused = server.clone();
    fault(move || paused.pause()).await;
    for _ in 0..4 {
        assert_eq!(cache.get::<u8>("m:k").await, None);
    }
    assert_eq!(cache.stats().breaker, BreakerState::Open);
    let hung = counters(&snapshotter);
    let at = |all: &HashMap<String, f64>, name: &str| all.get(name).copied().unwrap_or(0.0);
    assert_eq!(
        at(
            &hung,
            "cachekit_errors_total{cache=faults,kind=timeout,tier=l2}"
        ),
        2.0,
        "{hung:?}"
    );
    assert_eq!(
        at(
            &hung,
            "cachekit_errors_total{cache=faults,kind=skipped,tier=l2}"
        ),
        2.0
    );
    assert_eq!(
        at(
            &hung,
            "cachekit_breaker_transitions_total{cache=faults,to=open}"
        ),
        1.0
    );
    assert_eq!(at(&hung, "cachekit_breaker_state{cache=faults}"), 2.0);

    let resumed = server.clone();
    fault(move || resumed.resume()).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(cache.get::<u8>("m:k").await, Some(1));
    let back = counters(&snapshotter);
    assert_eq!(
        at(
            &back,
            "cachekit_breaker_transitions_total{cache=faults,to=half_open}"
        ),
        1.0
    );
    assert_eq!(
        at(
            &back,
            "cachekit_breaker_transitions_total{cache=faults,to=closed}"
        ),
        1.0
    );
    assert_eq!(at(&back, "cachekit_breaker_state{cache=faults}"), 0.0);
    assert_eq!(
        at(
            &back,
            "cachekit_requests_total{cache=faults,result=hit,tier=l2}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_gauges_follow_connections_and_commands_in_flight() {
    const HUNG: usize = 10;
    let server = Arc::new(RedisServer::start());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(4)
        .max_in_flight(64)
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    let cache = metrics::with_local_recorder(&recorder, || {
        TieredCache::builder()
            .name("pool")
            .l2(backend.clone())
            .without_l1()
            .l1_invalidation(false)
            .l2_timeout(Duration::from_secs(30))
            .without_breaker()
            .build()
            .unwrap()
    });
    cache
        .set("p:k", &1u8, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let at = |all: &HashMap<String, f64>, name: &str| {
        *all.get(name)
            .unwrap_or_else(|| panic!("no {name} in {all:?}"))
    };
    let idle = counters(&snapshotter);
    let open = backend.pool_state().connections;
    assert!(open >= 1, "{:?}", backend.pool_state());
    assert_eq!(
        at(&idle, "cachekit_l2_connections{cache=pool,state=in_use}")
            + at(&idle, "cachekit_l2_connections{cache=pool,state=idle}"),
        f64::from(open),
        "{idle:?}"
    );
    assert_eq!(at(&idle, "cachekit_l2_connections_max{cache=pool}"), 4.0);
    assert_eq!(at(&idle, "cachekit_l2_in_flight{cache=pool}"), 0.0);
    assert_eq!(at(&idle, "cachekit_l2_in_flight_max{cache=pool}"), 64.0);

    // Commands to a hung server stay in flight until it resumes.
    let paused = server.clone();
    fault(move || paused.pause()).await;
    let gets: Vec<_> = (0..HUNG)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<u8>("p:k").await })
        })
        .collect();
    cachekit_testkit::eventually("every get in flight to the hung server", || {
        backend.pool_state().in_flight >= HUNG as u32
    })
    .await;
    let hung = counters(&snapshotter);
    assert_eq!(
        at(&hung, "cachekit_l2_in_flight{cache=pool}"),
        HUNG as f64,
        "{hung:?}"
    );
    assert!(at(&hung, "cachekit_l2_connections{cache=pool,state=in_use}") >= 1.0);

    let resumed = server.clone();
    fault(move || resumed.resume()).await;
    for get in gets {
        assert_eq!(get.await.unwrap(), Some(1));
    }
    let back = counters(&snapshotter);
    assert_eq!(at(&back, "cachekit_l2_in_flight{cache=pool}"), 0.0);
}
