//! `TieredCache::health()` against a real redis-server: healthy, then
//! frozen with SIGSTOP (health answers within the L2 timeout and says
//! unhealthy), then continued (healthy again, on its own).
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "a failed setup step must fail the test loudly"
)]

use std::time::{Duration, Instant};

use cachekit::{BreakerState, CacheHealth, ChannelState, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::RedisServer;

const L2_TIMEOUT: Duration = Duration::from_millis(300);

/// Asks for the cache's health until `want` holds, for up to 10 s.
async fn until(cache: &TieredCache, want: impl Fn(&CacheHealth) -> bool) -> CacheHealth {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = cache.health().await;
        if want(&health) || Instant::now() >= deadline {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_frozen_and_continued_server() {
    let server = RedisServer::start();
    let config = RedisConfig::builder().url(server.url()).build().unwrap();
    let cache = TieredCache::builder()
        .l2(RedisBackend::new(config).await.unwrap())
        .l2_timeout(L2_TIMEOUT)
        .build()
        .unwrap();
    cache.set("health:a", &1u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("health:a").await, Some(1)); // L1
    cache.invalidate_local("health:a");
    assert_eq!(cache.get::<u32>("health:a").await, Some(1)); // Redis: a keyspace hit

    // Healthy once the invalidation channel is live.
    let health = until(&cache, |h| h.healthy).await;
    assert!(health.healthy, "{health:#?}\n{}", server.log());
    assert_eq!(health.invalidation, ChannelState::Live);
    assert_eq!(health.breaker, BreakerState::Closed);
    let l2 = health.l2.as_ref().expect("an L2 report");
    assert_eq!(l2.backend, "redis");
    assert!(l2.healthy, "{l2:#?}");
    // Two reads, one L1 hit and one Redis hit.
    assert_eq!(health.hit_ratio, Some(1.0));
    let server_ratio = health
        .server_keyspace_hit_ratio
        .expect("Redis reports keyspace counters");
    assert!((0.0..=1.0).contains(&server_ratio) && server_ratio > 0.0);
    assert!(health.l1.is_some());

    server.pause();
    let started = Instant::now();
    let frozen = tokio::time::timeout(Duration::from_secs(10), cache.health())
        .await
        .unwrap_or_else(|_| panic!("health() hung on a frozen server\n{}", server.log()));
    let took = started.elapsed();
    assert!(
        took < L2_TIMEOUT + Duration::from_secs(1),
        "health() took {took:?} with an L2 timeout of {L2_TIMEOUT:?}"
    );
    assert!(!frozen.healthy, "{frozen:#?}");
    let l2 = frozen.l2.as_ref().expect("an L2 report");
    assert!(!l2.healthy, "{l2:#?}");
    assert_eq!(l2.backend, "redis");
    server.resume();

    let back = until(&cache, |h| h.healthy).await;
    assert!(back.healthy, "{back:#?}\n{}", server.log());
    assert!(back.l2.as_ref().is_some_and(|l2| l2.healthy));
}
