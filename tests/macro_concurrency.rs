//! Concurrent callers of one cold key run the body once (async and from
//! plain threads), and a failing cache never fails a call.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cachekit::{cached, Backend, Error, ErrorKind, Health, TieredCache, Ttl};
use tokio::sync::Semaphore;

fn l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

const CALLERS: u32 = 20;

static GATE: Semaphore = Semaphore::const_new(0);
static ASYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
async fn gated(id: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    // Held until every caller has missed L1 and joined the flight.
    if let Ok(permit) = GATE.acquire().await {
        permit.forget();
    }
    id * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_calls_run_the_body_once() {
    let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(gated(7))).collect();
    // Every caller has looked in L1 (and missed) before the body may finish.
    let cache = gated_cache().cache().unwrap();
    while cache.stats().l1.misses < u64::from(CALLERS) {
        tokio::task::yield_now().await;
    }
    GATE.add_permits(CALLERS as usize);
    for task in tasks {
        assert_eq!(task.await.unwrap(), 70);
    }
    assert_eq!(ASYNC_RUNS.load(SeqCst), 1);
    let stats = gated_cache().stats();
    assert_eq!((stats.computes, stats.hits), (1, u64::from(CALLERS) - 1));
}

static RELEASED: Mutex<bool> = Mutex::new(false);
static RELEASE: Condvar = Condvar::new();
static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
fn gated_sync(id: u64) -> u64 {
    SYNC_RUNS.fetch_add(1, SeqCst);
    let mut released = RELEASED.lock().expect("gate lock");
    while !*released {
        released = RELEASE.wait(released).expect("gate lock");
    }
    id * 10
}

#[test]
fn concurrent_calls_from_threads_run_the_body_once() {
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| std::thread::spawn(|| gated_sync(3)))
        .collect();
    let cache = gated_sync_cache().cache().unwrap();
    while cache.stats().l1.misses < u64::from(CALLERS) {
        std::thread::yield_now();
    }
    *RELEASED.lock().unwrap() = true;
    RELEASE.notify_all();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 30);
    }
    assert_eq!(SYNC_RUNS.load(SeqCst), 1);
    assert_eq!(gated_sync_cache().stats().computes, 1);
}

/// An L2 whose every operation fails, like a Redis that is down.
#[derive(Debug)]
struct Down;

fn down() -> Error {
    Error::new(ErrorKind::Connection, "connection refused (test backend)")
}

#[async_trait]
impl Backend for Down {
    fn name(&self) -> &str {
        "down"
    }
    async fn get(&self, _: &str) -> cachekit::Result<Option<Bytes>> {
        Err(down())
    }
    async fn set(&self, _: &str, _: Bytes, _: Option<std::time::Duration>) -> cachekit::Result<()> {
        Err(down())
    }
    async fn delete(&self, _: &str) -> cachekit::Result<bool> {
        Err(down())
    }
    async fn ttl(&self, _: &str) -> cachekit::Result<Ttl> {
        Err(down())
    }
    async fn expire(&self, _: &str, _: Option<std::time::Duration>) -> cachekit::Result<bool> {
        Err(down())
    }
    async fn set_if_absent(
        &self,
        _: &str,
        _: Bytes,
        _: Option<std::time::Duration>,
    ) -> cachekit::Result<bool> {
        Err(down())
    }
    async fn delete_prefix(&self, _: &str) -> cachekit::Result<u64> {
        Err(down())
    }
    async fn health(&self) -> Health {
        Health::new("down", false, std::time::Duration::ZERO)
    }
}

static DOWN_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = Down)]
async fn resilient(id: u64) -> u64 {
    DOWN_RUNS.fetch_add(1, SeqCst);
    id
}

#[cached(backend = Down, l1 = false)]
fn resilient_sync(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[tokio::test]
async fn a_failing_backend_never_fails_the_call() {
    assert_eq!(resilient(1).await, 1);
    // The L2 write failed, but the value is served from L1.
    assert_eq!(resilient(1).await, 1);
    assert_eq!(DOWN_RUNS.load(SeqCst), 1);
    let cache = resilient_cache().cache().unwrap();
    assert!(cache.stats().l2.errors >= 2, "{:?}", cache.stats());
    // Removing entries reports the failure: the entry may still be in L2.
    assert_eq!(
        resilient_invalidate(1).await.unwrap_err().kind(),
        ErrorKind::Connection
    );

    assert_eq!(resilient_sync(2), Ok(2));
    assert_eq!(resilient_sync(2), Ok(2));
    assert_eq!(resilient_sync_cache().stats().computes, 2);
}

fn broken() -> Result<TieredCache, String> {
    Err("no such cluster".to_owned())
}

#[cached(backend = broken())]
fn fallback(id: u64) -> u64 {
    id
}

#[test]
fn a_backend_expression_that_fails_leaves_an_l1() {
    assert_eq!(fallback(1), 1);
    assert_eq!(fallback(1), 1);
    let cache = fallback_cache().cache().unwrap();
    assert!(cache.l1().is_some() && cache.l2().is_none());
    assert_eq!(fallback_cache().stats().hits, 1);
}
