//! The fleet's parts: its caches, its `#[cached]` functions, the writer and
//! the readers of each kind of change.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cachekit::{cached, CachedFn, ChannelState, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::{RedisServer, PATIENCE};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

pub const CHILD_ENV: &str = "CACHEKIT_INVALIDATION_FLEET_CHILD";
pub const CHILD_ENTRY: &str = "fleet_child";
/// Changes per run.
pub const CHANGES: u64 = 1000;
/// Between two changes.
pub const PAUSE: Duration = Duration::from_millis(1);
/// How long after a change was acknowledged a reader may still return the
/// older value: generous (the goal is 10 ms at p99 on loopback; this is
/// a 2-core machine running four processes and redis-server).
pub const BOUND: Duration = Duration::from_millis(200);
pub const TTL: Option<Duration> = Some(Duration::from_secs(60));

const SET_KEY: &str = "fleet:set";
const DELETE_KEY: &str = "fleet:delete";

/// How the writer changes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `TieredCache::set` of the version; readers `get` it.
    Set,
    /// The source changes, then `TieredCache::delete`; readers
    /// `get_or_compute` from the source.
    Delete,
    /// The source changes, then `#[cached]` `_invalidate`; readers call
    /// the function.
    Invalidate,
    /// The source changes, then `#[cached]` `_refresh`.
    Refresh,
    /// The source changes, then `#[cached]` `_clear` (a `delete_prefix`).
    Clear,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Set, Op::Delete, Op::Invalidate, Op::Refresh, Op::Clear];

    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Invalidate => "invalidate",
            Op::Refresh => "refresh",
            Op::Clear => "clear",
        }
    }

    pub fn parse(name: &str) -> Op {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .unwrap_or_else(|| panic!("no op {name}"))
    }

    /// The function argument and source of this op's runs.
    fn id(self) -> u64 {
        self as u64 + 1
    }
}

/// A cache on `url` with an L1 and, if given, the invalidation choice.
pub fn cache(url: &str, invalidation: Option<bool>) -> TieredCache {
    cache_with(url, invalidation, cachekit::DEFAULT_L1_MAX_TTL)
}

/// [`cache`] with an `l1_max_ttl`.
pub fn cache_with(url: &str, invalidation: Option<bool>, l1_max_ttl: Duration) -> TieredCache {
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build().unwrap());
    let mut builder = TieredCache::builder()
        .l2(redis.unwrap())
        .l1_max_ttl(l1_max_ttl);
    if let Some(on) = invalidation {
        builder = builder.l1_invalidation(on);
    }
    builder.build().unwrap()
}

/// Polls `cond` every 5 ms until it holds; panics after the testkit's
/// patience.
pub async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(started.elapsed() < PATIENCE, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `cache` receives invalidations, unless invalidation is
/// off (`CACHEKIT_L1_INVALIDATION=off` makes these tests show what they
/// catch).
pub async fn live(cache: &TieredCache) {
    until("the invalidation channel is live", || async {
        cache.invalidation_stats().state != ChannelState::Down
    })
    .await;
}

// ---------------------------------------------------------------------------
// The functions, one per process count: a function's cache is made on its
// first call, for the server of the test that calls it.

static PAIR_URL: OnceLock<String> = OnceLock::new();
static QUAD_URL: OnceLock<String> = OnceLock::new();

fn fleet_backend(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
}

#[cached(namespace = "fleet", name = "pair", ttl = 60, backend = fleet_backend(&PAIR_URL))]
async fn pair(id: u64) -> u64 {
    source(PAIR_URL.get().unwrap(), id).await
}

#[cached(namespace = "fleet", name = "quad", ttl = 60, backend = fleet_backend(&QUAD_URL))]
async fn quad(id: u64) -> u64 {
    source(QUAD_URL.get().unwrap(), id).await
}

fn url_of(processes: usize) -> &'static OnceLock<String> {
    if processes == 2 {
        &PAIR_URL
    } else {
        &QUAD_URL
    }
}

fn handle(processes: usize) -> &'static CachedFn {
    if processes == 2 {
        pair_cache()
    } else {
        quad_cache()
    }
}

async fn call(processes: usize, id: u64) -> u64 {
    if processes == 2 {
        pair(id).await
    } else {
        quad(id).await
    }
}

// ---------------------------------------------------------------------------
// The source: what the computations read, straight from Redis (no L1).

fn source_key(id: u64) -> String {
    format!("fleet:source:{id}")
}

