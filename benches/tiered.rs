//! Hot paths of the core: L1 hits against raw moka, key derivation, codec.
//!
//! `cargo bench --bench tiered`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use cachekit::__private::remembered::{CallKey, Probe, RecentCalls, Want};
use cachekit::{derive_key, Codec, CodecConfig, KeyBuilder, TieredCache};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};

/// About 200 bytes when encoded: a typical "user profile" row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    score: f64,
    active: bool,
    bio: String,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        roles: vec!["admin".into(), "editor".into(), "viewer".into()],
        score: 98.25,
        active: true,
        bio: "Writes caches for a living; ".repeat(3),
    }
}

fn l1_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let value = profile();
    let key = derive_key("bench", "profile", &(42u64,)).unwrap();

    let raw: moka::sync::Cache<String, Profile> = moka::sync::Cache::new(10_000);
    raw.insert(key.clone(), value.clone());

    let cache = TieredCache::builder().build().unwrap();
    rt.block_on(cache.set(&key, &value, Some(Duration::from_secs(3600))))
        .unwrap();

    let mut group = c.benchmark_group("l1_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("moka_get_clone (baseline)", |b| {
        b.iter(|| black_box(raw.get(black_box(key.as_str()))))
    });
    // The same baseline through criterion's async runner, which adds a poll
    // of its own: compare the async variants below with this one.
    group.bench_function("moka_get_clone_async (baseline)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(raw.get(black_box(key.as_str()))) })
    });
    group.bench_function("tiered_get_blocking", |b| {
        b.iter(|| black_box(cache.get_blocking::<Profile>(black_box(&key))))
    });
    group.bench_function("tiered_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cache.get::<Profile>(black_box(&key)).await) })
    });
    group.bench_function("tiered_get_or_compute", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                cache
                    .get_or_compute(black_box(&key), None, || async { profile() })
                    .await,
            )
        })
    });
    group.finish();
}

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_derivation");
    group.throughput(Throughput::Elements(1));
    let builder = KeyBuilder::new("bench", "lookup").unwrap();
    group.bench_function("1_arg", |b| b.iter(|| builder.key(black_box(&(42u64,)))));
    group.bench_function("3_args", |b| {
        b.iter(|| builder.key(black_box(&(42u64, "alice@example.com", true))))
    });
    let ten = (
        1u64,
        -2i32,
        "three",
        4.5f64,
        true,
        Option::<u8>::None,
        vec![7u8, 8, 9],
        "ten-ish string argument",
        11u16,
        [12i64, 13],
    );
    group.bench_function("10_args", |b| b.iter(|| builder.key(black_box(&ten))));
    // What `#[cached]` does: the same keys, remembered by argument bytes.
    let remembered = RecentCalls::new(builder.clone());
    group.bench_function("1_arg_remembered", |b| {
        b.iter(|| remembered_key(&remembered, black_box(&(42u64,))))
    });
    group.bench_function("3_args_remembered", |b| {
        b.iter(|| remembered_key(&remembered, black_box(&(42u64, "alice@example.com", true))))
    });
    group.bench_function("derive_key_3_args_unvalidated_builder", |b| {
        b.iter(|| {
            derive_key(
                "bench",
                "lookup",
                black_box(&(42u64, "alice@example.com", true)),
            )
        })
    });
    group.finish();
}

/// The key of `args` as a `#[cached]` function finds it.
fn remembered_key<A: Serialize>(remembered: &RecentCalls, args: &A) -> CallKey {
    match remembered.probe_args(Want::Key, args) {
        Ok(Probe::Key(Some(call))) => call,
        _ => unreachable!("asked for the key"),
    }
}

fn codec(c: &mut Criterion) {
    let codec = Codec::new(CodecConfig::default());
    let mut group = c.benchmark_group("codec");
    for size in [64usize, 1024, 64 * 1024, 1024 * 1024] {
        // Text-like content: compressible, as most cached payloads are.
        let value: String = "cachekit benchmark payload; "
            .chars()
            .cycle()
            .take(size)
            .collect();
        let encoded = codec.encode(&value).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &value, |b, v| {
            b.iter(|| codec.encode(black_box(v)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("decode", size), &encoded, |b, e| {
            b.iter(|| codec.decode::<String>(black_box(e)).unwrap())
        });
    }
    // Random letters: LZ4 cannot shrink them, so the envelope keeps them
    // raw and any compression attempt is pure cost. The baseline is the
    // MessagePack encoding alone.
    let mut rng = fastrand::Rng::with_seed(16);
    for size in [16 * 1024, 1024 * 1024] {
        let random: String = (0..size).map(|_| rng.alphanumeric()).collect();
        let encoded = codec.encode(&random).unwrap();
        let plain = rmp_serde::to_vec(&random).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_incompressible", size),
            &random,
            |b, v| b.iter(|| codec.encode(black_box(v)).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("rmp_serde_encode_incompressible (baseline)", size),
            &random,
            |b, v| b.iter(|| rmp_serde::to_vec(black_box(v)).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("decode_incompressible", size),
            &encoded,
            |b, e| b.iter(|| codec.decode::<String>(black_box(e)).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("rmp_serde_decode_incompressible (baseline)", size),
            &plain,
            |b, p| b.iter(|| rmp_serde::from_slice::<String>(black_box(p)).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, l1_hit, keys, codec);
criterion_main!(benches);
