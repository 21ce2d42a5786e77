//! TTLs, expire, delete_prefix across restarts and instances, foreign and
//! corrupt files, oversized values.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Backend, ErrorKind, Ttl};
use support::{entry_files, header, open, stored_expiry, temp_files, unix_secs, unix_secs_f64};

#[tokio::test]
async fn ttl_is_stored_in_whole_seconds_rounded_up() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    let before = unix_secs_f64();
    cache
        .set("k", "v".into(), Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    let after = unix_secs_f64();
    let expiry = stored_expiry(&cache.path_for("k"));
    assert!(
        expiry as f64 >= before + 1.5,
        "expiry {expiry} is earlier than the TTL asked for ({before} + 1.5)"
    );
    assert!(
        expiry as f64 <= (after + 1.5).ceil(),
        "expiry {expiry} is more than the rounding past {after} + 1.5"
    );
    match cache.ttl("k").await.unwrap() {
        Ttl::Remaining(d) => assert!(
            d > Duration::from_millis(900) && d <= Duration::from_millis(2500),
            "{d:?}"
        ),
        other => panic!("ttl is {other:?}"),
    }
    cache.set("forever", "v".into(), None).await.unwrap();
    assert_eq!(stored_expiry(&cache.path_for("forever")), 0);
}

#[tokio::test]
async fn expire_rewrites_only_the_expiry_and_zero_removes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    cache.set("k", "value".into(), None).await.unwrap();
    assert!(cache
        .expire("k", Some(Duration::from_secs(10)))
        .await
        .unwrap());
    let expiry = stored_expiry(&cache.path_for("k"));
    assert!(
        expiry >= unix_secs() + 9 && expiry <= unix_secs() + 11,
        "{expiry}"
    );
    assert_eq!(
        cache.get("k").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    let raw = std::fs::read(cache.path_for("k")).unwrap();
    assert_eq!(
        &raw[14..],
        b"value",
        "the value bytes follow the header unchanged"
    );

    assert!(cache.expire("k", None).await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), Ttl::Persistent);
    assert_eq!(stored_expiry(&cache.path_for("k")), 0);

    assert!(cache.expire("k", Some(Duration::ZERO)).await.unwrap());
    assert!(!cache.path_for("k").exists(), "a zero TTL removes the key");
    assert!(!cache
        .expire("k", Some(Duration::from_secs(5)))
        .await
        .unwrap());

    cache.set("z", "v".into(), None).await.unwrap();
    cache
        .set("z", "w".into(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(cache.get("z").await.unwrap(), None);
    assert!(!cache.path_for("z").exists());
}

#[tokio::test]
async fn expired_files_are_misses_removed_by_reads_and_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    let mut past = header(unix_secs() - 10);
    past.extend_from_slice(b"stale");
    std::fs::write(cache.path_for("read-me"), &past).unwrap();
    std::fs::write(cache.path_for("sweep-me"), &past).unwrap();

    assert_eq!(cache.get("read-me").await.unwrap(), None);
    assert!(
        !cache.path_for("read-me").exists(),
        "a read removes what it finds expired"
    );
    assert_eq!(cache.ttl("sweep-me").await.unwrap(), Ttl::Missing);

    let stats = cache.sweep().await.unwrap();
    assert_eq!(stats.expired_removed, 1);
    assert!(!cache.path_for("sweep-me").exists());
}

#[tokio::test]
async fn delete_prefix_works_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let first = open(dir.path(), |b| b);
        for key in ["p:1", "p:2", "p:sub:3", "q:1", "p"] {
            first.set(key, key.into(), None).await.unwrap();
        }
        // The key travels with the entry, in an extended attribute.
        let mut buf = [0u8; 64];
        let len =
            rustix::fs::getxattr(first.path_for("p:sub:3"), "user.cachekit.key", &mut buf[..])
                .unwrap();
        assert_eq!(&buf[..len], b"p:sub:3");
    }
    let second = open(dir.path(), |b| b);
    assert_eq!(second.delete_prefix("p:").await.unwrap(), 3);
    for (key, present) in [
        ("p:1", false),
        ("p:2", false),
        ("p:sub:3", false),
        ("q:1", true),
        ("p", true),
    ] {
        assert_eq!(second.get(key).await.unwrap().is_some(), present, "{key}");
    }
    assert_eq!(entry_files(dir.path()).len(), 2);
}

