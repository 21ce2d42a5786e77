//! Each library doing the same memoized call, written the way its README
//! shows: cachekit and `cached` through their attributes, cachekit-rs and
//! raw redis-rs by hand (get, else compute and store). cachekit without an
//! L1 and raw redis-rs are in `benches/common/clients.rs`, which the
//! `cachekit` package's Redis benches share.

use std::sync::{Arc, LazyLock, OnceLock};

use cached::ConcurrentCachedAsync;
use cachekit::{cached, RedisBackend, RedisConfig, TieredCache};
use cachekit_rs::interop::{interop_key, InteropValue};
use serde::{de::DeserializeOwned, Serialize};

use super::clients::{missed, ours, raw_conn, TTL};
use super::values::{large, small, Large, Small};

/// A library's Redis client in scenario 4 and the L2 scaling group.
pub type Lib = super::clients::Lib<Peer>;

/// The testkit server's URL, set before any cached function is first called.
pub static URL: OnceLock<String> = OnceLock::new();

fn url() -> String {
    URL.get().cloned().unwrap_or_default()
}

/// The "trivial compute" of the miss path: a clone of a prebuilt value, so
/// the body costs the same for every library.
static LARGE: LazyLock<Large> = LazyLock::new(|| large(0));

pub fn compute_large(id: u64) -> Large {
    Large {
        id,
        body: LARGE.body.clone(),
    }
}

// ---- scenario 1: in-process memoization ------------------------------------
// An hour's TTL: the L1-threads scaling group reads the value filled in
// scenario 1 nine to fifteen minutes later, and with 600 s a run crossed
// the expiry inside that group (its assertion that every call was a hit
// stopped the run).

#[cached(backend = TieredCache::builder().build(), namespace = "peers", name = "small_l1", ttl = 3600)]
pub fn ours_small_l1(id: u64) -> Small {
    small(id)
}

#[cached(backend = TieredCache::builder().build(), namespace = "peers", name = "large_l1", ttl = 3600)]
pub fn ours_large_l1(id: u64) -> Large {
    compute_large(id)
}

#[cached::cached(max_size = 10_000, ttl = 3600)]
pub fn cached_small_l1(id: u64) -> Small {
    small(id)
}

#[cached::cached(max_size = 10_000, ttl = 3600)]
pub fn cached_large_l1(id: u64) -> Large {
    compute_large(id)
}

// ---- scenarios 2 and 3: Redis, no L1 ---------------------------------------

fn our_redis() -> cachekit::Result<RedisBackend> {
    RedisBackend::connect_lazy(RedisConfig::builder().url(url()).build()?)
}

#[cached(backend = our_redis(), namespace = "peers", name = "small", ttl = 600, l1 = false)]
pub async fn ours_small_l2(id: u64) -> Small {
    small(id)
}

#[cached(backend = our_redis(), namespace = "peers", name = "large", ttl = 600, l1 = false)]
pub async fn ours_large_l2(id: u64) -> Large {
    compute_large(id)
}

pub async fn cached_store<V: Serialize + DeserializeOwned + Send>(
    prefix: &str,
) -> cached::AsyncRedisCache<u64, V> {
    cached::AsyncRedisCache::new(prefix, TTL)
        .connection_string(&url())
        .build()
        .await
        .expect("cached: AsyncRedisCache::build")
}

#[cached::concurrent_cached(
    map_error = r##"|e| format!("{e}")"##,
    ty = "cached::AsyncRedisCache<u64, Small>",
    create = r##"{ crate::libs::cached_store("peers_small").await }"##
)]
pub async fn cached_small_l2(id: u64) -> Result<Small, String> {
    Ok(small(id))
}

#[cached::concurrent_cached(
    map_error = r##"|e| format!("{e}")"##,
    ty = "cached::AsyncRedisCache<u64, Large>",
    create = r##"{ crate::libs::cached_store("peers_large").await }"##
)]
pub async fn cached_large_l2(id: u64) -> Result<Large, String> {
    Ok(compute_large(id))
}

