//! Real faults: a paused server (response timeout, pool exhausted), a
//! restarted one (stale pooled connections), a stopped one (health); a
//! caller's deadline nearer than the response timeout; a dropped backend
//! whose write a hung server never takes.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit_core::{deadline, Backend, ErrorKind};
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

    let err = server.while_paused(backend.get("k")).await.unwrap_err();

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

/// Connections the server has accepted so far, counting the one this asks on.
fn connections_received(server: &RedisServer) -> u64 {
    let info = server.command(&["INFO", "stats"]);
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_connections_received in {info}"))
}

/// GET commands the server has run so far.
fn gets_run(server: &RedisServer) -> u64 {
    let info = server.command(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearer_caller_deadline_ends_the_wait_and_keeps_the_connection() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(1)
        .response_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    assert!(backend.enforces_deadline());
    backend.set("k", "v".into(), None).await.unwrap();
    let before = connections_received(&server);

    let started = Instant::now();
    let limit = Duration::from_millis(200);
    let within = deadline::within(started + limit, backend.get("k"));
    let err = server.while_paused(within).await.unwrap_err();
    let waited = started.elapsed();

    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("caller's deadline"), "{err}");
    assert!(err.message().contains("GET `k`"), "{err}");
    assert!(!err.message().contains("response_timeout"), "{err}");
    assert!(waited >= limit, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // The connection was not condemned for the caller's impatience: the
    // next operations run on it, and the server sees no new client but the
    // one that asks it how many it has seen.
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(backend.pool_state().connections, 1);
    assert_eq!(connections_received(&server), before + 1);

    // A deadline already passed fails at once, sending nothing.
    let gets = gets_run(&server);
    let err = deadline::within(Instant::now(), backend.get("k"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(gets_run(&server), gets);
    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// The send queues (bytes not yet taken by the peer) of the sockets
/// connected to `port` on 127.0.0.1 that are still ESTABLISHED; only this
/// test's clients talk to its server.
fn established_to(port: u16) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let established =
                fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01");
            let queues = fields.get(4)?.split_once(':')?;
            established.then(|| u64::from_str_radix(queues.0, 16).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_backend_closes_its_sockets_while_a_write_is_stuck() {
    // Both transports: coalesced writes (our driver task) and redis-rs's own.
    for coalesce in [true, false] {
        let server = RedisServer::start();
        let config = RedisConfig::builder()
            .url(server.url())
            .coalesce_writes(coalesce)
            .response_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let backend = Arc::new(RedisBackend::new(config).await.unwrap());
        backend.set("k", "v".into(), None).await.unwrap();
        assert_eq!(
            established_to(server.port()).len(),
            1,
            "coalesce {coalesce}"
        );

        // A hung server: a value larger than the socket buffers can never
        // be written out, so the connection's driver cannot finish by itself.
        server.pause();
        let waiting = tokio::spawn({
            let backend = backend.clone();
            let value = bytes::Bytes::from(vec![b'v'; 64 << 20]);
            async move { backend.set("big", value, None).await }
        });
        eventually("the SET stuck in the socket", || {
            established_to(server.port())
                .iter()
                .any(|&queued| queued > 0)
        })
        .await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        drop(backend);
        eventually(&format!("the socket closed (coalesce {coalesce})"), || {
            established_to(server.port()).is_empty()
        })
        .await;
        server.resume();
    }
}
