//! `cachekit::registry()`: every `#[cached]` function called so far, with
//! its key segments, TTL, backend, format and counters; none that was
//! never called.
//!
//! The registry is process-wide, so this file holds a single test.

use std::time::Duration;

use cachekit::{cached, CachedFnInfo, MemoryBackend, TieredCache};

/// L1 in front of a `MemoryBackend` standing in for a shared L2.
fn l1_l2() -> cachekit::Result<TieredCache> {
    TieredCache::builder()
        .l2(MemoryBackend::builder().build()?)
        .build()
}

#[cached(namespace = "reg", name = "with_l2", ttl = 30, backend = l1_l2())]
async fn with_l2(id: u64) -> String {
    format!("user {id}")
}

#[cached(namespace = "reg", name = "plain", version = 2)]
fn plain(x: u64) -> u64 {
    x + 1
}

#[cached(interop, namespace = "reg", name = "shared", ttl = 300)]
async fn shared(id: u64) -> Vec<u64> {
    vec![id]
}

/// No L1 and the default cache has no L2: it runs uncached.
#[cached(namespace = "reg", name = "no_tier", l1 = false)]
fn no_tier(x: u64) -> u64 {
    x
}

#[cached(namespace = "reg", name = "never_called", ttl = 5)]
async fn never_called(x: u64) -> u64 {
    x
}

fn find<'a>(list: &'a [CachedFnInfo], operation: &str) -> &'a CachedFnInfo {
    list.iter()
        .find(|f| f.operation == operation)
        .unwrap_or_else(|| panic!("{operation} is not listed: {list:#?}"))
}

#[tokio::test]
async fn the_registry_lists_exactly_the_called_functions() {
    // The default cache: L1 only, whatever the environment says.
    cachekit::set_default_backend(TieredCache::builder().build().expect("an L1"))
        .expect("the first choice of a default");
    assert!(cachekit::registry().is_empty(), "nothing called yet");

    for _ in 0..3 {
        assert_eq!(with_l2(1).await, "user 1");
    }
    assert_eq!(with_l2(2).await, "user 2");
    assert_eq!(plain(1), 2);
    assert_eq!(plain(1), 2);
    assert_eq!(shared(9).await, vec![9]);
    assert_eq!(no_tier(4), 4);
    assert_eq!(no_tier(4), 4);

    let list = cachekit::registry();
    let mut names: Vec<&str> = list.iter().map(|f| f.operation.as_str()).collect();
    // In the order of the first calls.
    assert_eq!(names, ["with_l2", "plain.v2", "shared", "no_tier"]);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 4, "each function once: {list:#?}");
    assert!(list.iter().all(|f| f.namespace == "reg"));
    let _ = never_called;

    let l2 = find(&list, "with_l2");
    assert_eq!(l2.ttl, Some(Duration::from_secs(30)));
    assert_eq!(l2.backend, "memory");
    assert!(!l2.interop && !l2.encrypted);
    assert_eq!(
        (l2.stats.computes, l2.stats.hits, l2.stats.uncached),
        (2, 2, 0)
    );
    let cache = l2.cache_stats.expect("a cache");
    assert_eq!(cache.l2.sets, 2, "both values reached its L2: {cache:?}");
    assert!(l2.handle.cache().and_then(|c| c.l2()).is_some());

    let plain_info = find(&list, "plain.v2");
    assert_eq!(plain_info.ttl, None);
    assert_eq!(plain_info.backend, "memory");
    assert_eq!((plain_info.stats.computes, plain_info.stats.hits), (1, 1));
    assert!(plain_info.handle.cache().is_some_and(|c| c.l2().is_none()));

    let interop = find(&list, "shared");
    assert!(interop.interop && !interop.encrypted);
    assert_eq!(interop.ttl, Some(Duration::from_secs(300)));
    assert_eq!((interop.stats.computes, interop.stats.hits), (1, 0));

    let uncached = find(&list, "no_tier");
    assert_eq!(uncached.backend, "uncached");
    assert_eq!(uncached.cache_stats, None);
    assert_eq!(
        (
            uncached.stats.uncached,
            uncached.stats.computes,
            uncached.stats.hits
        ),
        (2, 0, 0)
    );

    // A later snapshot sees later calls; the list does not grow.
    assert_eq!(plain(1), 2);
    let again = cachekit::registry();
    assert_eq!(again.len(), 4);
    assert_eq!(find(&again, "plain.v2").stats.hits, 2);
}
