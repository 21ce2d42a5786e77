//! Sentinel failovers under load, against a real primary, replica and three
//! sentinels (`SentinelSet`: `down-after-milliseconds` 1000).
//!
//! - The primary is SIGKILLed under `#[cached]` callers: no call fails or
//!   returns a wrong value, and L2 hits resume on the promoted replica. The
//!   time from the kill until they resume is measured and printed
//!   (`FAILOVER | ...`, shown with `--nocapture`), for the default circuit
//!   breaker and for one that probes again after 0.5 s.
//! - A graceful `SENTINEL FAILOVER` under a write load: every write
//!   acknowledged after the switch is readable afterwards, and the
//!   backend's connections leave the old primary (`+switch-master` is
//!   followed) before the sentinels demote it.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cachekit::{cached, BreakerConfig, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::{RedisServer, SentinelSet};
use common::{fault, keyspace_hits, Latencies, HUNG, RECOVERY_BOUND};

const CALLERS_PER_FN: u64 = 16;
const SHARED_KEYS: u64 = 8;

/// A cache whose only tier is the Redis backend at `url`: without L1 every
/// call reads Redis, so the L2 hit counter follows Redis call by call.
fn l2_only(url: &OnceLock<String>, breaker: BreakerConfig) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder()
        .without_l1()
        .l2(redis)
        .breaker(breaker)
        .build()
}

fn price_of(id: u64) -> u64 {
    id * 7 + 1
}

static KILL_URL: OnceLock<String> = OnceLock::new();

/// Default settings (the breaker probes again 5 s after it opens).
#[cached(ttl = 600, backend = l2_only(&KILL_URL, BreakerConfig::default()))]
async fn price(id: u64) -> u64 {
    price_of(id)
}

/// The same with a breaker that probes again after 0.5 s.
#[cached(ttl = 600, backend = l2_only(
    &KILL_URL,
    BreakerConfig::default().recovery_timeout(Duration::from_millis(500)),
))]
async fn price_quick_probe(id: u64) -> u64 {
    price_of(id)
}

/// A cache's L2 counters over time: (when, hits, errors + timeouts + skipped).
type Samples = Arc<Mutex<Vec<(Instant, u64, u64)>>>;

