//! The generic backend conformance suite, against a fresh cache directory.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_file::{FileBackend, FileConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        FileBackend::open(FileConfig::builder().dir(dir.path()).build().unwrap()).unwrap();
    assert!(
        backend.stores_keys(),
        "the test filesystem should support user xattrs"
    );
    cachekit_testkit::run_conformance(&backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_file_backend_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileConfig::builder()
        .dir(dir.path())
        .durable(true)
        .build()
        .unwrap();
    cachekit_testkit::run_conformance(&FileBackend::open(config).unwrap()).await;
}
