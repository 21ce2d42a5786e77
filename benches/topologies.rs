//! Sentinel and Unix sockets against plain TCP to the same server, each in
//! one criterion group with raw redis-rs on that server as the baseline:
//!
//! - `sentinel_l2_hit/small`: a `TieredCache` without L1 over a
//!   `RedisBackend` reaching a Sentinel deployment's primary by `redis://`
//!   and by `redis+sentinel://`, and raw redis-rs GET + rmp-serde decode
//!   on that primary; time per hit, one call at a time. The sentinels are
//!   asked only when a connection opens, so the two cachekit rows should
//!   agree;
//! - `sentinel_uniform_reads`: the same libraries reading uniformly drawn
//!   keys on 1 and 64 tasks (ops/s);
//! - `unix_l2_hit/small` and `unix_uniform_reads`: one server reached by
//!   TCP and by its Unix socket, cachekit and raw redis-rs each way.
//!
//! `cargo bench --bench topologies` (starts a primary, a replica and three
//! sentinels, and one server with a Unix socket, on loopback; about
//! 3 minutes on two cores).

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

use cachekit_testkit::{RedisServer, SentinelSet};
use clients::{ours, raw_conn, Lib};
use criterion::Criterion;
use groups::{hit_group, prefill, print_stats, uniform_group, Named, KEYS};
use tokio::runtime::Runtime;

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// cachekit at each of `urls` and raw redis-rs at each of `raw`, opened on
/// the runtime that runs them.
fn libs_on(
    rt: &Runtime,
    urls: &[(&'static str, String)],
    raw: &[(&'static str, String)],
) -> Vec<Named> {
    rt.block_on(async {
        let mut libs = Vec::new();
        for (row, url) in urls {
            libs.push((*row, ours(url, |c| c, true).await));
        }
        for (row, url) in raw {
            libs.push((*row, Lib::Raw(raw_conn(url).await)));
        }
        libs
    })
}

/// One topology against another on the same server: hits, then reads.
fn compare(
    c: &mut Criterion,
    name: &str,
    urls: &[(&'static str, String)],
    raw: &[(&'static str, String)],
) {
    let rt1 = current_thread();
    let hit_libs = libs_on(&rt1, urls, raw);
    prefill(&rt1, &hit_libs, 1);
    hit_group(c, &rt1, &format!("{name}_l2_hit/small"), &hit_libs);
    print_stats(&format!("{name}_l2_hit"), &hit_libs);
    let rt = peers_runtime();
    let libs = libs_on(&rt, urls, raw);
    prefill(&rt, &libs, KEYS);
    uniform_group(c, &rt, &format!("{name}_uniform_reads"), &libs, &[1, 64]);
    print_stats(&format!("{name}_uniform_reads"), &libs);
}

fn peers_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sentinel(c: &mut Criterion) {
    let set = SentinelSet::start();
    let primary = set.primary().url();
    compare(
        c,
        "sentinel",
        &[
            // Sentinel first: in three runs with it second, it was 13-18 %
            // slower on one task; a row's place in the group may be why.
            ("cachekit, redis+sentinel://", set.url()),
            ("cachekit, redis:// to the primary", primary.clone()),
        ],
        &[("raw redis-rs + rmp-serde (baseline)", primary)],
    );
}

fn unix(c: &mut Criterion) {
    let server = RedisServer::builder().unix_socket().start();
    compare(
        c,
        "unix",
        &[
            ("cachekit, redis:// (TCP)", server.url()),
            ("cachekit, unix://", server.unix_url()),
        ],
        &[
            ("raw redis-rs + rmp-serde, TCP (baseline)", server.url()),
            ("raw redis-rs + rmp-serde, unix", server.unix_url()),
        ],
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    sentinel(&mut c);
    unix(&mut c);
    c.final_summary();
}
