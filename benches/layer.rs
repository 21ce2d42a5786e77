//! The connection layer's hand-written parts against what bb8 and redis-rs
//! provide, in one run on one server, so that each part's keep-or-replace
//! decision rests on a ratio from the same group:
//!
//! - lanes (bb8 connections checked out once and shared) against a bb8
//!   checkout per command, returned before the command is sent (the
//!   multiplexed connection cloned out of it) or held until the reply
//!   (the bb8-redis idiom);
//! - the reply-deadline watchdog thread against a tokio timer per command
//!   (the fallback when the thread cannot start) and against redis-rs's
//!   own `set_response_timeout`;
//! - write coalescing on against off (`coalesce_writes(false)`, which
//!   keeps `TCP_NODELAY`);
//! - all three replaced at once, and raw redis-rs as the floor.
//!
//! The swaps are the hidden, bench-only `RedisConfigBuilder::bench_switches`.
//! Every row is a `TieredCache` without L1 over a `RedisBackend` (breaker
//! and `l2_timeout` on, the defaults), reading keys drawn uniformly from
//! 10k stored ones, as the peers bench's L2 scaling group does, on 1 and
//! 64 tasks over two workers.
//!
//! `cargo bench --bench layer` (starts its own redis-server on loopback;
//! about 2 minutes on two cores).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "common/clients.rs"]
mod clients;
#[allow(dead_code)]
#[path = "common/groups.rs"]
mod groups;
#[allow(dead_code)]
#[path = "common/values.rs"]
mod values;

use std::time::Duration;

use cachekit::RedisConfigBuilder;
use cachekit_redis::{BenchCheckout, BenchDeadlines, BenchSwitches};
use cachekit_testkit::RedisServer;
use clients::{ours, raw_conn, Lib};
use criterion::Criterion;
use groups::{prefill, print_stats, uniform_group, Named, KEYS};

type Tune = fn(RedisConfigBuilder) -> RedisConfigBuilder;

fn swap(deadlines: BenchDeadlines, checkout: BenchCheckout) -> BenchSwitches {
    BenchSwitches::new(deadlines, checkout)
}

/// The rows: cachekit as it ships first, then one part swapped per row.
const VARIANTS: [(&str, Tune); 7] = [
    ("cachekit (lanes, watchdog, coalescing)", |c| c),
    ("bb8 checkout per command, returned before sending", |c| {
        c.bench_switches(swap(BenchDeadlines::Watchdog, BenchCheckout::Bb8PerCommand))
    }),
    ("bb8 checkout per command, held until the reply", |c| {
        c.bench_switches(swap(BenchDeadlines::Watchdog, BenchCheckout::Bb8Held))
    }),
    ("tokio timer per command", |c| {
        c.bench_switches(swap(BenchDeadlines::TokioTimer, BenchCheckout::Lanes))
    }),
    ("redis-rs set_response_timeout", |c| {
        c.bench_switches(swap(BenchDeadlines::RedisRs, BenchCheckout::Lanes))
    }),
    ("coalesce_writes off", |c| c.coalesce_writes(false)),
    (
        "all three replaced (bb8 per command, redis-rs timeout, no coalescing)",
        |c| {
            c.coalesce_writes(false)
                .bench_switches(swap(BenchDeadlines::RedisRs, BenchCheckout::Bb8PerCommand))
        },
    ),
];

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let server = RedisServer::start();
    let rt = scaling_runtime();
    let libs: Vec<Named> = rt.block_on(async {
        let mut libs = Vec::new();
        for (row, tune) in VARIANTS {
            libs.push((row, ours(&server.url(), tune, true).await));
        }
        libs.push((
            "raw redis-rs + rmp-serde",
            Lib::Raw(raw_conn(&server.url()).await),
        ));
        libs
    });
    prefill(&rt, &libs, KEYS);
    uniform_group(&mut c, &rt, "layer_uniform_reads", &libs, &[1, 64]);
    print_stats("layer_uniform_reads", &libs);
    c.final_summary();
}

fn scaling_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
