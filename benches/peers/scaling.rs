//! Throughput as threads and tasks grow, and what 100k L1 entries cost in
//! resident memory against the byte budget the weigher enforces.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cachekit::TieredCache;
use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

use super::clients::{run_tasks, Mix, SEED};
use super::libs::{cached_small_l1, ours_small_l1, ours_small_l1_cache, Lib};
use super::values::{small, Small};

/// `threads` OS threads share `iters` calls of `op`; returns the wall time.
fn on_threads(iters: u64, threads: u64, op: impl Fn() + Sync) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

pub fn l1_threads(c: &mut Criterion) {
    let raw: moka::sync::Cache<u64, Small> = moka::sync::Cache::new(10_000);
    raw.insert(1, small(1));
    ours_small_l1(1);
    cached_small_l1(1);

    let mut group = c.benchmark_group("scaling_l1_hit_threads");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 2, 4, 8] {
        group.bench_with_input(BenchmarkId::new("cachekit", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                on_threads(iters, t, || {
                    black_box(ours_small_l1(black_box(1)));
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("cached", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                on_threads(iters, t, || {
                    black_box(cached_small_l1(black_box(1)));
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("moka get+clone (baseline)", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(iters, t, || {
                        black_box(raw.get(&black_box(1)));
                    })
                })
            },
        );
    }
    group.finish();
    assert_eq!(ours_small_l1_cache().stats().computes, 1, "not L1 hits");
}

pub fn l2_tasks(c: &mut Criterion, rt: &Runtime, libs: &[(&'static str, Lib)]) {
    // The mixed scenario stored all 10k keys of every library.
    let mut group = c.benchmark_group("scaling_l2_hit_tasks");
    group.throughput(Throughput::Elements(1));
    for tasks in [1u64, 4, 16, 64, 256] {
        for (name, lib) in libs {
            group.bench_with_input(BenchmarkId::new(*name, tasks), &tasks, |b, &t| {
                b.iter_custom(|iters| run_tasks(rt, iters, t, lib, &Mix::Uniform))
            });
        }
    }
    group.finish();
}

// ---- memory -----------------------------------------------------------------

/// The env var that makes the bench binary measure one memory case and exit:
/// a fresh process, so no earlier allocation hides in the RSS.
pub const MEMORY_CASE: &str = "PEERS_MEMORY_BUDGET_MIB";
const ENTRIES: u64 = 100_000;
const VALUE_BYTES: usize = 1024;

fn rss_bytes() -> u64 {
    // statm's second field is resident pages; the kernel page size here is 4 KiB.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// In the child: fill an L1 of `budget_mib` with 100k typed 1 KiB values and
/// print one line: budget, entries kept, bytes the weigher charged, RSS growth.
pub fn measure_memory_case(budget_mib: u64) {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let values: Vec<String> = (0..64)
        .map(|_| (0..VALUE_BYTES).map(|_| rng.alphanumeric()).collect())
        .collect();
    let before = rss_bytes();
    let cache = TieredCache::builder()
        .l1_max_bytes(budget_mib << 20)
        .build()
        .expect("cache");
    for i in 0..ENTRIES {
        let key = format!("peers:mem:{i:08}");
        let value = values[(i % 64) as usize].clone();
        cache
            .set_blocking(&key, &value, Some(Duration::from_secs(600)))
            .expect("set");
    }
    let l1 = cache.l1().expect("l1");
    l1.run_pending_tasks();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "MEMORY budget_bytes={} entries={} charged_bytes={} rss_growth_bytes={}",
        budget_mib << 20,
        l1.entry_count(),
        l1.weighted_size(),
        grown
    );
}

/// In the parent: run each case in a child and print a table.
pub fn memory_report() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    println!("\nL1 memory: {ENTRIES} typed values of {VALUE_BYTES} B (String), fresh process each");
    println!("| L1 budget | entries kept | bytes the weigher charged | RSS growth | RSS / charged | RSS per entry |");
    println!("|---|---|---|---|---|---|");
    for budget_mib in [512u64, 64] {
        let out = std::process::Command::new(&exe)
            .env(MEMORY_CASE, budget_mib.to_string())
            .output();
        let Ok(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with("MEMORY ")) else {
            println!("memory case {budget_mib} MiB failed: {text}");
            continue;
        };
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (budget, entries, charged, rss) = (
            field("budget_bytes"),
            field("entries"),
            field("charged_bytes"),
            field("rss_growth_bytes"),
        );
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "| {:.0} MiB | {entries} | {:.1} MiB | {:.1} MiB | {:.2} | {:.0} B |",
            mib(budget),
            mib(charged),
            mib(rss),
            rss as f64 / charged.max(1) as f64,
            rss as f64 / entries.max(1) as f64,
        );
    }
    println!();
}