#[tokio::test]
async fn instances_on_one_directory_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), |b| b);
    let b = open(dir.path(), |b| b);

    b.set("shared", "from b".into(), None).await.unwrap();
    assert_eq!(a.entry_count(), 0, "a has not looked yet");
    assert_eq!(
        a.get("shared").await.unwrap().as_deref(),
        Some(&b"from b"[..])
    );
    assert_eq!(a.entry_count(), 1, "a read of an unindexed file indexes it");

    a.set("pfx:x", "1".into(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(b.delete_prefix("pfx:").await.unwrap(), 1, "b finds a's key");
    assert_eq!(a.get("pfx:x").await.unwrap(), None);

    assert!(b.delete("shared").await.unwrap());
    assert_eq!(
        a.get("shared").await.unwrap(),
        None,
        "vanished under a: a miss"
    );
    assert_eq!(a.entry_count(), 0, "and dropped from a's index");

    assert!(a.set_if_absent("lock", "a".into(), None).await.unwrap());
    assert!(!b.set_if_absent("lock", "b".into(), None).await.unwrap());
    assert_eq!(b.get("lock").await.unwrap().as_deref(), Some(&b"a"[..]));
}

/// Writes `bytes` under `key`'s file name and returns the path.
fn plant(cache: &cachekit_file::FileBackend, key: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = cache.path_for(key);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn corrupt_files_are_removed_misses_and_foreign_ones_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);

    let mut random = vec![0u8; 4096];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for byte in &mut random {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state.to_le_bytes()[5];
    }
    random[0] = b'r';
    let mut wrong_magic = header(0);
    wrong_magic[0] = b'X';
    wrong_magic.extend_from_slice(b"value");
    let corrupt: [(&str, &[u8]); 4] = [
        ("random", &random),
        ("zero-length", b""),
        ("wrong-magic", &wrong_magic),
        ("truncated-header", &header(0)[..7]),
    ];
    for (key, bytes) in corrupt {
        let path = plant(&cache, key, bytes);
        assert_eq!(cache.get(key).await.unwrap(), None, "{key}");
        assert!(!path.exists(), "{key}: a corrupt entry is removed");
    }

    let mut version_2 = header(0);
    version_2[2] = 2;
    version_2.extend_from_slice(b"from the future");
    let mut flagged = header(0);
    flagged[5] = 1;
    flagged.extend_from_slice(b"compressed?");
    for (key, bytes) in [("version-2", &version_2), ("flags", &flagged)] {
        let path = plant(&cache, key, bytes);
        assert_eq!(cache.get(key).await.unwrap(), None, "{key}");
        assert_eq!(cache.ttl(key).await.unwrap(), Ttl::Missing, "{key}");
        assert!(!cache.exists(key).await.unwrap(), "{key}");
        assert!(!cache.expire(key, None).await.unwrap(), "{key}");
        assert_eq!(
            &std::fs::read(&path).unwrap(),
            bytes,
            "{key}: left untouched"
        );
    }
    // Sweeps leave them alone too, and do not count them.
    let stats = cache.sweep().await.unwrap();
    assert_eq!((stats.entries, stats.corrupt_removed), (0, 0));
    assert!(cache.path_for("version-2").exists() && cache.path_for("flags").exists());
    // A write of the same key replaces one.
    assert!(cache
        .set_if_absent("flags", "mine".into(), None)
        .await
        .unwrap());
    assert_eq!(
        cache.get("flags").await.unwrap().as_deref(),
        Some(&b"mine"[..])
    );

    // A file holding exactly a header is a stored empty value.
    plant(&cache, "header-only", &header(0));
    assert_eq!(cache.get("header-only").await.unwrap(), Some(Bytes::new()));

    // Corrupt files found at open are removed by its sweep.
    plant(&cache, "planted", b"garbage");
    drop(cache);
    let reopened = open(dir.path(), |b| b);
    assert!(!reopened.path_for("planted").exists());
    assert!(reopened.path_for("version-2").exists());
}

#[tokio::test]
async fn a_symlink_in_place_of_an_entry_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    let outside = tempfile::NamedTempFile::new().unwrap();
    let mut planted = header(0);
    planted.extend_from_slice(b"secret");
    std::fs::write(outside.path(), &planted).unwrap();
    std::os::unix::fs::symlink(outside.path(), cache.path_for("k")).unwrap();

    // A miss, not the target's contents (tests/hostile.rs has the rest).
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", "mine".into(), None).await.unwrap();
    assert_eq!(
        std::fs::read(outside.path()).unwrap(),
        planted,
        "the target is untouched"
    );
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"mine"[..]));
}