/// cachekit-rs has no attribute without its `macros` feature; this is what
/// one expands to: the interop key of the arguments, get, else compute and
/// set. Its own namespace: cachekit derives the same interop keys but wraps
/// values in its envelope, so on shared keys each would read the other's
/// entries as corrupt.
pub async fn ckrs_memo<T: Serialize + DeserializeOwned>(
    client: &cachekit_rs::CacheKit,
    operation: &str,
    id: u64,
    compute: impl FnOnce(u64) -> T,
) -> T {
    let key = interop_key("peers_rs", operation, &[InteropValue::from(id)]).expect("interop key");
    if let Ok(Some(value)) = client.get::<T>(&key).await {
        return value;
    }
    let value = compute(id);
    let _ = client.set_with_ttl(&key, &value, TTL).await;
    value
}

// ---- scenario 4 and L2 scaling: one handle per library ----------------------

/// The peers' clients in [`Lib::Peer`].
#[derive(Clone)]
pub enum Peer {
    Cached(Arc<cached::AsyncRedisCache<u64, Small>>),
    CachekitRs(Arc<cachekit_rs::CacheKit>),
}

impl super::clients::Peer for Peer {
    async fn read(&mut self, id: u64) -> Small {
        match self {
            Peer::Cached(store) => match store.cache_get(&id).await {
                Ok(Some(v)) => v,
                _ => {
                    missed(1);
                    let v = small(id);
                    let _ = store.cache_set(id, v.clone()).await;
                    v
                }
            },
            Peer::CachekitRs(client) => {
                ckrs_memo(client, "mixed", id, |id| {
                    missed(2);
                    small(id)
                })
                .await
            }
        }
    }

    async fn write(&mut self, id: u64, value: Small) {
        match self {
            Peer::Cached(store) => {
                store.cache_set(id, value).await.expect("set");
            }
            Peer::CachekitRs(client) => {
                let key = interop_key("peers_rs", "mixed", &[InteropValue::from(id)]).expect("key");
                client.set_with_ttl(&key, &value, TTL).await.expect("set");
            }
        }
    }
}

/// The four clients on the server at `url`, each without an L1, and three
/// cachekit variants that show where its time goes under concurrency.
pub async fn libs(url: &str) -> Vec<(&'static str, Lib)> {
    let cached = cached::AsyncRedisCache::new("peers_mixed", TTL)
        .connection_string(url)
        .build()
        .await
        .expect("cached store");
    vec![
        ("cachekit", ours(url, |c| c, true).await),
        ("cached", Lib::Peer(Peer::Cached(Arc::new(cached)))),
        (
            "cachekit-rs",
            Lib::Peer(Peer::CachekitRs(ckrs_client(url).await)),
        ),
        (
            "raw redis-rs + rmp-serde (baseline)",
            Lib::Raw(raw_conn(url).await),
        ),
        (
            "cachekit, pool_size 1",
            ours(url, |c| c.pool_size(1), true).await,
        ),
        (
            "cachekit, no breaker or L2 timeout",
            ours(url, |c| c, false).await,
        ),
        // TCP_NODELAY alone; the raw connections keep redis-rs's default
        // of Nagle on.
        (
            "cachekit, coalesce_writes off",
            ours(url, |c| c.coalesce_writes(false), true).await,
        ),
        (
            "raw, GET+PTTL pipeline (baseline)",
            Lib::RawWithTtl(raw_conn(url).await),
        ),
    ]
}

pub async fn ckrs_client(url: &str) -> Arc<cachekit_rs::CacheKit> {
    // Built without its `l1` feature, so every call goes to Redis.
    let client = cachekit_rs::CacheKit::minimal(url)
        .await
        .expect("cachekit-rs connect")
        .default_ttl(TTL)
        .build()
        .expect("cachekit-rs build");
    Arc::new(client)
}
