//! Every duration a user can give the tiered cache, the circuit breaker,
//! the stampede lock, the Redis lock and the file backend's config works at
//! `Duration::MAX` (and `u64::MAX` seconds, its neighbour), or, for the
//! Redis lock's `lock_wait`, is refused by `build()` naming the field: no
//! overflow panic, against a real redis-server where L2 is involved.
#![cfg(all(feature = "redis", feature = "file"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachekit::{
    BreakerConfig, BreakerState, FileBackend, FileConfig, Policy, RedisBackend, RedisConfig,
    StampedeConfig, TieredCache,
};
use cachekit_testkit::RedisServer;
use common::redis;

const TTL: Option<Duration> = Some(Duration::from_secs(60));
/// `Duration::MAX` and the longest whole-second duration below it.
const LONGEST: [Duration; 2] = [Duration::MAX, Duration::from_secs(u64::MAX)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_builder_durations_work_at_their_maximum() {
    let server = RedisServer::start();
    for (n, longest) in LONGEST.into_iter().enumerate() {
        let cache = TieredCache::builder()
            .l2(redis(&server.url()).await)
            .l2_timeout(longest)
            .l1_max_ttl(longest)
            .stale_retry_interval(longest)
            .breaker(
                BreakerConfig::default()
                    .window(longest)
                    .recovery_timeout(longest),
            )
            .build()
            .unwrap();
        let key = |k: &str| format!("max:{n}:{k}");
        cache.set(&key("a"), &1u64, TTL).await.unwrap();
        cache.invalidate_local(&key("a"));
        assert_eq!(cache.get::<u64>(&key("a")).await, Some(1));
        let v = cache
            .get_or_compute(&key("b"), TTL, || async { 2u64 })
            .await;
        assert_eq!(v, 2);
        cache.invalidate_local(&key("b"));
        let v = cache
            .get_or_compute(&key("b"), TTL, || async { 0u64 })
            .await;
        assert_eq!(v, 2, "read back from L2");
        let s = cache.stats();
        assert_eq!((s.l2.errors, s.l2.skipped), (0, 0), "{s:?}");
    }
}

/// Policy durations, as the cache's defaults and per call, with Redis and
/// with the file backend as L2: the values are cached (a TTL or stale window
/// past a century counts as a century) and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_durations_work_at_their_maximum() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    for (n, longest) in LONGEST.into_iter().enumerate() {
        let policy = Policy::new()
            .ttl(longest)
            .max_stale(longest)
            .compute_timeout(longest)
            .refresh_ahead(0.5)
            .ttl_jitter(1e-20);
        let file = FileConfig::builder()
            .dir(dir.path().join(n.to_string()))
            .build()
            .unwrap();
        let on_file = TieredCache::builder()
            .l2(FileBackend::open(file).unwrap())
            .policy(policy.clone());
        let on_redis = TieredCache::builder()
            .l2(redis(&server.url()).await)
            .policy(policy.clone())
            .without_breaker();
        for cache in [on_file, on_redis] {
            let cache = cache.default_ttl(longest).build().unwrap();
            let key = |k: &str| format!("max:policy:{n}:{k}");
            let stored = cache.set(&key("a"), &1u64, None).await;
            let v = cache
                .get_or_compute(&key("b"), None, || async { 2u64 })
                .await;
            assert_eq!(v, 2);
            let v: Result<u64, ()> = cache
                .entry(&key("c"))
                .policy(policy.clone())
                .or_try_compute(|| async { Ok(3) })
                .await;
            assert_eq!(v, Ok(3));
            let v: Result<u64, ()> = cache
                .entry(&key("c"))
                .policy(policy.clone())
                .refreshing()
                .or_try_compute(|| async { Ok(4) })
                .await;
            stored.unwrap();
            assert_eq!(v, Ok(3), "a fresh hit");
            for k in ["a", "b", "c"] {
                cache.invalidate_local(&key(k));
            }
            assert_eq!(cache.get::<u64>(&key("a")).await, Some(1));
            let v = cache
                .get_or_compute(&key("b"), None, || async { 0u64 })
                .await;
            assert_eq!(v, 2, "read back from L2");
            let s = cache.stats();
            assert_eq!((s.l2.errors, s.l2.skipped), (0, 0), "{s:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_with_the_longest_recovery_opens_and_stays_open() {
    let server = RedisServer::start();
    for (n, longest) in LONGEST.into_iter().enumerate() {
        let cache = TieredCache::builder()
            .without_l1()
            .l2(common::lazy_redis(&server.url()))
            .l2_timeout(Duration::from_millis(200))
            .breaker(
                BreakerConfig::default()
                    .failure_threshold(1)
                    .window(longest)
                    .recovery_timeout(longest),
            )
            .build()
            .unwrap();
        if n == 0 {
            server.stop();
        }
        assert_eq!(cache.get::<u64>(&format!("max:breaker:{n}:a")).await, None);
        assert_eq!(cache.stats().breaker, BreakerState::Open);
        assert_eq!(cache.get::<u64>(&format!("max:breaker:{n}:b")).await, None);
        let s = cache.stats();
        assert_eq!(
            (s.l2.errors, s.l2.skipped, s.breaker_opened),
            (1, 1, 1),
            "{s:?}"
        );
    }
}

/// Another process holds the stampede lock; this one waits for its value
/// with `max_wait` (and the lease it would take) at their maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_lock_waits_and_leases_at_their_maximum() {
    let server = RedisServer::start();
    for (n, longest) in LONGEST.into_iter().enumerate() {
        let lock = Arc::new(redis(&server.url()).await);
        let config = StampedeConfig::default()
            .max_wait(longest)
            .lease(longest)
            .poll_interval(Duration::from_millis(20));
        let cache = TieredCache::builder()
            .without_l1()
            .l2(redis(&server.url()).await)
            .stampede_lock(lock.clone(), config)
            .build()
            .unwrap();
        let key = format!("max:stampede:{n}");
        // The other process: holds the lock, then stores the value.
        let other = lock.try_lock(&key, longest).await.unwrap().unwrap();
        let computed = Arc::new(AtomicUsize::new(0));
        let waiting = {
            let (cache, key, computed) = (cache.clone(), key.clone(), computed.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute(&key, TTL, || async move {
                        computed.fetch_add(1, SeqCst);
                        0u64
                    })
                    .await
            })
        };
        cachekit_testkit::eventually("a lock wait", {
            let cache = cache.clone();
            move || cache.stats().lock_waits > 0
        })
        .await;
        cache.set(&key, &7u64, TTL).await.unwrap();
        other.release().await.unwrap();
        assert_eq!(waiting.await.unwrap(), 7);
        assert_eq!(computed.load(SeqCst), 0);

        // A cold key: this process takes the lock with the longest lease.
        let cold = format!("max:stampede:{n}:cold");
        assert_eq!(cache.get_or_compute(&cold, TTL, || async { 8u64 }).await, 8);
        assert_eq!(computed.load(SeqCst), 0);
        let s = cache.stats();
        assert_eq!((s.l2.errors, s.l2.skipped), (0, 0), "{s:?}");
    }
}

