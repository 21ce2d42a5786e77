//! The Redis backend against raw redis-rs on the same server, in one run.
//!
//! `cargo bench --bench redis` (starts its own redis-server on loopback).
//!
//! The raw baseline is a `MultiplexedConnection` with redis-rs 1.x defaults,
//! which leave Nagle's algorithm on; the backend sets `TCP_NODELAY`, as
//! redis-rs 2 will by default, and coalesces the writes of concurrent
//! commands itself (`RedisConfig::coalesce_writes`). On loopback Nagle
//! coalesces the writes of many concurrent tasks into fewer segments and
//! wins; across a real network it holds writes back until an ACK arrives
//! and loses (redis-rs/redis-rs#2195). The throughput group therefore also
//! has a raw baseline with `TCP_NODELAY`, the backend without coalescing
//! (`TCP_NODELAY` alone), and the backend on the raw connection's
//! transport (Nagle, no coalescing), so that the backend's own overhead
//! can be read apart from the transport.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachekit::{
    Backend, BreakerConfig, Codec, RedisBackend, RedisConfig, RedisConfigBuilder, TieredCache,
};
use cachekit_testkit::RedisServer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::IntoConnectionInfo;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    bio: String,
}

fn profile() -> Profile {
    Profile {
        id: 42,
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        roles: vec!["admin".into(), "editor".into()],
        bio: "Writes caches for a living; ".repeat(3),
    }
}

struct Fixture {
    rt: Runtime,
    _server: RedisServer,
    raw: MultiplexedConnection,
    /// The same, with `TCP_NODELAY` like the backend's connections.
    raw_nodelay: MultiplexedConnection,
    backend: Arc<RedisBackend>,
    /// The backend with `coalesce_writes(false)`: `raw_nodelay`'s transport.
    backend_uncoalesced: Arc<RedisBackend>,
    /// The backend with neither coalescing nor `TCP_NODELAY`: `raw`'s.
    backend_nagle: Arc<RedisBackend>,
}

fn fixture() -> Fixture {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (raw, raw_nodelay, backend, backend_uncoalesced, backend_nagle) = rt.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let raw = client.get_multiplexed_async_connection().await.unwrap();
        let info = server
            .url()
            .as_str()
            .into_connection_info()
            .unwrap()
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let raw_nodelay = redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let open = |tune: fn(RedisConfigBuilder) -> RedisConfigBuilder| {
            let config = tune(RedisConfig::builder().url(server.url())).build();
            async move { Arc::new(RedisBackend::new(config.unwrap()).await.unwrap()) }
        };
        let backend = open(|c| c).await;
        let uncoalesced = open(|c| c.coalesce_writes(false)).await;
        let nagle = open(|c| c.coalesce_writes(false).tcp_nodelay(false)).await;
        (raw, raw_nodelay, backend, uncoalesced, nagle)
    });
    Fixture {
        rt,
        _server: server,
        raw,
        raw_nodelay,
        backend,
        backend_uncoalesced,
        backend_nagle,
    }
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

fn get_1k(c: &mut Criterion, f: &Fixture) {
    let value = Bytes::from(vec![b'x'; 1024]);
    f.rt.block_on(f.backend.set("bench:1k", value, None))
        .unwrap();
    let mut group = c.benchmark_group("redis_get_1k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_multiplexed (baseline)", |b| {
        b.to_async(&f.rt).iter(|| {
            let mut conn = f.raw.clone();
            async move { black_box(raw_get(&mut conn, "bench:1k").await) }
        })
    });
    group.bench_function("redis_backend", |b| {
        b.to_async(&f.rt)
            .iter(|| async { black_box(f.backend.get("bench:1k").await.unwrap()) })
    });
    group.finish();
}

/// `tasks` concurrent tasks share `iters` GETs; returns the wall time.
fn concurrent<Fut>(rt: &Runtime, iters: u64, tasks: u64, op: impl Fn() -> Fut) -> Duration
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let per_task = iters.div_ceil(tasks);
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let ops: Vec<_> = (0..per_task).map(|_| op()).collect();
                tokio::spawn(async move {
                    for fut in ops {
                        fut.await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    })
}

