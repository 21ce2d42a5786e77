//! cachekit against its peers, one criterion group per scenario so every
//! ratio comes from one run on one machine and one Redis server:
//!
//! 1. memoized L1 hit: cachekit `#[cached]`, `cached`'s `#[cached]`, raw moka;
//! 2. Redis hit, no L1: cachekit, `cached`'s `AsyncRedisCache`, cachekit-rs,
//!    raw redis-rs GET + rmp-serde decode;
//! 3. miss path (GET miss, trivial compute, store): the same four;
//! 4. 64 tasks, 90/10 read/write over 10k Zipf keys: the same four, and
//!    the CPU time per operation of client and server together;
//!
//! then scenarios 2 and 3 once more with the libraries taking turns (see
//! `peers/interleaved.rs`), the CPU time per read of uniformly drawn keys
//! on 64 tasks (on two workers, and on one), L1 hits on 1-8 threads, L2
//! hits on 1-256 tasks, and the resident memory of 100k 1 KiB L1 entries
//! against the configured budget.
//!
//! `cargo bench -p cachekit-peers --bench peers` (starts its own
//! redis-server on loopback; 13-18 minutes on two cores). At the end it
//! prints the tables of `docs/performance.md` from criterion's saved
//! medians; `scripts/peers-chart.py` draws them as `docs/peers.svg`.
//! `PEERS_GROUPS_ONLY=1` skips the reports outside criterion's groups,
//! for a run of a few groups picked with a criterion filter.
//!
//! A package of its own (`benches/peers/Cargo.toml`, not published), so
//! that the peers and what they pull in (native-tls, fred) are built only
//! for this bench and `callcount`, not for `cachekit`'s tests and examples.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/clients.rs"]
mod clients;
mod cpu;
mod interleaved;
mod libs;
mod report;
mod scaling;
#[path = "../common/values.rs"]
mod values;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use cachekit_testkit::RedisServer;
use criterion::{Criterion, Throughput};
use serde::Serialize;
use tokio::runtime::Runtime;

use clients::{raw_conn, raw_memo, Mix, READ_MISSES};
use libs::*;
use values::{large, small, Large, Small, Zipf};

pub struct Fixture {
    /// Scenarios 4 and the L2 scaling: many tasks on two workers.
    rt: Runtime,
    /// Scenarios 2 and 3 time one call at a time; on a current-thread
    /// runtime the caller drives the socket itself, so a call is not also
    /// paying for a wake-up of another thread on a busy 2-core machine.
    rt1: Runtime,
    server: RedisServer,
    ckrs: Arc<cachekit_rs::CacheKit>,
    raw: redis::aio::MultiplexedConnection,
}

/// A multi-threaded runtime with `workers` workers and its drivers on.
pub fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

impl Fixture {
    fn start() -> Self {
        let server = RedisServer::start();
        URL.set(server.url()).unwrap();
        let rt = runtime(2);
        let rt1 = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ckrs, raw) = rt1.block_on(async {
            (
                ckrs_client(&server.url()).await,
                raw_conn(&server.url()).await,
            )
        });
        Fixture {
            rt,
            rt1,
            server,
            ckrs,
            raw,
        }
    }

    /// Each miss-path bench starts from an empty server, so the keys it
    /// leaves behind do not pile up in memory for the next one.
    fn flush(&self) {
        self.server.command(&["FLUSHALL"]);
    }
}

