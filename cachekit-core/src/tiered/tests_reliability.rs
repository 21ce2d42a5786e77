//! Deadlines, circuit breaker, backpressure, serve-stale, refresh-ahead,
//! jitter, fail-closed and the stampede lock, against in-process backends
//! with injected faults. (Real Redis faults are tested in the facade's tests.)

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::tests::Flaky;
use super::*;
use crate::breaker::{BreakerConfig, BreakerState};
use crate::clock::{Clock, MockClock};
use crate::error::{Error, ErrorKind};
use crate::lock::{DistributedLock, StampedeConfig};

fn cache_with(
    l2: &Arc<Flaky>,
    f: impl FnOnce(TieredCacheBuilder) -> TieredCacheBuilder,
) -> TieredCache {
    f(TieredCache::builder().l2_arc(l2.clone() as Arc<dyn Backend>))
        .build()
        .unwrap()
}

/// An L2 and a cache on one mock clock, and the clock's handle.
fn mocked(
    f: impl FnOnce(TieredCacheBuilder) -> TieredCacheBuilder,
) -> (Arc<Flaky>, TieredCache, MockClock) {
    let (clock, mock) = Clock::mock();
    let l2 = Flaky::with_clock(clock.clone());
    let cache = cache_with(&l2, |b| f(b.clock(clock)));
    (l2, cache, mock)
}

/// Polls `cond` until it holds, failing after `limit`.
async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_hung_l2_costs_at_most_its_deadline() {
    let l2 = Flaky::new();
    l2.hang.store(true, SeqCst);
    let cache = cache_with(&l2, |b| b.l2_timeout(Duration::from_millis(50)));
    let v = cache.get_or_compute("k", None, || async { 5u8 }).await;
    assert_eq!(v, 5);
    let s = cache.stats();
    // The read spends the call's whole L2 deadline; the write is not tried.
    assert_eq!(s.l2.timeouts, 1);
    assert_eq!(s.l2.skipped, 1);
    assert_eq!(s.l2.errors, 1);
    // The value is still served from L1.
    assert_eq!(cache.get::<u8>("k").await, Some(5));
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_skips_l2() {
    let l2 = Flaky::new();
    l2.fail_reads.store(true, SeqCst);
    l2.fail_writes.store(true, SeqCst);
    let cache = cache_with(&l2, |b| {
        b.breaker(
            BreakerConfig::default()
                .failure_threshold(4)
                .recovery_timeout(Duration::from_secs(60)),
        )
    });
    for i in 0..10u32 {
        let v = cache
            .get_or_compute(&format!("k{i}"), None, || async move { i })
            .await;
        assert_eq!(v, i);
    }
    let s = cache.stats();
    assert_eq!(s.breaker, BreakerState::Open);
    assert_eq!(s.breaker_opened, 1);
    // Two calls (read + write) failed per key until the 4th failure opened it.
    assert_eq!(l2.calls.load(SeqCst), 4);
    assert_eq!(s.l2.skipped, 20 - 4);
    assert_eq!(s.computes, 10);
}

#[tokio::test]
async fn the_breaker_probes_after_recovery_and_closes_when_l2_is_back() {
    let (l2, cache, clock) = mocked(|b| {
        b.breaker(
            BreakerConfig::default()
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(30))
                .success_threshold(2),
        )
    });
    l2.fail_reads.store(true, SeqCst);
    assert_eq!(cache.get::<u8>("k").await, None);
    assert_eq!(cache.stats().breaker, BreakerState::Open);
    l2.fail_reads.store(false, SeqCst);
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        cache.stats().breaker,
        BreakerState::Open,
        "still recovering"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.stats().breaker, BreakerState::HalfOpen);
    cache.get::<u8>("a").await;
    assert_eq!(
        cache.stats().breaker,
        BreakerState::HalfOpen,
        "one success of two"
    );
    cache.get::<u8>("b").await;
    assert_eq!(cache.stats().breaker, BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_backpressure_skips_l2_beyond_the_in_flight_bound() {
    let l2 = Flaky::new();
    l2.hang.store(true, SeqCst);
    let cache = cache_with(&l2, |b| {
        b.max_l2_in_flight(2)
            .max_l2_queued(0)
            .l2_timeout(Duration::from_secs(2))
            .without_breaker()
    });
    let tasks: Vec<_> = (0..10u32)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<u32>(&format!("k{i}")).await })
        })
        .collect();
    let c = cache.clone();
    eventually(Duration::from_secs(5), "8 skipped", move || {
        c.stats().l2.skipped == 8
    })
    .await;
    assert_eq!(
        l2.calls.load(SeqCst),
        2,
        "only two calls reached the backend"
    );
    for t in tasks {
        assert_eq!(t.await.unwrap(), None);
    }
}

