//! Each way a Sentinel or Cluster deployment can be misconfigured or
//! unreachable gives a clear error: its kind, words that say what happened
//! and what fixes it, never the misleading "is this a Redis-compatible
//! server?", and never a password (the sentinels' or the data nodes') in
//! the message or `Debug`.
//!
//! One Sentinel set (data and sentinel passwords), one small set whose
//! primary is killed, and one cluster with a password serve every test.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::net::TcpListener;
use std::time::Duration;

use cachekit_core::{Backend, Error, ErrorKind};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::{RedisCluster, RedisServer, SentinelSet};

const DATA_PASSWORD: &str = "Dq7dataSECRET";
const SENTINEL_PASSWORD: &str = "Sn4sentinelSECRET";
const CLUSTER_PASSWORD: &str = "Cl9clusterSECRET";
const WRONG: &str = "Wr0ngSECRET";

/// Every secret a message could leak.
const SECRETS: &[&str] = &[DATA_PASSWORD, SENTINEL_PASSWORD, CLUSTER_PASSWORD, WRONG];

/// A set whose sentinels and data nodes have passwords of their own.
fn guarded_set() -> SentinelSet {
    SentinelSet::builder()
        .requirepass(DATA_PASSWORD)
        .sentinel_password(SENTINEL_PASSWORD)
        .start()
}

/// A cluster whose nodes have a password.
fn cluster() -> RedisCluster {
    RedisCluster::builder()
        .requirepass(CLUSTER_PASSWORD)
        .start()
}

/// `redis+sentinel://[:password@]sentinels/service` for `set`.
fn sentinel_url(set: &SentinelSet, password: Option<&str>, service: &str) -> String {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    format!("redis+sentinel://{auth}{}/{service}", set.sentinel_hosts())
}

fn config(url: String) -> cachekit_redis::RedisConfigBuilder {
    RedisConfig::builder()
        .url(url)
        .connect_timeout(Duration::from_secs(2))
}

async fn connect(config: cachekit_redis::RedisConfigBuilder) -> Error {
    match RedisBackend::new(config.build().unwrap()).await {
        Ok(_) => panic!("connected, but an error was expected"),
        Err(err) => err,
    }
}