#[tokio::test]
async fn oversized_values_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b.max_value_size(1024));
    let big = Bytes::from(vec![7u8; 1025]);
    let err = cache.set("big", big.clone(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(
        err.message().contains("1025") && err.message().contains("max_value_size"),
        "{err}"
    );
    let err = cache
        .set_if_absent("big", big.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let err = cache
        .set_many(&[("fine", Bytes::from_static(b"ok")), ("big", big)], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(!cache.path_for("big").exists());
    assert!(temp_files(dir.path()).is_empty());

    cache
        .set("edge", vec![1u8; 1024].into(), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get("edge").await.unwrap().map(|v| v.len()),
        Some(1024)
    );

    // A file larger than this instance accepts (another config wrote it)
    // is a miss, not an allocation of whatever size the disk says.
    let mut huge = header(0);
    huge.resize(14 + 4096, 0);
    std::fs::write(cache.path_for("huge"), &huge).unwrap();
    assert_eq!(cache.get("huge").await.unwrap(), None);
}

#[tokio::test]
async fn overlong_keys_are_refused_but_long_keys_work() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    let long = "k".repeat(1024);
    cache.set(&long, "v".into(), None).await.unwrap();
    assert_eq!(cache.delete_prefix("kkk").await.unwrap(), 1);
    let err = cache
        .set(&"k".repeat(1025), "v".into(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("1024"), "{err}");
}

#[tokio::test]
async fn health_reports_the_directory_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    cache.set("a", "12345".into(), None).await.unwrap();
    let health = cache.health().await;
    assert!(health.healthy);
    assert_eq!(health.backend, "file");
    assert_eq!(health.details["entries"], "1");
    assert_eq!(health.details["bytes"], "19");
    assert_eq!(health.details["dir"], dir.path().display().to_string());
}

#[tokio::test]
async fn replaced_files_are_removed_after_set_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), |b| b);
    for i in 0..50u32 {
        cache
            .set("k", Bytes::from(i.to_string()), None)
            .await
            .unwrap();
        // The new value is in place when set returns, whatever is still
        // being cleaned up behind it.
        assert_eq!(
            cache.get("k").await.unwrap().as_deref(),
            Some(i.to_string().as_bytes())
        );
    }
    let batch: Vec<(&str, Bytes)> = vec![("k", "a".into()), ("j", "b".into())];
    cache.set_many(&batch, None).await.unwrap();
    cache.set_many(&batch, None).await.unwrap();
    // Removal of the replaced files follows the answer; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !temp_files(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(entry_files(dir.path()).len(), 2);
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
}

#[test]
fn a_fifo_under_an_entry_name_is_foreign_and_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = rt.block_on(async { open(dir.path(), |b| b) });
    let path = cache.path_for("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Nobody ever writes to the FIFO: opening or reading it could block.
    let outcome = rt.block_on(async {
        let patience = Duration::from_secs(10);
        let hung = |what: &str| format!("{what} hung on a FIFO");
        let got = tokio::time::timeout(patience, cache.get("fifo")).await;
        assert_eq!(got.map_err(|_| hung("get"))?.unwrap(), None);
        let ttl = tokio::time::timeout(patience, cache.ttl("fifo")).await;
        assert_eq!(ttl.map_err(|_| hung("ttl"))?.unwrap(), Ttl::Missing);
        let expire = tokio::time::timeout(patience, cache.expire("fifo", None)).await;
        assert!(!expire.map_err(|_| hung("expire"))?.unwrap());
        let swept = tokio::time::timeout(patience, cache.sweep()).await;
        swept.map_err(|_| hung("sweep"))?.unwrap();
        assert!(path.exists(), "a foreign file is left alone");
        // A write of the key replaces it with a real entry.
        cache.set("fifo", "v".into(), None).await.unwrap();
        assert_eq!(cache.get("fifo").await.unwrap().as_deref(), Some(&b"v"[..]));
        Ok::<(), String>(())
    });
    // A blocking thread stuck on the FIFO must not hang the test as well.
    rt.shutdown_background();
    outcome.unwrap();
}
