//! The channel as the caches attached to it see it: what `lost`,
//! `resumed`, `key`, `prefix` and `all` do to their L1s, and how long L1
//! entries live in each state. The Redis listener that drives a channel is
//! tested against real servers in `tests/invalidation_faults.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::backend::{Backend, Health, Ttl};
use crate::error::Result;
use crate::{MemoryBackend, TieredCache};

/// The L1 lifetime while the channel is down, in these tests.
const UNSYNCED: Duration = Duration::from_millis(300);
/// `l1_max_ttl` and the entries' TTL: far longer than any test.
const LONG: Duration = Duration::from_secs(600);

/// A real in-memory L2 that says it can notify, through `channel`.
#[derive(Debug)]
struct Notifying {
    data: MemoryBackend,
    channel: Arc<Invalidations>,
}

#[async_trait]
impl Backend for Notifying {
    fn name(&self) -> &str {
        "notifying"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.data.get(key).await
    }
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        self.data.get_with_ttl(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.data.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.data.delete(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        self.data.ttl(key).await
    }
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        self.data.expire(key, ttl).await
    }
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.data.set_if_absent(key, value, ttl).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.data.delete_prefix(prefix).await
    }
    async fn health(&self) -> Health {
        self.data.health().await
    }
    fn invalidations(&self) -> Option<Arc<Invalidations>> {
        Some(self.channel.clone())
    }
}

fn channel() -> Arc<Invalidations> {
    Arc::new(Invalidations::new("test"))
}

/// A cache with an L1 in front of its own L2, attached to `channel`.
fn cache(channel: &Arc<Invalidations>) -> TieredCache {
    let l2 = Notifying {
        data: MemoryBackend::builder().build().unwrap(),
        channel: channel.clone(),
    };
    TieredCache::builder()
        .l2(l2)
        .l1_invalidation(true)
        .l1_max_ttl(LONG)
        .l1_ttl_unsynced(UNSYNCED)
        .default_ttl(LONG)
        .build()
        .unwrap()
}

/// How long `cache`'s L1 keeps `key`; `None` when it does not hold it.
async fn l1_life(cache: &TieredCache, key: &str) -> Option<Duration> {
    match cache.l1().unwrap().ttl(key).await.unwrap() {
        Ttl::Remaining(left) => Some(left),
        Ttl::Persistent => Some(Duration::MAX),
        Ttl::Missing => None,
    }
}

/// Whether `cache`'s L1 serves `key` as fresh (a flush leaves entries in
/// place, stale: a held reference is the probe that never asks L2).
fn l1_fresh(cache: &TieredCache, key: &str) -> bool {
    cache
        .l1_ref(key)
        .is_some_and(|entry| cache.get_ref::<u64>(&entry).is_some())
}

/// Caches attached and not dropped.
fn attached(channel: &Invalidations) -> usize {
    let caches = channel.caches.lock().unwrap();
    caches.iter().filter(|c| c.strong_count() > 0).count()
}

#[tokio::test]
async fn lost_flushes_every_attached_l1_including_entries_held_by_reference() {
    let channel = channel();
    let (one, two) = (cache(&channel), cache(&channel));
    channel.resumed();
    one.set("k", &1_u64, None).await.unwrap();
    two.set("k", &2_u64, None).await.unwrap();
    let held = one.l1_ref("k").unwrap();
    assert_eq!(one.get_ref::<u64>(&held), Some(1));
    let before = channel.stats();

    channel.lost("test");

    assert!(!l1_fresh(&one, "k"), "one's L1 was not flushed");
    assert!(!l1_fresh(&two, "k"), "two's L1 was not flushed");
    // A flush marks entries stale (the L1 generation): a held reference
    // stops at once.
    assert_eq!(one.get_ref::<u64>(&held), None, "a held entry is served");
    let after = channel.stats();
    assert_eq!(after.state, ChannelState::Down);
    assert_eq!(after.losses, before.losses + 1);
    assert_eq!(after.flushes, before.flushes + 1);
    // L2 is not touched: the value is read again from there.
    assert_eq!(one.get::<u64>("k").await, Some(1));

    // Lost again while down (a failed reconnect): nothing new learned, so
    // no new loss and no flush (entries are short-lived already).
    channel.lost("test");
    assert_eq!(channel.stats().losses, after.losses);
    assert_eq!(channel.stats().flushes, after.flushes);
}

