//! Without `set_default_backend` and without a Redis URL, functions that
//! name no backend share one in-process cache. (One test per file: the
//! default is resolved once per process.)

use cachekit::{cached, TieredCache};

#[cached]
fn first(x: u8) -> u8 {
    x
}

#[cached]
async fn second(x: u8) -> u8 {
    x + 1
}

#[cached(l1_ttl = 5)]
fn own_l1(x: u8) -> u8 {
    x + 2
}

#[tokio::test]
async fn the_default_is_one_shared_l1() {
    // Edition 2021: not yet `unsafe`; no other thread reads the environment.
    std::env::remove_var("CACHEKIT_REDIS_URL");
    std::env::remove_var("REDIS_URL");

    assert_eq!(first(1), 1);
    assert_eq!(second(1).await, 2);
    let shared = first_cache().cache().unwrap();
    assert!(shared.l1().is_some() && shared.l2().is_none());
    // Both functions stored into the same cache.
    assert_eq!(shared.stats().l1.sets, 2);
    assert!(!shared.stats().l2_unavailable, "no L2 was configured");
    assert_eq!(second_cache().cache().unwrap().stats().l1.sets, 2);

    // `l1_ttl` gives the function an L1 of its own.
    assert_eq!(own_l1(1), 3);
    assert_eq!(own_l1_cache().cache().unwrap().stats().l1.sets, 1);
    assert_eq!(shared.stats().l1.sets, 2);

    // Too late to choose another default.
    let err = cachekit::set_default_backend(TieredCache::builder().build().unwrap()).unwrap_err();
    assert_eq!(err.kind(), cachekit::ErrorKind::Config);
}
