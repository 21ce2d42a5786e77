//! What cross-process L1 invalidation costs: L1 hits (through `TieredCache`
//! and through `#[cached]`), L2 hits and writes, with the invalidation
//! channel live against the same with it off (the baseline), in one run;
//! and the same for deletion marks on the read-through miss path.
//!
//! `cargo bench --bench invalidation` (starts its own redis-server)

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachekit::{cached, derive_key, ChannelState, RedisBackend, RedisConfig, TieredCache};
use cachekit_redis::BenchSwitches;
use cachekit_testkit::RedisServer;
use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;

const TTL: Option<Duration> = Some(Duration::from_secs(3600));

/// The URL of the server `main` started (and stops when done: a server in
/// a static would outlive the bench and load the machine for the next).
static URL: OnceLock<String> = OnceLock::new();

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn backend(marks: bool) -> RedisBackend {
    let mut switches = BenchSwitches::default();
    if !marks {
        switches = switches.without_deletion_marks();
    }
    let config = RedisConfig::builder()
        .url(URL.get().unwrap())
        .bench_switches(switches)
        .build()
        .unwrap();
    runtime().block_on(RedisBackend::new(config)).unwrap()
}

/// A cache on Redis with invalidation `on` (waiting until the channel is
/// live) or off.
fn cache(on: bool, l1: bool) -> TieredCache {
    let mut builder = TieredCache::builder().l2(backend(true)).l1_invalidation(on);
    if !l1 {
        builder = builder.without_l1();
    }
    let cache = builder.build().unwrap();
    if on && l1 {
        let start = Instant::now();
        while cache.stats().invalidation.state != ChannelState::Live {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "channel never came up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    cache
}

fn l1_hit(c: &mut Criterion) {
    let key = derive_key("bench", "inv", &(42u64,)).unwrap();
    let value = "user-42@example.com, member since 2019, plan: pro".to_owned();
    let off = cache(false, true);
    let on = cache(true, true);
    for cache in [&off, &on] {
        runtime().block_on(cache.set(&key, &value, TTL)).unwrap();
        // The echo of our own write drops the entry; read it back into L1.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get_blocking::<String>(&key), Some(value.clone()));
    }
    let mut group = c.benchmark_group("invalidation_l1_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tiered_get_blocking_off (baseline)", |b| {
        b.iter(|| black_box(off.get_blocking::<String>(black_box(&key))))
    });
    group.bench_function("tiered_get_blocking_on", |b| {
        b.iter(|| black_box(on.get_blocking::<String>(black_box(&key))))
    });
    group.bench_function("cached_fn_off (baseline)", |b| {
        b.iter(|| black_box(user_off(black_box(42))))
    });
    group.bench_function("cached_fn_on", |b| {
        b.iter(|| black_box(user_on(black_box(42))))
    });
    group.finish();
    assert_eq!(on.stats().l1.misses, 0, "the _on row missed L1");
    // At most one: none under `--list`.
    let computes = user_on_cache().stats().computes;
    assert!(computes <= 1, "the cached fn recomputed: {computes}");
}

fn macro_cache(on: bool) -> cachekit::Result<TieredCache> {
    Ok(cache(on, true))
}

fn load(id: u64) -> String {
    format!("user-{id}@example.com, member since 2019, plan: pro")
}

#[cached(backend = macro_cache(false), namespace = "bench", name = "user_off", ttl = 3600)]
fn user_off(id: u64) -> String {
    load(id)
}

#[cached(backend = macro_cache(true), namespace = "bench", name = "user_on", ttl = 3600)]
fn user_on(id: u64) -> String {
    load(id)
}

/// L2 hits (the L1 entry dropped before each read, as an invalidation
/// would) and writes, one call at a time.
fn l2(c: &mut Criterion) {
    let key = derive_key("bench", "inv_l2", &(7u64,)).unwrap();
    let value = "user-7@example.com, member since 2019, plan: pro".to_owned();
    let off = cache(false, true);
    let on = cache(true, true);
    runtime().block_on(off.set(&key, &value, TTL)).unwrap();
    let mut group = c.benchmark_group("invalidation_l2");
    group.throughput(Throughput::Elements(1));
    for (name, cache) in [("hit_off (baseline)", &off), ("hit_on", &on)] {
        group.bench_function(name, |b| {
            b.to_async(runtime()).iter(|| async {
                cache.invalidate_local(&key);
                black_box(cache.get::<String>(&key).await)
            })
        });
    }
    for (name, cache) in [("set_off (baseline)", &off), ("set_on", &on)] {
        group.bench_function(name, |b| {
            b.to_async(runtime())
                .iter(|| async { cache.set(&key, &value, TTL).await.unwrap() })
        });
    }
    group.finish();
}

/// A read-through miss: GET, compute, store; with deletion marks (MGET of
/// the counters, then a checking script) against without (plain SET).
fn miss(c: &mut Criterion) {
    let with = TieredCache::builder()
        .without_l1()
        .l2(backend(true))
        .build()
        .unwrap();
    let without = TieredCache::builder()
        .without_l1()
        .l2(backend(false))
        .build()
        .unwrap();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut group = c.benchmark_group("invalidation_miss");
    group.throughput(Throughput::Elements(1));
    for (name, cache) in [("marks_off (baseline)", &without), ("marks_on", &with)] {
        group.bench_function(name, |b| {
            b.to_async(runtime()).iter(|| async {
                let key = format!("bench:miss:{}", NEXT.fetch_add(1, Relaxed));
                black_box(cache.get_or_compute(&key, TTL, || async { 7u64 }).await)
            })
        });
    }
    group.finish();
    assert_eq!(with.stats().superseded, 0);
}

fn main() {
    let server = RedisServer::start();
    URL.set(server.url()).unwrap();
    let mut c = Criterion::default().configure_from_args();
    l1_hit(&mut c);
    l2(&mut c);
    miss(&mut c);
    c.final_summary();
    drop(server);
}
