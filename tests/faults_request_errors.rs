//! Errors caused by one request (a key of another type, a key an ACL
//! denies, a TTL of `Duration::MAX`, a poisoned file entry) are the
//! request's problem, not the backend's: the circuit breaker never counts
//! them, so the next healthy key still reads as a hit and writes succeed.
#![cfg(all(feature = "redis", feature = "file"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::time::Duration;

use cachekit::{
    BreakerConfig, BreakerState, FileBackend, FileConfig, RedisBackend, RedisConfig, TieredCache,
};
use cachekit_testkit::logs::Logs;
use cachekit_testkit::RedisServer;
use common::redis;

const TTL: Option<Duration> = Some(Duration::from_secs(60));
/// More bad requests than the breaker's threshold.
const BAD: usize = 8;

/// No L1, so that every read below is an L2 read; a breaker that opens
/// after two failures, so that a miscounted error shows at once.
fn cache_over(l2: impl cachekit::Backend + 'static) -> TieredCache {
    TieredCache::builder()
        .without_l1()
        .l2(l2)
        .breaker(
            BreakerConfig::default()
                .failure_threshold(2)
                .window(Duration::from_secs(60))
                .recovery_timeout(Duration::from_secs(60)),
        )
        .build()
        .unwrap()
}

/// The healthy key still reads as a hit, a new write succeeds, and the
/// breaker never opened.
async fn assert_backend_still_used(cache: &TieredCache, what: &str) {
    assert_eq!(
        cache.get::<u64>("ok:healthy").await,
        Some(7),
        "{what}: a healthy key no longer reads as a hit ({:?})",
        cache.stats()
    );
    cache
        .set("ok:after", &8u64, TTL)
        .await
        .unwrap_or_else(|err| panic!("{what}: a healthy write failed: {err}"));
    assert_eq!(cache.get::<u64>("ok:after").await, Some(8), "{what}");
    let s = cache.stats();
    assert_eq!(
        (s.breaker, s.breaker_opened, s.l2.skipped),
        (BreakerState::Closed, 0, 0),
        "{what}: {s:?}"
    );
}

#[tokio::test]
async fn reads_of_a_key_holding_a_list_do_not_open_the_breaker() {
    let server = RedisServer::start();
    let cache = cache_over(redis(&server.url()).await);
    cache.set("ok:healthy", &7u64, TTL).await.unwrap();
    server.command(&["RPUSH", "bad:list", "a", "b"]);
    for _ in 0..BAD {
        assert_eq!(cache.get::<u64>("bad:list").await, None);
    }
    assert_backend_still_used(&cache, "after reads of a list").await;
}

#[tokio::test]
async fn keys_an_acl_denies_do_not_open_the_breaker() {
    let server = RedisServer::start();
    server.command(&[
        "ACL",
        "SETUSER",
        "limited",
        "on",
        ">limited-pw",
        "~ok:*",
        "+@all",
    ]);
    let url = format!("redis://limited:limited-pw@127.0.0.1:{}/0", server.port());
    let cache = cache_over(redis(&url).await);
    cache.set("ok:healthy", &7u64, TTL).await.unwrap();
    let (logs, _guard) = Logs::start();
    for i in 0..BAD {
        assert_eq!(cache.get::<u64>("denied:k").await, None);
        let err = cache.set("denied:k", &1u64, TTL).await.unwrap_err();
        if i == 0 {
            assert!(err.to_string().contains("NOPERM"), "{err}");
            assert!(!err.to_string().contains("limited-pw"), "{err}");
        }
    }
    assert_backend_still_used(&cache, "after requests an ACL denies").await;
    // Logged as refused requests of a healthy backend, once, not as an outage.
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("backend healthy"), "{lines:#?}");
    assert!(!lines[0].contains("unavailable"), "{lines:#?}");
}

#[tokio::test]
async fn a_ttl_of_duration_max_is_clamped_not_refused() {
    let server = RedisServer::start();
    let cache = cache_over(redis(&server.url()).await);
    cache.set("ok:healthy", &7u64, TTL).await.unwrap();
    for i in 0..BAD {
        let key = format!("ok:forever{i}");
        cache
            .set(&key, &9u64, Some(Duration::MAX))
            .await
            .unwrap_or_else(|err| panic!("set with Duration::MAX failed: {err}"));
        assert_eq!(cache.get::<u64>(&key).await, Some(9));
    }
    // Clamped to a finite expiry, so volatile-* eviction still sees the key:
    // a TieredCache counts a TTL beyond a century as a century.
    let pttl = server.command(&["PTTL", "ok:forever0"]);
    let pttl: i64 = pttl.trim_start_matches("(integer) ").parse().unwrap();
    let century_ms: i64 = 100 * 365 * 24 * 3600 * 1000;
    assert!(
        pttl > century_ms - 60_000 && pttl <= century_ms,
        "PTTL {pttl}"
    );
    // The raw backend too, for expire.
    let backend = RedisBackend::new(RedisConfig::builder().url(server.url()).build().unwrap())
        .await
        .unwrap();
    assert!(
        cachekit::Backend::expire(&backend, "ok:forever1", Some(Duration::MAX))
            .await
            .unwrap()
    );
    // A backend on its own clamps at i64::MAX / 2 ms, about 146 million years.
    let pttl = server.command(&["PTTL", "ok:forever1"]);
    let pttl: i64 = pttl.trim_start_matches("(integer) ").parse().unwrap();
    assert!(pttl > i64::MAX / 2 - 60_000, "PTTL {pttl}");
    assert_backend_still_used(&cache, "after writes with Duration::MAX").await;
}

#[tokio::test]
async fn poisoned_file_entries_do_not_open_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig::builder().dir(dir.path()).build().unwrap();
    let backend = FileBackend::open(config).unwrap();
    // A directory (not empty) where a cache file belongs: writes cannot
    // replace it. A symbolic link where another belongs.
    let dir_entry = backend.path_for("bad:dir");
    std::fs::create_dir(&dir_entry).unwrap();
    std::fs::write(dir_entry.join("inside"), b"x").unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"not a cache entry").unwrap();
    std::os::unix::fs::symlink(&target, backend.path_for("bad:link")).unwrap();
    let cache = cache_over(backend);
    cache.set("ok:healthy", &7u64, TTL).await.unwrap();
    let mut errors = Vec::new();
    for key in ["bad:dir", "bad:link"] {
        for _ in 0..BAD {
            assert_eq!(cache.get::<u64>(key).await, None, "{key}");
        }
        let stats = cache.stats();
        errors.push(format!("{key}: {} errors", stats.l2.errors));
    }
    println!("{errors:?}: {:?}", cache.stats());
    assert_backend_still_used(&cache, "after requests of poisoned file entries").await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"not a cache entry",
        "a link's target was changed"
    );
}
