//! Files that another user or process planted in the cache directory:
//! entries owned by another uid, symlinks under entry names, and
//! directories that others can write.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bytes::Bytes;
use cachekit_core::{Backend, ErrorKind, Ttl};
use cachekit_file::{FileBackend, FileConfig};
use support::{header, open};

/// A valid, never-expiring entry holding `value`.
fn entry(value: &[u8]) -> Vec<u8> {
    let mut bytes = header(0);
    bytes.extend_from_slice(value);
    bytes
}

fn is_root() -> bool {
    rustix::process::geteuid().as_raw() == 0
}

/// Every read of `key` is a miss, none an error.
async fn assert_miss(cache: &FileBackend, key: &str, what: &str) {
    assert_eq!(cache.get(key).await.unwrap(), None, "get of {what}");
    assert_eq!(
        cache.get_many(&[key]).await.unwrap(),
        vec![None],
        "get_many of {what}"
    );
    assert!(!cache.exists(key).await.unwrap(), "exists of {what}");
    assert_eq!(cache.ttl(key).await.unwrap(), Ttl::Missing, "ttl of {what}");
    assert_eq!(
        cache.get_with_ttl(key).await.unwrap(),
        None,
        "get_with_ttl of {what}"
    );
}

fn is_gone(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[tokio::test]
async fn an_entry_owned_by_another_user_is_a_miss_and_the_sweep_removes_it() {
    if !is_root() {
        eprintln!("SKIPPED: not root, cannot chown a planted entry to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    // One key the process never wrote, one it did and that was then replaced.
    cache.set("mine", "original".into(), None).await.unwrap();
    assert!(cache.get("mine").await.unwrap().is_some());
    for key in ["planted", "mine"] {
        let path = cache.path_for(key);
        let staged = dir.path().join("staged");
        std::fs::write(&staged, entry(b"from uid 65534")).unwrap();
        std::os::unix::fs::chown(&staged, Some(65534), Some(65534)).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        // Twice: the first read may run inline, the second on the pool.
        assert_miss(&cache, key, "an entry of uid 65534").await;
        assert_miss(&cache, key, "an entry of uid 65534, again").await;
        assert!(
            !cache.expire(key, None).await.unwrap(),
            "expire of a planted entry reports it missing"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            entry(b"from uid 65534"),
            "expire left the planted file alone"
        );
    }
    // A second process's view: its index never saw the files.
    let other = open(dir.path(), |b| b);
    assert!(
        is_gone(&cache.path_for("planted")),
        "open's sweep removes planted entries"
    );
    assert_eq!(other.get("mine").await.unwrap(), None);

    // Planted again: the periodic sweep removes it by name.
    let path = cache.path_for("planted");
    std::fs::write(&path, entry(b"again")).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let stats = cache.sweep().await.unwrap();
    assert!(
        is_gone(&path),
        "the sweep removes planted entries: {stats:?}"
    );
    assert_eq!(stats.untrusted_removed, 1, "{stats:?}");
    assert_eq!(stats.entries, 0, "{stats:?}");

    // A write of the key replaces a planted file.
    std::fs::write(&path, entry(b"once more")).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    assert!(cache
        .set_if_absent("planted", "ours".into(), None)
        .await
        .unwrap());
    assert_eq!(
        cache.get("planted").await.unwrap().as_deref(),
        Some(&b"ours"[..])
    );
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    assert!(
        !cache.delete("planted").await.unwrap(),
        "a planted entry is not a live one"
    );
    assert!(is_gone(&path));
}

#[test]
fn a_directory_others_can_write_is_refused_unless_sticky() {
    for mode in [0o777, 0o770, 0o730, 0o703] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let config = FileConfig::builder().dir(dir.path()).build().unwrap();
        let err = FileBackend::open(config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "mode {mode:o}: {err}");
        let message = err.message();
        assert!(
            message.contains(&format!("chmod 700 {}", dir.path().display())),
            "mode {mode:o}: {err}"
        );
        assert!(
            message.contains(&format!("{mode:o}")),
            "mode {mode:o}: {err}"
        );
    }
    // Sticky, like /tmp: others may add files (which are misses) but not
    // remove or rename ours.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let config = FileConfig::builder().dir(dir.path()).build().unwrap();
    assert!(FileBackend::open(config).is_ok());
}

#[tokio::test]
async fn a_symlink_at_an_entry_name_is_a_miss_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::write(&target, entry(b"secret")).unwrap();
    cache.set("inside", "ours".into(), None).await.unwrap();

    let links = [
        ("to-outside", target.clone()),
        ("to-an-entry", cache.path_for("inside")),
        ("dangling", outside.path().join("nothing")),
        ("to-a-dir", outside.path().to_owned()),
    ];
    for (key, to) in &links {
        std::os::unix::fs::symlink(to, cache.path_for(key)).unwrap();
        assert_miss(&cache, key, &format!("a symlink {key}")).await;
        assert_miss(&cache, key, &format!("a symlink {key}, again")).await;
        assert!(
            !cache.expire(key, None).await.unwrap(),
            "expire of a symlink {key} reports it missing"
        );
    }
    // delete_prefix lists the directory with the links in it.
    assert_eq!(cache.delete_prefix("no-such-prefix").await.unwrap(), 0);

    // delete removes the link itself.
    assert!(!cache.delete("to-outside").await.unwrap());
    assert!(!cache.delete("to-an-entry").await.unwrap());
    assert!(is_gone(&cache.path_for("to-outside")));
    assert!(is_gone(&cache.path_for("to-an-entry")));
    // set_if_absent replaces one.
    assert!(cache
        .set_if_absent("dangling", "new".into(), None)
        .await
        .unwrap());
    assert!(!is_gone(&cache.path_for("dangling")));
    assert!(
        !outside.path().join("nothing").exists(),
        "nothing created through the link"
    );
    // The sweep removes the rest, and only links.
    let stats = cache.sweep().await.unwrap();
    assert!(is_gone(&cache.path_for("to-a-dir")), "{stats:?}");
    assert_eq!(stats.untrusted_removed, 1, "{stats:?}");

    assert_eq!(
        std::fs::read(&target).unwrap(),
        entry(b"secret"),
        "the target is intact"
    );
    assert!(outside.path().is_dir());
    assert_eq!(
        cache.get("inside").await.unwrap(),
        Some(Bytes::from("ours"))
    );
    assert_eq!(
        cache.get("dangling").await.unwrap(),
        Some(Bytes::from("new"))
    );
}

#[tokio::test]
async fn a_symlink_found_at_open_is_removed_and_its_target_kept() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::write(&target, entry(b"secret")).unwrap();
    let link = open(dir.path(), |b| b).path_for("k");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let cache = open(dir.path(), |b| b);
    assert!(is_gone(&link));
    assert_eq!(std::fs::read(&target).unwrap(), entry(b"secret"));
    assert_eq!(cache.entry_count(), 0);
}