/// `RedisBackend::lock` waits up to `lock_wait`, which `build()` bounds at
/// 24 hours (naming the field beyond it); leases and extensions take any
/// duration, clamped to what Redis accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_lock_waits_and_leases_at_their_maximum() {
    let server = RedisServer::start();
    let longest_wait = Duration::from_secs(24 * 3600);
    for (n, longest) in LONGEST.into_iter().enumerate() {
        let refused = RedisConfig::builder()
            .url(server.url())
            .lock_wait(longest)
            .build()
            .unwrap_err();
        assert!(refused.message().contains("lock_wait"), "{refused}");
        let config = RedisConfig::builder()
            .url(server.url())
            .lock_wait(longest_wait)
            .build()
            .unwrap();
        let redis = RedisBackend::new(config).await.unwrap();
        let name = format!("max:lock:{n}");
        let mut first = redis.try_lock(&name, longest).await.unwrap().unwrap();
        first.extend(longest).await.unwrap();
        assert!(redis.try_lock(&name, longest).await.unwrap().is_none());
        let second = {
            let (redis, name) = (redis.clone(), name.clone());
            tokio::spawn(async move { redis.lock(&name, longest).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.release().await.unwrap();
        let second = second.await.unwrap().unwrap();
        second.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_backend_sweep_interval_works_at_its_maximum() {
    for longest in LONGEST {
        let dir = tempfile::tempdir().unwrap();
        let config = FileConfig::builder()
            .dir(dir.path().join("cache"))
            .sweep_interval(longest)
            .build()
            .unwrap();
        let cache = TieredCache::builder()
            .without_l1()
            .l2(FileBackend::open(config).unwrap())
            .build()
            .unwrap();
        cache.set("max:file", &5u64, TTL).await.unwrap();
        assert_eq!(cache.get::<u64>("max:file").await, Some(5));
        assert_eq!(
            cache
                .get_or_compute("max:file", TTL, || async { 6u64 })
                .await,
            5
        );
    }
}