#[tokio::test]
async fn serve_stale_returns_the_old_value_when_recompute_fails_and_throttles() {
    // Serve-stale as the cache's default, so that plain `get` knows the window too.
    let policy = Policy::new()
        .ttl(Duration::from_secs(30))
        .max_stale(Duration::from_secs(60));
    let (l2, cache, clock) = mocked(|b| {
        b.policy(policy.clone())
            .stale_retry_interval(Duration::from_secs(60))
    });
    let v: Result<u32, &str> = cache
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async { Ok(1) })
        .await;
    assert_eq!(v, Ok(1));
    // L2 keeps it for ttl + max_stale.
    let left = l2.inner.ttl("k").await.unwrap().remaining().unwrap();
    assert_eq!(left, Duration::from_secs(90));
    clock.advance(Duration::from_secs(31));
    assert_eq!(cache.get::<u32>("k").await, None, "stale: not a plain hit");
    let attempts = AtomicUsize::new(0);
    for _ in 0..3 {
        let v: Result<u32, &str> = cache
            .entry("k")
            .policy(policy.clone())
            .or_try_compute(|| async {
                attempts.fetch_add(1, SeqCst);
                Err("source down")
            })
            .await;
        assert_eq!(v, Ok(1), "the stale value is served");
    }
    assert_eq!(
        attempts.load(SeqCst),
        1,
        "failed recomputation is not retried at once"
    );
    assert_eq!(cache.stats().stale_served, 3);
    // A successful recomputation replaces the stale value.
    let l2_only = cache_with(&l2, |b| {
        b.policy(policy.clone()).clock(cache.clock().clone())
    });
    let v: Result<u32, &str> = l2_only
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async { Ok(2) })
        .await;
    assert_eq!(v, Ok(2));
}

/// `read_through` looks for a recent failure before it joins the key's
/// flight, and another caller's failed refresh can end in between: it then
/// leaves its failure behind and its flight gone. A caller that leads in
/// that window must still see the failure, not refresh again.
#[tokio::test]
async fn a_failure_recorded_between_the_check_and_the_join_still_throttles() {
    let l2 = Flaky::new();
    let policy = Policy::new()
        .ttl(Duration::from_millis(30))
        .max_stale(Duration::from_secs(60))
        .or(&Policy::default());
    let cache = cache_with(&l2, |b| b.stale_retry_interval(Duration::from_secs(60)));
    // The state that window leaves: a stale value in hand (what the
    // caller's L1 read returned) and the other caller's failure recorded.
    cache.inner.recent_failures.insert("k".to_owned(), ());
    let attempts = AtomicUsize::new(0);
    let v: Result<u32, &str> = cache
        .fill("k", None, &policy, Some(1), None, || async {
            attempts.fetch_add(1, SeqCst);
            Err("source down")
        })
        .await;
    assert_eq!(v, Ok(1), "the stale value is served");
    assert_eq!(
        attempts.load(SeqCst),
        0,
        "the failed key is not refreshed again"
    );
    assert_eq!(cache.stats().stale_served, 1);
}

#[tokio::test]
async fn serve_stale_also_covers_a_slow_recomputation() {
    let policy = Policy::new()
        .ttl(Duration::from_secs(20))
        .max_stale(Duration::from_secs(60))
        .compute_timeout(Duration::from_millis(50));
    let (_l2, cache, clock) = mocked(|b| b.policy(policy.clone()));
    let _: Result<u32, ()> = cache
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async { Ok(1) })
        .await;
    clock.advance(Duration::from_secs(21));
    let v: Result<u32, ()> = cache
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async {
            std::future::pending::<()>().await;
            Ok(2)
        })
        .await;
    assert_eq!(v, Ok(1));
    assert_eq!(cache.stats().stale_served, 1);
}

