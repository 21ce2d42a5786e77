//! The file backend: get and set of 1 KiB and 64 KiB values, durable and
//! not, at 1k and 100k entries (set time must not grow with the count).
//!
//! `cargo bench --bench file`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use cachekit::{Backend, FileBackend, FileConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

const HOT_KEYS: usize = 1000;

fn open(dir: &std::path::Path, durable: bool) -> FileBackend {
    let config = FileConfig::builder()
        .dir(dir)
        .max_entries(1_000_000)
        .max_bytes(4 << 30)
        .max_value_size(1 << 20)
        .durable(durable)
        .build()
        .unwrap();
    FileBackend::open(config).unwrap()
}

/// Fills `entries` 1 KiB entries (the hot set among them).
fn fill(rt: &Runtime, backend: &FileBackend, entries: usize) {
    let value = Bytes::from(vec![b'f'; 1024]);
    let keys: Vec<String> = (0..entries).map(|i| format!("bench:{i}")).collect();
    for chunk in keys.chunks(1000) {
        let batch: Vec<(&str, Bytes)> = chunk.iter().map(|k| (k.as_str(), value.clone())).collect();
        rt.block_on(backend.set_many(&batch, None)).unwrap();
    }
}

fn file(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for entries in [1_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        fill(&rt, &open(dir.path(), false), entries);
        // Flush the fill's dirty pages first, so that background writeback
        // does not land inside the measurements.
        let _ = std::process::Command::new("sync").status();
        for durable in [false, true] {
            let backend = open(dir.path(), durable);
            let mode = if durable { "durable" } else { "fast" };
            for size in [1024usize, 64 * 1024] {
                let value = Bytes::from(vec![b'v'; size]);
                let mut group = c.benchmark_group(format!("file_{mode}_{size}B"));
                group.throughput(Throughput::Elements(1));
                group.sample_size(if durable { 10 } else { 30 });
                let mut i = 0usize;
                group.bench_with_input(BenchmarkId::new("set", entries), &entries, |b, _| {
                    b.to_async(&rt).iter(|| {
                        i = (i + 1) % HOT_KEYS;
                        let key = format!("bench:{i}");
                        let (backend, value) = (&backend, value.clone());
                        async move { backend.set(&key, value, None).await.unwrap() }
                    })
                });
                let mut j = 0usize;
                group.bench_with_input(BenchmarkId::new("get", entries), &entries, |b, _| {
                    b.to_async(&rt).iter(|| {
                        j = (j + 1) % HOT_KEYS;
                        let key = format!("bench:{j}");
                        let backend = &backend;
                        async move { black_box(backend.get(&key).await.unwrap()) }
                    })
                });
                group.finish();
            }
        }
    }
}

criterion_group!(benches, file);
criterion_main!(benches);