fn throughput(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("redis_get_throughput");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    let raw = [
        ("raw_multiplexed (baseline)", &f.raw),
        ("raw_multiplexed_nodelay (baseline)", &f.raw_nodelay),
    ];
    let ours = [
        ("redis_backend", &f.backend),
        ("redis_backend_uncoalesced", &f.backend_uncoalesced),
        ("redis_backend_nagle", &f.backend_nagle),
    ];
    for tasks in [1u64, 16, 64] {
        for (name, conn) in raw {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| {
                    concurrent(&f.rt, iters, tasks, || {
                        let mut conn = conn.clone();
                        async move {
                            black_box(raw_get(&mut conn, "bench:1k").await);
                        }
                    })
                })
            });
        }
        for (name, backend) in ours {
            group.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| {
                    concurrent(&f.rt, iters, tasks, || {
                        let backend = Arc::clone(backend);
                        async move {
                            black_box(backend.get("bench:1k").await.unwrap());
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

fn set_and_mget(c: &mut Criterion, f: &Fixture) {
    let value = Bytes::from(vec![b'y'; 1024]);
    let keys: Vec<String> = (0..100).map(|i| format!("bench:m:{i}")).collect();
    for key in &keys {
        f.rt.block_on(f.backend.set(key, value.clone(), None))
            .unwrap();
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("redis_set_1k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_multiplexed (baseline)", |b| {
        b.to_async(&f.rt).iter(|| {
            let mut conn = f.raw.clone();
            let value = value.clone();
            async move {
                let _: () = redis::cmd("SET")
                    .arg("bench:set")
                    .arg(value.as_ref())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        })
    });
    group.bench_function("redis_backend", |b| {
        b.to_async(&f.rt).iter(|| async {
            f.backend
                .set("bench:set", value.clone(), None)
                .await
                .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("redis_mget_100");
    group.throughput(Throughput::Elements(100));
    group.bench_function("raw_multiplexed (baseline)", |b| {
        b.to_async(&f.rt).iter(|| {
            let mut conn = f.raw.clone();
            let keys = keys.clone();
            async move {
                let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                black_box(v)
            }
        })
    });
    group.bench_function("redis_backend", |b| {
        b.to_async(&f.rt)
            .iter(|| async { black_box(f.backend.get_many(&key_refs).await.unwrap()) })
    });
    group.finish();
}

/// `get_or_compute` served by Redis (no L1), with and without the
/// reliability guards, against a raw GET + decode of the same bytes.
fn tiered_l2_hit(c: &mut Criterion, f: &Fixture) {
    let guarded = TieredCache::builder()
        .without_l1()
        .l2_arc(f.backend.clone())
        .breaker(BreakerConfig::default())
        .build()
        .unwrap();
    let unguarded = TieredCache::builder()
        .without_l1()
        .l2_arc(f.backend.clone())
        .without_breaker()
        .without_l2_timeout()
        .build()
        .unwrap();
    let ttl = Some(Duration::from_secs(3600));
    f.rt.block_on(guarded.set("bench:profile", &profile(), ttl))
        .unwrap();
    let codec = Codec::default();

    let mut group = c.benchmark_group("tiered_l2_hit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_get_and_decode (baseline)", |b| {
        b.to_async(&f.rt).iter(|| {
            let mut conn = f.raw.clone();
            let codec = codec.clone();
            async move {
                let bytes = raw_get(&mut conn, "bench:profile").await.unwrap();
                black_box(codec.decode::<Profile>(&bytes).unwrap())
            }
        })
    });
    group.bench_function("get_or_compute_guarded", |b| {
        b.to_async(&f.rt).iter(|| async {
            black_box(
                guarded
                    .get_or_compute("bench:profile", ttl, || async { profile() })
                    .await,
            )
        })
    });
    group.bench_function("get_or_compute_unguarded", |b| {
        b.to_async(&f.rt).iter(|| async {
            black_box(
                unguarded
                    .get_or_compute("bench:profile", ttl, || async { profile() })
                    .await,
            )
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    get_1k(c, &f);
    throughput(c, &f);
    set_and_mget(c, &f);
    tiered_l2_hit(c, &f);
}

criterion_group!(redis_benches, benches);
criterion_main!(redis_benches);
