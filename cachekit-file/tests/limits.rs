//! Budgets and eviction order, permissions, stale temp files.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use cachekit_core::{Backend, ErrorKind};
use cachekit_file::{FileBackend, FileConfig};
use support::{entry_files, open, temp_files};

fn key(n: usize) -> String {
    format!("k{n}")
}

#[tokio::test]
async fn eviction_keeps_recently_read_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.max_entries(10).watermarks(1.0, 0.8));
    for n in 0..10 {
        cache.set(&key(n), "v".into(), None).await.unwrap();
    }
    assert_eq!(
        entry_files(dir.path()).len(),
        10,
        "at the budget, nothing evicted yet"
    );
    for n in 0..4 {
        assert!(cache.get(&key(n)).await.unwrap().is_some());
    }
    cache.set(&key(10), "v".into(), None).await.unwrap();

    assert_eq!(cache.entry_count(), 8, "evicted down to the low watermark");
    assert_eq!(entry_files(dir.path()).len(), 8);
    for n in 0..11 {
        let evicted = (4..7).contains(&n);
        assert_eq!(
            cache.get(&key(n)).await.unwrap().is_none(),
            evicted,
            "{}: the three least recently used (k4..k6) go, read ones stay",
            key(n)
        );
    }
}

#[tokio::test]
async fn eviction_order_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tune = |b: cachekit_file::FileConfigBuilder| b.max_entries(10).watermarks(1.0, 0.8);
    // Written a second apart (file times are set by hand: the kernel's
    // clock for them is too coarse to order writes microseconds apart).
    let start = SystemTime::now() - Duration::from_secs(100);
    {
        let first = open(dir.path(), tune);
        for n in 0..10 {
            first.set(&key(n), "v".into(), None).await.unwrap();
            let at = start + Duration::from_secs(n as u64);
            let times = std::fs::FileTimes::new().set_accessed(at).set_modified(at);
            std::fs::File::options()
                .write(true)
                .open(first.path_for(&key(n)))
                .unwrap()
                .set_times(times)
                .unwrap();
        }
    }
    {
        // Another run reads the oldest-written keys; the reads are
        // recorded on disk (access time), by a blocking task that the
        // reads answered inline do not wait for.
        let second = open(dir.path(), tune);
        for n in 0..3 {
            assert!(second.get(&key(n)).await.unwrap().is_some());
        }
        let recorded = || {
            (0..3).all(|n| {
                let meta = std::fs::metadata(second.path_for(&key(n))).unwrap();
                meta.accessed().unwrap() > start + Duration::from_secs(50)
            })
        };
        cachekit_testkit::eventually("the reads to set the access times", recorded).await;
    }
    let third = open(dir.path(), tune);
    third.set(&key(10), "v".into(), None).await.unwrap();
    for n in 0..11 {
        let evicted = (3..6).contains(&n);
        assert_eq!(
            third.get(&key(n)).await.unwrap().is_none(),
            evicted,
            "{}: k3..k5 are the least recently used; write order alone would evict k0..k2",
            key(n)
        );
    }
}

#[tokio::test]
async fn the_byte_budget_holds_after_every_set() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.max_bytes(20_000).max_value_size(2_000));
    for n in 0..60usize {
        let len = 500 + (n * 397) % 1500;
        cache
            .set(&key(n), vec![1u8; len].into(), None)
            .await
            .unwrap();
        let on_disk: u64 = entry_files(dir.path()).iter().map(|(_, len)| len).sum();
        assert!(
            on_disk <= 19_000,
            "after set {n}: {on_disk} bytes on disk, high watermark is 19000"
        );
        assert_eq!(
            on_disk,
            cache.total_bytes(),
            "the index matches the directory"
        );
    }
    assert!(
        cache.get(&key(59)).await.unwrap().is_some(),
        "the newest entry survives"
    );
}

#[tokio::test]
async fn files_are_0600_and_a_created_directory_0700() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("a/b/cache");
    let cache = open(&dir, |b| b);
    cache.set("k", "v".into(), None).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&cache.path_for("k")), 0o600);
    cache.set("k", "again".into(), None).await.unwrap();
    assert_eq!(mode(&cache.path_for("k")), 0o600);
}

/// Collects what `tracing` logs while `f` runs.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (subscriber, logs) = cachekit_testkit::logs::capture();
    let out = tracing::subscriber::with_default(subscriber, f);
    (out, logs.text())
}

#[test]
fn a_looser_existing_directory_is_used_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = FileConfig::builder().dir(dir.path()).build().unwrap();
    let (opened, logs) = logs_of(|| FileBackend::open(config.clone()));
    assert!(opened.is_ok());
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("mode 755"), "{logs}");
    assert!(
        logs.contains(&format!("chmod 700 {}", dir.path().display())),
        "{logs}"
    );

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (opened, logs) = logs_of(|| FileBackend::open(config));
    assert!(opened.is_ok());
    assert!(
        !logs.contains("WARN"),
        "a 0700 directory is not warned about: {logs}"
    );
}

#[test]
fn a_directory_owned_by_someone_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("theirs");
    std::fs::create_dir(&target).unwrap();
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: not root, cannot chown a directory to another user to test refusal");
        return;
    }
    std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    // Reached through a symlink, as an attacker in /tmp would arrange it.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = FileBackend::open(FileConfig::builder().dir(&link).build().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("owned by uid 65534"), "{err}");
    assert!(err.message().contains("CACHEKIT_FILE_DIR"), "{err}");
}

#[tokio::test]
async fn open_removes_stale_temp_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let dead_writer = dir.path().join(format!(".tmp-{dead}-0123456789abcdef"));
    let live_writer = dir.path().join(format!(".tmp-{me}-0123456789abcdef"));
    let stalled_writer = dir.path().join(format!(".tmp-{me}-fedcba9876543210"));
    let unrelated = dir.path().join("notes.txt");
    for path in [&dead_writer, &live_writer, &stalled_writer, &unrelated] {
        std::fs::write(path, b"partial").unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(20 * 60);
    std::fs::File::options()
        .write(true)
        .open(&stalled_writer)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let cache = open(dir.path(), |b| b);
    assert!(!dead_writer.exists(), "the writer is dead");
    assert!(!stalled_writer.exists(), "older than any write takes");
    assert!(live_writer.exists(), "a live writer may still rename it");
    assert!(
        unrelated.exists(),
        "files that are not the cache's are left alone"
    );
    assert_eq!(temp_files(dir.path()).len(), 1);
    assert_eq!(cache.sweep().await.unwrap().temp_files_removed, 0);
}
