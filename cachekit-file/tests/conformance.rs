//! The generic backend conformance suite, one test per check, each against
//! a fresh cache directory.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_file::{FileBackend, FileConfig};
use cachekit_testkit::{conformance_tests, WithGuard};
use tempfile::TempDir;

fn open(durable: bool) -> WithGuard<FileBackend, TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig::builder()
        .dir(dir.path())
        .durable(durable)
        .build()
        .unwrap();
    let backend = FileBackend::open(config).unwrap();
    assert!(
        backend.stores_keys(),
        "the test filesystem should support user xattrs"
    );
    WithGuard(backend, dir)
}

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    file,
    async || open(false)
);

conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    durable_file,
    async || open(true)
);
