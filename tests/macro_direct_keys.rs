//! `#[cached]` encodes plain integer, boolean, character and string
//! arguments without serde. These check that every such list, and every
//! list that mixes in other types (which takes the serde path), gives the
//! same interop key as `derive_key`, in calls, `_refresh` and
//! `_invalidate`, sync and async.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use cachekit::{cached, derive_key, TieredCache};
use serde::Serialize;

fn l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), namespace = "direct", name = "mixed")]
fn mixed(id: u64, region: &str, owner: String, delta: i32, flag: bool, grade: char) -> u32 {
    let _ = (id, region, owner, delta, flag, grade);
    RUNS.fetch_add(1, SeqCst)
}

#[test]
fn a_plain_argument_list_keys_as_derive_key_does() {
    let owner = || "Zoë ✓".to_owned();
    let first = mixed(u64::MAX, "eu-west", owner(), -40_000, true, '🦀');
    assert_eq!(
        mixed(u64::MAX, "eu-west", owner(), -40_000, true, '🦀'),
        first
    );
    assert_eq!(mixed_cache().stats().computes, 1);
    let args = (u64::MAX, "eu-west", owner(), -40_000_i32, true, '🦀');
    let key = derive_key("direct", "mixed", &args).unwrap();
    let cache = mixed_cache().cache().unwrap();
    assert_eq!(cache.get_blocking::<u32>(&key), Some(first));

    // The companions find the same entry.
    let refreshed = mixed_refresh(u64::MAX, "eu-west", owner(), -40_000, true, '🦀');
    assert_eq!(cache.get_blocking::<u32>(&key), Some(refreshed));
    assert!(mixed_invalidate(u64::MAX, "eu-west", owner(), -40_000, true, '🦀').unwrap());
    assert_eq!(cache.get_blocking::<u32>(&key), None);
}

/// `mixed` again, with a cache of its own: tests run in parallel, and the
/// one above counts its cache's computations.
#[cached(backend = l1(), namespace = "direct", name = "mixed")]
fn mixed_long(id: u64, region: &str, owner: String, delta: i32, flag: bool, grade: char) -> u32 {
    let _ = (id, region, owner, delta, flag, grade);
    RUNS.fetch_add(1, SeqCst)
}

#[test]
fn an_argument_list_too_long_for_the_stack_keys_the_serde_way() {
    let long = "q".repeat(500);
    let first = mixed_long(1, &long, String::new(), 0, false, 'a');
    assert_eq!(mixed_long(1, &long, String::new(), 0, false, 'a'), first);
    assert_eq!(mixed_long_cache().stats().computes, 1);
    let key = derive_key("direct", "mixed", &(1_u64, &long, "", 0_i32, false, 'a')).unwrap();
    let cache = mixed_long_cache().cache().unwrap();
    assert_eq!(cache.get_blocking::<u32>(&key), Some(first));
}

#[derive(Serialize)]
struct Filter {
    tag: String,
    limit: u16,
}

#[cached(backend = l1(), namespace = "direct", name = "search")]
async fn search(id: u32, filter: Filter, tags: Vec<String>) -> String {
    format!("{id}:{}:{}:{}", filter.tag, filter.limit, tags.len())
}

#[tokio::test]
async fn a_list_with_other_types_keys_as_derive_key_does() {
    let filter = || Filter {
        tag: "new".into(),
        limit: 300,
    };
    let tags = || vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(search(7, filter(), tags()).await, "7:new:300:2");
    let key = derive_key("direct", "search", &(7_u32, filter(), tags())).unwrap();
    let cache = search_cache().cache().unwrap();
    assert_eq!(
        cache.get::<String>(&key).await.as_deref(),
        Some("7:new:300:2")
    );
    assert!(search_invalidate(7, filter(), tags()).await.unwrap());
}

#[cached(backend = l1(), namespace = "direct", name = "none")]
fn no_arguments() -> u32 {
    RUNS.fetch_add(1, SeqCst)
}

#[test]
fn no_arguments_key_as_derive_key_does() {
    let value = no_arguments();
    let key = derive_key("direct", "none", &()).unwrap();
    let cache = no_arguments_cache().cache().unwrap();
    assert_eq!(cache.get_blocking::<u32>(&key), Some(value));
    assert_eq!(no_arguments(), value);
}
