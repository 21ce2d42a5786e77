//! A `#[cached]` function's series through metrics-util's debugging
//! recorder: hits from many threads (remembered entries and not), misses
//! and uncached calls, in cachekit's names and cachekit-py's, equal to the
//! function's own `stats()` once published.
#![cfg(all(feature = "metrics", feature = "macros"))]

use std::collections::HashMap;

use cachekit::{cached, TieredCache};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn make() -> cachekit::Result<TieredCache> {
    TieredCache::builder().name("functions").build()
}

#[cached(backend = make(), namespace = "m", name = "halve", ttl = 600)]
fn halve(x: f64) -> f64 {
    x / 2.0
}

/// Every counter → what it gained since the last snapshot.
fn counters(snapshotter: &Snapshotter) -> HashMap<String, u64> {
    cachekit_testkit::recorded::series(snapshotter)
        .into_iter()
        .filter_map(|(name, value)| match value {
            DebugValue::Counter(n) => Some((name, n)),
            _ => None,
        })
        .collect()
}

#[test]
fn hits_misses_and_uncached_calls_are_published_in_both_names() {
    const THREADS: u64 = 4;
    const CALLS: u64 = 500;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The handle is built on the first call: inside the recorder's scope.
    metrics::with_local_recorder(&recorder, || assert_eq!(halve(8.0), 4.0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..CALLS {
                    // Two arguments per thread: remembered entries, and
                    // the first call of each on a thread looks the key up.
                    let x = if i % 2 == 0 { 8.0 } else { 2.0 + t as f64 };
                    assert_eq!(halve(x), x / 2.0);
                }
            });
        }
    });
    // A NaN gives no key: the body runs uncached.
    assert!(halve(f64::NAN).is_nan());

    cachekit::publish_metrics();
    let all = counters(&snapshotter);
    let at = |name: &str| {
        *all.get(name)
            .unwrap_or_else(|| panic!("no {name} in {all:?}"))
    };
    let stats = halve_cache().stats();
    let misses = 1 + THREADS;
    assert_eq!(stats.computes, misses);
    assert_eq!(stats.hits, THREADS * CALLS - THREADS);
    assert_eq!(stats.uncached, 1);
    let ours = |result: &str| {
        at(&format!(
            "cachekit_function_calls_total{{function=halve,namespace=m,result={result}}}"
        ))
    };
    assert_eq!(ours("hit"), stats.hits);
    assert_eq!(ours("miss"), stats.computes);
    assert_eq!(ours("uncached"), stats.uncached);
    let py = |status: &str| {
        at(&format!(
            "redis_cache_operations_total{{namespace=m,operation=get,serializer=envelope,status={status}}}"
        ))
    };
    assert_eq!(py("hit"), stats.hits);
    assert_eq!(py("miss"), stats.computes);
    // The cache's own L1 counters count the same hits.
    assert_eq!(
        at("cachekit_requests_total{cache=functions,result=hit,tier=l1}"),
        stats.hits
    );

    // Published once: more publishing adds nothing; new hits add theirs.
    cachekit::publish_metrics();
    assert_eq!(halve(8.0), 4.0);
    cachekit::publish_metrics();
    let again = counters(&snapshotter);
    assert_eq!(
        again.get("cachekit_function_calls_total{function=halve,namespace=m,result=hit}"),
        Some(&1),
        "{again:?}"
    );
}
