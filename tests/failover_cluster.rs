//! Redis Cluster under load while its topology changes, against six real
//! nodes (`RedisCluster`: three primaries, one replica each,
//! `cluster-node-timeout` 1000 ms).
//!
//! - A primary is SIGKILLed: calls on its slots miss (fail open) until its
//!   replica takes over, then hit again; no call fails or returns a wrong
//!   value. The time from the kill until hits resume on those slots is
//!   printed (`FAILOVER | ...`, shown with `--nocapture`).
//! - A slot is migrated, key by key, while its keys are read and written
//!   (GET, GET+PTTL, SET, `get_many`, `set_many`): `ASK` and `MOVED` are
//!   followed, the migration completes (no key written to the importing
//!   node behind the migrating one's back), and the backend itself returns
//!   no wrong value and no error but a rare response timeout.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachekit::{Backend, BreakerConfig, ErrorKind, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::{RedisCluster, RedisServer};
use common::{fault, keyspace_hits, Latencies, HUNG, RECOVERY_BOUND};

const TTL: Option<Duration> = Some(Duration::from_secs(600));

async fn redis(cluster: &RedisCluster) -> RedisBackend {
    let config = RedisConfig::builder().url(cluster.url()).build().unwrap();
    RedisBackend::new(config).await.unwrap()
}

/// What the load stores under `key:N`.
fn value_of(key: &str) -> u64 {
    key.trim_start_matches("key:").parse::<u64>().unwrap() * 7 + 1
}

/// One read: when it ended, whether its key lives on the killed primary's
/// slots, whether it hit.
type Read = (Instant, bool, bool);

