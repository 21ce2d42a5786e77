//! Helpers shared by the `invalidation_*` tests: two caches ("processes"
//! A and B, each with its own `RedisBackend`, so its own listener and
//! connections) in front of one Redis deployment, and the checks made on
//! them.
//!
//! A's L1 entries live `LONG` while its channel is live, so a change made
//! by B reaches A within the bound only through an invalidation; while the
//! channel is down they live `UNSYNCED`.
//!
//! Included by each test file with `#[path]`; not every file uses every
//! helper.

use std::future::Future;
use std::time::{Duration, Instant};

use cachekit::{Backend, ChannelState, RedisBackend, RedisConfig, TieredCache, Ttl};
use cachekit_testkit::{RedisServer, PATIENCE};

/// The L1 lifetime while the channel is down, short to keep tests fast.
pub const UNSYNCED: Duration = Duration::from_millis(300);
/// `l1_max_ttl` and the entries' TTL: longer than any test.
pub const LONG: Duration = Duration::from_secs(600);
/// How long after a change (or a fault) A may still serve the old value:
/// `UNSYNCED` plus headroom for a loaded 2-core machine. A missed
/// invalidation leaves the old value for `LONG`, or until the test ends
/// the fault, which it does only after this bound.
pub const BOUND: Duration = Duration::from_millis(1500);

/// A Redis backend for `url` with deadlines that notice a stopped server
/// in well under a second.
pub async fn backend(url: &str) -> RedisBackend {
    let config = RedisConfig::builder()
        .url(url)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisBackend::new(config).await.unwrap()
}

/// One "process": an L1 attached to `backend`'s invalidation channel.
pub fn cache(backend: RedisBackend) -> TieredCache {
    TieredCache::builder()
        .l2(backend)
        .l1_invalidation(true)
        .l1_max_ttl(LONG)
        .l1_ttl_unsynced(UNSYNCED)
        .default_ttl(LONG)
        .l2_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Waits (up to `PATIENCE`) until `cond` holds, polling every 10 ms.
pub async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `cache`'s channel is in `state`.
pub async fn state(cache: &TieredCache, state: ChannelState, who: &str) {
    let what = format!("{who}'s invalidation channel to be {state:?}");
    until(&what, async || cache.stats().invalidation.state == state).await;
}

/// How long `cache`'s L1 keeps `key`; `None` when it does not hold it.
pub async fn l1_life(cache: &TieredCache, key: &str) -> Option<Duration> {
    match cache.l1().unwrap().ttl(key).await.unwrap() {
        Ttl::Remaining(left) => Some(left),
        Ttl::Missing => None,
        _ => Some(Duration::MAX),
    }
}

/// Whether `cache`'s L1 serves `key` as fresh. A flush leaves entries in
/// place, stale (for serve-stale): a held reference is the probe that
/// never asks L2.
pub fn l1_fresh(cache: &TieredCache, key: &str) -> bool {
    cache
        .l1_ref(key)
        .is_some_and(|entry| cache.get_ref::<u64>(&entry).is_some())
}

/// Whether an L1 entry of `life` was put while the channel was live.
pub fn long_lived(life: Option<Duration>) -> bool {
    life.is_some_and(|life| life > UNSYNCED * 10)
}

/// Writes through `cache`, retrying while its L2 recovers from a fault.
pub async fn write(cache: &TieredCache, key: &str, value: u64) {
    let what = format!("a write of {key} = {value} to succeed");
    until(&what, async || cache.set(key, &value, None).await.is_ok()).await;
}

/// Reads `key` through `cache` until its L1 holds `value` for long: the
/// channel is live, so from now on only an invalidation can make it see
/// a change.
pub async fn held_long(cache: &TieredCache, key: &str, value: u64) {
    let what = format!("{key} = {value} held long in L1");
    until(&what, async || {
        cache.get::<u64>(key).await == Some(value) && long_lived(l1_life(cache, key).await)
    })
    .await;
}

/// Reads `key` through `a` until it returns `new`. Fails if it still
/// returns `old` `BOUND` after `since` (the change, or the fault if later),
/// or if it never returns `new`.
pub async fn sees(a: &TieredCache, key: &str, old: Option<u64>, new: Option<u64>, since: Instant) {
    loop {
        let got = a.get::<u64>(key).await;
        if got == new {
            return;
        }
        let after = since.elapsed();
        assert!(
            got != old || after <= BOUND,
            "{key}: A still served the old value {old:?} {after:?} after the change to {new:?} \
             (stats {:?})",
            a.stats().invalidation
        );
        assert!(
            after < PATIENCE,
            "{key}: A read {got:?}, not {new:?}, {after:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `key` through `cache` with `read` until its L1 holds it (a
/// listener retrying to set tracking up flushes L1 at each attempt), and
/// checks that it is kept no longer than `UNSYNCED`.
pub async fn held_briefly(cache: &TieredCache, key: &str, mut read: impl AsyncFnMut() -> u64) {
    let what = format!("{key} in L1");
    until(&what, async || {
        let _: u64 = within(&what, read()).await;
        l1_life(cache, key).await.is_some()
    })
    .await;
    let life = l1_life(cache, key).await;
    assert!(
        life.is_none_or(|life| life <= UNSYNCED),
        "{key}: an entry made while the channel is down is kept {life:?}"
    );
}

/// B changes `key` from `old` to `new` while A holds `old` for long; A
/// must see `new` within `BOUND`: the change was propagated.
pub async fn propagates(a: &TieredCache, b: &TieredCache, key: &str, old: u64, new: u64) {
    held_long(a, key, old).await;
    let since = Instant::now();
    write(b, key, new).await;
    sees(a, key, Some(old), Some(new), since).await;
}

/// The ids of the connections on `server` with tracking on (`t` in
/// `CLIENT LIST`'s flags; Redis 7.0 shows no lib-name): the listeners'.
/// Each is also in BCAST mode (`B`) and subscribed (`P`).
pub fn tracking_ids(server: &RedisServer) -> Vec<String> {
    let list = server.command(&["CLIENT", "LIST"]);
    list.lines()
        .filter(|c| {
            let field = |name: &str| c.split(' ').find_map(|f| f.strip_prefix(name));
            let flags = field("flags=").unwrap_or_default();
            flags.contains('t') && flags.contains('B') && field("resp=") == Some("3")
        })
        .filter_map(|c| c.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

/// Runs a blocking testkit fault (kill, restart, pause...) off the async
/// worker threads.
pub async fn fault<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Awaits `f` with a generous limit, naming what hung.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {PATIENCE:?}"))
}
