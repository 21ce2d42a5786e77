//! A full disk: a real 1 MiB tmpfs when this process may mount one (root
//! with CAP_SYS_ADMIN). Otherwise the test says so and stops; the error
//! classification itself is always covered by the unit test
//! `error::tests::disk_full_is_transient_io_with_path_and_fix`, which
//! injects ENOSPC.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::path::Path;
use std::process::Command;

use cachekit_core::{Backend, ErrorKind};
use cachekit_file::{FileBackend, FileConfig};

/// Unmounts on drop, also when an assertion fails.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_a_transient_io_error_naming_the_path() {
    let parent = tempfile::tempdir().unwrap();
    let mountpoint = parent.path().join("tiny");
    std::fs::create_dir(&mountpoint).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
        .arg(&mountpoint)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "RAN: injected-ENOSPC unit test only; the real tmpfs run needs mount permission \
             (root), which this process lacks"
        );
        return;
    }
    eprintln!(
        "RAN: real disk-full run on a 1 MiB tmpfs at {}",
        mountpoint.display()
    );
    let _mount = Mount(&mountpoint);
    let dir = mountpoint.join("cache");
    let cache = FileBackend::open(
        FileConfig::builder()
            .dir(&dir)
            .max_bytes(64 << 20)
            .max_value_size(256 << 10)
            .build()
            .unwrap(),
    )
    .unwrap();

    let value = bytes::Bytes::from(vec![0x5a; 200 << 10]);
    let mut stored = Vec::new();
    let err = loop {
        let key = format!("k{}", stored.len());
        match cache.set(&key, value.clone(), None).await {
            Ok(()) => stored.push(key),
            Err(err) => break err,
        }
        assert!(stored.len() < 20, "1 MiB cannot hold 20 values of 200 KiB");
    };
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.is_transient(), "a full disk may clear up: {err}");
    assert!(err.message().contains("disk full"), "{err}");
    assert!(err.message().contains(&dir.display().to_string()), "{err}");
    assert!(!stored.is_empty(), "some values fit before the disk filled");

    // The failed write left nothing behind, and what was stored is intact.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for key in &stored {
        assert_eq!(
            cache.get(key).await.unwrap().as_ref(),
            Some(&value),
            "{key}"
        );
    }

    // Freeing space makes writes work again.
    assert!(cache.delete(&stored[0]).await.unwrap());
    cache.set("after", value.clone(), None).await.unwrap();
}