/// A plain redis-rs connection to `url`, one per server and process.
async fn plain(url: &str) -> MultiplexedConnection {
    static CONNS: Mutex<Option<HashMap<String, MultiplexedConnection>>> = Mutex::new(None);
    let known = {
        let conns = CONNS.lock().unwrap_or_else(PoisonError::into_inner);
        conns.as_ref().and_then(|c| c.get(url).cloned())
    };
    if let Some(conn) = known {
        return conn;
    }
    let client = redis::Client::open(url).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut conns = CONNS.lock().unwrap_or_else(PoisonError::into_inner);
    conns
        .get_or_insert_with(HashMap::new)
        .insert(url.to_owned(), conn.clone());
    conn
}

async fn source(url: &str, id: u64) -> u64 {
    let value: Option<u64> = plain(url).await.get(source_key(id)).await.unwrap();
    value.unwrap_or(0)
}

async fn set_source(url: &str, id: u64, version: u64) {
    let () = plain(url).await.set(source_key(id), version).await.unwrap();
}

// ---------------------------------------------------------------------------
// Readers and the writer.

/// How one process reads (or writes) the value of one op.
pub enum Reader {
    Cache {
        cache: TieredCache,
        op: Op,
        url: String,
    },
    Function {
        processes: usize,
        id: u64,
    },
}

impl Reader {
    /// Sets up and waits until the channel is live.
    pub async fn new(url: &str, op: Op, processes: usize) -> Self {
        match op {
            Op::Set | Op::Delete => {
                let reader = Reader::Cache {
                    cache: cache(url, None),
                    op,
                    url: url.to_owned(),
                };
                live(reader.cache()).await;
                reader
            }
            Op::Invalidate | Op::Refresh | Op::Clear => {
                // The same server for every op of one process count.
                let _ = url_of(processes).set(url.to_owned());
                assert_eq!(url_of(processes).get().unwrap(), url);
                let reader = Reader::Function {
                    processes,
                    id: op.id(),
                };
                reader.read().await;
                live(reader.cache()).await;
                reader
            }
        }
    }

    fn cache(&self) -> &TieredCache {
        match self {
            Reader::Cache { cache, .. } => cache,
            Reader::Function { processes, .. } => handle(*processes).cache().unwrap(),
        }
    }

    /// The value now, through this process's cache.
    pub async fn read(&self) -> u64 {
        match self {
            Reader::Cache {
                cache, op: Op::Set, ..
            } => cache.get::<u64>(SET_KEY).await.unwrap_or(0),
            Reader::Cache { cache, op, url } => {
                let id = op.id();
                cache
                    .get_or_compute(DELETE_KEY, TTL, || source(url, id))
                    .await
            }
            Reader::Function { processes, id } => call(*processes, *id).await,
        }
    }

    /// Counters, as `name=value` fields.
    pub fn stats(&self) -> String {
        let stats = self.cache().stats();
        let inv = stats.invalidation;
        format!(
            "l1_hits={} l2_hits={} computes={} superseded={} keys={} prefixes={} flushes={} losses={}",
            stats.l1.hits,
            stats.l2.hits,
            stats.computes,
            stats.superseded,
            inv.keys,
            inv.prefixes,
            inv.flushes,
            inv.losses
        )
    }
}

/// The test process's side: changes the value, one version at a time.
pub struct Writer {
    own: Reader,
    op: Op,
    url: String,
    processes: usize,
}

impl Writer {
    pub async fn new(server: &RedisServer, op: Op, processes: usize) -> Self {
        let url = server.url();
        set_source(&url, op.id(), 0).await;
        Writer {
            own: Reader::new(&url, op, processes).await,
            op,
            url,
            processes,
        }
    }

    /// Makes `version` the value; returns once Redis acknowledged it.
    pub async fn change(&self, version: u64) {
        let id = self.op.id();
        if self.op != Op::Set {
            set_source(&self.url, id, version).await;
        }
        let cache = self.own.cache();
        match self.op {
            Op::Set => cache.set(SET_KEY, &version, TTL).await.unwrap(),
            Op::Delete => {
                cache.delete(DELETE_KEY).await.unwrap();
            }
            Op::Invalidate => {
                let invalidate = if self.processes == 2 {
                    pair_invalidate(id).await
                } else {
                    quad_invalidate(id).await
                };
                invalidate.unwrap();
            }
            Op::Refresh => {
                let fresh = if self.processes == 2 {
                    pair_refresh(id).await
                } else {
                    quad_refresh(id).await
                };
                assert_eq!(fresh, version);
            }
            Op::Clear => {
                let clear = if self.processes == 2 {
                    pair_clear().await
                } else {
                    quad_clear().await
                };
                clear.unwrap();
            }
        }
    }

    pub fn stats(&self) -> String {
        self.own.stats()
    }
}
