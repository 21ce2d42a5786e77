//! Every option, on async and sync functions.
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cachekit::{cached, MemoryBackend, TieredCache};

static CALLS: AtomicU32 = AtomicU32::new(0);

fn shared() -> cachekit::Result<TieredCache> {
    TieredCache::builder()
        .l2(MemoryBackend::builder().build()?)
        .build()
}

type Lookup<T> = Result<T, String>;

struct Pool;

#[cached(
    backend = shared(),
    ttl = 60,
    l1_ttl = Duration::from_secs(5),
    namespace = "ui",
    name = "all",
    version = 2,
    skip(pool),
    cache_none,
    crate = ::cachekit,
)]
async fn all(pool: &Pool, id: u64) -> Option<u64> {
    let _ = pool;
    CALLS.fetch_add(1, Ordering::Relaxed);
    (id > 10).then_some(id)
}

#[cached(backend = MemoryBackend::builder().build(), l1 = false, key = id / 2, returns = result)]
fn halves(id: u64, label: &str) -> Lookup<String> {
    Ok(format!("{label}{id}"))
}

#[cached(ttl = Duration::from_millis(1500))]
fn plain() -> u8 {
    1
}

#[cached(returns = value)]
fn result_as_value(ok: bool) -> Result<u8, u8> {
    if ok {
        Ok(1)
    } else {
        Err(0)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(all(&Pool, 1).await, None);
    assert_eq!(all(&Pool, 1).await, None); // cache_none: cached
    assert_eq!(CALLS.load(Ordering::Relaxed), 1);
    assert_eq!(all_cache().keys().unwrap().prefix(), "ui:all.v2:");
    assert!(all_invalidate(1).await.unwrap());

    assert_eq!(halves(4, "a").unwrap(), "a4");
    assert_eq!(halves(5, "b").unwrap(), "a4"); // same key: 5 / 2 == 4 / 2
    assert!(halves_cache().cache().unwrap().l1().is_none());

    assert_eq!(plain(), 1);
    assert_eq!(plain_cache().ttl(), Some(Duration::from_millis(1500)));
    assert_eq!(result_as_value(false), Err(0));
    assert_eq!(result_as_value(false), Err(0));
    assert_eq!(result_as_value_cache().stats().hits, 1);
}
