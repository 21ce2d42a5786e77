//! cachekit on a Redis Cluster (three primaries, one replica each) against
//! raw redis-rs `cluster_async::ClusterConnection` on the same cluster, in
//! one run:
//!
//! - `cluster_l2_hit/small`: a `TieredCache` without L1 over the cluster
//!   `RedisBackend` against raw GET + rmp-serde decode; time per hit, one
//!   call at a time, as the peers bench's scenario 2 measures standalone;
//! - `cluster_uniform_reads`: reads of keys drawn uniformly from 10k
//!   stored ones (spread over every primary's slots) on 1 and 64 tasks,
//!   ops/s.
//!
//! Beside cachekit as it ships: a row with its reply deadlines left to
//! redis-rs (the bench-only `bench_switches`; a cluster connection applies
//! redis-rs's response timeout to every command anyway, so cachekit's own
//! deadline is a second one), and a row on raw redis-rs's transport
//! (Nagle's algorithm on: cachekit's coalescing serves plain TCP to one
//! server only, so its cluster connections send one packet per command).
//! Beside raw GET: raw GET + PTTL in one pipeline, which is what a
//! cachekit L2 read sends.
//!
//! `cargo bench --bench cluster` (starts six redis-server processes on
//! loopback; about 2 minutes on two cores).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "common/clients.rs"]
mod clients;
#[path = "common/groups.rs"]
mod groups;
#[allow(dead_code)]
#[path = "common/values.rs"]
mod values;

use std::time::Duration;

use cachekit_redis::{BenchCheckout, BenchDeadlines, BenchSwitches};
use cachekit_testkit::RedisCluster;
use clients::{ours, Lib};
use criterion::Criterion;
use groups::{hit_group, prefill, print_stats, uniform_group, Named, KEYS};
use tokio::runtime::Runtime;

/// A raw redis-rs cluster connection with its defaults (Nagle's algorithm on).
async fn raw_cluster(cluster: &RedisCluster) -> redis::cluster_async::ClusterConnection {
    let seeds: Vec<String> = cluster
        .seed_nodes()
        .split(',')
        .map(|node| format!("redis://{node}"))
        .collect();
    let client = redis::cluster::ClusterClient::new(seeds).expect("cluster client");
    client
        .get_async_connection()
        .await
        .expect("raw cluster connection")
}

/// The rows, with connections opened on `rt`, which runs them.
fn libs_on(rt: &Runtime, cluster: &RedisCluster) -> Vec<Named> {
    rt.block_on(async {
        vec![
            ("cachekit", ours(&cluster.url(), |c| c, true).await),
            (
                "cachekit, deadlines left to redis-rs",
                ours(
                    &cluster.url(),
                    |c| {
                        c.bench_switches(BenchSwitches::new(
                            BenchDeadlines::RedisRs,
                            BenchCheckout::Lanes,
                        ))
                    },
                    true,
                )
                .await,
            ),
            (
                "cachekit, tcp_nodelay off (raw's transport)",
                ours(&cluster.url(), |c| c.tcp_nodelay(false), true).await,
            ),
            (
                "raw redis-rs cluster-async + rmp-serde (baseline)",
                Lib::RawCluster(raw_cluster(cluster).await),
            ),
            (
                "raw, GET+PTTL pipeline",
                Lib::RawClusterWithTtl(raw_cluster(cluster).await),
            ),
        ]
    })
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let cluster = RedisCluster::start();
    let rt1 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hit_libs = libs_on(&rt1, &cluster);
    prefill(&rt1, &hit_libs, 1);
    hit_group(&mut c, &rt1, "cluster_l2_hit/small", &hit_libs);
    print_stats("cluster_l2_hit", &hit_libs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let libs = libs_on(&rt, &cluster);
    prefill(&rt, &libs, KEYS);
    uniform_group(&mut c, &rt, "cluster_uniform_reads", &libs, &[1, 64]);
    print_stats("cluster_uniform_reads", &libs);
    c.final_summary();
}
