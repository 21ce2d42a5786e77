//! Interop values (issue 29) against cachekit's envelope, and encryption
//! against no encryption, in one run.
//!
//! `cargo bench --bench interop` (starts its own redis-server on loopback).
//!
//! - `interop_l2_hit` / `interop_l2_hit_memory` / `interop_l1_hit`: a
//!   ~100-byte row read through `TieredCache::get`, from Redis with L1 off,
//!   from an in-memory L2 with L1 off (the decode without a network's
//!   noise), then from L1; the envelope is the baseline.
//! - `encryption`: one `set` and one `get` of a 1 KiB and a 64 KiB value
//!   through `TieredCache` over an in-memory L2 with L1 off: encode,
//!   (seal,) store, fetch, (open,) decode, without a network's noise. The
//!   unencrypted run of each format is the baseline of its encrypted run.
//!   The values are seeded random letters, which LZ4 cannot shrink, so the
//!   envelope stores (and seals) as many bytes as interop does.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cachekit::{
    Backend, Codec, Encryption, MemoryBackend, RedisBackend, RedisConfig, TieredCache,
    TieredCacheBuilder, ValueFormat,
};
use cachekit_testkit::RedisServer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const TTL: Option<Duration> = Some(Duration::from_secs(3600));
/// A fixed master key: the bench measures the cipher, not key handling.
const MASTER_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// About 100 bytes in either format: a small row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    email: String,
    active: bool,
    score: f64,
    roles: Vec<String>,
}

fn row() -> Row {
    Row {
        id: 42,
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        active: true,
        score: 98.25,
        roles: vec!["admin".into(), "editor".into(), "viewer".into()],
    }
}

struct Fixture {
    rt: Runtime,
    _server: RedisServer,
    redis: Arc<RedisBackend>,
}

fn fixture() -> Fixture {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = RedisConfig::builder().url(server.url()).build().unwrap();
    let redis = Arc::new(rt.block_on(RedisBackend::new(config)).unwrap());
    Fixture {
        rt,
        _server: server,
        redis,
    }
}

/// The envelope (baseline) and the interop cache, built alike by `build`.
fn both_formats(build: impl Fn() -> TieredCacheBuilder) -> [(&'static str, TieredCache); 2] {
    [
        ("envelope (baseline)", build().build().unwrap()),
        ("interop", build().interop().build().unwrap()),
    ]
}

fn l2_hit(c: &mut Criterion, f: &Fixture) {
    l2_hit_on(c, f, "interop_l2_hit", f.redis.clone());
    // The same read without the network's noise: what the format costs.
    let memory = Arc::new(MemoryBackend::builder().build().unwrap());
    l2_hit_on(c, f, "interop_l2_hit_memory", memory);
}

fn l2_hit_on(c: &mut Criterion, f: &Fixture, group: &str, l2: Arc<dyn Backend>) {
    let caches = both_formats(|| TieredCache::builder().without_l1().l2_arc(l2.clone()));
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    for (name, cache) in &caches {
        let key = format!("bench:l2:{name}");
        f.rt.block_on(cache.set(&key, &row(), TTL)).unwrap();
        assert_eq!(f.rt.block_on(cache.get::<Row>(&key)), Some(row()));
        group.bench_function(*name, |b| {
            b.to_async(&f.rt)
                .iter(|| async { black_box(cache.get::<Row>(black_box(&key)).await) })
        });
        let stats = cache.stats();
        assert_eq!(
            (stats.l2.misses, stats.l2.foreign),
            (0, 0),
            "{name}: {stats:?}"
        );
    }
    group.finish();
}

fn l1_hit(c: &mut Criterion, f: &Fixture) {
    let caches = both_formats(|| {
        TieredCache::builder()
            .l2_arc(f.redis.clone())
            .l1_invalidation(false)
    });
    let mut group = c.benchmark_group("interop_l1_hit");
    group.throughput(Throughput::Elements(1));
    for (name, cache) in &caches {
        let key = format!("bench:l1:{name}");
        f.rt.block_on(cache.set(&key, &row(), TTL)).unwrap();
        assert_eq!(f.rt.block_on(cache.get::<Row>(&key)), Some(row()));
        let l2_reads = cache.stats().l2.hits + cache.stats().l2.misses;
        group.bench_function(*name, |b| {
            b.to_async(&f.rt)
                .iter(|| async { black_box(cache.get::<Row>(black_box(&key)).await) })
        });
        let stats = cache.stats();
        assert_eq!(
            stats.l2.hits + stats.l2.misses,
            l2_reads,
            "{name}: read L2: {stats:?}"
        );
    }
    group.finish();
}

fn encryption(c: &mut Criterion, f: &Fixture) {
    let enc = Encryption::from_hex(MASTER_HEX, "bench").unwrap();
    let memory = || {
        TieredCache::builder()
            .without_l1()
            .l2(MemoryBackend::builder().build().unwrap())
    };
    let caches = [
        ("envelope (baseline)", memory().build().unwrap()),
        (
            "envelope_encrypted",
            memory().encryption(enc.clone()).build().unwrap(),
        ),
        ("interop (baseline)", memory().interop().build().unwrap()),
        (
            "interop_encrypted",
            memory().interop().encryption(enc.clone()).build().unwrap(),
        ),
    ];
    let mut rng = fastrand::Rng::with_seed(29);
    let mut group = c.benchmark_group("encryption");
    for size in [1024usize, 64 * 1024] {
        let value: String = (0..size).map(|_| rng.alphanumeric()).collect();
        group.throughput(Throughput::Bytes(size as u64));
        for (name, cache) in &caches {
            let key = format!("bench:enc:{name}:{size}");
            f.rt.block_on(cache.set(&key, &value, TTL)).unwrap();
            assert_eq!(
                f.rt.block_on(cache.get::<String>(&key)).as_ref(),
                Some(&value)
            );
            group.bench_with_input(BenchmarkId::new(*name, size), &value, |b, value| {
                b.to_async(&f.rt).iter(|| async {
                    cache.set(&key, black_box(value), TTL).await.unwrap();
                    black_box(cache.get::<String>(&key).await)
                })
            });
        }
    }
    group.finish();
    for (name, cache) in &caches {
        let stats = cache.stats();
        assert_eq!(
            (stats.l2.misses, stats.l2.undecryptable, stats.l2.foreign),
            (0, 0, 0),
            "{name}: {stats:?}"
        );
    }
}

fn benches(c: &mut Criterion) {
    let codec = Codec::default();
    let sizes = [ValueFormat::Envelope, ValueFormat::Interop]
        .map(|format| codec.encode_as(format, &row()).unwrap().len());
    eprintln!(
        "row: {} bytes as an envelope, {} as interop",
        sizes[0], sizes[1]
    );
    let f = fixture();
    l2_hit(c, &f);
    l1_hit(c, &f);
    encryption(c, &f);
}

criterion_group!(interop_benches, benches);
criterion_main!(interop_benches);