#[tokio::test]
async fn without_serve_stale_an_expired_value_is_never_returned() {
    let (clock, mock) = Clock::mock();
    let cache = TieredCache::builder().clock(clock).build().unwrap();
    let policy = Policy::new().ttl(Duration::from_secs(10));
    let _: Result<u32, ()> = cache
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async { Ok(1) })
        .await;
    assert_eq!(cache.get::<u32>("k").await, Some(1));
    mock.advance(Duration::from_secs(10));
    assert_eq!(cache.get::<u32>("k").await, None, "expired at its TTL");
    let v: Result<u32, &str> = cache
        .entry("k")
        .policy(policy.clone())
        .or_try_compute(|| async { Err("down") })
        .await;
    assert_eq!(v, Err("down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_recomputes_once_in_the_background() {
    let (_l2, cache, clock) = mocked(|b| b);
    let policy = Policy::new()
        .ttl(Duration::from_secs(400))
        .refresh_ahead(0.5);
    let version = Arc::new(AtomicUsize::new(1));
    let call = |cache: TieredCache, version: Arc<AtomicUsize>, policy: Policy| async move {
        cache
            .entry("k")
            .policy(policy.clone())
            .refreshing()
            .or_try_compute(move || async move {
                let v = version.fetch_add(1, SeqCst);
                // Slow enough that every hit below lands while it runs.
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<usize, ()>(v)
            })
            .await
    };
    assert_eq!(
        call(cache.clone(), version.clone(), policy.clone()).await,
        Ok(1)
    );
    // Before the last half of the TTL: a plain hit, no refresh.
    clock.advance(Duration::from_secs(190));
    assert_eq!(
        call(cache.clone(), version.clone(), policy.clone()).await,
        Ok(1)
    );
    assert_eq!(cache.stats().refreshes, 0);
    // Within the last half: served at once, refreshed behind the scenes.
    clock.advance(Duration::from_secs(20));
    for _ in 0..5 {
        assert_eq!(
            call(cache.clone(), version.clone(), policy.clone()).await,
            Ok(1)
        );
    }
    let c = cache.clone();
    eventually(Duration::from_secs(5), "refreshed value", move || {
        c.get_blocking::<usize>("k") == Some(2)
    })
    .await;
    assert_eq!(cache.stats().refreshes, 1, "five hits, one refresh");
    assert_eq!(version.load(SeqCst), 3);
}

#[tokio::test]
async fn ttl_jitter_shortens_ttls_within_the_fraction() {
    let l2 = Flaky::new();
    let cache = cache_with(&l2, |b| b);
    let policy = Policy::new().ttl(Duration::from_secs(1000)).ttl_jitter(0.5);
    let mut ttls = Vec::new();
    for i in 0..20 {
        let key = format!("k{i}");
        let _: Result<u8, ()> = cache
            .entry(&key)
            .policy(policy.clone())
            .or_try_compute(|| async { Ok(1) })
            .await;
        ttls.push(l2.inner.ttl(&key).await.unwrap().remaining().unwrap());
    }
    assert!(ttls
        .iter()
        .all(|t| *t <= Duration::from_secs(1000) && *t >= Duration::from_secs(499)));
    ttls.sort();
    assert!(
        ttls[19] - ttls[0] > Duration::from_secs(10),
        "no spread: {ttls:?}"
    );
}

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(ErrorKind),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Cache(err.kind())
    }
}

#[tokio::test]
async fn fail_closed_returns_the_cache_error_instead_of_computing() {
    let l2 = Flaky::new();
    l2.fail_reads.store(true, SeqCst);
    let cache = cache_with(&l2, |b| b);
    let computed = AtomicUsize::new(0);
    let r: Result<u8, AppError> = cache
        .entry("k")
        .strict()
        .or_try_compute(|| async {
            computed.fetch_add(1, SeqCst);
            Ok(1)
        })
        .await;
    assert_eq!(r, Err(AppError::Cache(ErrorKind::Connection)));
    assert_eq!(computed.load(SeqCst), 0);
    // Healthy again: strict calls work like the others.
    l2.fail_reads.store(false, SeqCst);
    let r: Result<u8, AppError> = cache
        .entry("k")
        .strict()
        .or_try_compute(|| async { Ok(2) })
        .await;
    assert_eq!(r, Ok(2));
    // A failed write fails a strict call too.
    l2.fail_writes.store(true, SeqCst);
    let r: Result<u8, AppError> = cache
        .entry("other")
        .strict()
        .or_try_compute(|| async { Ok(3) })
        .await;
    assert_eq!(r, Err(AppError::Cache(ErrorKind::Connection)));
}

/// A lock over a shared backend's `set_if_absent`, as a real distributed
/// lock would be (the Redis one is tested against Redis).
#[derive(Debug)]
struct BackendLock(Arc<Flaky>);

