//! `read_from_replicas`: on a cluster, reads go to the key's replicas and
//! writes to its primary; off (the default), every command goes to the
//! primary.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use std::time::{Duration, Instant};

use cachekit_testkit::{eventually, RedisCluster, RedisServer, PATIENCE};

/// How many GETs each node served, by `INFO commandstats`.
fn gets(node: &RedisServer) -> u64 {
    let stats = node.command(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn replica_gets(cluster: &RedisCluster) -> u64 {
    let primaries: Vec<u16> = cluster.primaries().iter().map(|p| p.port()).collect();
    cluster
        .nodes()
        .iter()
        .filter(|node| !primaries.contains(&node.port()))
        .map(gets)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_only_when_asked() {
    let cluster = RedisCluster::start();
    let primary_only =
        RedisBackend::new(RedisConfig::builder().url(cluster.url()).build().unwrap())
            .await
            .unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("replica-read:{i}")).collect();
    for key in &keys {
        primary_only
            .set(key, key.clone().into(), None)
            .await
            .unwrap();
        assert!(primary_only.get(key).await.unwrap().is_some());
    }
    assert_eq!(replica_gets(&cluster), 0, "{}", cluster.logs());

    // A replica enters CLUSTER SLOTS once the primaries have heard its
    // replication offset (gossip): until then clients cannot route to it.
    let listed = || {
        cluster.primaries().iter().all(|node| {
            let slots = node.command(&["CLUSTER", "SLOTS"]);
            slots.lines().filter(|line| *line == "127.0.0.1").count() == 6
        })
    };
    eventually("every primary lists its replica in CLUSTER SLOTS", listed).await;
    let replicas = RedisBackend::new(
        RedisConfig::builder()
            .url(cluster.url())
            .read_from_replicas(true)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // Replication is asynchronous: each key is read back once its replica
    // has it.
    for key in &keys {
        let deadline = Instant::now() + PATIENCE;
        while replicas.get(key).await.unwrap().as_deref() != Some(key.as_bytes()) {
            assert!(Instant::now() < deadline, "{key} never read back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let on_replicas = replica_gets(&cluster);
    assert!(
        on_replicas >= 30,
        "{on_replicas} GETs on replicas; {}",
        cluster.logs()
    );
    // Writes still go to the primaries.
    replicas
        .set("replica-read:w", "v".into(), None)
        .await
        .unwrap();
    assert_eq!(
        cluster
            .primary_for_key("replica-read:w")
            .command(&["GET", "replica-read:w"]),
        "v"
    );
}
