//! The blocking API with a Redis L2, called from inside every kind of Tokio
//! runtime after an async call on that same runtime has opened the pool's
//! connections: a current-thread runtime (built by hand, and
//! `#[tokio::test]`'s), a `LocalSet` on either flavor, a multi-thread
//! runtime's worker and its `block_on` thread, and a multi-thread handle
//! entered inside a current-thread runtime.
//!
//! Each case checks that an existing key reads as present, that a cached
//! value is not recomputed, that `set_blocking` succeeds, and that a sync
//! `#[cached]` function is served from Redis. The cases where Tokio refuses
//! `block_in_place` also run in a child process (this test binary, invoked
//! again) whose stderr must show no panic message.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "a failed setup step must fail the test loudly"
)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::{cached, CachedFn, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::RedisServer;
use tokio::runtime::{Builder, Runtime};
use tokio::task::LocalSet;

const TTL: Option<Duration> = Some(Duration::from_secs(60));
/// Long enough for a loaded CI machine; a deadlocked call takes all of it.
const L2_TIMEOUT: Duration = Duration::from_secs(2);
/// Set in the child process: the name of the scenario it runs.
const CHILD: &str = "CACHEKIT_BLOCKING_RUNTIMES_CHILD";

async fn cache_for(server: &RedisServer) -> TieredCache {
    let config = RedisConfig::builder().url(server.url()).build().unwrap();
    let redis = RedisBackend::new(config).await.unwrap();
    TieredCache::builder()
        .l2(redis)
        .l2_timeout(L2_TIMEOUT)
        .build()
        .unwrap()
}

/// Opens the pool's connections with async calls on the current runtime,
/// then uses the blocking API on the same thread.
async fn scenario(server: &RedisServer, tag: &str, f: &SyncFn) {
    let cache = cache_for(server).await;
    let present = format!("{tag}:present");
    let computed = format!("{tag}:computed");
    let written = format!("{tag}:written");
    cache.set(&present, &7u64, TTL).await.unwrap();
    cache.set(&computed, &8u64, TTL).await.unwrap();
    // Only Redis has them now.
    cache.invalidate_local(&present);
    cache.invalidate_local(&computed);

    assert_eq!(
        cache.get_blocking::<u64>(&present),
        Some(7),
        "{tag}: an existing key reads as missing; {}",
        server.log()
    );
    let runs = AtomicU32::new(0);
    let value = cache.get_or_compute_blocking(&computed, TTL, || {
        runs.fetch_add(1, SeqCst);
        0u64
    });
    assert_eq!((value, runs.load(SeqCst)), (8, 0), "{tag}: recomputed");
    cache.set_blocking(&written, &9u64, TTL).unwrap();
    assert_eq!(
        server.command(&["EXISTS", &written]),
        "(integer) 1",
        "{tag}: set_blocking did not reach Redis"
    );
    assert_eq!(cache.stats().l2.errors, 0, "{tag}: {:?}", cache.stats());
    cached_scenario(server, tag, f).await;
}

/// A sync `#[cached]` function of its own for each test (its cache, and
/// the runtime its connections were opened on, live as long as the process).
struct SyncFn {
    url: &'static OnceLock<String>,
    runs: &'static AtomicU32,
    call: fn(u64) -> u64,
    handle: fn() -> &'static CachedFn,
}

fn backend_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder()
        .l2(redis)
        .l2_timeout(L2_TIMEOUT)
        .build()
}

macro_rules! sync_fn {
    ($name:ident) => {
        mod $name {
            use super::*;
            static URL: OnceLock<String> = OnceLock::new();
            static RUNS: AtomicU32 = AtomicU32::new(0);
            #[cached(namespace = "blocking", ttl = 60, backend = backend_at(&URL))]
            fn doubled(x: u64) -> u64 {
                RUNS.fetch_add(1, SeqCst);
                x * 2
            }
            pub(super) const FN: SyncFn = SyncFn {
                url: &URL,
                runs: &RUNS,
                call: doubled,
                handle: doubled_cache,
            };
        }
    };
}

