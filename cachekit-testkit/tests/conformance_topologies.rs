//! The conformance suite against the Redis backend on each topology other
//! than a standalone TCP server (which `cachekit-redis/tests/operations.rs`
//! covers): the primary a Sentinel set names, a Redis Cluster, and a Unix
//! socket.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::{run_conformance, RedisServer, SentinelSet};

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

#[tokio::test]
async fn unix_socket_backend_conforms_in_the_database_the_url_names() {
    let server = RedisServer::builder().unix_socket().start();
    let redis = backend(format!("{}?db=2", server.unix_url()), "").await;
    run_conformance(&redis).await;
    redis.set("probe", "v".into(), None).await.unwrap();
    let keyspace = server.command(&["INFO", "keyspace"]);
    assert!(keyspace.contains("db2:keys=1"), "{keyspace}");

    // The redis+unix:// spelling reaches the same socket.
    let path = server.socket_path().unwrap().display().to_string();
    let other = backend(format!("redis+unix://{path}?db=2"), "").await;
    assert_eq!(
        other.get("probe").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}
