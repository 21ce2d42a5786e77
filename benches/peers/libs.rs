//! Each library doing the same memoized call, written the way its README
//! shows: cachekit and `cached` through their attributes, cachekit-rs and
//! raw redis-rs by hand (get, else compute and store).

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use cached::ConcurrentCachedAsync;
use cachekit::{cached, KeyBuilder, RedisBackend, RedisConfig, RedisConfigBuilder, TieredCache};
use cachekit_rs::interop::{interop_key, InteropValue};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use serde::{de::DeserializeOwned, Serialize};

use super::values::{large, small, Large, Small};

pub const TTL: Duration = Duration::from_secs(600);

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

/// The floor: one GET and an rmp-serde decode, else encode and SET EX.
pub async fn raw_memo<T: Serialize + DeserializeOwned>(
    conn: &mut impl ConnectionLike,
    key: &str,
    id: u64,
    compute: impl FnOnce(u64) -> T,
) -> T {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("raw GET");
    if let Some(value) = bytes.and_then(|b| rmp_serde::from_slice(&b).ok()) {
        return value;
    }
    let value = compute(id);
    raw_set(conn, key, &value).await;
    value
}

pub async fn raw_set<T: Serialize>(conn: &mut impl ConnectionLike, key: &str, value: &T) {
    let bytes = rmp_serde::to_vec(value).expect("rmp encode");
    let () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("EX")
        .arg(TTL.as_secs())
        .query_async(conn)
        .await
        .expect("raw SET");
}

// ---- scenario 4 and L2 scaling: one handle per library ----------------------

/// A library's Redis client, cheap to clone into each task. Reads are
/// memoized calls (compute and store on a miss), writes are plain stores.
#[derive(Clone)]
pub enum Lib {
    Ours(TieredCache, KeyBuilder),
    Cached(Arc<cached::AsyncRedisCache<u64, Small>>),
    CachekitRs(Arc<cachekit_rs::CacheKit>),
    Raw(MultiplexedConnection),
    /// Raw, but reading the way cachekit does: GET and PTTL in one pipeline.
    RawWithTtl(MultiplexedConnection),
    /// Raw redis-rs on a cluster (`benches/cluster.rs`): GET + decode.
    #[allow(dead_code)] // the peers bench has no cluster
    RawCluster(ClusterConnection),
    /// The same, reading the way cachekit does (GET and PTTL pipelined).
    #[allow(dead_code)]
    RawClusterWithTtl(ClusterConnection),
}

/// Reads that found nothing and computed, per kind (ours, cached,
/// cachekit-rs, raw): every key is stored up front, so these should be 0.
pub static READ_MISSES: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];

fn missed(kind: usize) {
    READ_MISSES[kind].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl Lib {
    pub async fn read(&mut self, id: u64) -> Small {
        match self {
            Lib::Ours(cache, keys) => {
                let key = keys.key(&(id,)).expect("key");
                cache
                    .get_or_compute(&key, Some(TTL), || async move {
                        missed(0);
                        small(id)
                    })
                    .await
            }
            Lib::Cached(store) => match store.cache_get(&id).await {
                Ok(Some(v)) => v,
                _ => {
                    missed(1);
                    let v = small(id);
                    let _ = store.cache_set(id, v.clone()).await;
                    v
                }
            },
            Lib::CachekitRs(client) => {
                ckrs_memo(client, "mixed", id, |id| {
                    missed(2);
                    small(id)
                })
                .await
            }
            Lib::Raw(conn) => {
                raw_memo(conn, &format!("raw:mixed:{id}"), id, |id| {
                    missed(3);
                    small(id)
                })
                .await
            }
            Lib::RawCluster(conn) => {
                raw_memo(conn, &format!("raw:mixed:{id}"), id, |id| {
                    missed(3);
                    small(id)
                })
                .await
            }
            Lib::RawWithTtl(conn) => raw_read_with_ttl(conn, id).await,
            Lib::RawClusterWithTtl(conn) => raw_read_with_ttl(conn, id).await,
        }
    }

    pub async fn write(&mut self, id: u64) {
        let value = small(id);
        match self {
            Lib::Ours(cache, keys) => {
                let key = keys.key(&(id,)).expect("key");
                cache.set(&key, &value, Some(TTL)).await.expect("set");
            }
            Lib::Cached(store) => {
                store.cache_set(id, value).await.expect("set");
            }
            Lib::CachekitRs(client) => {
                let key = interop_key("peers_rs", "mixed", &[InteropValue::from(id)]).expect("key");
                client.set_with_ttl(&key, &value, TTL).await.expect("set");
            }
            Lib::Raw(conn) | Lib::RawWithTtl(conn) => {
                raw_set(conn, &format!("raw:mixed:{id}"), &value).await
            }
            Lib::RawCluster(conn) | Lib::RawClusterWithTtl(conn) => {
                raw_set(conn, &format!("raw:mixed:{id}"), &value).await
            }
        }
    }
}

/// A raw read the way cachekit reads: GET and PTTL in one pipeline.
async fn raw_read_with_ttl(conn: &mut impl ConnectionLike, id: u64) -> Small {
    let key = format!("raw:mixed:{id}");
    let (bytes, _pttl): (Option<Vec<u8>>, i64) = redis::pipe()
        .cmd("GET")
        .arg(&key)
        .cmd("PTTL")
        .arg(&key)
        .query_async(conn)
        .await
        .expect("raw GET+PTTL");
    match bytes.and_then(|b| rmp_serde::from_slice(&b).ok()) {
        Some(v) => v,
        None => {
            missed(3);
            let v = small(id);
            raw_set(conn, &key, &v).await;
            v
        }
    }
}

/// cachekit over its own Redis pool, without an L1; `tune` changes the
/// pool's defaults.
pub async fn ours(
    url: &str,
    tune: fn(RedisConfigBuilder) -> RedisConfigBuilder,
    guarded: bool,
) -> Lib {
    let config = tune(RedisConfig::builder().url(url));
    let redis = RedisBackend::new(config.build().expect("config"))
        .await
        .expect("cachekit redis");
    let mut builder = TieredCache::builder().without_l1().l2(redis);
    if !guarded {
        builder = builder.without_breaker().without_l2_timeout();
    }
    let keys = KeyBuilder::new("peers", "mixed").expect("keys");
    Lib::Ours(builder.build().expect("tiered"), keys)
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
        ("cached", Lib::Cached(Arc::new(cached))),
        ("cachekit-rs", Lib::CachekitRs(ckrs_client(url).await)),
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

pub async fn raw_conn(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}