fn l1_hit(c: &mut Criterion) {
    fn group<T: Clone + Send + Sync + 'static>(
        c: &mut Criterion,
        name: &str,
        ours: fn(u64) -> T,
        theirs: fn(u64) -> T,
        make: fn(u64) -> T,
    ) {
        let raw: moka::sync::Cache<u64, T> = moka::sync::Cache::new(10_000);
        raw.insert(1, make(1));
        ours(1);
        theirs(1);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        // Nanoseconds per call: a longer window costs little and evens out
        // a noisy VM's slow seconds.
        g.measurement_time(Duration::from_secs(5));
        g.bench_function("cachekit", |b| b.iter(|| black_box(ours(black_box(1)))));
        g.bench_function("cached", |b| b.iter(|| black_box(theirs(black_box(1)))));
        g.bench_function("moka get+clone (baseline)", |b| {
            b.iter(|| black_box(raw.get(&black_box(1))))
        });
        g.finish();
    }
    group(c, "s1_l1_hit/small", ours_small_l1, cached_small_l1, small);
    group(
        c,
        "s1_l1_hit/16KiB",
        ours_large_l1,
        cached_large_l1,
        compute_large,
    );
    assert_eq!(ours_small_l1_cache().stats().computes, 1, "not L1 hits");
    assert_eq!(ours_large_l1_cache().stats().computes, 1, "not L1 hits");
}

/// The libraries of scenarios 2 and 3, in table order; [`Calls::call`]
/// takes an index into this.
pub const L2_LIBS: [&str; 4] = [
    "cachekit",
    "cached",
    "cachekit-rs",
    "raw redis-rs + rmp-serde (baseline)",
];

type Call<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The memoized calls of one value type.
pub struct Calls<T> {
    label: &'static str,
    ours: fn(u64) -> Call<T>,
    theirs: fn(u64) -> Call<T>,
    operation: &'static str,
    compute: fn(u64) -> T,
}

impl<T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> Calls<T> {
    /// One call of library `lib` (an index into [`L2_LIBS`]) for `id`.
    pub fn call(&self, f: &Fixture, lib: usize, id: u64) -> Call<T> {
        let compute = self.compute;
        match lib {
            0 => (self.ours)(id),
            1 => (self.theirs)(id),
            2 => {
                let ckrs = f.ckrs.clone();
                let operation = self.operation;
                Box::pin(async move { ckrs_memo(&ckrs, operation, id, compute).await })
            }
            _ => {
                let mut raw = f.raw.clone();
                let key = format!("raw:{}:{id}", self.label);
                Box::pin(async move { raw_memo(&mut raw, &key, id, compute).await })
            }
        }
    }
}

fn l2_group<T>(c: &mut Criterion, f: &Fixture, name: &str, calls: &Calls<T>, miss: bool)
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    // Hits reuse id 1 (stored once up front); misses take a fresh id per call.
    let next = AtomicU64::new(1_000_000);
    let id = || if miss { next.fetch_add(1, Relaxed) } else { 1 };
    if !miss {
        f.rt1.block_on(async {
            for lib in 0..L2_LIBS.len() {
                calls.call(f, lib, 1).await;
            }
        });
    }
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    for (lib, name) in L2_LIBS.iter().enumerate() {
        let mut flushed = false;
        g.bench_function(*name, |b| {
            // Misses start from an empty server, once per bench, not per
            // sample: a FLUSHALL before every sample perturbed the samples
            // that followed it.
            if miss && !flushed {
                f.flush();
                flushed = true;
            }
            b.to_async(&f.rt1).iter(|| calls.call(f, lib, id()))
        });
    }
    g.finish();
    if miss {
        f.flush();
    }
}

fn small_calls() -> Calls<Small> {
    Calls {
        label: "small",
        ours: |id| Box::pin(ours_small_l2(id)),
        theirs: |id| Box::pin(async move { cached_small_l2(id).await.expect("cached") }),
        operation: "small",
        compute: small,
    }
}

fn large_calls() -> Calls<Large> {
    Calls {
        label: "large",
        ours: |id| Box::pin(ours_large_l2(id)),
        theirs: |id| Box::pin(async move { cached_large_l2(id).await.expect("cached") }),
        operation: "large",
        compute: compute_large,
    }
}

