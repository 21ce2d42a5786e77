//! `delete_prefix("")` is refused everywhere: against a Redis database with
//! no key prefix it would remove every key, including other applications'.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit::{Backend, ErrorKind, TieredCache};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

async fn redis(server: &RedisServer) -> RedisBackend {
    let config = RedisConfig::builder().url(server.url()).build().unwrap();
    RedisBackend::new(config).await.unwrap()
}

/// The key cachekit never wrote and the one it did are both still there.
fn assert_database_untouched(server: &RedisServer) {
    assert_eq!(
        server.command(&["GET", "not-cachekits"]),
        "x",
        "{}",
        server.log()
    );
    assert_eq!(
        server.command(&["DBSIZE"]),
        "(integer) 2",
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn an_empty_prefix_leaves_a_database_without_key_prefix_alone() {
    let server = RedisServer::start();
    server.command(&["SET", "not-cachekits", "x"]);
    let backend = redis(&server).await;
    backend.set("app:k", "v".into(), None).await.unwrap();

    let err = backend.delete_prefix("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("empty prefix"), "{err}");
    assert_database_untouched(&server);
}

#[tokio::test]
async fn a_tiered_cache_refuses_an_empty_prefix_in_both_tiers() {
    let server = RedisServer::start();
    server.command(&["SET", "not-cachekits", "x"]);
    // Without invalidation, so that nothing but `delete_prefix` could drop
    // the L1 entry (the echo of the cache's own write would).
    let cache = TieredCache::builder()
        .l2(redis(&server).await)
        .l1_invalidation(false)
        .build()
        .unwrap();
    cache.set("app:k", &7u32, None).await.unwrap();

    let err = cache.delete_prefix("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_database_untouched(&server);
    // L1 kept its entry too.
    let l1 = cache.l1().unwrap();
    assert!(l1.exists("app:k").await.unwrap());

    // A non-empty prefix still works.
    assert_eq!(cache.delete_prefix("app:").await.unwrap(), 1);
    assert_eq!(server.command(&["EXISTS", "app:k"]), "(integer) 0");
    assert_eq!(server.command(&["GET", "not-cachekits"]), "x");
    // What is left besides: cachekit's count of prefix clears.
    assert_eq!(
        server.command(&["KEYS", "*"]).lines().count(),
        2,
        "{}",
        server.command(&["KEYS", "*"])
    );
}
