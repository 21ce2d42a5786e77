//! The two measurements the topology, cluster and connection-layer benches
//! share, on the clients of `clients.rs`: the time of one L2 hit
//! (L1 off) taken one call at a time, as the peers bench's scenario 2
//! takes it, and reads of keys drawn uniformly from 10k stored ones on
//! many tasks, as its L2 scaling group does.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

use std::sync::atomic::Ordering::Relaxed;

use super::clients::{run_tasks, Lib, Mix, READ_MISSES};

/// Prints what each cachekit row's cache counted, and the reads that
/// computed (every key is stored before the clock starts, so a read that
/// computes is an L2 hit lost): proof that the rows measured Redis hits.
pub fn print_stats(what: &str, libs: &[Named]) {
    let misses: Vec<u64> = READ_MISSES.iter().map(|m| m.load(Relaxed)).collect();
    println!("{what}: reads that computed [cachekit rows, -, -, raw rows]: {misses:?}");
    for (row, lib) in libs {
        if let Lib::Ours(cache, _) = lib {
            let s = cache.stats();
            println!(
                "{what} [{row}]: L2 hits {} misses {} errors {} timeouts {} skipped {}, computes {}",
                s.l2.hits, s.l2.misses, s.l2.errors, s.l2.timeouts, s.l2.skipped, s.computes
            );
        }
    }
}

/// A library under its row name in the group.
pub type Named = (&'static str, Lib);

/// The keys the uniform reads draw from (`clients::run_tasks`).
pub const KEYS: u64 = 10_000;

/// Stores ids `0..keys` with every library, so that reads are hits.
pub fn prefill(rt: &Runtime, libs: &[Named], keys: u64) {
    rt.block_on(async {
        for (row, lib) in libs {
            eprintln!("storing {keys} values with {row}");
            let mut lib = lib.clone();
            for id in 0..keys {
                lib.write(id).await;
            }
        }
    });
}

/// Time per L2 hit of id 0, one call at a time, on `rt1` (a current-thread
/// runtime, where the libraries' connections were opened).
pub fn hit_group(c: &mut Criterion, rt1: &Runtime, name: &str, libs: &[Named]) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    for (row, lib) in libs {
        g.bench_function(*row, |b| {
            b.to_async(rt1).iter_custom(|iters| {
                let mut lib = lib.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(lib.read(0).await);
                    }
                    start.elapsed()
                }
            })
        });
    }
    g.finish();
}

/// Reads of keys drawn uniformly from [`KEYS`] on each task count in
/// `tasks`, all libraries at one count before the next.
pub fn uniform_group(c: &mut Criterion, rt: &Runtime, name: &str, libs: &[Named], tasks: &[u64]) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    for &count in tasks {
        for (row, lib) in libs {
            g.bench_with_input(BenchmarkId::new(*row, count), &count, |b, &t| {
                b.iter_custom(|iters| run_tasks(rt, iters, t, lib, &Mix::Uniform))
            });
        }
    }
    g.finish();
}
