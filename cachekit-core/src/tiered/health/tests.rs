use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::backend::{Backend, Ttl};
use crate::breaker::BreakerConfig;
use crate::error::Result;
use crate::memory::MemoryBackend;
use crate::tiered::tests::Flaky;

/// A memory backend whose health check never answers (a frozen server).
#[derive(Debug)]
struct Frozen(MemoryBackend);

#[async_trait]
impl Backend for Frozen {
    fn name(&self) -> &str {
        "frozen"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.0.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        self.0.ttl(key).await
    }
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        self.0.expire(key, ttl).await
    }
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.0.set_if_absent(key, value, ttl).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.0.delete_prefix(prefix).await
    }
    async fn health(&self) -> Health {
        std::future::pending().await
    }
}

fn memory() -> MemoryBackend {
    MemoryBackend::builder().build().unwrap()
}

#[tokio::test]
async fn a_memory_l2_is_healthy_and_the_report_has_every_tier() {
    let cache = TieredCache::builder().l2(memory()).build().unwrap();
    let ttl = Some(Duration::from_secs(60));
    let _: u64 = cache.get_or_compute("h:1", ttl, || async { 1 }).await;
    let _: u64 = cache.get_or_compute("h:1", ttl, || async { 1 }).await;
    let _: u64 = cache.get_or_compute("h:1", ttl, || async { 1 }).await;
    cache.invalidate_local("h:1");
    let _: u64 = cache.get_or_compute("h:1", ttl, || async { 1 }).await; // an L2 hit
    cache.l1().unwrap().run_pending_tasks();

    let health = cache.health().await;
    assert!(health.healthy, "{health:?}");
    let l1 = health.l1.expect("an L1");
    assert_eq!(l1.entries, 1);
    assert!(l1.bytes > 0 && l1.bytes <= l1.capacity_bytes, "{l1:?}");
    let l2 = health.l2.as_ref().expect("an L2 report");
    assert_eq!(l2.backend, "memory");
    assert!(l2.healthy);
    assert_eq!(health.breaker, BreakerState::Closed);
    assert_eq!(health.invalidation, ChannelState::Off);
    assert!(!health.l2_unavailable);
    // Four reads: a miss, two L1 hits, an L1 miss answered by L2.
    assert_eq!(health.hit_ratio, Some(0.75));
    assert_eq!(health.server_keyspace_hit_ratio, None);
}

#[tokio::test]
async fn without_reads_there_is_no_hit_ratio_and_without_l1_l2_reads_count() {
    let cache = TieredCache::builder()
        .without_l1()
        .l2(memory())
        .build()
        .unwrap();
    let health = cache.health().await;
    assert_eq!(health.hit_ratio, None);
    assert!(health.l1.is_none());
    cache.set("k", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await, Some(1));
    assert_eq!(cache.get::<u8>("other").await, None);
    assert_eq!(cache.health().await.hit_ratio, Some(0.5));
}

#[tokio::test]
async fn a_hung_health_check_is_bounded_by_the_l2_timeout_and_unhealthy() {
    let timeout = Duration::from_millis(100);
    let cache = TieredCache::builder()
        .l2(Frozen(memory()))
        .l2_timeout(timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(10), cache.health())
        .await
        .expect("health() returns");
    assert!(started.elapsed() >= timeout);
    assert!(!health.healthy, "{health:?}");
    let l2 = health.l2.expect("an L2 report");
    assert!(!l2.healthy);
    assert_eq!(l2.backend, "frozen");
    assert!(l2.latency >= timeout);
    assert!(l2.details["error"].contains("100ms"), "{:?}", l2.details);
    // The L2 is still usable for what answers; the breaker is not involved.
    assert_eq!(health.breaker, BreakerState::Closed);
}

#[tokio::test]
async fn an_open_breaker_is_unhealthy_even_when_the_backend_answers() {
    let l2 = Flaky::new();
    l2.fail_reads.store(true, SeqCst);
    let cache = TieredCache::builder()
        .l2_arc(l2.clone() as Arc<dyn Backend>)
        .breaker(
            BreakerConfig::default()
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    assert_eq!(cache.get::<u8>("k").await, None);
    let health = cache.health().await;
    assert_eq!(health.breaker, BreakerState::Open);
    assert!(
        health.l2.as_ref().is_some_and(|l2| l2.healthy),
        "{health:?}"
    );
    assert!(!health.healthy);
}

#[test]
fn the_server_ratio_comes_from_the_keyspace_details_only() {
    let health = |hits: &str, misses: &str| {
        Health::new("redis", true, Duration::ZERO)
            .detail("keyspace_hits", hits)
            .detail("keyspace_misses", misses)
            .detail("hit_ratio", "0.1234")
    };
    assert_eq!(server_keyspace_hit_ratio(&health("3", "1")), Some(0.75));
    assert_eq!(server_keyspace_hit_ratio(&health("0", "0")), None);
    assert_eq!(server_keyspace_hit_ratio(&health("x", "1")), None);
    let without = Health::new("redis", true, Duration::ZERO).detail("hit_ratio", "0.5");
    assert_eq!(server_keyspace_hit_ratio(&without), None);
}