/// Callers of one `#[cached]` function and a sampler of its cache's stats.
struct Load {
    samples: Samples,
    wrong: Arc<AtomicU64>,
    latencies: Latencies,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `CALLERS_PER_FN` tasks calling `f` in a loop on shared keys (hits)
    /// and keys of their own (misses, then writes), until `stop`.
    fn start<F, Fut>(f: F, cache: fn() -> TieredCache, stop: &Arc<AtomicBool>) -> Self
    where
        F: Fn(u64) -> Fut + Copy + Send + 'static,
        Fut: Future<Output = u64> + Send,
    {
        let load = Self {
            samples: Samples::default(),
            wrong: Arc::default(),
            latencies: Latencies::new(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for caller in 0..CALLERS_PER_FN {
            let (stop, wrong, latencies) =
                (stop.clone(), load.wrong.clone(), load.latencies.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    let id = if n.is_multiple_of(2) {
                        n / 2 % SHARED_KEYS
                    } else {
                        1_000_000 * (caller + 1) + n
                    };
                    let got = tokio::time::timeout(HUNG, latencies.time(f(id))).await;
                    let got = got.unwrap_or_else(|_| panic!("a call for {id} hung for {HUNG:?}"));
                    if got != price_of(id) {
                        wrong.fetch_add(1, SeqCst);
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        let (stop, samples) = (stop.clone(), load.samples.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let s = cache().stats().l2;
                let failed = s.errors + s.timeouts + s.skipped;
                samples
                    .lock()
                    .unwrap()
                    .push((Instant::now(), s.hits, failed));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
        Self { tasks, ..load }
    }

    fn hits(&self) -> u64 {
        self.samples.lock().unwrap().last().map_or(0, |s| s.1)
    }

    /// How long after `kill` L2 hits came back: the first rise of the hit
    /// count after the cache had seen the outage (a failed or skipped L2
    /// call after the kill). `None` while they have not.
    fn resumed_after(&self, kill: Instant) -> Option<Duration> {
        let samples = self.samples.lock().unwrap();
        let before = samples.iter().rev().find(|s| s.0 <= kill)?;
        let outage = samples.iter().position(|s| s.0 > kill && s.2 > before.2)?;
        let hits_then = samples[outage].1;
        samples[outage..]
            .iter()
            .find(|s| s.1 > hits_then)
            .map(|s| s.0.duration_since(kill))
    }

    async fn finish(self, what: &str) {
        for task in self.tasks {
            task.await.unwrap();
        }
        let wrong = self.wrong.load(SeqCst);
        let latency = self.latencies.summary();
        eprintln!("FAILOVER | {what} | {latency}");
        assert_eq!(wrong, 0, "{what}: calls returned a wrong value");
    }
}

fn price_cache_of() -> TieredCache {
    price_cache().cache().unwrap().clone()
}

fn price_quick_cache_of() -> TieredCache {
    price_quick_probe_cache().cache().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_fails_no_call_and_l2_hits_resume_on_the_promoted_replica() {
    let set = Arc::new(fault(|| SentinelSet::builder().master_name("killed").start()).await);
    KILL_URL.set(set.url()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let default_breaker = Load::start(price, price_cache_of, &stop);
    let quick_probe = Load::start(price_quick_probe, price_quick_cache_of, &stop);
    let warm = Instant::now();
    while default_breaker.hits() == 0 || quick_probe.hits() == 0 {
        assert!(warm.elapsed() < RECOVERY_BOUND, "no L2 hit before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (old, killed) = fault({
        let set = set.clone();
        move || (set.kill_primary(), Instant::now())
    })
    .await;
    let new = fault({
        let set = set.clone();
        move || set.wait_for_failover(old)
    })
    .await;
    let promoted = killed.elapsed();

    let resumed = |load: &Load| load.resumed_after(killed);
    while resumed(&default_breaker).is_none() || resumed(&quick_probe).is_none() {
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "L2 hits did not resume within {RECOVERY_BOUND:?} of the kill (default breaker: {:?}, 0.5 s probe: {:?})\n{}",
            resumed(&default_breaker),
            resumed(&quick_probe),
            set.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little more load on the new primary, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, SeqCst);
    let (slow, quick) = (
        resumed(&default_breaker).unwrap(),
        resumed(&quick_probe).unwrap(),
    );
    eprintln!(
        "FAILOVER | sentinel SIGKILL of {old} | sentinels named {new} after {promoted:?} | \
         L2 hits resumed after {slow:?} (default breaker, 5 s recovery_timeout), \
         {quick:?} (0.5 s recovery_timeout)"
    );
    default_breaker
        .finish("sentinel kill, default breaker")
        .await;
    quick_probe
        .finish("sentinel kill, 0.5 s breaker probe")
        .await;

    // The hits came from the promoted replica: the only node left, which
    // had served no read while it was a replica.
    let hits = fault(move || keyspace_hits(set.primary())).await;
    assert!(hits > 0, "the promoted replica {new} served no hit");
}

static SWITCH_SEEN: OnceLock<Instant> = OnceLock::new();

/// Where the test binary's log goes: notes when the backend reports the
/// `+switch-master` announcement for the `graceful` service.
struct SwitchWatch;

impl io::Write for SwitchWatch {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.contains("switched the primary") && line.contains("`graceful`") {
            SWITCH_SEEN.get_or_init(Instant::now);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One write of the load: key, value, when it started, whether Redis
/// acknowledged it.
type Write = (String, u64, Instant, bool);

/// `writers` tasks writing distinct keys through `cache` until `stop`.
fn write_load(
    cache: &TieredCache,
    writers: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Write>>> {
    (0..writers)
        .map(|writer| {
            let (cache, stop) = (cache.clone(), stop.clone());
            tokio::spawn(async move {
                let mut log = Vec::new();
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    let key = format!("graceful:{writer}:{n}");
                    let started = Instant::now();
                    let ttl = Some(Duration::from_secs(600));
                    let acked = cache.set(&key, &n, ttl).await.is_ok();
                    log.push((key, n, started, acked));
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                log
            })
        })
        .collect()
}

/// Clients on `node` that are neither sentinels, nor replication links, nor
/// the connection asking: the backend's.
fn application_clients(node: &RedisServer) -> Vec<String> {
    node.command(&["CLIENT", "LIST"])
        .lines()
        .filter(|c| !c.contains(" name=sentinel-") && !c.contains("cmd=client|list"))
        .filter(|c| {
            let flags = c.split(' ').find_map(|f| f.strip_prefix("flags="));
            !flags.is_some_and(|f| f.contains('S') || f.contains('M'))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_failover_loses_no_write_acknowledged_after_the_switch() {
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(|| SwitchWatch)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let set = Arc::new(fault(|| SentinelSet::builder().master_name("graceful").start()).await);
    let config = RedisConfig::builder().url(set.url()).build().unwrap();
    let cache = TieredCache::builder()
        .without_l1()
        .l2(RedisBackend::new(config).await.unwrap())
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = write_load(&cache, CALLERS_PER_FN, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let old = set.primary().addr();
    let started = Instant::now();
    let new = fault({
        let set = set.clone();
        move || set.failover()
    })
    .await;
    let switched = Instant::now();
    // The backend heard of the switch, and its connections left the old
    // primary, which still takes writes until the sentinels demote it.
    while SWITCH_SEEN.get().is_none() {
        assert!(
            switched.elapsed() < Duration::from_secs(5),
            "the backend did not report the +switch-master of {old} -> {new}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = switched.max(*SWITCH_SEEN.get().unwrap());
    let old_node = set.data_nodes().iter().position(|n| n.addr() == old);
    let old_node = old_node.unwrap();
    let ours = {
        let set = set.clone();
        move || application_clients(&set.data_nodes()[old_node])
    };
    let left = Instant::now();
    loop {
        let on_old = fault(ours.clone()).await;
        if on_old.is_empty() {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(3),
            "the backend still has connections to the old primary {old}: {on_old:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, SeqCst);
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }

    // The old primary becomes a replica of the new one: whatever it alone
    // acknowledged is gone now.
    fault({
        let set = set.clone();
        move || set.wait_ready()
    })
    .await;
    let reader = TieredCache::builder()
        .without_l1()
        .l2(
            RedisBackend::new(RedisConfig::builder().url(set.url()).build().unwrap())
                .await
                .unwrap(),
        )
        .build()
        .unwrap();
    let (mut lost_after, mut lost_before, mut checked) = (Vec::new(), 0, 0);
    for (key, value, at, _) in writes.iter().filter(|w| w.3) {
        let found = reader.get::<u64>(key).await;
        if found != Some(*value) {
            if *at >= after {
                lost_after.push(key.clone());
            } else {
                lost_before += 1;
            }
        }
        checked += 1;
    }
    assert_eq!(reader.stats().l2.errors, 0, "the read-back itself failed");
    let failed: Vec<Duration> = writes
        .iter()
        .filter(|w| !w.3)
        .map(|w| w.2.saturating_duration_since(started))
        .collect();
    let after_switch = writes.iter().filter(|w| w.3 && w.2 >= after).count();
    eprintln!(
        "FAILOVER | sentinel graceful {old} -> {new} in {:?} | {} writes, {checked} acknowledged, \
         {after_switch} of them started after the switch | failed: {} (at {failed:?} after SENTINEL \
         FAILOVER) | acknowledged before the switch and lost: {lost_before}",
        switched.duration_since(started),
        writes.len(),
        failed.len(),
    );
    assert!(
        after_switch > 0,
        "no write was acknowledged after the switch"
    );
    assert!(
        lost_after.is_empty(),
        "{} writes acknowledged after the switch are lost: {:?}",
        lost_after.len(),
        &lost_after[..lost_after.len().min(10)]
    );
}
