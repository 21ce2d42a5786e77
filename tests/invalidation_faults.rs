//! L1 invalidation when its channel breaks, against a real `redis-server`:
//! two caches on separate `RedisBackend`s (two processes as far as Redis
//! knows), A reading, B writing.
//!
//! - `CLIENT KILL` of A's listening connection, B writing before A is back.
//! - A restart of Redis (its data gone).
//! - SIGSTOP of Redis past the listener's ping deadline.
//! - An ACL user without `CLIENT`: tracking cannot be enabled at all.
//!
//! After each: A serves no old value beyond `l1_ttl_unsynced` (plus
//! headroom) once the fault could be noticed, the flush and the loss are
//! counted, the channel comes back (`Live`) when it can, and changes
//! propagate again.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "invalidation_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use cachekit::{ChannelState, TieredCache};
use cachekit_testkit::logs::Logs;
use cachekit_testkit::RedisServer;
use common::*;

/// A, whose listening connection is the only one on `server` (its id is
/// returned), then B.
async fn pair(server: &RedisServer) -> (TieredCache, String, TieredCache) {
    let a = cache(backend(&server.url()).await);
    state(&a, ChannelState::Live, "A").await;
    let ids = tracking_ids(server);
    assert_eq!(ids.len(), 1, "A's listener: {ids:?}");
    let b = cache(backend(&server.url()).await);
    state(&b, ChannelState::Live, "B").await;
    (a, ids[0].clone(), b)
}