#[async_trait]
impl DistributedLock for BackendLock {
    async fn try_lock(&self, key: &str, lease: Duration) -> crate::Result<Option<String>> {
        let token = format!("{:x}", fastrand::u64(..));
        let won = self
            .0
            .inner
            .set_if_absent(
                &format!("lock:{key}"),
                Bytes::from(token.clone()),
                Some(lease),
            )
            .await?;
        Ok(won.then_some(token))
    }
    async fn unlock(&self, key: &str, token: &str) -> crate::Result<bool> {
        let lock_key = format!("lock:{key}");
        match self.0.inner.get(&lock_key).await? {
            Some(held) if held == token.as_bytes() => self.0.inner.delete(&lock_key).await,
            _ => Ok(false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_lock_lets_one_of_several_caches_compute() {
    let l2 = Flaky::new();
    let lock: Arc<dyn DistributedLock> = Arc::new(BackendLock(l2.clone()));
    // Four caches sharing one L2 and one lock stand for four processes.
    let caches: Vec<TieredCache> = (0..4)
        .map(|_| {
            cache_with(&l2, |b| {
                b.stampede_lock(
                    lock.clone(),
                    StampedeConfig::default().poll_interval(Duration::from_millis(5)),
                )
            })
        })
        .collect();
    let computes = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for cache in &caches {
        for _ in 0..10 {
            let (cache, computes) = (cache.clone(), computes.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("cold", Some(Duration::from_secs(60)), || async move {
                        computes.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        7u32
                    })
                    .await
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 7);
    }
    assert_eq!(computes.load(SeqCst), 1);
    let waits: u64 = caches.iter().map(|c| c.stats().lock_waits).sum();
    assert!(waits > 0, "other caches waited on the lock");
    assert!(
        !l2.inner.exists("lock:cold").await.unwrap(),
        "the lock was released"
    );
}

/// Another process that holds the lock at the first try, then stores its
/// value and lets go just before the second: in the window between a
/// waiter's last read of L2 and its next try.
#[derive(Debug)]
struct FinishesBeforeTheNextTry {
    l2: Arc<Flaky>,
    value: Bytes,
    tries: AtomicUsize,
    unlocks: AtomicUsize,
}

#[async_trait]
impl DistributedLock for FinishesBeforeTheNextTry {
    async fn try_lock(&self, key: &str, _lease: Duration) -> crate::Result<Option<String>> {
        if self.tries.fetch_add(1, SeqCst) == 0 {
            return Ok(None);
        }
        self.l2
            .inner
            .set(key, self.value.clone(), Some(Duration::from_secs(60)))
            .await?;
        Ok(Some("token".to_owned()))
    }
    async fn unlock(&self, _key: &str, _token: &str) -> crate::Result<bool> {
        self.unlocks.fetch_add(1, SeqCst);
        Ok(true)
    }
}

#[tokio::test]
async fn a_waiter_that_gets_the_lock_reads_l2_again_before_computing() {
    let l2 = Flaky::new();
    let lock = Arc::new(FinishesBeforeTheNextTry {
        l2: l2.clone(),
        value: crate::Codec::default().encode(&7u32).unwrap(),
        tries: AtomicUsize::new(0),
        unlocks: AtomicUsize::new(0),
    });
    let cache = cache_with(&l2, |b| {
        b.stampede_lock(
            lock.clone(),
            StampedeConfig::default().poll_interval(Duration::from_millis(1)),
        )
    });
    let computes = AtomicUsize::new(0);
    let got = cache
        .get_or_compute("k", Some(Duration::from_secs(60)), || async {
            computes.fetch_add(1, SeqCst);
            8u32
        })
        .await;
    assert_eq!(got, 7, "the other process's value");
    assert_eq!(computes.load(SeqCst), 0);
    assert_eq!(lock.tries.load(SeqCst), 2);
    assert_eq!(
        lock.unlocks.load(SeqCst),
        1,
        "the lock taken was given back"
    );
}

#[tokio::test]
async fn a_cache_with_its_own_l1_shares_the_l2_guards() {
    let l2 = Flaky::new();
    l2.fail_reads.store(true, SeqCst);
    let parent = cache_with(&l2, |b| {
        b.breaker(
            BreakerConfig::default()
                .failure_threshold(1)
                .recovery_timeout(Duration::from_secs(60)),
        )
    });
    let l2_only = parent.with_l1(None, Duration::from_secs(5)).unwrap();
    assert!(l2_only.l1().is_none());
    assert_eq!(l2_only.get::<u8>("k").await, None);
    // The failure through the derived cache opened the parent's breaker.
    assert_eq!(parent.stats().breaker, BreakerState::Open);
    assert_eq!(parent.get::<u8>("k").await, None);
    assert_eq!(parent.stats().l2.skipped, 1);
    assert_eq!(l2.calls.load(SeqCst), 1);
    // No tier at all is refused.
    let l1_only = TieredCache::builder().build().unwrap();
    let err = l1_only.with_l1(None, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