/// Readers through one cache: get, and on a miss set (fail-open reads:
/// a failed L2 call is a miss, a failed write is ignored).
struct Load {
    reads: Arc<Mutex<Vec<Read>>>,
    wrong: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cache: &TieredCache, keys: &Arc<Vec<(String, bool)>>, stop: &Arc<AtomicBool>) -> Self {
        let (reads, wrong) = (
            Arc::<Mutex<Vec<Read>>>::default(),
            Arc::<AtomicU64>::default(),
        );
        let tasks = (0..16)
            .map(|caller| {
                let (cache, keys, stop) = (cache.clone(), keys.clone(), stop.clone());
                let (reads, wrong) = (reads.clone(), wrong.clone());
                tokio::spawn(async move {
                    let mut i = caller;
                    while !stop.load(SeqCst) {
                        let (key, on_victim) = &keys[i % keys.len()];
                        let got = tokio::time::timeout(HUNG, cache.get::<u64>(key)).await;
                        let got = got.unwrap_or_else(|_| panic!("a read of {key} hung"));
                        reads
                            .lock()
                            .unwrap()
                            .push((Instant::now(), *on_victim, got.is_some()));
                        match got {
                            Some(v) if v != value_of(key) => {
                                wrong.fetch_add(1, SeqCst);
                            }
                            Some(_) => {}
                            None => {
                                let _ = cache.set(key, &value_of(key), TTL).await;
                            }
                        }
                        i += 7;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            reads,
            wrong,
            tasks,
        }
    }

    /// How long after `kill` reads on the victim's (`victim: true`) or the
    /// other slots hit again after missing: `Some(ZERO)` when they never
    /// missed, `None` while they still miss.
    fn resumed_after(&self, kill: Instant, victim: bool) -> Option<Duration> {
        let reads = self.reads.lock().unwrap();
        let mut after = reads.iter().filter(|r| r.0 > kill && r.1 == victim);
        if after.clone().all(|r| r.2) {
            return after.next().map(|_| Duration::ZERO);
        }
        after.find(|r| !r.2)?;
        after.find(|r| r.2).map(|r| r.0.duration_since(kill))
    }

    /// Reads after `kill` that missed, on the victim's or the other slots.
    fn misses_after(&self, kill: Instant, victim: bool) -> usize {
        let reads = self.reads.lock().unwrap();
        reads
            .iter()
            .filter(|r| r.0 > kill && r.1 == victim && !r.2)
            .count()
    }

    async fn finish(self, what: &str) {
        for task in self.tasks {
            task.await.unwrap();
        }
        assert_eq!(
            self.wrong.load(SeqCst),
            0,
            "{what}: a read returned a wrong value"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_primary_misses_on_its_slots_until_its_replica_serves_them() {
    let cluster = Arc::new(fault(RedisCluster::start).await);
    let (keys, victim) = fault({
        let cluster = cluster.clone();
        move || {
            let keys = cluster.keys_on_distinct_primaries(32);
            let victim = cluster.primary_for_key(&keys[0]).addr();
            let keys: Vec<(String, bool)> = keys
                .into_iter()
                .map(|k| {
                    let on_victim = cluster.primary_for_key(&k).addr() == victim;
                    (k, on_victim)
                })
                .collect();
            (Arc::new(keys), victim)
        }
    })
    .await;
    let backend: Arc<dyn Backend> = Arc::new(redis(&cluster).await);
    let cache = |breaker: BreakerConfig| {
        TieredCache::builder()
            .without_l1()
            .l2_arc(backend.clone())
            .breaker(breaker)
            .build()
            .unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let default_breaker = Load::start(&cache(BreakerConfig::default()), &keys, &stop);
    let quick = BreakerConfig::default().recovery_timeout(Duration::from_millis(500));
    let quick_probe = Load::start(&cache(quick), &keys, &stop);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let (old, killed) = fault({
        let (cluster, key) = (cluster.clone(), keys[0].0.clone());
        move || (cluster.kill_primary_for_key(&key), Instant::now())
    })
    .await;
    assert_eq!(old, victim);
    fault({
        let cluster = cluster.clone();
        move || cluster.wait_for_promotion(old)
    })
    .await;
    let promoted = killed.elapsed();
    let back = |load: &Load| {
        load.resumed_after(killed, true).is_some() && load.resumed_after(killed, false).is_some()
    };
    while !back(&default_breaker) || !back(&quick_probe) {
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "hits did not resume within {RECOVERY_BOUND:?} of the kill\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, SeqCst);
    for (load, what) in [
        (&default_breaker, "default breaker"),
        (&quick_probe, "0.5 s breaker probe"),
    ] {
        eprintln!(
            "FAILOVER | cluster SIGKILL of {old} ({what}) | replica promoted after {promoted:?} | \
             hits resumed on its slots after {:?} ({} misses), on the other slots after {:?} ({} misses)",
            load.resumed_after(killed, true).unwrap(),
            load.misses_after(killed, true),
            load.resumed_after(killed, false).unwrap(),
            load.misses_after(killed, false),
        );
    }
    default_breaker.finish("default breaker").await;
    quick_probe.finish("0.5 s breaker probe").await;

    // The victim's keys are served by the promoted replica, which served
    // no read while it was a replica.
    let hits = fault(move || keyspace_hits(cluster.primary_for_key(&keys[0].0))).await;
    assert!(hits > 0, "the promoted replica served no hit");
}

/// `errorstat_<code>` count in `INFO errorstats`, 0 when absent.
fn error_count(node: &RedisServer, code: &str) -> u64 {
    let info = node.command(&["INFO", "errorstats"]);
    let prefix = format!("errorstat_{code}:count=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What went wrong in the migration load, as the backend reported it.
#[derive(Default)]
struct Outcome {
    ops: AtomicU64,
    /// Calls that ran out of time (`response_timeout`) in redis-rs.
    timeouts: Mutex<Vec<String>>,
    /// Any other failure.
    errors: Mutex<Vec<String>>,
    wrong: Mutex<Vec<String>>,
    latencies: Latencies,
}

/// The values a key may hold: the last acknowledged write, and any write
/// after it that failed (it may have been applied or not).
#[derive(Clone)]
struct Possible(Vec<Bytes>);

impl Possible {
    fn acked(&mut self, value: Bytes) {
        self.0 = vec![value];
    }

    fn failed(&mut self, value: Bytes) {
        self.0.push(value);
    }

    /// Whether `got` is a value the key may hold; it holds that one now.
    fn read(&mut self, got: Option<&Bytes>) -> bool {
        match got {
            Some(got) if self.0.contains(got) => {
                self.acked(got.clone());
                true
            }
            _ => false,
        }
    }
}

/// Writes a new value to each of `keys` in turn and reads it back (GET and
/// GET+PTTL), with `get_many`/`set_many` over all of them now and then.
async fn churn(redis: RedisBackend, keys: Vec<String>, stop: Arc<AtomicBool>, out: Arc<Outcome>) {
    let fail = |what: String, err: &cachekit::Error| {
        let timed_out = err.kind() == ErrorKind::Timeout || err.message().contains("(timed out)");
        let list = if timed_out {
            &out.timeouts
        } else {
            &out.errors
        };
        list.lock().unwrap().push(format!("{what}: {err}"));
    };
    let wrong = |what: String| out.wrong.lock().unwrap().push(what);
    let mut held = vec![Possible(vec![Bytes::from_static(b"v0")]); keys.len()];
    let mut round = 0u64;
    while !stop.load(SeqCst) {
        round += 1;
        for (i, key) in keys.iter().enumerate() {
            let value = Bytes::from(format!("{key}:{round}"));
            match out.latencies.time(redis.set(key, value.clone(), TTL)).await {
                Ok(()) => held[i].acked(value),
                Err(err) => {
                    held[i].failed(value);
                    fail(format!("set {key}"), &err);
                }
            }
            match out.latencies.time(redis.get(key)).await {
                Ok(got) if held[i].read(got.as_ref()) => {}
                Ok(got) => wrong(format!("get {key}: {got:?}, may hold {:?}", held[i].0)),
                Err(err) => fail(format!("get {key}"), &err),
            }
            match out.latencies.time(redis.get_with_ttl(key)).await {
                Ok(got) if held[i].read(got.as_ref().map(|g| &g.0)) => {}
                Ok(got) => wrong(format!(
                    "get_with_ttl {key}: {got:?}, may hold {:?}",
                    held[i].0
                )),
                Err(err) => fail(format!("get_with_ttl {key}"), &err),
            }
            out.ops.fetch_add(3, SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        match out.latencies.time(redis.get_many(&names)).await {
            Ok(got) => {
                for ((key, got), held) in keys.iter().zip(got).zip(&mut held) {
                    if !held.read(got.as_ref()) {
                        wrong(format!("get_many {key}: {got:?}, may hold {:?}", held.0));
                    }
                }
            }
            Err(err) => fail("get_many".to_owned(), &err),
        }
        let batch: Vec<(&str, Bytes)> = keys
            .iter()
            .map(|k| (k.as_str(), Bytes::from(format!("{k}:{round}:many"))))
            .collect();
        let result = out.latencies.time(redis.set_many(&batch, TTL)).await;
        for ((_, value), held) in batch.into_iter().zip(&mut held) {
            match &result {
                Ok(()) => held.acked(value),
                Err(_) => held.failed(value),
            }
        }
        if let Err(err) = result {
            fail("set_many".to_owned(), &err);
        }
        out.ops.fetch_add(2, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_slot_migration_under_load_returns_no_wrong_value_and_no_redirect_error() {
    let cluster = Arc::new(fault(RedisCluster::start).await);
    let slot = cluster.key_slot("key:0");
    let keys = cluster.keys_in_slot(slot, 160);
    let (from, to) = {
        let from = cluster.primary_for_slot(slot).addr();
        let primaries = cluster.primaries();
        let to = primaries.iter().find(|p| p.addr() != from).unwrap().addr();
        (from, to)
    };
    let redis = redis(&cluster).await;
    let preload: Vec<(&str, Bytes)> = keys
        .iter()
        .map(|k| (k.as_str(), Bytes::from_static(b"v0")))
        .collect();
    redis.set_many(&preload, TTL).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Outcome::default());
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let mine: Vec<String> = keys.iter().skip(w).step_by(8).cloned().collect();
            tokio::spawn(churn(redis.clone(), mine, stop.clone(), out.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let migration = cluster
        .slot_migration(slot, to)
        .keys_per_batch(1)
        .pause_between_batches(Duration::from_millis(10))
        .spawn();
    let joined = fault(move || migration.join()).await;
    let migrated = started.elapsed();
    let during = out.ops.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }

    let (asks, moved) = fault({
        let cluster = cluster.clone();
        move || {
            let source = cluster.node(from);
            (error_count(source, "ASK"), error_count(source, "MOVED"))
        }
    })
    .await;
    let errors = out.errors.lock().unwrap().clone();
    let timeouts = out.timeouts.lock().unwrap().clone();
    let wrong = out.wrong.lock().unwrap().clone();
    let calls = out.ops.load(SeqCst);
    eprintln!(
        "FAILOVER | cluster slot {slot} migrated {from} -> {to} key by key in {migrated:?} | \
         {calls} backend calls ({during} before the migration ended): {} timed out, {} other \
         errors, {} wrong values | the source answered ASK {asks} and MOVED {moved} times | {}",
        timeouts.len(),
        errors.len(),
        wrong.len(),
        out.latencies.summary(),
    );
    assert!(joined.is_ok(), "the migration failed (see its panic above)");
    assert!(asks > 0, "the load met no ASK redirect");
    assert!(
        errors.is_empty(),
        "backend calls failed during the migration: {errors:#?}"
    );
    assert!(
        wrong.is_empty(),
        "wrong values during the migration: {wrong:#?}"
    );
    // redis-rs 1.8 leaves a few commands hanging until the response
    // deadline while it bounces ASK/MOVED and refreshes the slot map under
    // this load (all of it on the migrating slot); more than a few is not
    // that.
    assert!(
        timeouts.len() as u64 * 50 <= calls,
        "more than 2 % of the calls timed out: {timeouts:#?}"
    );
    assert_eq!(
        fault(move || cluster.primary_for_slot(slot).addr()).await,
        to
    );
}
