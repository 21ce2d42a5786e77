//! The conformance suite against the Redis backend on each topology other
//! than a standalone TCP server (which `cachekit-redis/tests/operations.rs`
//! covers): the primary a Sentinel set names, a Redis Cluster, and a Unix
//! socket.
//!
//! A Unix-socket server starts in milliseconds, so it gets one test per
//! check. A Sentinel set or a cluster takes seconds and several processes
//! to start, so each runs the whole suite in one test (`run_conformance`).

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::{
    conformance_tests, run_conformance, RedisCluster, RedisServer, SentinelSet, WithGuard,
};

async fn backend(url: String, prefix: &str) -> RedisBackend {
    let config = RedisConfig::builder()
        .url(url)
        .key_prefix(prefix)
        .build()
        .unwrap();
    RedisBackend::new(config).await.unwrap()
}

#[tokio::test]
async fn sentinel_backend_conforms() {
    let set = SentinelSet::start();
    let redis = backend(set.url(), "conf:").await;
    run_conformance(&redis).await;
    // The keys went to the primary the sentinels name.
    redis.set("probe", "v".into(), None).await.unwrap();
    assert_eq!(set.primary().command(&["GET", "conf:probe"]), "v");
}

conformance_tests!(unix_socket, async || {
    let server = RedisServer::builder().unix_socket().start();
    WithGuard(
        backend(format!("{}?db=2", server.unix_url()), "").await,
        server,
    )
});

#[tokio::test]
async fn unix_socket_urls_reach_the_database_they_name() {
    let server = RedisServer::builder().unix_socket().start();
    let redis = backend(format!("{}?db=2", server.unix_url()), "").await;
    redis.set("probe", "v".into(), None).await.unwrap();
    assert_eq!(
        server.data_keys(2),
        1,
        "{}",
        server.command(&["INFO", "keyspace"])
    );

    // The redis+unix:// spelling reaches the same socket.
    let path = server.socket_path().unwrap().display().to_string();
    let other = backend(format!("redis+unix://{path}?db=2"), "").await;
    assert_eq!(
        other.get("probe").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn cluster_backend_conforms_across_every_primary() {
    let cluster = RedisCluster::start();
    let redis = backend(cluster.url(), "conf:").await;
    run_conformance(&redis).await;
    // It cleaned up on every primary.
    let sizes = cluster.data_keys_on_primaries();
    assert!(sizes.iter().all(|n| *n == 0), "{sizes:?}");

    // Keys spread over every primary, and the batch operations span them
    // (no prefix here: `keys` hash to distinct primaries as they are).
    let redis = backend(cluster.url(), "").await;
    let keys = cluster.keys_on_distinct_primaries(4);
    let entries: Vec<(&str, bytes::Bytes)> = keys
        .iter()
        .map(|k| (k.as_str(), bytes::Bytes::from(k.clone())))
        .collect();
    redis.set_many(&entries, None).await.unwrap();
    let sizes = cluster.data_keys_on_primaries();
    assert!(sizes.iter().all(|n| *n == 4), "{sizes:?}");
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = redis.get_many(&names).await.unwrap();
    let expected: Vec<Option<bytes::Bytes>> = entries.iter().map(|e| Some(e.1.clone())).collect();
    assert_eq!(values, expected);
    assert_eq!(redis.delete_prefix("key:").await.unwrap(), 12);
}
