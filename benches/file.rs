//! The file backend: get and set of 1 KiB and 64 KiB values, durable and
//! not, at 1k and 100k entries (set time must not grow with the count).
//!
//! Each group also runs `raw_set` and `raw_get`: the same system calls on
//! the same directory without cachekit (exclusive create, key attribute,
//! one write, swap into place, remove the old file; open, stat, read), so
//! the ratio shows cachekit's own cost whatever state the filesystem is
//! in. File creation time depends on the filesystem far more than on
//! cachekit: on ext4 without a journal, each create scans past every inode
//! freed in the last minutes, so it grows with recent churn in the
//! directory's block group, shared with everything else on the machine.
//!
//! The non-durable groups also run `set_caller`: a backend with
//! `caller_writes`, which writes on the calling thread instead of the
//! blocking pool. `set` and `set_caller` are driven by criterion's
//! `block_on` on the bench thread, which is no worker: there
//! `block_in_place` only runs the write. `set_worker` and
//! `set_caller_worker` run the same sets in a loop inside one task on a
//! runtime worker, where `block_in_place` first hands the worker's queue
//! to another thread, so that cost is in the figure.
//!
//! The hot keys are rewritten every few milliseconds, so the file a set
//! replaces is still in the page cache and cheap to unlink (5 to 10 µs on
//! ext4). One replaced after its data reached the disk costs 75 to 100 µs
//! to unlink: `raw_set` would pay that inline, both cachekit paths leave
//! it to a blocking thread after answering.
//!
//! `cargo bench --bench file`; the directory is a fresh temp directory
//! under `$CACHEKIT_BENCH_DIR` if set, else the system temp directory.

#![allow(clippy::unwrap_used, missing_docs)]

use std::fs::File;
use std::hint::black_box;
use std::io::{IoSlice, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachekit::{Backend, FileBackend, FileConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, XattrFlags};
use tokio::runtime::Runtime;

const HOT_KEYS: usize = 1000;

fn open(dir: &Path, durable: bool, caller_writes: bool) -> FileBackend {
    let config = FileConfig::builder()
        .dir(dir)
        .max_entries(1_000_000)
        .max_bytes(4 << 30)
        .max_value_size(1 << 20)
        .durable(durable)
        .caller_writes(caller_writes)
        .build()
        .unwrap();
    FileBackend::open(config).unwrap()
}

/// Times `iters` sets of the hot keys from `first` on, run in a loop by
/// one task on a runtime worker thread.
fn sets_on_worker(
    rt: &Runtime,
    backend: &FileBackend,
    value: &Bytes,
    first: usize,
    iters: u64,
) -> Duration {
    let (backend, value) = (backend.clone(), value.clone());
    let task = rt.spawn(async move {
        let started = Instant::now();
        for n in 0..iters {
            let key = format!("bench:{}", (first as u64 + n) % HOT_KEYS as u64);
            backend.set(&key, value.clone(), None).await.unwrap();
        }
        started.elapsed()
    });
    rt.block_on(task).unwrap()
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

/// The hot keys with their entry file names.
fn hot_keys(backend: &FileBackend) -> Vec<(String, String)> {
    (0..HOT_KEYS)
        .map(|i| {
            let key = format!("bench:{i}");
            let path = backend.path_for(&key);
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            (key, name)
        })
        .collect()
}

/// What a set costs without cachekit: the system calls of a replace.
fn raw_set(dir: &File, tmp: &str, (key, name): &(String, String), value: &[u8], durable: bool) {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file =
        File::from(rustix::fs::openat(dir, tmp, flags, Mode::RUSR | Mode::WUSR).unwrap());
    rustix::fs::fsetxattr(
        &file,
        "user.cachekit.key",
        key.as_bytes(),
        XattrFlags::empty(),
    )
    .unwrap();
    let header = *b"CK\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let written = file
        .write_vectored(&[IoSlice::new(&header), IoSlice::new(value)])
        .unwrap();
    assert_eq!(written, header.len() + value.len());
    if durable {
        file.sync_data().unwrap();
    }
    drop(file);
    rustix::fs::renameat_with(dir, tmp, dir, name.as_str(), RenameFlags::EXCHANGE).unwrap();
    if durable {
        rustix::fs::fsync(dir).unwrap();
    }
    rustix::fs::unlinkat(dir, tmp, AtFlags::empty()).unwrap();
}

/// What a get costs without cachekit: open, stat, read.
fn raw_get(dir: &File, name: &str) -> Vec<u8> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = File::from(rustix::fs::openat(dir, name, flags, Mode::empty()).unwrap());
    let len = file.metadata().unwrap().len();
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap());
    file.read_to_end(&mut buf).unwrap();
    buf
}

