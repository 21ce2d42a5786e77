//! `#[cached]` L1 hits against the same lookup written by hand and against
//! raw moka, in one run.
//!
//! `cargo bench --bench macro`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use cachekit::__private::remembered::{Probe, RecentCalls, Want};
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
    // TieredCache calls the attribute generates: the remembered L1 entry
    // first, then the full lookup.
    let keys = RecentCalls::new(KeyBuilder::new("bench", "user_by_hand").unwrap());
    let by_hand = TieredCache::builder().build().unwrap();
    // (The attribute also encodes a `u64` argument without serde, which
    // hand-written code through the public API does not.)
    let by_hand_entry = |id: u64| -> String {
        let call = match keys.probe_args(Want::Entry, &(id,)).unwrap() {
            Probe::Remembered(entry) => {
                if let Some(v) = entry.value::<String>(&by_hand) {
                    return v.clone();
                }
                entry.forget().unwrap()
            }
            Probe::Key(call) => call.unwrap(),
        };
        let v = by_hand.get_or_compute_blocking(call.key(), ttl, || load(id));
        keys.remember(&call, &by_hand);
        v
    };
    // What a user would write without cachekit: moka keyed by the argument.
    let raw: moka::sync::Cache<u64, String> = moka::sync::Cache::new(10_000);
    raw.insert(42, load(42));
    // Warm every variant.
    assert_eq!(user(42), load(42));
    assert_eq!(by_hand_entry(42), load(42));

    let mut group = c.benchmark_group("macro_l1_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("moka_get_clone (baseline)", |b| {
        b.iter(|| black_box(raw.get(&black_box(42u64))))
    });
    group.bench_function("hand_written_remembered_entry", |b| {
        b.iter(|| black_box(by_hand_entry(black_box(42u64))))
    });
    group.bench_function("hand_written_tiered", |b| {
        b.iter(|| {
            let Ok(Probe::Key(Some(call))) = keys.probe_args(Want::Key, &(black_box(42u64),))
            else {
                unreachable!("asked for the key")
            };
            black_box(by_hand.get_or_compute_blocking(call.key(), ttl, || load(42)))
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
