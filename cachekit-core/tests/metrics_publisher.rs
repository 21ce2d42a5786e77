//! Hits are published by the background thread, without anyone calling
//! `publish` (alone in its binary: nothing else here publishes).

#![cfg(feature = "metrics")]

use std::time::{Duration, Instant};

use cachekit_core::TieredCache;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test]
async fn hits_reach_the_recorder_within_seconds_unasked() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache =
        metrics::with_local_recorder(&recorder, || TieredCache::builder().name("unasked").build())
            .expect("an L1-only cache builds");
    cache
        .set("k", &1u64, Some(Duration::from_secs(60)))
        .await
        .expect("an L1 set succeeds");
    for _ in 0..3 {
        assert_eq!(cache.get::<u64>("k").await, Some(1));
    }

    // A snapshot takes what was recorded since the last one.
    let mut hits = 0;
    let started = Instant::now();
    while hits < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hits were never published: {hits} of 3"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let is_hit = key.name() == "cachekit_requests_total"
                && key.labels().any(|l| l.key() == "tier" && l.value() == "l1")
                && key
                    .labels()
                    .any(|l| l.key() == "result" && l.value() == "hit");
            if let (true, DebugValue::Counter(n)) = (is_hit, value) {
                hits += n;
            }
        }
    }
    assert_eq!(hits, 3);
}