#[tokio::test]
async fn entries_put_while_down_live_at_most_l1_ttl_unsynced() {
    let channel = channel();
    let cache = cache(&channel);
    assert_eq!(cache.stats().invalidation.state, ChannelState::Down);

    // Written here.
    cache.set("set", &1_u64, None).await.unwrap();
    // Read from L2.
    cache.set("read", &2_u64, None).await.unwrap();
    assert!(cache.l1().unwrap().delete("read").await.unwrap());
    assert_eq!(cache.get::<u64>("read").await, Some(2));
    assert_eq!(cache.stats().l2.hits, 1);
    // Computed.
    let computed: u64 = cache.get_or_compute("computed", None, || async { 3 }).await;
    assert_eq!(computed, 3);

    for key in ["set", "read", "computed"] {
        let life = l1_life(&cache, key).await;
        assert!(
            life.is_some_and(|life| life <= UNSYNCED),
            "{key}: kept {life:?} in L1 while the channel is down"
        );
    }
    // And again after it was lost (not just never up).
    channel.resumed();
    channel.lost("test");
    cache.set("set", &4_u64, None).await.unwrap();
    let life = l1_life(&cache, "set").await;
    assert!(life.is_some_and(|life| life <= UNSYNCED), "kept {life:?}");
}

#[tokio::test]
async fn resumed_flushes_and_restores_l1_max_ttl() {
    let channel = channel();
    let cache = cache(&channel);
    cache.set("early", &1_u64, None).await.unwrap();
    let held = cache.l1_ref("early").unwrap();

    channel.resumed();

    // Made while down: may be stale, so no longer served as fresh.
    assert!(!l1_fresh(&cache, "early"));
    assert_eq!(cache.get_ref::<u64>(&held), None);
    assert_eq!(cache.stats().invalidation.state, ChannelState::Live);
    assert_eq!(cache.stats().invalidation.flushes, 1);
    assert_eq!(cache.stats().invalidation.losses, 0, "never was live");

    cache.set("late", &2_u64, None).await.unwrap();
    let life = l1_life(&cache, "late").await;
    assert!(
        life.is_some_and(|life| life > LONG - Duration::from_secs(60)),
        "kept {life:?} in L1 while the channel is live"
    );
}

#[tokio::test]
async fn a_dropped_cache_detaches() {
    let channel = channel();
    let (one, two) = (cache(&channel), cache(&channel));
    let one_again = one.clone();
    assert_eq!(attached(&channel), 2);
    drop(one);
    assert_eq!(attached(&channel), 2, "a clone keeps the cache attached");
    drop(one_again);
    assert_eq!(attached(&channel), 1, "the channel keeps a dropped cache");

    // The next attach prunes it; reports still reach the live ones.
    let three = cache(&channel);
    assert_eq!(channel.caches.lock().unwrap().len(), 2);
    channel.resumed();
    two.set("k", &1_u64, None).await.unwrap();
    three.set("k", &1_u64, None).await.unwrap();
    channel.lost("test");
    assert!(!l1_fresh(&two, "k"));
    assert!(!l1_fresh(&three, "k"));
}

