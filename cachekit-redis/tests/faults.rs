//! Real faults: a paused server (response timeout, pool exhausted), a
//! restarted one (stale pooled connections), a stopped one (health).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Backend, ErrorKind};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::{eventually, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_gives_a_response_timeout_then_recovers() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    backend.set("k", "v".into(), None).await.unwrap();

    server.pause();
    let err = backend.get("k").await.unwrap_err();
    server.resume();

    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_transient());
    assert!(err.message().contains("response_timeout"), "{err}");
    assert!(err.message().contains("GET `k`"), "{err}");
    assert!(
        err.message()
            .contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    // The timed-out connection was dropped; the next operation uses a new one.
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_pool_gives_pool_exhausted_not_timeout() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(1)
        .max_in_flight(1)
        .response_timeout(Duration::from_secs(20))
        .checkout_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let backend = Arc::new(RedisBackend::new(config).await.unwrap());
    assert_eq!(backend.pool_state().in_flight, 0);

    // The only connection is taken by a GET the paused server never answers.
    server.pause();
    let holder = tokio::spawn({
        let backend = backend.clone();
        async move { backend.get("held").await }
    });
    eventually("the holder to take the only in-flight slot", || {
        backend.pool_state().in_flight == 1
    })
    .await;

    // Under load every other operation waits for the checkout and gives up.
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.get(&format!("waiter{i}")).await })
        })
        .collect();
    for waiter in waiters {
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PoolExhausted, "{err}");
        assert!(err.message().contains("checkout_timeout"), "{err}");
        assert!(err.message().contains("max_in_flight"), "{err}");
        assert!(!err.message().contains("response_timeout"), "{err}");
    }

    server.resume();
    assert_eq!(holder.await.unwrap().unwrap(), None);
    assert_eq!(backend.get("after").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_costs_no_failed_operation() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(4)
        .min_idle(4)
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    eventually("four open connections", || {
        backend.pool_state().connections == 4
    })
    .await;

    server.restart();
    // Every pooled connection died with the old process; each operation
    // notices, drops its connection and succeeds on a fresh one.
    for i in 0..8 {
        let key = format!("after-restart-{i}");
        backend
            .set(&key, "v".into(), None)
            .await
            .unwrap_or_else(|e| panic!("operation {i} after restart: {e}"));
        assert!(backend.exists(&key).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_server_facts_and_never_fails() {
    let server = RedisServer::start();
    let backend = RedisBackend::new(
        RedisConfig::builder()
            .url(server.url())
            .key_prefix("hp:")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    backend.set("hit", "1".into(), None).await.unwrap();
    backend.get("hit").await.unwrap();
    backend.get("miss").await.unwrap();

    let health = backend.health().await;
    assert!(health.healthy, "{health:?}");
    assert_eq!(health.backend, "redis");
    let d = &health.details;
    assert_eq!(d["server"], format!("127.0.0.1:{}", server.port()));
    assert!(d["server_version"].starts_with(char::is_numeric), "{d:?}");
    assert_eq!(d["role"], "master");
    assert!(d["used_memory"].parse::<u64>().unwrap() > 0);
    assert!(d["connected_clients"].parse::<u64>().unwrap() >= 1);
    assert_eq!(d["keyspace_hits"], "1");
    assert_eq!(d["keyspace_misses"], "1");
    assert_eq!(d["hit_ratio"], "0.5000");
    assert_eq!(d["pool_size"], "10");
    assert_eq!(d["key_prefix"], "hp:");
    assert!(!d.contains_key("error"));

    server.stop();
    let health = backend.health().await;
    assert!(!health.healthy, "{health:?}");
    let error = &health.details["error"];
    assert!(
        error.contains(&format!("127.0.0.1:{}", server.port())),
        "{error}"
    );
    assert!(!health.details.contains_key("server_version"));
}