fn file(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = std::env::var_os("CACHEKIT_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    for entries in [1_000usize, 100_000] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        fill(&rt, &open(dir.path(), false, false), entries);
        // Flush the fill's dirty pages first, so that background writeback
        // does not land inside the measurements.
        let _ = std::process::Command::new("sync").status();
        let dir_fd = File::open(dir.path()).unwrap();
        let tmp = format!(".tmp-{}-0000000000000000", std::process::id());
        for durable in [false, true] {
            let backend = open(dir.path(), durable, false);
            let caller = (!durable).then(|| open(dir.path(), false, true));
            let hot = hot_keys(&backend);
            let mode = if durable { "durable" } else { "fast" };
            for size in [1024usize, 64 * 1024] {
                let value = Bytes::from(vec![b'v'; size]);
                let mut group = c.benchmark_group(format!("file_{mode}_{size}B"));
                group.throughput(Throughput::Elements(1));
                group.sample_size(if durable { 10 } else { 30 });
                let mut r = 0usize;
                group.bench_with_input(BenchmarkId::new("raw_set", entries), &entries, |b, _| {
                    b.iter(|| {
                        r = (r + 1) % HOT_KEYS;
                        raw_set(&dir_fd, &tmp, &hot[r], &value, durable);
                    })
                });
                let mut i = 0usize;
                group.bench_with_input(BenchmarkId::new("set", entries), &entries, |b, _| {
                    b.to_async(&rt).iter(|| {
                        i = (i + 1) % HOT_KEYS;
                        let key = format!("bench:{i}");
                        let (backend, value) = (&backend, value.clone());
                        async move { backend.set(&key, value, None).await.unwrap() }
                    })
                });
                if let Some(caller) = &caller {
                    let mut i = 0usize;
                    group.bench_with_input(
                        BenchmarkId::new("set_caller", entries),
                        &entries,
                        |b, _| {
                            b.to_async(&rt).iter(|| {
                                i = (i + 1) % HOT_KEYS;
                                let key = format!("bench:{i}");
                                let (caller, value) = (caller, value.clone());
                                async move { caller.set(&key, value, None).await.unwrap() }
                            })
                        },
                    );
                    for (id, backend) in [("set_worker", &backend), ("set_caller_worker", caller)] {
                        let mut first = 0usize;
                        group.bench_with_input(BenchmarkId::new(id, entries), &entries, |b, _| {
                            b.iter_custom(|iters| {
                                let took = sets_on_worker(&rt, backend, &value, first, iters);
                                first = (first + iters as usize) % HOT_KEYS;
                                took
                            })
                        });
                    }
                }
                // The hot keys hold values of this group's size even when a
                // filter (`-- get`) skipped the set benches above.
                let batch: Vec<(&str, Bytes)> = hot
                    .iter()
                    .map(|(k, _)| (k.as_str(), value.clone()))
                    .collect();
                rt.block_on(backend.set_many(&batch, None)).unwrap();
                let _ = std::process::Command::new("sync").status();
                let mut g = 0usize;
                group.bench_with_input(BenchmarkId::new("raw_get", entries), &entries, |b, _| {
                    b.iter(|| {
                        g = (g + 1) % HOT_KEYS;
                        black_box(raw_get(&dir_fd, &hot[g].1))
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
