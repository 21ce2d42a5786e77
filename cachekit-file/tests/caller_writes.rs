//! Writes on the calling thread (`caller_writes`), on real files and real
//! runtimes: where they run on the caller, where they fall back to the
//! blocking pool without panicking, and that results are the same on both
//! paths. Which path served a write is read from the counts that
//! `health()` reports.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Backend, Ttl};
use cachekit_file::FileBackend;
use support::{entry_files, open, temp_files};
use tokio::runtime::Runtime;

/// Writes served (on the calling thread, on the blocking pool) so far.
async fn writes(cache: &FileBackend) -> (u64, u64) {
    let health = cache.health().await;
    let count = |name: &str| health.details[name].parse::<u64>().unwrap();
    (count("writes_caller"), count("writes_blocking"))
}

fn caller_cache(dir: &Path) -> FileBackend {
    open(dir, |b| b.caller_writes(true))
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One call of each write method, checking each result, under keys no
/// earlier call used; returns how many write calls it made.
async fn every_write(cache: &FileBackend) -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let key = |name: &str| format!("w{n}:{name}");
    let (set, m1, m2, nx) = (key("set"), key("m1"), key("m2"), key("nx"));
    let long = Some(Duration::from_secs(60));
    cache.set(&set, "a".into(), long).await.unwrap();
    cache
        .set_many(
            &[(m1.as_str(), "1".into()), (m2.as_str(), "2".into())],
            long,
        )
        .await
        .unwrap();
    assert!(cache.set_if_absent(&nx, "n".into(), long).await.unwrap());
    assert!(!cache.set_if_absent(&nx, "o".into(), long).await.unwrap());
    assert!(cache.expire(&set, None).await.unwrap());
    assert!(cache.delete(&m1).await.unwrap());

    assert_eq!(cache.get(&set).await.unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(cache.ttl(&set).await.unwrap(), Ttl::Persistent);
    assert_eq!(cache.get(&m1).await.unwrap(), None);
    assert_eq!(cache.get(&m2).await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.get(&nx).await.unwrap().as_deref(), Some(&b"n"[..]));
    6
}

/// Runs [`every_write`] and returns how many writes it added on each path.
async fn counted_writes(cache: &FileBackend) -> (u64, (u64, u64)) {
    let (caller, blocking) = writes(cache).await;
    let made = every_write(cache).await;
    let (caller_after, blocking_after) = writes(cache).await;
    (made, (caller_after - caller, blocking_after - blocking))
}

/// Replaces one key's value twice, reading each right after its `set`,
/// then waits for the replaced files to go: the directory must end up
/// holding exactly the entry.
async fn replace_and_check(cache: &FileBackend, dir: &Path) {
    for round in 0..3u8 {
        let value = Bytes::from(vec![b'r' + round; 4096]);
        cache.set("replaced", value.clone(), None).await.unwrap();
        assert_eq!(cache.get("replaced").await.unwrap(), Some(value));
    }
    cachekit_testkit::eventually("the replaced files to be removed", || {
        temp_files(dir).is_empty()
    })
    .await;
    let entries = entry_files(dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].1, 14 + 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_worker_thread() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let suite = cache.clone();
    tokio::spawn(async move { cachekit_testkit::run_conformance(&suite).await })
        .await
        .unwrap();
    let (caller, blocking) = writes(&cache).await;
    assert!(caller > 0, "the suite's writes ran on the calling thread");
    assert_eq!(blocking, 0, "no write took the blocking pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_conformance_in_block_on() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.caller_writes(true).durable(true));
    // The test body runs in the runtime's `block_on`, not on a worker.
    cachekit_testkit::run_conformance(&cache).await;
    let (caller, blocking) = writes(&cache).await;
    assert!(caller > 0);
    assert_eq!(blocking, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_worker_thread_writes_run_on_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    assert_eq!(cache.health().await.details["caller_writes"], "true");
    let (made, paths) = tokio::spawn({
        let cache = cache.clone();
        async move { counted_writes(&cache).await }
    })
    .await
    .unwrap();
    assert_eq!(paths, (made, 0));
}

#[test]
fn in_block_on_of_a_multi_thread_runtime_writes_run_on_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let (made, paths) = multi_thread().block_on(counted_writes(&cache));
    assert_eq!(paths, (made, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_blocking_thread_in_handle_block_on_writes_run_on_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let handle = tokio::runtime::Handle::current();
    let (made, paths) = tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || handle.block_on(counted_writes(&cache))
    })
    .await
    .unwrap();
    assert_eq!(paths, (made, 0));
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_writes_take_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let (made, paths) = counted_writes(&cache).await;
    assert_eq!(paths, (0, made), "block_in_place would panic here");
}

#[test]
fn in_a_local_set_writes_run_on_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let rt = multi_thread();
    // Tokio refuses `block_in_place` in a LocalSet polled by `block_on`,
    // although the runtime is multi-thread; the write runs on this thread
    // without it, and Tokio is never asked (asking would panic).
    let local = tokio::task::LocalSet::new();
    let (made, paths) = rt.block_on(local.run_until(counted_writes(&cache)));
    assert_eq!(paths, (made, 0));
    let (made, paths) = rt.block_on(local.run_until(async {
        tokio::task::spawn_local({
            let cache = cache.clone();
            async move { counted_writes(&cache).await }
        })
        .await
        .unwrap()
    }));
    assert_eq!(paths, (made, 0));
    let (made, paths) = rt.block_on(counted_writes(&cache));
    assert_eq!(paths, (made, 0));
}

#[test]
fn with_a_multi_thread_handle_entered_in_a_current_thread_runtime_writes_run_on_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let multi = multi_thread();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (made, paths) = current.block_on(async {
        // The flavor now says multi-thread, but this thread runs the
        // current-thread runtime, where Tokio refuses `block_in_place`:
        // the write runs here without it.
        let _entered = multi.handle().enter();
        counted_writes(&cache).await
    });
    assert_eq!(paths, (made, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_every_write_takes_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    assert!(!cache.config().caller_writes());
    assert_eq!(cache.health().await.details["caller_writes"], "false");
    let (made, paths) = tokio::spawn({
        let cache = cache.clone();
        async move { counted_writes(&cache).await }
    })
    .await
    .unwrap();
    assert_eq!(paths, (0, made));
    let (made, paths) = counted_writes(&cache).await;
    assert_eq!(paths, (0, made));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_value_is_read_at_once_and_its_file_removed_on_the_caller_path() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let (caller, _) = writes(&cache).await;
    tokio::spawn({
        let (cache, dir) = (cache.clone(), dir.path().to_owned());
        async move { replace_and_check(&cache, &dir).await }
    })
    .await
    .unwrap();
    assert_eq!(writes(&cache).await.0 - caller, 3);
    // And in `block_on`.
    replace_and_check(&cache, dir.path()).await;
    assert_eq!(writes(&cache).await.0 - caller, 6);
}

#[tokio::test(flavor = "current_thread")]
async fn a_replaced_value_is_read_at_once_and_its_file_removed_on_the_pool_path() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    replace_and_check(&cache, dir.path()).await;
    assert_eq!(writes(&cache).await, (0, 3));
}

/// More replaced files than the removal queue holds (1024): the writer
/// removes the rest itself; none is left behind either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_replacing_more_files_than_the_queue_holds_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let cache = caller_cache(dir.path());
    let keys: Vec<String> = (0..1500).map(|i| format!("many:{i}")).collect();
    tokio::spawn({
        let (cache, keys) = (cache.clone(), keys.clone());
        async move {
            for round in 0..2u8 {
                let batch: Vec<(&str, Bytes)> = keys
                    .iter()
                    .map(|k| (k.as_str(), Bytes::from(vec![round; 100])))
                    .collect();
                cache.set_many(&batch, None).await.unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(writes(&cache).await, (2, 0));
    let got = cache
        .get_many(&keys.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(got.iter().all(|v| v.as_deref() == Some(&[1u8; 100][..])));
    cachekit_testkit::eventually("the replaced files to be removed", || {
        temp_files(dir.path()).is_empty()
    })
    .await;
    assert_eq!(entry_files(dir.path()).len(), keys.len());
}

/// Writes `count` small entries `evict:0..` in order.
async fn fill(cache: &FileBackend, count: u32) {
    for i in 0..count {
        cache
            .set(&format!("evict:{i}"), "v".into(), None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_write_over_the_high_watermark_leaves_eviction_to_a_blocking_task() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.caller_writes(true).max_entries(100));
    // The 96th entry crosses the high watermark (95); eviction goes down
    // to the low one (85), least recently used first.
    tokio::spawn({
        let cache = cache.clone();
        async move { fill(&cache, 96).await }
    })
    .await
    .unwrap();
    cachekit_testkit::eventually("eviction down to the low watermark", || {
        cache.entry_count() <= 85 && entry_files(dir.path()).len() <= 85
    })
    .await;
    assert_eq!(writes(&cache).await, (96, 0));
    assert_eq!(cache.get("evict:0").await.unwrap(), None, "oldest evicted");
    assert!(
        cache.get("evict:95").await.unwrap().is_some(),
        "newest kept"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_pool_write_over_the_high_watermark_evicts_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.caller_writes(true).max_entries(100));
    fill(&cache, 96).await;
    assert!(cache.entry_count() <= 85, "{}", cache.entry_count());
    assert_eq!(writes(&cache).await, (0, 96));
}
