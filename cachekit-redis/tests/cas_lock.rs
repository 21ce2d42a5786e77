//! Compare-and-set and the distributed lock under real concurrency.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachekit_core::{Backend, ErrorKind};
use cachekit_redis::{RedisBackend, RedisConfig, Version};
use cachekit_testkit::RedisServer;

async fn backend(server: &RedisServer) -> Arc<RedisBackend> {
    let config = RedisConfig::builder()
        .url(server.url())
        .key_prefix("cl:")
        .build()
        .unwrap();
    Arc::new(RedisBackend::new(config).await.unwrap())
}

fn number(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).unwrap().parse().unwrap()
}

#[tokio::test]
async fn stale_versions_conflict() {
    let server = RedisServer::start();
    let redis = backend(&server).await;

    redis
        .set_if_version("k", "1".into(), &Version::absent(), None)
        .await
        .unwrap();
    let err = redis
        .set_if_version("k", "x".into(), &Version::absent(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.message().contains("`k`"), "{err}");

    let (value, version) = redis.get_versioned("k").await.unwrap().unwrap();
    assert_eq!(value.as_ref(), b"1");
    assert!(!version.is_absent());
    redis.set("k", "2".into(), None).await.unwrap();
    let err = redis
        .set_if_version("k", "3".into(), &version, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a plain set in between must be noticed"
    );

    let (_, version) = redis.get_versioned("k").await.unwrap().unwrap();
    redis
        .set_if_version("k", "3".into(), &version, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(redis.ttl("k").await.unwrap().remaining().is_some());
    redis.delete("k").await.unwrap();
    let err = redis
        .set_if_version("k", "4".into(), &version, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "a deleted key is not the version read"
    );
    assert!(
        !format!("{version:?}").contains('3'),
        "Debug shows the value: {version:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_incrementing_lose_no_update() {
    const TASKS: u64 = 32;
    const INCREMENTS: u64 = 100;
    let server = RedisServer::start();
    let redis = backend(&server).await;
    let conflicts = Arc::new(AtomicUsize::new(0));

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let redis = redis.clone();
            let conflicts = conflicts.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let (count, version) = match redis.get_versioned("counter").await.unwrap() {
                            Some((bytes, version)) => (number(&bytes), version),
                            None => (0, Version::absent()),
                        };
                        let next = Bytes::from((count + 1).to_string());
                        match redis.set_if_version("counter", next, &version, None).await {
                            Ok(()) => break,
                            Err(e) if e.kind() == ErrorKind::Conflict => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = redis.get("counter").await.unwrap().unwrap();
    assert_eq!(
        number(&total),
        TASKS * INCREMENTS,
        "lost updates ({} conflicts retried)",
        conflicts.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_gives_mutual_exclusion() {
    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let server = RedisServer::start();
    let redis = backend(&server).await;
    let inside = Arc::new(AtomicBool::new(false));

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let redis = redis.clone();
            let inside = inside.clone();
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let guard = redis
                        .lock("section", Duration::from_secs(10))
                        .await
                        .unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    // A read-modify-write that loses updates unless exclusive.
                    let n = redis
                        .get("plain-counter")
                        .await
                        .unwrap()
                        .map_or(0, |b| number(&b));
                    tokio::task::yield_now().await;
                    redis
                        .set("plain-counter", (n + 1).to_string().into(), None)
                        .await
                        .unwrap();
                    inside.store(false, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = redis.get("plain-counter").await.unwrap().unwrap();
    assert_eq!(number(&total), (TASKS * ROUNDS) as u64);
    assert_eq!(
        server.command(&["EXISTS", "cl:section:lock"]),
        "(integer) 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_holder_expires_and_cannot_release_the_new_one() {
    let server = RedisServer::start();
    let redis = backend(&server).await;

    let lost = redis
        .try_lock("job", Duration::from_millis(300))
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(redis
        .try_lock("job", Duration::from_secs(10))
        .await
        .unwrap()
        .is_none());
    assert!(server
        .command(&["PTTL", "cl:job:lock"])
        .starts_with("(integer) "));

    // The holder never releases; the waiter gets the lock once it expires.
    let mut winner = redis.lock("job", Duration::from_secs(10)).await.unwrap();
    let err = lost.release().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.message().contains("`job`"), "{err}");
    assert!(
        redis
            .try_lock("job", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none(),
        "the late release must not free the new holder's lock"
    );
    winner.extend(Duration::from_secs(20)).await.unwrap();
    winner.release().await.unwrap();
    assert!(redis
        .try_lock("job", Duration::from_secs(1))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_runs_out_and_dropped_guards_release() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .lock_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let redis = RedisBackend::new(config).await.unwrap();

    let held = redis.lock("busy", Duration::from_secs(60)).await.unwrap();
    let err = redis
        .lock("busy", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("lock_wait"), "{err}");

    // Dropping the guard releases in the background, long before the 60 s
    // lease would.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(guard) = redis
            .try_lock("busy", Duration::from_secs(60))
            .await
            .unwrap()
        {
            guard.release().await.unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped guard never released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut lost = redis
        .try_lock("short", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.command(&["EXISTS", "short:lock"]) != "(integer) 0" {
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = lost.extend(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}
