//! Invalidations racing with what a process holds or is computing:
//! `#[cached]`'s remembered entries (the per-thread shortcut past moka)
//! after another client changed the key, and computations that began
//! before an invalidation, in this process and in another one (this
//! binary re-run as a child).
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/children.rs"]
#[allow(dead_code)]
mod children;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cachekit::{cached, ChannelState, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::{RedisServer, PATIENCE};
use children::{field, hear, say, Child};
use redis::AsyncCommands;

const CHILD_ENV: &str = "CACHEKIT_INVALIDATION_RACES_CHILD";
const CHILD_ENTRY: &str = "races_child";
const TTL: Option<Duration> = Some(Duration::from_secs(60));
/// How long the slow computations take.
const BODY_TIME: Duration = Duration::from_millis(300);
/// When, after a computation read its source, the source changes and the
/// key is invalidated.
const CHANGE_AT: Duration = Duration::from_millis(100);

fn redis_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
}

fn l1_only() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

/// Another client of the same Redis: its own backend and cache.
fn other_client(url: &str) -> TieredCache {
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build().unwrap());
    TieredCache::builder().l2(redis.unwrap()).build().unwrap()
}

/// Blocks until `cache` receives invalidations, unless invalidation is
/// off (`CACHEKIT_L1_INVALIDATION=off` makes these tests show what they
/// catch).
fn wait_live(cache: &TieredCache) {
    let started = Instant::now();
    while cache.invalidation_stats().state == ChannelState::Down {
        assert!(started.elapsed() < PATIENCE, "the channel never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Remembered entries.

static REMEMBERED_URL: OnceLock<String> = OnceLock::new();
static REMEMBERED_SOURCE: AtomicU64 = AtomicU64::new(1);

#[cached(namespace = "races", name = "remembered", ttl = 60, backend = redis_at(&REMEMBERED_URL))]
fn remembered(id: u64) -> u64 {
    let _ = id;
    REMEMBERED_SOURCE.load(SeqCst)
}

/// Calls `remembered(7)` on this thread until it returns `want`.
fn until_remembered(want: u64) {
    let started = Instant::now();
    while remembered(7) != want {
        assert!(
            started.elapsed() < PATIENCE,
            "remembered(7) never returned {want}: L1 kept the old value"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A thread calls the function in a loop (its remembered entry answers);
/// another client writes the key, deletes it, and writes a raw value over
/// it. Once this process has seen each change, no call returns the older
/// value, on either thread. Fails with invalidation off (L1 keeps the old
/// value for its lifetime), and with remembered entries that outlive their
/// removal from L1.
#[test]
fn remembered_entries_follow_another_client_s_changes() {
    let server = RedisServer::start();
    REMEMBERED_URL.set(server.url()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let other = runtime.block_on(async { other_client(&server.url()) });
    assert_eq!(remembered(7), 1);
    let handle = remembered_cache();
    let cache = handle.cache().unwrap();
    wait_live(cache);
    let key = handle.keys().unwrap().key(&(7_u64,)).unwrap();

    // The lowest value a call starting now may return.
    let floor = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let hammer = {
        let (floor, stop, calls) = (floor.clone(), stop.clone(), calls.clone());
        std::thread::spawn(move || {
            let mut highest = 0;
            while !stop.load(SeqCst) {
                let least = floor.load(SeqCst).max(highest);
                let value = remembered(7);
                assert!(value >= least, "returned {value} after {least} was seen");
                highest = value;
                calls.fetch_add(1, SeqCst);
            }
        })
    };
    let calls_since = |from: u64| {
        let started = Instant::now();
        while calls.load(SeqCst) < from + 10_000 {
            assert!(started.elapsed() < PATIENCE, "the calling thread stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    calls_since(0);
    let changes: [(&str, u64); 3] = [("set", 2), ("delete", 3), ("raw SET", 4)];
    for (change, value) in changes {
        REMEMBERED_SOURCE.store(value, SeqCst);
        match change {
            "set" => runtime.block_on(other.set(&key, &value, TTL)).unwrap(),
            "delete" => assert!(runtime.block_on(other.delete(&key)).unwrap()),
            _ => assert_eq!(server.command(&["SET", &key, "raw"]), "OK"),
        }
        until_remembered(value);
        floor.store(value, SeqCst);
        // The calling thread goes on with its remembered entry.
        calls_since(calls.load(SeqCst));
        println!("{change}: seen; {:?}", cache.invalidation_stats());
    }
    stop.store(true, SeqCst);
    hammer.join().expect("the calling thread saw an old value");
    let stats = handle.stats();
    assert!(stats.hits > 30_000, "{stats:?}");
}

// ---------------------------------------------------------------------------
// A computation in this process, invalidated while it runs.

static SLOW_URL: OnceLock<String> = OnceLock::new();
static SLOW_SOURCE: AtomicU64 = AtomicU64::new(1);
static SLOW_READ: AtomicBool = AtomicBool::new(false);

#[cached(namespace = "races", name = "slow", ttl = 60, backend = redis_at(&SLOW_URL))]
async fn slow(id: u64) -> u64 {
    let _ = id;
    let value = SLOW_SOURCE.load(SeqCst);
    SLOW_READ.store(true, SeqCst);
    tokio::time::sleep(BODY_TIME).await;
    value
}

static SLOW_L1_SOURCE: AtomicU64 = AtomicU64::new(1);
static SLOW_L1_READ: AtomicBool = AtomicBool::new(false);

#[cached(namespace = "races", name = "slow_l1", ttl = 60, backend = l1_only())]
async fn slow_l1(id: u64) -> u64 {
    let _ = id;
    let value = SLOW_L1_SOURCE.load(SeqCst);
    SLOW_L1_READ.store(true, SeqCst);
    tokio::time::sleep(BODY_TIME).await;
    value
}

/// Waits for `read`, then `CHANGE_AT`.
async fn change_point(read: &AtomicBool) {
    let started = Instant::now();
    while !read.load(SeqCst) {
        assert!(started.elapsed() < PATIENCE, "the computation never began");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(CHANGE_AT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidate_during_a_computation_wins_with_redis() {
    let server = RedisServer::start();
    SLOW_URL.set(server.url()).unwrap();
    let call = tokio::spawn(slow(1));
    change_point(&SLOW_READ).await;
    SLOW_SOURCE.store(2, SeqCst);
    slow_invalidate(1).await.unwrap();
    let first = call.await.unwrap();
    assert!(first == 1 || first == 2, "{first}");
    for i in 0..5 {
        assert_eq!(slow(1).await, 2, "call {i} after the invalidation");
    }
    let stats = slow_cache().cache().unwrap().stats();
    assert_eq!(stats.superseded, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidate_during_a_computation_wins_in_l1() {
    let call = tokio::spawn(slow_l1(1));
    change_point(&SLOW_L1_READ).await;
    SLOW_L1_SOURCE.store(2, SeqCst);
    slow_l1_invalidate(1).await.unwrap();
    let first = call.await.unwrap();
    assert!(first == 1 || first == 2, "{first}");
    for i in 0..5 {
        assert_eq!(slow_l1(1).await, 2, "call {i} after the invalidation");
    }
    assert_eq!(slow_l1_cache().cache().unwrap().stats().superseded, 1);
}

// ---------------------------------------------------------------------------
// A computation in another process, invalidated by this one.

static REMOTE_URL: OnceLock<String> = OnceLock::new();
const REMOTE_SOURCE: &str = "races:remote:source";

#[cached(namespace = "races", name = "remote", ttl = 60, backend = redis_at(&REMOTE_URL))]
async fn remote(id: u64) -> u64 {
    let _ = id;
    let client = redis::Client::open(REMOTE_URL.get().unwrap().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let value: u64 = conn.get(REMOTE_SOURCE).await.unwrap();
    say("COMPUTING");
    tokio::time::sleep(BODY_TIME).await;
    value
}

/// Not a test on its own: the body of the child processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the invalidation race tests"]
async fn races_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        eprintln!("races_child runs only as a child of the invalidation race tests");
        return;
    };
    REMOTE_URL.set(url).unwrap();
    let cache = remote_cache().cache().unwrap();
    let live = tokio::task::spawn_blocking(|| wait_live(remote_cache().cache().unwrap()));
    live.await.unwrap();
    say("READY");
    let first = remote(1).await;
    say(&format!("FIRST value={first}"));
    let again = tokio::task::spawn_blocking(hear).await.unwrap();
    assert_eq!(again, "AGAIN", "the parent went away");
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(remote(1).await.to_string());
    }
    say(&format!(
        "LATER values={} superseded={}",
        later.join(","),
        cache.stats().superseded
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidate_from_another_process_wins_over_a_computation() {
    let server = RedisServer::start();
    REMOTE_URL.set(server.url()).unwrap();
    assert_eq!(server.command(&["SET", REMOTE_SOURCE, "1"]), "OK");
    let child = Child::spawn(CHILD_ENTRY, CHILD_ENV, &server.url(), &[]);
    let child = tokio::task::spawn_blocking(move || {
        child.expect("READY");
        child.expect("COMPUTING");
        child
    })
    .await
    .unwrap();
    tokio::time::sleep(CHANGE_AT).await;
    assert_eq!(server.command(&["SET", REMOTE_SOURCE, "2"]), "OK");
    // Through this process's own cache: nothing of the key is here.
    assert!(!remote_invalidate(1).await.unwrap());
    let (mut child, first) = tokio::task::spawn_blocking(move || {
        let first = child.expect("FIRST");
        (child, first)
    })
    .await
    .unwrap();
    let first = field(&first, "value");
    assert!(first == "1" || first == "2", "{first}");
    child.send("AGAIN");
    let later = tokio::task::spawn_blocking(move || {
        let later = child.expect("LATER");
        child.finish();
        later
    })
    .await
    .unwrap();
    assert_eq!(field(&later, "values"), "2,2,2,2,2", "{later}");
    assert_eq!(field(&later, "superseded"), "1", "{later}");
    for i in 0..5 {
        assert_eq!(remote(1).await, 2, "call {i} in this process");
    }
}

// ---------------------------------------------------------------------------
// A computation storing while a prefix clear is still removing keys.

const CLEARED: &str = "clearing:";
const TARGET: &str = "clearing:target";

/// Puts `n` keys under [`CLEARED`], so that clearing them takes a while.
async fn fill(url: &str, n: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<(String, u8)> = (0..n).map(|i| (format!("{CLEARED}fill:{i}"), 0)).collect();
    for chunk in keys.chunks(1000) {
        let () = conn.mset(chunk).await.unwrap();
    }
}

/// A computation began before a prefix clear (in a process that does not
/// hear invalidations, so only the deletion mark can stop it) and stores
/// after the clear removed its key but before the clear is done: the
/// clear wins, and nothing of the old value is left in Redis once
/// `delete_prefix` returned.
///
/// Fails (most runs) when the clear counts itself after removing the
/// keys: the store then lands behind the SCAN, with the counter unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_during_a_prefix_clear_does_not_outlive_it() {
    let server = Arc::new(RedisServer::start());
    let url = server.url();
    let computing = {
        let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(&url).build().unwrap());
        let builder = TieredCache::builder().l2(redis.unwrap());
        builder.l1_invalidation(false).build().unwrap()
    };
    // Clearing 50,000 keys takes longer than the default L2 deadline.
    let writer = {
        let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(&url).build().unwrap());
        let builder = TieredCache::builder().l2(redis.unwrap());
        builder.l2_timeout(PATIENCE).build().unwrap()
    };
    fill(&url, 50_000).await;
    let (began, began_rx) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let computation = tokio::spawn(async move {
        let value: u64 = computing
            .get_or_compute(TARGET, TTL, || async move {
                began.send(()).unwrap();
                released.await.unwrap();
                1
            })
            .await;
        (value, computing.stats())
    });
    began_rx.await.unwrap();
    // The value the computation will store is already in Redis.
    writer.set(TARGET, &1_u64, TTL).await.unwrap();
    let clear = tokio::spawn(async move { writer.delete_prefix(CLEARED).await });
    let watched = server.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while watched.command(&["EXISTS", TARGET]) != "(integer) 0" {
            assert!(
                started.elapsed() < PATIENCE,
                "the clear never removed the key"
            );
        }
    })
    .await
    .unwrap();
    release.send(()).unwrap();
    let (value, stats) = computation.await.unwrap();
    assert_eq!(value, 1, "the computation's own caller gets its value");
    let removed = clear.await.unwrap().unwrap();
    println!("cleared {removed} keys; computing cache: {stats:?}");
    assert_eq!(
        server.command(&["EXISTS", TARGET]),
        "(integer) 0",
        "the value computed before the clear outlived it"
    );
    assert_eq!(stats.superseded, 1, "{stats:?}");
}
