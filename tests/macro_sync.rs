//! `#[cached]` on plain `fn`s: called from a plain thread, from inside a
//! multi-threaded and a current-thread Tokio runtime, with an L2 that needs
//! a runtime, and through the blocking companions.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use cachekit::{cached, Backend, MemoryBackend, TieredCache};

fn l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

fn l1_l2() -> cachekit::Result<TieredCache> {
    TieredCache::builder()
        .l2(MemoryBackend::builder().build()?)
        .build()
}

static THREAD_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2(), ttl = 60)]
fn from_thread(x: u64) -> u64 {
    THREAD_RUNS.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn from_a_plain_thread_with_an_l2() {
    let answers = std::thread::spawn(|| (from_thread(1), from_thread(1)))
        .join()
        .unwrap();
    assert_eq!(answers, (2, 2));
    assert_eq!(THREAD_RUNS.load(SeqCst), 1);
    // The L2 write went through cachekit's own runtime.
    let handle = from_thread_cache();
    let key = handle.keys().unwrap().key(&(1u64,)).unwrap();
    let l2 = handle.cache().unwrap().l2().unwrap().clone();
    let stored = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move { l2.exists(&key).await })
        .unwrap();
    assert!(stored);
}

static MULTI_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2())]
fn in_multi_thread(x: u64) -> u64 {
    MULTI_RUNS.fetch_add(1, SeqCst);
    x * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_multi_thread_runtime() {
    assert_eq!(in_multi_thread(2), 6);
    assert_eq!(in_multi_thread(2), 6);
    assert_eq!(MULTI_RUNS.load(SeqCst), 1);
    assert_eq!(in_multi_thread_cache().cache().unwrap().stats().l2.sets, 1);
}

static CURRENT_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2())]
fn in_current_thread(x: u64) -> u64 {
    CURRENT_RUNS.fetch_add(1, SeqCst);
    x * 4
}

#[tokio::test(flavor = "current_thread")]
async fn inside_a_current_thread_runtime() {
    assert_eq!(in_current_thread(2), 8);
    assert_eq!(in_current_thread(2), 8);
    assert_eq!(CURRENT_RUNS.load(SeqCst), 1);
    // The function can also be called from a task of that runtime.
    let spawned = tokio::spawn(async { in_current_thread(2) }).await.unwrap();
    assert_eq!(spawned, 8);
    assert_eq!(in_current_thread_cache().stats().hits, 2);
}

static RESULT_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
fn parse(text: &str) -> Result<u64, String> {
    RESULT_RUNS.fetch_add(1, SeqCst);
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[cached(backend = l1(), cache_none)]
fn lookup(name: &str) -> Option<u64> {
    (name == "one").then_some(1)
}

#[test]
fn sync_results_and_options() {
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(RESULT_RUNS.load(SeqCst), 3);

    assert_eq!(lookup("two"), None);
    assert_eq!(lookup("two"), None);
    assert_eq!(lookup_cache().stats().hits, 1);
}

static COMPANION_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2(), ttl = Duration::from_secs(30))]
fn stamped(x: u64) -> (u64, u32) {
    (x, COMPANION_RUNS.fetch_add(1, SeqCst))
}

#[test]
fn blocking_companions() {
    assert_eq!(stamped(1), (1, 0));
    assert_eq!(stamped(2), (2, 1));
    assert_eq!(stamped_uncached(1), (1, 2));
    assert_eq!(stamped_refresh(1), (1, 3));
    assert_eq!(stamped(1), (1, 3));
    assert!(stamped_invalidate(1).unwrap());
    assert!(!stamped_invalidate(1).unwrap());
    assert_eq!(stamped(1), (1, 4));
    assert_eq!(stamped_clear().unwrap(), 2);
    assert_eq!(stamped(2), (2, 5));
}

static FIB_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
fn fib(n: u64) -> u64 {
    FIB_RUNS.fetch_add(1, SeqCst);
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn recursive_calls_reuse_the_cache() {
    assert_eq!(fib(80), 23_416_728_348_467_685);
    // Each n from 0 to 80 ran once; everything else was a hit.
    assert_eq!(FIB_RUNS.load(SeqCst), 81);
    assert_eq!(fib_cache().stats().hits, 78);
}
