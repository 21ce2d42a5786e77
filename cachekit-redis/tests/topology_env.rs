//! `from_env` reaching Sentinel and Cluster deployments through their
//! environment variables. The only test in this binary, because the
//! process environment is shared by every test thread.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_core::{Backend, ErrorKind};
use cachekit_redis::RedisBackend;
use cachekit_testkit::{RedisCluster, SentinelSet};

const SENTINEL_PASSWORD: &str = "Env5sentinelSECRET";

#[tokio::test]
async fn from_env_reaches_sentinels_and_clusters() {
    let set = tokio::task::spawn_blocking(|| {
        SentinelSet::builder()
            .master_name("envcache")
            .sentinel_password(SENTINEL_PASSWORD)
            .start()
    });
    let cluster = tokio::task::spawn_blocking(RedisCluster::start);
    let (set, cluster) = (set.await.unwrap(), cluster.await.unwrap());
    for name in [
        "CACHEKIT_REDIS_URL",
        "REDIS_URL",
        "CACHEKIT_REDIS_CLUSTER_NODES",
    ] {
        std::env::remove_var(name);
    }

    // Sentinels: one host and the port, as managed platforms set them.
    let first = set.sentinel_addrs()[0];
    std::env::set_var("REDIS_SENTINEL_HOST", first.ip().to_string());
    std::env::set_var("REDIS_SENTINEL_PORT", first.port().to_string());
    std::env::set_var("REDIS_SENTINEL_MASTER", "envcache");
    std::env::set_var("CACHEKIT_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    let redis = RedisBackend::from_env().await.unwrap();
    redis.set("env:k", "sentinel".into(), None).await.unwrap();
    assert_eq!(set.primary().command(&["GET", "env:k"]), "sentinel");
    assert!(!format!("{redis:?}").contains(SENTINEL_PASSWORD));

    // The sentinels' password is theirs, not the data nodes'.
    std::env::set_var("CACHEKIT_REDIS_SENTINEL_PASSWORD", "wrong");
    let err = RedisBackend::from_env().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(
        err.message().contains("CACHEKIT_REDIS_SENTINEL_PASSWORD"),
        "{err}"
    );

    // A comma list of sentinels with their ports; an unknown service.
    std::env::set_var("CACHEKIT_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD);
    std::env::set_var("REDIS_SENTINEL_HOST", set.sentinel_hosts());
    std::env::set_var("REDIS_SENTINEL_MASTER", "other");
    let err = RedisBackend::from_env().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("`other`"), "{err}");

    // Cluster nodes win over the sentinels.
    std::env::set_var("CACHEKIT_REDIS_CLUSTER_NODES", cluster.seed_nodes());
    let redis = RedisBackend::from_env().await.unwrap();
    let keys = cluster.keys_on_distinct_primaries(1);
    for key in &keys {
        redis.set(key, "cluster".into(), None).await.unwrap();
        assert_eq!(
            cluster.primary_for_key(key).command(&["GET", key]),
            "cluster"
        );
    }
    // And a URL wins over both.
    std::env::set_var("REDIS_URL", set.primary().url());
    let redis = RedisBackend::from_env().await.unwrap();
    assert_eq!(
        redis.get("env:k").await.unwrap().as_deref(),
        Some(&b"sentinel"[..])
    );
}
