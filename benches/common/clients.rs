//! The Redis clients the benches drive through one loop: cachekit without
//! an L1, and raw redis-rs as the floor, each doing the same memoized read
//! (get, else compute and store). `Lib::Peer` holds another library's
//! client: the peers bench (`benches/peers/`) puts `cached` and cachekit-rs
//! there, so that this crate's benches do not build them.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit::{KeyBuilder, RedisBackend, RedisConfig, RedisConfigBuilder, TieredCache};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use serde::{de::DeserializeOwned, Serialize};
use tokio::runtime::Runtime;

use super::values::{small, Small, Zipf};

pub const TTL: Duration = Duration::from_secs(600);

/// Another library's client in [`Lib::Peer`]. Generic rather than boxed, so
/// a peer's call costs what it costs in an application.
pub trait Peer: Clone + Send + Sync + 'static {
    /// A memoized read of `id`: computes and stores on a miss.
    fn read(&mut self, id: u64) -> impl Future<Output = Small> + Send;
    /// A plain store of `value` under `id`.
    fn write(&mut self, id: u64, value: Small) -> impl Future<Output = ()> + Send;
}

/// No other library: the benches of the `cachekit` package.
#[derive(Clone)]
pub enum NoPeer {}

impl Peer for NoPeer {
    async fn read(&mut self, _id: u64) -> Small {
        match *self {}
    }

    async fn write(&mut self, _id: u64, _value: Small) {
        match *self {}
    }
}

/// A library's Redis client, cheap to clone into each task. Reads are
/// memoized calls (compute and store on a miss), writes are plain stores.
#[derive(Clone)]
pub enum Lib<P: Peer = NoPeer> {
    Ours(TieredCache, KeyBuilder),
    Peer(P),
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
pub static READ_MISSES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Counts a read of kind `kind` (an index into [`READ_MISSES`]) that computed.
pub fn missed(kind: usize) {
    READ_MISSES[kind].fetch_add(1, Relaxed);
}

impl<P: Peer> Lib<P> {
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
            Lib::Peer(peer) => peer.read(id).await,
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
            Lib::Peer(peer) => peer.write(id, value).await,
            Lib::Raw(conn) | Lib::RawWithTtl(conn) => {
                raw_set(conn, &format!("raw:mixed:{id}"), &value).await
            }
            Lib::RawCluster(conn) | Lib::RawClusterWithTtl(conn) => {
                raw_set(conn, &format!("raw:mixed:{id}"), &value).await
            }
        }
    }
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
pub async fn ours<P: Peer>(
    url: &str,
    tune: fn(RedisConfigBuilder) -> RedisConfigBuilder,
    guarded: bool,
) -> Lib<P> {
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

pub async fn raw_conn(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

// ---- many tasks ---------------------------------------------------------------

/// The operations one task runs.
#[derive(Clone)]
pub enum Mix {
    /// Memoized reads of keys drawn uniformly from 10k stored ones, so no
    /// two tasks share a read and coalescing cannot help.
    Uniform,
    /// 90 % memoized reads, 10 % writes, keys Zipf(1.0) over 10k.
    Zipf90(Arc<Zipf>),
}

pub const SEED: u64 = 0x00c0_ffee;

/// `tasks` tasks share `iters` operations; returns the wall time.
pub fn run_tasks<P: Peer>(
    rt: &Runtime,
    iters: u64,
    tasks: u64,
    lib: &Lib<P>,
    mix: &Mix,
) -> Duration {
    let per_task = iters.div_ceil(tasks);
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let mut lib = lib.clone();
                let mix = mix.clone();
                tokio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(SEED + t);
                    for _ in 0..per_task {
                        match &mix {
                            Mix::Uniform => {
                                black_box(lib.read(rng.u64(0..10_000)).await);
                            }
                            Mix::Zipf90(zipf) => {
                                let id = zipf.sample(&mut rng);
                                if rng.u8(0..10) == 0 {
                                    lib.write(id).await;
                                } else {
                                    black_box(lib.read(id).await);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
        start.elapsed()
    })
}
