//! What a cache publishes through the `metrics` facade, read back from
//! metrics-util's debugging recorder.

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use super::tests::Flaky;
use super::*;
use crate::breaker::BreakerConfig;
use crate::clock::Clock;

/// Every series as `name{label=value,...}` (labels sorted) → its value
/// since the last snapshot, batched hits published first.
fn series(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    // This crate's own publisher: the testkit links another copy of it.
    crate::metrics::publish();
    cachekit_testkit::recorded::series(snapshotter)
}

fn counter(all: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match all.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!(
            "{name}: {other:?}; have {:?}",
            all.keys().collect::<Vec<_>>()
        ),
    }
}

fn gauge(all: &HashMap<String, DebugValue>, name: &str) -> f64 {
    match all.get(name) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{name}: {other:?}"),
    }
}

fn samples(all: &HashMap<String, DebugValue>, name: &str) -> usize {
    match all.get(name) {
        Some(DebugValue::Histogram(v)) => v.len(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn hits_misses_sets_computes_and_the_l1_size_are_published_per_tier() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let l2 = Flaky::new();
    let cache = metrics::with_local_recorder(&recorder, || {
        TieredCache::builder()
            .name("users")
            .l2_arc(l2.clone())
            .build()
            .unwrap()
    });
    let ttl = Some(Duration::from_secs(60));
    for _ in 0..3 {
        let v: u32 = cache.get_or_compute("k", ttl, || async { 7 }).await;
        assert_eq!(v, 7);
    }
    let all = series(&snapshotter);
    let req = |tier: &str, result: &str| {
        counter(
            &all,
            &format!("cachekit_requests_total{{cache=users,result={result},tier={tier}}}"),
        )
    };
    assert_eq!((req("l1", "hit"), req("l1", "miss")), (2, 1));
    assert_eq!((req("l2", "hit"), req("l2", "miss")), (0, 1));
    assert_eq!(counter(&all, "cachekit_sets_total{cache=users,tier=l2}"), 1);
    assert_eq!(counter(&all, "cachekit_computes_total{cache=users}"), 1);
    // moka counts its size lazily: the gauges exist, and lag by design.
    assert!(gauge(&all, "cachekit_l1_entries{cache=users}") >= 0.0);
    assert!(gauge(&all, "cachekit_l1_bytes{cache=users}") >= 0.0);
    assert_eq!(
        samples(&all, "cachekit_compute_duration_seconds{cache=users}"),
        1
    );
    assert_eq!(
        samples(
            &all,
            "cachekit_l2_duration_seconds{cache=users,operation=get}"
        ),
        1
    );
    // The numbers are the stats' own.
    let stats = cache.stats();
    assert_eq!((stats.l1.hits, stats.l1.misses, stats.computes), (2, 1, 1));
}

#[tokio::test]
async fn l2_errors_and_breaker_transitions_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, mock) = Clock::mock();
    let l2 = Flaky::with_clock(clock.clone());
    let cache = metrics::with_local_recorder(&recorder, || {
        TieredCache::builder()
            .name("orders")
            .clock(clock)
            .without_l1()
            .l2_arc(l2.clone())
            .breaker(
                BreakerConfig::default()
                    .failure_threshold(2)
                    .recovery_timeout(Duration::from_secs(30))
                    .success_threshold(1),
            )
            .build()
            .unwrap()
    });
    l2.fail_reads.store(true, SeqCst);
    for _ in 0..4 {
        assert_eq!(cache.get::<u8>("k").await, None);
    }
    let all = series(&snapshotter);
    let fault = |kind: &str| {
        counter(
            &all,
            &format!("cachekit_errors_total{{cache=orders,kind={kind},tier=l2}}"),
        )
    };
    assert_eq!((fault("error"), fault("skipped")), (2, 2));
    assert_eq!(
        samples(
            &all,
            "cachekit_l2_duration_seconds{cache=orders,operation=get}"
        ),
        2
    );
    assert_eq!(
        counter(
            &all,
            "cachekit_breaker_transitions_total{cache=orders,to=open}"
        ),
        1
    );
    assert_eq!(gauge(&all, "cachekit_breaker_state{cache=orders}"), 2.0);

    l2.fail_reads.store(false, SeqCst);
    mock.advance(Duration::from_secs(30));
    assert_eq!(cache.get::<u8>("k").await, None);
    let all = series(&snapshotter);
    assert_eq!(
        counter(
            &all,
            "cachekit_breaker_transitions_total{cache=orders,to=half_open}"
        ),
        1
    );
    assert_eq!(
        counter(
            &all,
            "cachekit_breaker_transitions_total{cache=orders,to=closed}"
        ),
        1
    );
    assert_eq!(gauge(&all, "cachekit_breaker_state{cache=orders}"), 0.0);
    // Two timed reads before the breaker opened, one probe since (a
    // snapshot takes the samples recorded since the last one).
    assert_eq!(
        samples(
            &all,
            "cachekit_l2_duration_seconds{cache=orders,operation=get}"
        ),
        1
    );
}

#[tokio::test]
async fn a_cache_built_before_any_recorder_publishes_nothing_and_still_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = TieredCache::builder().name("early").build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        let _ = cache.get_blocking::<u8>("k");
    });
    assert!(series(&snapshotter).is_empty());
    assert_eq!(cache.stats().l1.misses, 1);
}