fn redis_scenarios(c: &mut Criterion, f: &Fixture) {
    l2_group(c, f, "s2_l2_hit/small", &small_calls(), false);
    l2_group(c, f, "s2_l2_hit/16KiB", &large_calls(), false);
    l2_group(c, f, "s3_miss/small", &small_calls(), true);
    l2_group(c, f, "s3_miss/16KiB", &large_calls(), true);
    for (name, handle) in [
        ("small", ours_small_l2_cache()),
        ("16KiB", ours_large_l2_cache()),
    ] {
        let stats = handle.cache().unwrap().stats();
        assert_eq!(
            stats.l1.hits + stats.l1.misses,
            0,
            "cachekit's L1 was meant to be off"
        );
        print_l2_stats(&format!("s2+s3 {name}"), &stats);
    }
}

fn mixed(c: &mut Criterion, f: &Fixture, libs: &[(&'static str, Lib)]) {
    let zipf = Mix::Zipf90(Arc::new(Zipf::new(10_000, 1.0)));
    // Every key exists before the clock starts, so reads are hits unless a
    // library loses one.
    f.rt.block_on(async {
        for (_, lib) in libs {
            let mut lib = lib.clone();
            for id in 0..10_000 {
                lib.write(id).await;
            }
        }
    });
    let mut g = c.benchmark_group("s4_mixed_64_tasks");
    g.throughput(Throughput::Elements(1));
    for (name, lib) in libs {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| clients::run_tasks(&f.rt, iters, 64, lib, &zipf))
        });
    }
    g.finish();
}

/// Proof that cachekit's numbers are Redis round trips: a call that timed
/// out or was skipped (breaker, in-flight bound) would be fail-open and fast.
fn print_l2_stats(what: &str, stats: &cachekit::TieredStats) {
    let l2 = &stats.l2;
    println!(
        "cachekit {what}: L2 hits {} misses {} sets {} errors {} timeouts {} skipped {}, computes {}, reads that joined another task's read of the same key {}",
        l2.hits, l2.misses, l2.sets, l2.errors, l2.timeouts, l2.skipped, stats.computes, stats.coalesced
    );
}

fn ours_stats(what: &str, libs: &[(&'static str, Lib)]) {
    let misses: Vec<u64> = READ_MISSES.iter().map(|m| m.load(Relaxed)).collect();
    println!("{what}: reads that computed [cachekit (all variants), cached, cachekit-rs, raw]: {misses:?}");
    for (name, lib) in libs {
        if let Lib::Ours(cache, _) = lib {
            print_l2_stats(&format!("{what} [{name}]"), &cache.stats());
        }
    }
}

fn sizes() {
    let small = rmp_serde::to_vec(&small(1)).unwrap().len();
    let large = rmp_serde::to_vec(&large(1)).unwrap().len();
    println!("values as MessagePack: small {small} B, large {large} B");
}

/// Set (to anything) to run criterion's groups alone:
/// `PEERS_GROUPS_ONLY=1 cargo bench -p cachekit-peers --bench peers -- 'scaling_l2_hit_tasks'`.
const GROUPS_ONLY: &str = "PEERS_GROUPS_ONLY";

fn main() {
    if let Ok(mib) = std::env::var(scaling::MEMORY_CASE) {
        scaling::measure_memory_case(mib.parse().unwrap_or(64));
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    // With a criterion filter, the reports outside criterion's groups
    // (memory, taking turns, CPU rounds) can be skipped, so that a few
    // groups take minutes rather than the whole run's quarter of an hour.
    let reports = std::env::var_os(GROUPS_ONLY).is_none();
    sizes();
    if reports {
        scaling::memory_report();
    }
    let f = Fixture::start();
    l1_hit(&mut c);
    redis_scenarios(&mut c, &f);
    if reports {
        interleaved::report(&f, &small_calls(), &large_calls());
    }
    let libs = f.rt.block_on(libs(&f.server.url()));
    mixed(&mut c, &f, &libs);
    ours_stats("s4", &libs);
    if reports {
        cpu::report(&f.rt, &libs, f.server.pid());
        cpu::report_one_worker(&f.server.url(), f.server.pid());
    }
    scaling::l1_threads(&mut c);
    scaling::l2_tasks(&mut c, &f.rt, &libs);
    ours_stats("s4 + L2 scaling", &libs);
    c.final_summary();
    report::print_tables();
}