/// The error has `kind`, contains every one of `words`, and neither its
/// message nor its `Debug` names a secret or blames the server's dialect.
fn assert_clear(err: &Error, kind: ErrorKind, words: &[&str]) {
    let message = err.message();
    let debug = format!("{err:?}");
    assert_eq!(err.kind(), kind, "{message}");
    for word in words {
        assert!(message.contains(word), "no {word:?} in: {message}");
    }
    for text in [message, debug.as_str()] {
        assert!(!text.contains("Redis-compatible"), "misleading: {text}");
        for secret in SECRETS {
            assert!(!text.contains(secret), "leaks a password: {text}");
        }
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn sentinel_misconfigurations_are_named() {
    let set = &tokio::task::spawn_blocking(guarded_set).await.unwrap();
    let master = set.master_name();
    let good = || config(sentinel_url(set, Some(DATA_PASSWORD), master));

    // The right credentials work.
    let redis = RedisBackend::new(
        good()
            .sentinel_credentials(None, SENTINEL_PASSWORD)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    redis.set("k", "v".into(), None).await.unwrap();

    // The data nodes refuse the password the sentinels led to.
    let err = connect(
        config(sentinel_url(set, Some(WRONG), master))
            .sentinel_credentials(None, SENTINEL_PASSWORD),
    )
    .await;
    let primary = set.primary().addr().to_string();
    assert_clear(
        &err,
        ErrorKind::Auth,
        &[
            "the sentinels name",
            &primary,
            "WRONGPASS",
            "CACHEKIT_REDIS_URL",
        ],
    );

    // The sentinels refuse their own password, or want one.
    let err = connect(good().sentinel_credentials(None, WRONG)).await;
    assert_clear(
        &err,
        ErrorKind::Auth,
        &[
            "refused the sentinel credentials",
            "CACHEKIT_REDIS_SENTINEL_PASSWORD",
        ],
    );
    let err = connect(good()).await;
    assert_clear(
        &err,
        ErrorKind::Auth,
        &["sentinel credentials", "CACHEKIT_REDIS_SENTINEL_PASSWORD"],
    );

    // No sentinel monitors that service.
    let err = connect(
        config(sentinel_url(set, Some(DATA_PASSWORD), "nosuch"))
            .sentinel_credentials(None, SENTINEL_PASSWORD),
    )
    .await;
    assert_clear(
        &err,
        ErrorKind::Config,
        &[
            "no sentinel knows a primary named `nosuch`",
            "REDIS_SENTINEL_MASTER",
        ],
    );
}

#[tokio::test]
async fn no_sentinel_answering_is_a_connection_error_naming_each() {
    let (a, b) = (closed_port(), closed_port());
    let url = format!("redis+sentinel://:{DATA_PASSWORD}@127.0.0.1:{a},127.0.0.1:{b}/mymaster");
    let err = connect(config(url)).await;
    assert_clear(
        &err,
        ErrorKind::Connection,
        &[
            "no sentinel answered",
            &format!("127.0.0.1:{a}: connection refused"),
            &format!("127.0.0.1:{b}: connection refused"),
            "REDIS_SENTINEL_HOST",
        ],
    );
}

#[tokio::test]
async fn a_primary_the_sentinels_name_but_cannot_be_reached_is_named() {
    // No replica: when the primary dies the sentinels keep naming it.
    let set = tokio::task::spawn_blocking(|| {
        SentinelSet::builder()
            .replicas(0)
            .sentinels(1)
            .master_name("lonely")
            .start()
    })
    .await
    .unwrap();
    let primary = set.primary();
    primary.stop();
    let err = connect(config(set.url())).await;
    assert_clear(
        &err,
        ErrorKind::Connection,
        &[
            &format!(
                "the sentinels name {} as the primary of `lonely`",
                primary.addr()
            ),
            "connection refused",
        ],
    );

    // A single-server URL pointed at a sentinel (this one has no password).
    let sentinel = &set.sentinels()[0];
    let err = connect(config(sentinel.url())).await;
    assert_clear(
        &err,
        ErrorKind::Config,
        &[
            "is a Redis Sentinel",
            "redis+sentinel://",
            "REDIS_SENTINEL_HOST",
        ],
    );
}

/// A key whose slot `node` does not serve.
fn key_elsewhere(cluster: &RedisCluster, node: &RedisServer) -> String {
    cluster
        .keys_on_distinct_primaries(1)
        .into_iter()
        .find(|k| cluster.primary_for_key(k).addr() != node.addr())
        .unwrap()
}

#[tokio::test]
async fn cluster_misconfigurations_are_named() {
    let cluster = &tokio::task::spawn_blocking(cluster).await.unwrap();
    let node = cluster.primaries()[0];
    let single = format!("redis://:{CLUSTER_PASSWORD}@{}", node.addr());

    // A single-server URL at a cluster node: at connect...
    let err = connect(config(single.clone())).await;
    assert_clear(
        &err,
        ErrorKind::Config,
        &["is a Redis Cluster node", "redis+cluster://"],
    );
    // ... and lazily, on the first command the node redirects.
    let lazy = RedisBackend::connect_lazy(config(single).build().unwrap()).unwrap();
    let key = key_elsewhere(cluster, node);
    let err = lazy.get(&key).await.unwrap_err();
    assert_clear(
        &err,
        ErrorKind::Protocol,
        &[
            "this server is a Redis Cluster node",
            "MOVED",
            "redis+cluster://",
        ],
    );

    // The wrong password for the cluster.
    let url = format!("redis+cluster://:{WRONG}@{}", cluster.seed_nodes());
    let err = connect(config(url)).await;
    assert_clear(
        &err,
        ErrorKind::Auth,
        &["WRONGPASS", "rejected the password"],
    );
    // None at all.
    let url = format!("redis+cluster://{}", cluster.seed_nodes());
    let err = connect(config(url)).await;
    assert_clear(
        &err,
        ErrorKind::Auth,
        &["NOAUTH", "redis+cluster://:PASSWORD@"],
    );

    // A cluster URL at a server that is not in cluster mode.
    let standalone = RedisServer::builder().requirepass(CLUSTER_PASSWORD).start();
    let url = format!("redis+cluster://:{CLUSTER_PASSWORD}@{}", standalone.addr());
    let err = connect(config(url)).await;
    assert_clear(
        &err,
        ErrorKind::Config,
        &[
            "not in cluster mode",
            "cluster-enabled",
            "redis://host:port",
        ],
    );
}
