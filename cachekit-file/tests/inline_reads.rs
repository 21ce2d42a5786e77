//! Reads answered on the calling thread (non-blocking open and read of
//! what the kernel holds in memory) and the blocking pool taking over for
//! everything else, on a real filesystem. Which path served a read is
//! read from the counts that `health()` reports.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

#[path = "support/fs.rs"]
mod support;

use std::fs::File;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachekit_core::{Backend, Ttl};
use cachekit_file::FileBackend;
use support::{header, open, unix_secs};

/// `f_type` of a tmpfs.
const TMPFS: i64 = 0x0102_1994;

/// Largest value read inline, as the crate docs say.
const INLINE_MAX: usize = 128 << 10;

/// Reads served (inline, by the blocking pool) so far.
async fn reads(cache: &FileBackend) -> (u64, u64) {
    let health = cache.health().await;
    let count = |name: &str| health.details[name].parse::<u64>().unwrap();
    (count("reads_inline"), count("reads_blocking"))
}

/// A cache that reads inline, in a fresh directory under the build
/// directory (rather than /tmp, which is often a tmpfs; tmpfs refuses
/// `RWF_NOWAIT` before Linux 6.x, and there the page cache is the storage,
/// so nothing can be dropped from it either). `None`, with a note, on a
/// tmpfs that refuses it; on any other filesystem, inline reads must work.
async fn inline_cache() -> Option<(tempfile::TempDir, FileBackend)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = open(dir.path(), |b| b);
    let health = cache.health().await;
    if health.details["inline_reads"] == "true" {
        return Some((dir, cache));
    }
    let on_tmpfs = rustix::fs::statfs(dir.path()).unwrap().f_type == TMPFS;
    assert!(
        on_tmpfs,
        "inline reads are off for {}: this test needs Linux 5.12+ and a local filesystem \
         (ext4, xfs, btrfs, f2fs, tmpfs, overlayfs) for the build directory",
        dir.path().display()
    );
    eprintln!("skipped: this kernel's tmpfs refuses RWF_NOWAIT, so reads are never inline here");
    None
}

/// Runs `f` and returns how many reads it added on each path.
macro_rules! counted {
    ($cache:expr, $body:expr) => {{
        let (inline, blocking) = reads($cache).await;
        let out = $body;
        let (inline_after, blocking_after) = reads($cache).await;
        (out, (inline_after - inline, blocking_after - blocking))
    }};
}

#[tokio::test]
async fn a_cached_small_entry_is_read_inline() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    let value = Bytes::from(vec![b'v'; 1024]);
    cache
        .set("k", value.clone(), Some(Duration::from_secs(60)))
        .await
        .unwrap();

    let (got, paths) = counted!(&cache, cache.get("k").await.unwrap());
    assert_eq!(got, Some(value.clone()));
    assert_eq!(paths, (1, 0), "a just written entry is in memory");

    let (got, paths) = counted!(&cache, cache.get_with_ttl("k").await.unwrap());
    let (got, ttl) = got.unwrap();
    assert_eq!(got, value);
    assert!(
        matches!(ttl, Ttl::Remaining(d) if d > Duration::from_secs(50) && d <= Duration::from_secs(61)),
        "{ttl:?}"
    );
    assert_eq!(paths, (1, 0));

    let (got, paths) = counted!(&cache, cache.get_many(&["k", "k"]).await.unwrap());
    assert_eq!(got, vec![Some(value.clone()), Some(value)]);
    assert_eq!(paths, (2, 0));
}

#[tokio::test]
async fn an_inline_read_still_records_the_use_on_disk() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    cache.set("k", "v".into(), None).await.unwrap();
    let path = cache.path_for("k");
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_accessed(long_ago))
        .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().accessed().unwrap(),
        long_ago
    );

    let (got, paths) = counted!(&cache, cache.get("k").await.unwrap());
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    assert_eq!(paths, (1, 0));
    // The first read this process makes of an entry is recorded in its
    // access time, by a blocking task the read did not wait for.
    cachekit_testkit::eventually("the read to set the access time", || {
        std::fs::metadata(&path).unwrap().accessed().unwrap() > long_ago
    })
    .await;
}

#[tokio::test]
async fn files_over_the_inline_limit_take_the_blocking_pool() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    let at_limit = Bytes::from(vec![b'a'; INLINE_MAX]);
    let over = Bytes::from(vec![b'o'; INLINE_MAX + 1]);
    cache.set("at-limit", at_limit.clone(), None).await.unwrap();
    cache.set("over", over.clone(), None).await.unwrap();

    let (got, paths) = counted!(&cache, cache.get("at-limit").await.unwrap());
    assert_eq!(got, Some(at_limit));
    assert_eq!(paths, (1, 0));
    let (got, paths) = counted!(&cache, cache.get("over").await.unwrap());
    assert_eq!(got, Some(over));
    assert_eq!(paths, (0, 1));
}

