//! `#[cached]` L1 hits against the same lookup written by hand and against
//! raw moka, in one run.
//!
//! `cargo bench --bench macro`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use cachekit::keys::KeyCache;
use cachekit::{cached, KeyBuilder, TieredCache};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench_cache() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

fn load(id: u64) -> String {
    format!("user-{id}@example.com, member since 2019, plan: pro")
}

#[cached(backend = bench_cache(), namespace = "bench", name = "user", ttl = 600)]
fn user(id: u64) -> String {
    load(id)
}

fn l1_hit(c: &mut Criterion) {
    let ttl = Some(Duration::from_secs(600));
    // By hand: the same interop key (remembered the same way) and the same
    // TieredCache call the attribute generates.
    let keys = KeyCache::new(KeyBuilder::new("bench", "user_by_hand").unwrap());
    let by_hand = TieredCache::builder().build().unwrap();
    // What a user would write without cachekit: moka keyed by the argument.
    let raw: moka::sync::Cache<u64, String> = moka::sync::Cache::new(10_000);
    raw.insert(42, load(42));
    // Warm every variant.
    assert_eq!(user(42), load(42));
    let key = keys.key(&(42u64,)).unwrap();
    by_hand.get_or_compute_blocking(&key, ttl, || load(42));

    let mut group = c.benchmark_group("macro_l1_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("moka_get_clone (baseline)", |b| {
        b.iter(|| black_box(raw.get(&black_box(42u64))))
    });
    group.bench_function("hand_written_tiered", |b| {
        b.iter(|| {
            let key = keys.key(&(black_box(42u64),)).unwrap();
            black_box(by_hand.get_or_compute_blocking(&key, ttl, || load(42)))
        })
    });
    group.bench_function("cached_fn", |b| b.iter(|| black_box(user(black_box(42)))));
    group.finish();
    assert!(
        user_cache().stats().computes <= 1,
        "the cached fn was not hitting L1"
    );
}

criterion_group!(benches, l1_hit);
criterion_main!(benches);
