//! What publishing metrics costs per hit: caches (and a `#[cached]`
//! function) whose handles went to a Prometheus recorder against the same
//! ones built with no recorder installed (the baseline), in one run.
//!
//! `cargo bench --bench metrics`. The cost of the `metrics` feature itself
//! with no recorder is below what timings on a VM resolve; it is counted
//! in instructions by `scripts/metrics-callcount.sh` (`docs/performance.md`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cachekit::{cached, MemoryBackend, TieredCache};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

const TTL: Option<Duration> = Some(Duration::from_secs(600));

fn load(id: u64) -> String {
    format!("user-{id}@example.com, member since 2019, plan: pro")
}

fn make_plain() -> cachekit::Result<TieredCache> {
    TieredCache::builder().name("plain").build()
}

/// Built inside `with_local_recorder` (its first call is), so its handles
/// are the Prometheus recorder's.
fn make_published() -> cachekit::Result<TieredCache> {
    TieredCache::builder().name("published").build()
}

#[cached(backend = make_plain(), namespace = "bench", name = "plain", ttl = 600)]
fn plain(id: u64) -> String {
    load(id)
}

#[cached(backend = make_published(), namespace = "bench", name = "published", ttl = 600)]
fn published(id: u64) -> String {
    load(id)
}

fn recorder() -> Arc<PrometheusRecorder> {
    Arc::new(PrometheusBuilder::new().build_recorder())
}

fn caches(recorder: &PrometheusRecorder, l1: bool) -> [(&'static str, TieredCache); 2] {
    let build = || {
        let builder = TieredCache::builder()
            .l2(MemoryBackend::builder().build().unwrap())
            .l1_invalidation(false);
        let builder = if l1 { builder } else { builder.without_l1() };
        builder.build().unwrap()
    };
    [
        ("no_recorder (baseline)", build()),
        ("prometheus", metrics::with_local_recorder(recorder, build)),
    ]
}

fn hits(c: &mut Criterion) {
    let recorder = recorder();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    assert_eq!(plain(42), load(42));
    metrics::with_local_recorder(&*recorder, || assert_eq!(published(42), load(42)));
    let mut group = c.benchmark_group("metrics_macro_l1_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_recorder (baseline)", |b| {
        b.iter(|| black_box(plain(black_box(42))))
    });
    group.bench_function("prometheus", |b| {
        b.iter(|| black_box(published(black_box(42))))
    });
    group.finish();
    assert!(recorder
        .handle()
        .render()
        .contains("cachekit_function_calls_total"));

    for (group_name, l1) in [("metrics_l1_hit", true), ("metrics_l2_hit", false)] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for (name, cache) in caches(&recorder, l1) {
            rt.block_on(cache.set("k", &load(1), TTL)).unwrap();
            group.bench_function(name, |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(cache.get::<String>(black_box("k")).await) })
            });
            assert!(cache.stats().l1.hits + cache.stats().l2.hits > 0);
        }
        group.finish();
    }
}

criterion_group!(benches, hits);
criterion_main!(benches);
