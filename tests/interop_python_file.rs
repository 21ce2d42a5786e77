//! cachekit-py 0.24's file backend and this crate's sharing one directory
//! in interop mode: each reads the entries the other wrote (same file
//! names, same header, same value bytes) without running its function.
#![cfg(feature = "file")]

#[path = "interop_support/python.rs"]
#[allow(dead_code)]
mod python;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;

use cachekit::cached;
use cachekit_file::{FileBackend, FileConfig};
use python::{py_file_calls, PyCall, PY_BODY_RAN};
use serde::{Deserialize, Serialize};
use serde_json::json;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fn dir() -> PathBuf {
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
        .to_owned()
}

fn files() -> cachekit::Result<FileBackend> {
    FileBackend::open(FileConfig::builder().dir(dir()).build()?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    rows: Vec<(u32, f64)>,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// No L1: every call reads the directory.
#[cached(interop, namespace = "reports", name = "monthly", ttl = 300, l1 = false, backend = files())]
fn monthly(year: u32, month: u32) -> Report {
    RUNS.fetch_add(1, SeqCst);
    Report {
        title: format!("{year}-{month:02} from rust"),
        rows: vec![(1, 2.5), (2, 3.0)],
    }
}

#[test]
fn python_and_rust_share_a_file_cache_directory() {
    let from_python = json!({"title": "2024-05 from python", "rows": [[7, {"$float": "1.5"}]]});
    let rust_reads = Report {
        title: "2024-05 from python".into(),
        rows: vec![(7, 1.5)],
    };
    // Python writes (2024, 5), then reads what Rust writes for (2024, 6).
    let first = py_file_calls(
        &dir(),
        &[PyCall::write(
            "reports",
            "monthly",
            json!([2024, 5]),
            from_python,
        )],
    );
    assert!(first[0].ran);
    assert_eq!(monthly(2024, 5), rust_reads);
    assert_eq!(RUNS.load(SeqCst), 0, "read from Python's file");

    let written = monthly(2024, 6);
    assert_eq!(RUNS.load(SeqCst), 1);
    let second = py_file_calls(
        &dir(),
        &[PyCall::read("reports", "monthly", json!([2024, 6]))],
    );
    assert!(
        !second[0].ran,
        "Python read Rust's file without running its body"
    );
    assert_ne!(second[0].value, json!(PY_BODY_RAN));
    assert_eq!(
        second[0].value,
        json!({"title": written.title, "rows": [[1, {"$float": "2.5"}], [2, {"$float": "3.0"}]]})
    );
}
