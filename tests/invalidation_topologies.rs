//! L1 invalidation on Sentinel and Cluster deployments, through a
//! failover: two caches on separate `RedisBackend`s (A reads, B writes).
//!
//! - Sentinel (`SentinelSet`): changes propagate; a `SENTINEL FAILOVER`
//!   flushes A's L1 and counts the loss; A listens to the new primary
//!   (`Live`) and changes propagate again.
//! - Cluster (`RedisCluster`, three primaries with a replica each):
//!   changes of keys on every primary propagate (one listening connection
//!   per primary); a primary is SIGKILLed and its replica promoted; the
//!   loss is counted, A's L1 flushed, the channel live again on the new
//!   set of primaries, and changes on every primary propagate again.
//! - Cluster with a primary down and no replica to take over: the channel
//!   stays down (it could not hear the slots' changes once they are served
//!   again) until every slot has a live primary.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "invalidation_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit::{ChannelState, TieredCache};
use cachekit_testkit::{RedisCluster, SentinelSet};
use common::*;

async fn pair(url: &str) -> (TieredCache, TieredCache) {
    let a = cache(backend(url).await);
    let b = cache(backend(url).await);
    state(&a, ChannelState::Live, "A").await;
    state(&b, ChannelState::Live, "B").await;
    (a, b)
}

/// Waits until A noticed the failover (a loss) and listens again.
async fn recovered(a: &TieredCache, before: cachekit::InvalidationStats) {
    until("A to count the loss", async || {
        a.stats().invalidation.losses > before.losses
    })
    .await;
    state(a, ChannelState::Live, "A").await;
    let after = a.stats().invalidation;
    assert!(
        after.flushes >= before.flushes + 2,
        "expected a flush on the loss and one on the way back: {before:?} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_flushes_and_changes_propagate_from_the_new_primary() {
    let set = Arc::new(fault(|| SentinelSet::builder().master_name("inval").start()).await);
    let (a, b) = pair(&set.url()).await;
    write(&b, "k", 1).await;
    propagates(&a, &b, "k", 1, 2).await;
    held_long(&a, "k", 2).await;
    let before = a.stats().invalidation;

    let old = set.primary().addr();
    let new = fault({
        let set = set.clone();
        move || set.failover()
    })
    .await;
    assert_ne!(old, new);
    recovered(&a, before).await;
    // Nothing read k since: only the flush can have made it stale.
    assert!(
        !l1_fresh(&a, "k"),
        "A's L1 kept k fresh across the failover"
    );
    // Both listeners move to the new primary (B's may notice the switch
    // a moment after A's) and leave the old one.
    let what = format!("A's and B's listeners on the new primary {new}, none on {old}");
    until(&what, async || {
        let set = set.clone();
        fault(move || {
            let nodes = set.data_nodes();
            let on = |addr| nodes.iter().find(|n| n.addr() == addr).map(tracking_ids);
            on(new).map(|ids| ids.len()) == Some(2) && on(old).is_some_and(|ids| ids.is_empty())
        })
        .await
    })
    .await;

    write(&b, "k", 3).await;
    propagates(&a, &b, "k", 3, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_changes_on_every_primary_propagate_before_and_after_a_primary_failover() {
    let cluster = Arc::new(fault(RedisCluster::start).await);
    let keys = cluster.keys_on_distinct_primaries(1);
    assert_eq!(keys.len(), 3);
    let (a, b) = pair(&cluster.url()).await;
    for primary in cluster.primaries() {
        let ids = tracking_ids(primary);
        assert_eq!(ids.len(), 2, "A's and B's listeners on {}", primary.addr());
    }
    for key in &keys {
        write(&b, key, 1).await;
        propagates(&a, &b, key, 1, 2).await;
        held_long(&a, key, 2).await;
    }
    let before = a.stats().invalidation;

    let old = fault({
        let (cluster, key) = (cluster.clone(), keys[0].clone());
        move || cluster.kill_primary_for_key(&key)
    })
    .await;
    fault({
        let cluster = cluster.clone();
        move || cluster.wait_for_promotion(old)
    })
    .await;
    recovered(&a, before).await;
    for key in &keys {
        assert!(!l1_fresh(&a, key), "A's L1 kept {key}");
    }
    // A listens to every primary now serving slots, the promoted one too.
    until("A's and B's listeners on every primary", async || {
        let cluster = cluster.clone();
        fault(move || {
            let primaries = cluster.primaries();
            primaries.len() == 3 && primaries.iter().all(|p| tracking_ids(p).len() == 2)
        })
        .await
    })
    .await;

    for key in &keys {
        write(&b, key, 3).await;
        propagates(&a, &b, key, 3, 4).await;
    }
}

/// Whether the running nodes other than `old` report the cluster down.
fn cluster_fails_without(cluster: &RedisCluster, old: std::net::SocketAddr) -> bool {
    cluster
        .nodes()
        .iter()
        .filter(|n| n.addr() != old && n.is_running())
        .all(|n| {
            n.command(&["CLUSTER", "INFO"])
                .contains("cluster_state:fail")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_channel_stays_down_while_slots_have_no_live_primary() {
    let cluster = fault(|| RedisCluster::builder().replicas_per_primary(0).start()).await;
    let cluster = Arc::new(cluster);
    let keys = cluster.keys_on_distinct_primaries(1);
    let (a, b) = pair(&cluster.url()).await;

    let old = fault({
        let (cluster, key) = (cluster.clone(), keys[0].clone());
        move || cluster.kill_primary_for_key(&key)
    })
    .await;
    until("the other nodes to fail it", async || {
        let cluster = cluster.clone();
        fault(move || cluster_fails_without(&cluster, old)).await
    })
    .await;
    // The listener retries (pauses up to 2 s): watch several attempts.
    let (watch, seen) = (Instant::now(), a.stats().invalidation);
    while watch.elapsed() < Duration::from_secs(4)
        || a.stats().invalidation.failures < seen.failures + 2
    {
        let now = a.stats().invalidation;
        assert_eq!(
            now.state,
            ChannelState::Down,
            "A listens while the slots of {old} have no live primary: {now:?}"
        );
        assert!(
            watch.elapsed() < PATIENCE_LONG,
            "no attempt to listen again: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    fault({
        let cluster = cluster.clone();
        move || cluster.restart_node(old)
    })
    .await;
    state(&a, ChannelState::Live, "A").await;
    for key in &keys {
        write(&b, key, 1).await;
        propagates(&a, &b, key, 1, 2).await;
    }
}

/// Longer than the listener's longest pause between attempts, twice over.
const PATIENCE_LONG: Duration = Duration::from_secs(20);