fn set_acl(server: &RedisServer, rule: &str) {
    assert_eq!(server.command(&["ACL", "SETUSER", "default", rule]), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_connection_flushes_and_a_change_made_meanwhile_is_not_missed() {
    let server = RedisServer::start();
    let (a, a_listener, b) = pair(&server).await;
    write(&b, "k", 1).await;
    propagates(&a, &b, "k", 1, 2).await;
    let before = a.stats().invalidation;

    // Keep A from setting tracking up again until the test says so: the
    // window before A is back stays open past the bound.
    set_acl(&server, "-client|tracking");
    let killed = server.command(&["CLIENT", "KILL", "ID", &a_listener]);
    assert_eq!(killed, "(integer) 1", "CLIENT KILL ID {a_listener}");
    state(&a, ChannelState::Down, "A").await;
    let down = a.stats().invalidation;
    assert_eq!(down.losses, before.losses + 1);
    assert!(down.flushes > before.flushes, "the loss flushed no L1");
    assert!(!l1_fresh(&a, "k"), "A's L1 kept k");
    assert_eq!(
        b.stats().invalidation.state,
        ChannelState::Live,
        "B's listener was killed"
    );

    // A reads again while down (a short-lived entry), then B changes it.
    assert_eq!(a.get::<u64>("k").await, Some(2));
    let since = Instant::now();
    write(&b, "k", 3).await;
    sees(&a, "k", Some(2), Some(3), since).await;
    assert_eq!(a.stats().invalidation.state, ChannelState::Down);

    set_acl(&server, "+client|tracking");
    state(&a, ChannelState::Live, "A").await;
    let back = a.stats().invalidation;
    assert!(back.flushes > down.flushes, "coming back flushed no L1");
    assert_eq!(back.losses, down.losses, "one outage, one loss");
    propagates(&a, &b, "k", 3, 4).await;
    assert_eq!(tracking_ids(&server).len(), 2, "A listens again, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_redis_flushes_and_data_it_lost_is_not_served() {
    let server = Arc::new(RedisServer::start());
    let (a, _, b) = pair(&server).await;
    write(&b, "k", 1).await;
    held_long(&a, "k", 1).await;
    let before = a.stats().invalidation;

    let since = Instant::now();
    fault({
        let server = server.clone();
        move || server.restart()
    })
    .await;
    // The key is gone with the data: A reads a miss, not its old entry.
    sees(&a, "k", Some(1), None, since).await;
    state(&a, ChannelState::Live, "A").await;
    state(&b, ChannelState::Live, "B").await;
    let after = a.stats().invalidation;
    assert!(after.losses > before.losses, "no loss counted: {after:?}");
    assert!(
        after.flushes >= before.flushes + 2,
        "expected a flush on the loss and one on the way back: {after:?}"
    );

    let since = Instant::now();
    write(&b, "k", 5).await;
    sees(&a, "k", None, Some(5), since).await;
    propagates(&a, &b, "k", 5, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_is_noticed_l1_is_flushed_and_entries_live_briefly_until_it_is_back() {
    let server = Arc::new(RedisServer::start());
    let (a, _, b) = pair(&server).await;
    write(&b, "k", 1).await;
    held_long(&a, "k", 1).await;
    let before = a.stats().invalidation;

    fault({
        let server = server.clone();
        move || server.pause()
    })
    .await;
    state(&a, ChannelState::Down, "A").await;
    until("A's L1 to stop serving k", async || !l1_fresh(&a, "k")).await;
    let down = a.stats().invalidation;
    assert_eq!(down.losses, before.losses + 1);
    assert!(down.flushes > before.flushes);

    // Computed while Redis answers nothing: kept in L1, briefly.
    held_briefly(&a, "c", async || {
        let v = a.get_or_compute("c", None, || async { 7 }).await;
        assert_eq!(v, 7);
        v
    })
    .await;

    fault({
        let server = server.clone();
        move || server.resume()
    })
    .await;
    state(&a, ChannelState::Live, "A").await;
    let back = a.stats().invalidation;
    assert!(back.flushes > down.flushes, "coming back flushed no L1");
    assert_eq!(back.losses, down.losses, "one outage, one loss");
    state(&b, ChannelState::Live, "B").await;
    propagates(&a, &b, "k", 1, 2).await;
}

const ACL_PASSWORD: &str = "acl-Pa55word-not-in-logs";

/// Every WARN and above of this test binary (listeners log on their own
/// runtime's threads, so a per-thread capture would miss them).
fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let (subscriber, logs) = cachekit_testkit::logs::capture();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_client_command_the_cache_works_with_short_l1_lifetimes_and_warns_once() {
    let logs = logs();
    let server = RedisServer::builder().acl_user("app", ACL_PASSWORD).start();
    assert_eq!(server.command(&["ACL", "SETUSER", "app", "-client"]), "OK");
    let a = cache(backend(&server.url()).await);

    write(&a, "k", 1).await;
    held_briefly(&a, "k", async || a.get::<u64>("k").await.unwrap()).await;
    // Several attempts to set tracking up, each refused.
    until("three refused attempts", async || {
        a.stats().invalidation.failures >= 3
    })
    .await;
    let stats = a.stats().invalidation;
    assert_eq!(stats.state, ChannelState::Down);
    assert_eq!(stats.losses, 0, "never was live");
    assert_eq!(tracking_ids(&server), Vec::<String>::new());
    // Served from L2 once the short L1 entry is gone.
    tokio::time::sleep(UNSYNCED * 2).await;
    assert!(!l1_fresh(&a, "k"));
    assert_eq!(a.get::<u64>("k").await, Some(1));

    let port = format!(":{}", server.port());
    let warned: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("invalidation channel down"))
        .filter(|l| l.contains(&port))
        .collect();
    assert_eq!(warned.len(), 1, "one WARN per outage: {warned:#?}");
    assert!(
        warned[0].contains("CLIENT TRACKING")
            && warned[0].contains("+client|tracking")
            && warned[0].contains("CACHEKIT_L1_INVALIDATION=off"),
        "the WARN says what was refused and what fixes it: {}",
        warned[0]
    );
    assert!(
        !logs.text().contains(ACL_PASSWORD),
        "the password was logged"
    );
}

#[cfg(feature = "file")]
#[tokio::test]
async fn a_file_l2_has_no_channel() {
    use cachekit::{FileBackend, FileConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig::builder().dir(dir.path()).build().unwrap();
    let cache = TieredCache::builder()
        .l2(FileBackend::open(config).unwrap())
        .l1_invalidation(true)
        .l1_max_ttl(LONG)
        .l1_ttl_unsynced(UNSYNCED)
        .build()
        .unwrap();
    assert_eq!(cache.stats().invalidation.state, ChannelState::Off);
    cache.set("k", &1_u64, Some(LONG)).await.unwrap();
    assert!(
        long_lived(l1_life(&cache, "k").await),
        "the L1 keeps l1_max_ttl"
    );
}