sync_fn!(f_current);
sync_fn!(f_tokio_test);
sync_fn!(f_ct_task);
sync_fn!(f_mt1);
sync_fn!(f_mt2);
sync_fn!(f_mt_block_on);
sync_fn!(f_child);

/// The first call computes and stores, the second (with L1 emptied) is
/// served from Redis; the function's connections were opened on this
/// runtime first.
async fn cached_scenario(server: &RedisServer, tag: &str, f: &SyncFn) {
    f.url.set(server.url()).unwrap();
    let handle = (f.handle)();
    let cache = handle.cache().unwrap();
    cache.l2().unwrap().exists("blocking:warm").await.unwrap();
    let key = handle.keys().unwrap().key(&(21u64,)).unwrap();

    assert_eq!((f.call)(21), 42);
    cache.invalidate_local(&key);
    assert_eq!((f.call)(21), 42);
    assert_eq!(
        f.runs.load(SeqCst),
        1,
        "{tag}: the cached value was recomputed; {}",
        server.log()
    );
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn in_a_current_thread_runtime() {
    let server = RedisServer::start();
    current_thread().block_on(scenario(&server, "current", &f_current::FN));
}

#[tokio::test]
async fn in_tokio_test_default_runtime() {
    let server = RedisServer::start();
    scenario(&server, "tokio-test", &f_tokio_test::FN).await;
}

#[test]
fn in_a_task_of_a_current_thread_runtime() {
    let server = RedisServer::start();
    let rt = current_thread();
    let server = Arc::new(server);
    let s = server.clone();
    rt.block_on(async move {
        tokio::spawn(async move { scenario(&s, "ct-task", &f_ct_task::FN).await }).await
    })
    .unwrap();
}

#[test]
fn on_a_multi_thread_worker() {
    for (workers, f) in [(1, &f_mt1::FN), (2, &f_mt2::FN)] {
        let server = Arc::new(RedisServer::start());
        let s = server.clone();
        let rt = multi_thread(workers);
        rt.block_on(async move {
            tokio::spawn(async move { scenario(&s, &format!("mt{workers}"), f).await }).await
        })
        .unwrap();
    }
}

#[test]
fn on_a_multi_thread_block_on_thread() {
    let server = RedisServer::start();
    multi_thread(2).block_on(scenario(&server, "mt-block-on", &f_mt_block_on::FN));
}

/// The cases where Tokio refuses `block_in_place`, each run in a child
/// process: they must work, and print nothing of a panic.
const REFUSED: [&str; 4] = [
    "local-set-multi-thread",
    "local-set-spawn-local",
    "local-set-current-thread",
    "multi-thread-handle-in-current-thread",
];

fn run_refused(name: &'static str) {
    let server = RedisServer::start();
    match name {
        "local-set-multi-thread" => {
            let rt = multi_thread(2);
            rt.block_on(LocalSet::new().run_until(scenario(&server, name, &f_child::FN)));
        }
        "local-set-spawn-local" => {
            let rt = multi_thread(1);
            let server = Arc::new(server);
            let local = LocalSet::new();
            rt.block_on(local.run_until(async move {
                tokio::task::spawn_local(async move { scenario(&server, name, &f_child::FN).await })
                    .await
            }))
            .unwrap();
        }
        "local-set-current-thread" => {
            let rt = current_thread();
            rt.block_on(LocalSet::new().run_until(scenario(&server, name, &f_child::FN)));
        }
        "multi-thread-handle-in-current-thread" => {
            let multi = multi_thread(1);
            current_thread().block_on(async {
                let _entered = multi.handle().enter();
                scenario(&server, name, &f_child::FN).await;
            });
        }
        _ => {}
    }
}

#[test]
fn where_tokio_refuses_block_in_place_nothing_panics() {
    if let Ok(name) = std::env::var(CHILD) {
        if let Some(name) = REFUSED.into_iter().find(|known| *known == name) {
            run_refused(name);
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for name in REFUSED {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "where_tokio_refuses_block_in_place_nothing_panics",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: the scenario failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "{name}: Tokio's panic was printed\n--- stderr\n{stderr}"
        );
    }
}