#[tokio::test]
async fn keys_prefixes_and_server_flushes_reach_every_attached_l1() {
    let channel = channel();
    let (one, two) = (cache(&channel), cache(&channel));
    channel.resumed();
    for cache in [&one, &two] {
        for key in ["a:1", "a:2", "b:1"] {
            cache.set(key, &1_u64, None).await.unwrap();
        }
    }
    channel.key("a:1");
    channel.prefix("b:");
    for cache in [&one, &two] {
        assert_eq!(l1_life(cache, "a:1").await, None);
        assert_eq!(l1_life(cache, "b:1").await, None);
        assert!(
            l1_life(cache, "a:2").await.is_some(),
            "an unrelated key went"
        );
    }
    let held = one.l1_ref("a:2").unwrap();
    channel.all();
    assert_eq!(l1_life(&two, "a:2").await, None);
    assert_eq!(one.get_ref::<u64>(&held), None);
    let stats = channel.stats();
    assert_eq!((stats.keys, stats.prefixes), (1, 1));
    assert_eq!(stats.flushes, 2, "resumed, then the server flush");
    assert_eq!(
        stats.state,
        ChannelState::Live,
        "a server flush is no outage"
    );
}

#[tokio::test]
async fn caches_that_do_not_listen_are_off_and_keep_l1_max_ttl() {
    let channel = channel();
    let l2 = || Notifying {
        data: MemoryBackend::builder().build().unwrap(),
        channel: channel.clone(),
    };
    let opted_out = TieredCache::builder()
        .l2(l2())
        .l1_invalidation(false)
        .l1_max_ttl(LONG)
        .l1_ttl_unsynced(UNSYNCED)
        .build()
        .unwrap();
    let no_l1 = TieredCache::builder()
        .l2(l2())
        .without_l1()
        .l1_invalidation(true)
        .build()
        .unwrap();
    let no_l2 = TieredCache::builder()
        .l1_invalidation(true)
        .build()
        .unwrap();
    for cache in [&opted_out, &no_l1, &no_l2] {
        assert_eq!(cache.stats().invalidation, InvalidationStats::default());
    }
    assert_eq!(attached(&channel), 0);
    // The channel is down, but this cache does not listen to it.
    opted_out.set("k", &1_u64, Some(LONG)).await.unwrap();
    let life = l1_life(&opted_out, "k").await;
    assert!(life.is_some_and(|life| life > UNSYNCED), "kept {life:?}");
}

/// A cache's own write comes back as an announcement too, and drops the
/// entry: Redis announces a key once per event-loop iteration however many
/// clients wrote it, so the echo of this write cannot be told from another
/// client's change in the same iteration.
#[tokio::test]
async fn the_announcement_of_a_cache_s_own_write_drops_it_too() {
    let channel = channel();
    let cache = cache(&channel);
    channel.resumed();
    cache.set("k", &1_u64, None).await.unwrap();
    assert!(l1_fresh(&cache, "k"));
    channel.key("k");
    assert!(
        !l1_fresh(&cache, "k"),
        "an announcement was taken for an echo"
    );
    // Read back from L2.
    assert_eq!(cache.get::<u64>("k").await, Some(1));
    assert!(l1_fresh(&cache, "k"));
}

#[cfg(feature = "metrics")]
#[test]
fn the_channel_publishes_its_invalidations_flushes_and_state() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let channel =
        metrics::with_local_recorder(&recorder, || Invalidations::new("redis 127.0.0.1:1"));
    channel.resumed();
    channel.key("a");
    channel.key("b");
    channel.prefix("p:");
    channel.lost("test");
    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let kind = key
            .labels()
            .find(|l| l.key() == "kind")
            .map(|l| l.value().to_owned());
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => continue,
        };
        seen.insert((key.name().to_owned(), kind), value);
    }
    let at = |name: &str, kind: Option<&str>| {
        seen.get(&(name.to_owned(), kind.map(str::to_owned)))
            .copied()
    };
    assert_eq!(
        at("cachekit_l1_invalidations_total", Some("key")),
        Some(2.0),
        "{seen:?}"
    );
    assert_eq!(
        at("cachekit_l1_invalidations_total", Some("prefix")),
        Some(1.0)
    );
    // Resumed (a flush), then lost while live (another).
    assert_eq!(at("cachekit_l1_flushes_total", None), Some(2.0));
    assert_eq!(
        at("cachekit_invalidation_channel_losses_total", None),
        Some(1.0)
    );
    assert_eq!(at("cachekit_invalidation_channel_up", None), Some(0.0));
}
