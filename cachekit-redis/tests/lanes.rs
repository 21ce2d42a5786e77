//! How commands are spread over the pooled connections: they fill one
//! connection's pipeline (64 awaiting replies) before another is opened.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::{eventually, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_pipeline_on_one_connection() {
    let server = RedisServer::start();
    let config = RedisConfig::builder().url(server.url()).build().unwrap();
    let backend = Arc::new(RedisBackend::new(config).await.unwrap());
    backend.set("k", "v".into(), None).await.unwrap();

    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    assert_eq!(backend.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Fewer commands than one connection's depth: round-robin over
    // connections would have opened more.
    assert_eq!(backend.pool_state().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_makes_the_pool_open_another() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .pool_size(2)
        .response_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let backend = Arc::new(RedisBackend::new(config).await.unwrap());
    backend.set("k", "v".into(), None).await.unwrap();
    assert_eq!(backend.pool_state().connections, 1);

    // 100 commands wait on a paused server: more than one connection holds.
    server.pause();
    let waiting: Vec<_> = (0..100)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.get("k").await })
        })
        .collect();
    eventually("100 commands in flight", || {
        backend.pool_state().in_flight == 100
    })
    .await;
    server.resume();
    for command in waiting {
        assert_eq!(command.await.unwrap().unwrap().as_deref(), Some(&b"v"[..]));
    }
    eventually("a second connection", || {
        backend.pool_state().connections == 2
    })
    .await;

    // pool_size still bounds the connections.
    server.pause();
    let waiting: Vec<_> = (0..200)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.get("k").await })
        })
        .collect();
    eventually("200 commands in flight", || {
        backend.pool_state().in_flight == 200
    })
    .await;
    server.resume();
    for command in waiting {
        command.await.unwrap().unwrap();
    }
    assert_eq!(backend.pool_state().connections, 2);
}
