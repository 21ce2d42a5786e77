//! `#[cached]` against a real `redis-server` (one per test, on a free
//! loopback port): keys and TTLs as redis-cli sees them, sharing through
//! L2, the companions, and a server that dies.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;

use cachekit::{cached, TieredCache};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

/// The backend of a function whose test put the server's URL in `url`
/// before the first call (the expression is evaluated on that call).
fn redis_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
}

static USERS_URL: OnceLock<String> = OnceLock::new();
static USERS_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(namespace = "users", name = "get_user", ttl = 60, backend = redis_at(&USERS_URL))]
async fn get_user(id: u64) -> String {
    USERS_RUNS.fetch_add(1, SeqCst);
    format!("user {id}")
}

const KEY_42: &str =
    "users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875";

#[tokio::test]
async fn entries_land_in_redis_under_the_interop_key() {
    let server = RedisServer::start();
    USERS_URL.set(server.url()).unwrap();

    assert_eq!(get_user(42).await, "user 42");
    assert_eq!(
        server.command(&["EXISTS", KEY_42]),
        "(integer) 1",
        "{}",
        server.log()
    );
    let ttl = server.command(&["TTL", KEY_42]);
    let secs: u64 = ttl.trim_start_matches("(integer) ").parse().unwrap();
    assert!((50..=60).contains(&secs), "TTL {ttl}");

    // Another process has no L1: drop ours and the value comes from Redis.
    let cache = get_user_cache().cache().unwrap();
    cache.invalidate_local(KEY_42);
    assert_eq!(get_user(42).await, "user 42");
    assert_eq!(cache.stats().l2.hits, 1);
    assert_eq!(USERS_RUNS.load(SeqCst), 1);

    // The companions reach Redis too.
    get_user(43).await;
    assert_eq!(server.data_keys(0), 2);
    assert!(get_user_invalidate(42).await.unwrap());
    assert_eq!(server.command(&["EXISTS", KEY_42]), "(integer) 0");
    assert_eq!(get_user_clear().await.unwrap(), 1);
    assert_eq!(server.data_keys(0), 0);
}

static DOWN_URL: OnceLock<String> = OnceLock::new();
static DOWN_RUNS: AtomicU32 = AtomicU32::new(0);

/// Without L1 invalidation, whose channel would break with the server and
/// flush L1 (pinned by `invalidation_faults.rs`).
fn redis_without_invalidation_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder()
        .l2(redis)
        .l1_invalidation(false)
        .build()
}

#[cached(ttl = 60, backend = redis_without_invalidation_at(&DOWN_URL))]
async fn through_dead_redis(id: u64) -> Result<u64, String> {
    DOWN_RUNS.fetch_add(1, SeqCst);
    Ok(id)
}

#[tokio::test]
async fn a_dead_server_does_not_fail_calls() {
    let server = RedisServer::start();
    DOWN_URL.set(server.url()).unwrap();
    assert_eq!(through_dead_redis(1).await, Ok(1));
    server.stop();

    // A new key: Redis is consulted, fails, and the body answers.
    assert_eq!(through_dead_redis(2).await, Ok(2));
    // A cached key keeps coming from L1.
    assert_eq!(through_dead_redis(1).await, Ok(1));
    assert_eq!(DOWN_RUNS.load(SeqCst), 2);
    let stats = through_dead_redis_cache().cache().unwrap().stats();
    assert!(stats.l2.errors >= 1, "{stats:?}");
}

static SYNC_URL: OnceLock<String> = OnceLock::new();
static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(namespace = "sync", name = "square", ttl = 30, backend = redis_at(&SYNC_URL))]
fn square(x: u64) -> u64 {
    SYNC_RUNS.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn a_sync_function_on_a_plain_thread_uses_redis() {
    let server = RedisServer::start();
    SYNC_URL.set(server.url()).unwrap();
    // The backend is built (and used) without any runtime of the caller's.
    let answers = std::thread::spawn(|| (square(9), square(9)))
        .join()
        .unwrap();
    assert_eq!(answers, (81, 81));
    assert_eq!(SYNC_RUNS.load(SeqCst), 1);
    let key = cachekit::derive_key("sync", "square", &(9u64,)).unwrap();
    assert_eq!(server.command(&["EXISTS", &key]), "(integer) 1");
    assert!(square_invalidate(9).unwrap());
    assert_eq!(server.command(&["EXISTS", &key]), "(integer) 0");
}
