//! `#[cached]` with the file backend as L2: entries are files another
//! process can read, and the companions remove them.
#![cfg(feature = "file")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;

use cachekit::{cached, ErrorKind};
use cachekit_file::{FileBackend, FileConfig};

/// The backend, kept so the test can look at its files.
static FILES: OnceLock<FileBackend> = OnceLock::new();

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("cachekit-macro-file-{}", std::process::id()))
}

fn files() -> cachekit::Result<FileBackend> {
    let backend = FileBackend::open(FileConfig::builder().dir(dir()).build()?)?;
    Ok(FILES.get_or_init(|| backend).clone())
}

static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(namespace = "reports", name = "monthly", ttl = 120, backend = files())]
async fn monthly(year: u16, month: u8) -> Vec<u64> {
    RUNS.fetch_add(1, SeqCst);
    vec![u64::from(year), u64::from(month)]
}

#[tokio::test]
async fn entries_are_files_of_the_interop_key() {
    assert_eq!(monthly(2024, 5).await, [2024, 5]);
    let key = cachekit::derive_key("reports", "monthly", &(2024u16, 5u8)).unwrap();
    let backend = FILES.get().unwrap();
    assert!(backend.path_for(&key).is_file(), "{key}");

    // A process without our L1 reads the file.
    let cache = monthly_cache().cache().unwrap();
    cache.invalidate_local(&key);
    assert_eq!(monthly(2024, 5).await, [2024, 5]);
    assert_eq!(cache.stats().l2.hits, 1);
    assert_eq!(RUNS.load(SeqCst), 1);

    assert!(monthly_invalidate(2024, 5).await.unwrap());
    assert!(!backend.path_for(&key).exists());

    monthly(2024, 6).await;
    monthly(2024, 7).await;
    // `clear` lists keys through an extended attribute; filesystems
    // without user xattrs say so instead of silently keeping the files.
    match monthly_clear().await {
        Ok(removed) => assert_eq!(removed, 2),
        Err(err) => {
            assert!(!backend.stores_keys());
            assert_eq!(err.kind(), ErrorKind::Unsupported);
        }
    }
    std::fs::remove_dir_all(dir()).ok();
}
