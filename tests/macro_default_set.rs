//! `set_default_backend` wins over the environment. (One test per file:
//! the default is resolved once per process.)

use cachekit::{cached, MemoryBackend, TieredCache};

#[cached(namespace = "defaults", name = "answer")]
async fn answer(x: u64) -> u64 {
    x
}

#[tokio::test]
async fn the_default_set_in_code_is_used() {
    // Were the environment consulted, this URL would be used (and fail).
    std::env::set_var("CACHEKIT_REDIS_URL", "redis://127.0.0.1:1/0");
    let ours = TieredCache::builder()
        .l2(MemoryBackend::builder().build().unwrap())
        .build()
        .unwrap();
    cachekit::set_default_backend(ours.clone()).unwrap();

    assert_eq!(answer(5).await, 5);
    assert_eq!(ours.stats().l2.sets, 1);
    let key = cachekit::derive_key("defaults", "answer", &(5u64,)).unwrap();
    assert_eq!(ours.get::<u64>(&key).await, Some(5));

    let again = cachekit::set_default_backend(TieredCache::builder().build().unwrap());
    assert!(again.is_err());
}