#[tokio::test]
async fn expired_and_corrupt_entries_are_removed_by_the_blocking_pool() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    let mut expired = header(unix_secs() - 10);
    expired.extend_from_slice(b"stale");
    let planted = [("expired", expired), ("corrupt", b"garbage".to_vec())];
    for (key, bytes) in &planted {
        std::fs::write(cache.path_for(key), bytes).unwrap();
        // Read once by hand, so that name and data are certainly cached:
        // only the removal sends the read to the blocking pool.
        assert_eq!(&std::fs::read(cache.path_for(key)).unwrap(), bytes);
    }
    for (key, _) in &planted {
        let (got, paths) = counted!(&cache, cache.get(key).await.unwrap());
        assert_eq!(got, None, "{key}");
        assert_eq!(paths, (0, 1), "{key}");
        assert!(!cache.path_for(key).exists(), "{key}: removed");
    }
}

#[tokio::test]
async fn a_missing_key_is_a_miss_on_either_path() {
    let Some((dir, cache)) = inline_cache().await else {
        return;
    };
    // A name never looked up is not in the dentry cache.
    let (got, paths) = counted!(&cache, cache.get("never").await.unwrap());
    assert_eq!(got, None);
    assert_eq!(paths, (0, 1));

    // That lookup left a negative dentry, which answers the next one,
    // on the filesystems that keep them (tmpfs drops them at once).
    let (got, paths) = counted!(&cache, cache.get("never").await.unwrap());
    assert_eq!(got, None);
    let magic = rustix::fs::statfs(dir.path()).unwrap().f_type;
    if [0xEF53, 0x5846_5342, 0x9123_683E].contains(&magic) {
        assert_eq!(paths, (1, 0), "ext4, xfs and btrfs keep negative dentries");
    }

    // A key deleted by this process turns its dentry negative.
    cache.set("gone", "v".into(), None).await.unwrap();
    assert!(cache.delete("gone").await.unwrap());
    let (got, paths) = counted!(&cache, cache.get("gone").await.unwrap());
    assert_eq!(got, None);
    assert_eq!(paths.0 + paths.1, 1);
    assert_eq!(cache.entry_count(), 0);
}

#[tokio::test]
async fn data_dropped_from_the_page_cache_is_read_by_the_blocking_pool() {
    let Some((dir, cache)) = inline_cache().await else {
        return;
    };
    let value = Bytes::from((0..64 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    cache.set("k", value.clone(), None).await.unwrap();
    let file = File::open(cache.path_for("k")).unwrap();
    let tmpfs = rustix::fs::statfs(dir.path()).unwrap().f_type == TMPFS;
    // `POSIX_FADV_DONTNEED` is advice: the kernel may keep a page it could
    // not drop at that moment (one still in a CPU's batch of pages on
    // their way to the LRU list, say), and the read then finds the data in
    // memory. So drop again until a read finds it gone.
    let mut paths = (0, 0);
    for _ in 0..20 {
        // Clean pages can be dropped: write them back first, then drop them.
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let got;
        (got, paths) = counted!(&cache, cache.get("k").await.unwrap());
        assert_eq!(got, Some(value.clone()));
        if tmpfs || paths != (1, 0) {
            break;
        }
    }
    if tmpfs {
        assert_eq!(paths, (1, 0), "tmpfs data is always in memory");
    } else {
        assert_eq!(paths, (0, 1), "RWF_NOWAIT refused data not in memory");
    }

    // That read brought it back into the page cache.
    let (got, paths) = counted!(&cache, cache.get("k").await.unwrap());
    assert_eq!(got, Some(value));
    assert_eq!(paths, (1, 0));
}

#[tokio::test]
async fn get_many_mixes_both_paths_in_key_order() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    let big = Bytes::from(vec![b'b'; INLINE_MAX + 1]);
    cache.set("a", "1".into(), None).await.unwrap();
    cache.set("big", big.clone(), None).await.unwrap();
    cache.set("b", "2".into(), None).await.unwrap();
    let mut expired = header(unix_secs() - 10);
    expired.extend_from_slice(b"stale");
    std::fs::write(cache.path_for("old"), expired).unwrap();

    let (got, paths) = counted!(
        &cache,
        cache
            .get_many(&["a", "big", "old", "b", "missing"])
            .await
            .unwrap()
    );
    assert_eq!(
        got,
        vec![
            Some(Bytes::from("1")),
            Some(big),
            None,
            Some(Bytes::from("2")),
            None
        ]
    );
    // "missing" was never looked up: not in the dentry cache either.
    assert_eq!(paths, (2, 3));
    assert!(!cache.path_for("old").exists());
}

#[tokio::test]
async fn a_large_batch_hands_what_exceeds_its_inline_budget_to_the_blocking_pool() {
    let Some((_dir, cache)) = inline_cache().await else {
        return;
    };
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|k| (k.as_str(), Bytes::from(k.clone())))
        .collect();
    cache.set_many(&entries, None).await.unwrap();

    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (got, (inline, blocking)) = counted!(&cache, cache.get_many(&refs).await.unwrap());
    let want: Vec<Option<Bytes>> = keys.iter().map(|k| Some(Bytes::from(k.clone()))).collect();
    assert_eq!(got, want);
    assert_eq!(inline + blocking, 100);
    assert!(
        inline > 0 && inline <= 32,
        "{inline} inline: at most 32 small reads fit in a batch's budget"
    );
}
