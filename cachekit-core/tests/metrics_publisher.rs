//! Hits are published by the background thread, without anyone calling
//! `publish` (alone in its binary: nothing else here publishes).

#![cfg(feature = "metrics")]

use std::time::Duration;

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
    cachekit_testkit::eventually("the background thread to publish the hits", || {
        let mut all = cachekit_testkit::recorded::series(&snapshotter);
        let series = "cachekit_requests_total{cache=unasked,result=hit,tier=l1}";
        if let Some(DebugValue::Counter(n)) = all.remove(series) {
            hits += n;
        }
        hits >= 3
    })
    .await;
    assert_eq!(hits, 3);
}
