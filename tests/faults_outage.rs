//! Redis goes away under a running application: killed and restarted in
//! the middle of a load of concurrent `#[cached]` calls, frozen with
//! SIGSTOP, restarted with another password, restarted empty. Every user
//! call must return the right value, within a bound, and the cache must
//! find its way back to L2 on its own.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cachekit::{cached, Backend, BreakerConfig, BreakerState, ErrorKind, TieredCache};
use cachekit_testkit::eventually;
use cachekit_testkit::RedisServer;
use common::{fault, lazy_redis, redis, Latencies, CALL_BOUND};

const TTL: Option<Duration> = Some(Duration::from_secs(60));

// ---------------------------------------------------------------------------
// Kill and restart under a load of #[cached] calls.

const LOAD_DEADLINE: Duration = Duration::from_millis(150);
const LOAD_RECOVERY: Duration = Duration::from_millis(300);
/// Short, so that L1 entries keep going back to Redis during the test.
const LOAD_L1_MAX_TTL: Duration = Duration::from_millis(100);
const LOAD_KEYS: u64 = 64;
const LOAD_WORKERS: u64 = 16;

static LOAD_URL: OnceLock<String> = OnceLock::new();
static LOAD_RUNS: AtomicU64 = AtomicU64::new(0);

/// The cache behind `price`, built on its first call (after the test has
/// published the server's URL).
fn load_cache() -> cachekit::Result<TieredCache> {
    let url = LOAD_URL.get().cloned().unwrap_or_default();
    TieredCache::builder()
        .l2(lazy_redis(&url))
        .l1_max_ttl(LOAD_L1_MAX_TTL)
        .l2_timeout(LOAD_DEADLINE)
        .breaker(
            BreakerConfig::default()
                .failure_threshold(3)
                .window(Duration::from_secs(1))
                .recovery_timeout(LOAD_RECOVERY)
                .success_threshold(1),
        )
        .build()
}

#[cached(namespace = "faults", name = "price", ttl = 60, backend = load_cache())]
async fn price(sku: u64) -> u64 {
    LOAD_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    sku * 7 + 3
}

const WARM: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_redis_under_cached_load_fails_no_call() {
    let server = Arc::new(RedisServer::start());
    LOAD_URL.set(server.url()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU8::new(WARM));
    let calls = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let calls_while_down = Arc::new(AtomicU64::new(0));
    let up = Latencies::new();
    let down = Latencies::new();
    let workers: Vec<_> = (0..LOAD_WORKERS)
        .map(|w| {
            let (stop, phase, calls, wrong, calls_while_down) = (
                stop.clone(),
                phase.clone(),
                calls.clone(),
                wrong.clone(),
                calls_while_down.clone(),
            );
            let (up, down) = (up.clone(), down.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(SeqCst) {
                    let sku = (i * 7919) % LOAD_KEYS;
                    let was = phase.load(SeqCst);
                    let started = Instant::now();
                    let value = price(sku).await;
                    let took = started.elapsed();
                    if value != sku * 7 + 3 {
                        wrong.fetch_add(1, SeqCst);
                    }
                    calls.fetch_add(1, SeqCst);
                    if was == DOWN || phase.load(SeqCst) == DOWN {
                        calls_while_down.fetch_add(1, SeqCst);
                        down.record(took);
                    } else {
                        up.record(took);
                    }
                    i += 1;
                    // Request pacing: L1 hits never yield on their own.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();

    let cache = price_cache().cache().expect("price has a cache").clone();
    assert!(cache.l2().is_some(), "price caches in Redis");
    eventually("L2 hits while Redis is up", || cache.stats().l2.hits >= 100).await;

    phase.store(DOWN, SeqCst);
    let killed = server.clone();
    fault(move || killed.stop()).await;
    // Down long enough for the breaker to open and for a probe to fail.
    eventually(
        "the breaker to open, probe a dead Redis and open again",
        || cache.stats().breaker_opened >= 2,
    )
    .await;
    eventually("calls to keep coming while Redis is down", || {
        calls_while_down.load(SeqCst) >= 300
    })
    .await;
    let during = cache.stats();

    let restarted = server.clone();
    fault(move || restarted.restart()).await;
    phase.store(BACK, SeqCst);
    let back_at = Instant::now();
    let hits_before = cache.stats().l2.hits;
    let resumed_in = eventually("L2 hits after the restart", || {
        let s = cache.stats();
        s.l2.hits > hits_before && s.breaker == BreakerState::Closed
    })
    .await;
    eventually("a steady stream of L2 hits again", || {
        cache.stats().l2.hits > hits_before + 50
    })
    .await;
    stop.store(true, SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let back_for = back_at.elapsed();

    let total = calls.load(SeqCst);
    let stats = cache.stats();
    println!(
        "kill/restart: {total} calls, {} while down, computes {}, L2 hits {} errors {} skipped {}, breaker opened {}x, L2 hits resumed {resumed_in:?} after restart",
        calls_while_down.load(SeqCst),
        stats.computes,
        stats.l2.hits,
        stats.l2.errors,
        stats.l2.skipped,
        stats.breaker_opened
    );
    assert_eq!(wrong.load(SeqCst), 0, "a call returned a wrong value");
    assert_eq!(
        LOAD_RUNS.load(SeqCst),
        price_cache().stats().computes,
        "every body run is counted as a compute"
    );
    assert!(stats.computes >= LOAD_KEYS, "{stats:?}");
    assert!(
        stats.computes < total,
        "the cache served most calls: {stats:?}, {total} calls"
    );
    // While down: L2 failures were counted and the breaker skipped L2.
    assert!(during.l2.errors >= 3, "{during:?}");
    assert!(during.l2.skipped > 0, "{during:?}");
    assert_eq!(stats.breaker, BreakerState::Closed);
    // Back within the recovery timeout (a probe is due at most then), plus
    // one L1 lifetime for an entry to go back to L2, plus headroom.
    let resume_bound = LOAD_RECOVERY + LOAD_L1_MAX_TTL + Duration::from_secs(1);
    assert!(
        resumed_in <= resume_bound,
        "L2 hits resumed {resumed_in:?} after the restart, more than {resume_bound:?}"
    );
    assert!(back_for < Duration::from_secs(10));
    down.report_and_check(
        "Redis killed (connection refused), #[cached] load",
        CALL_BOUND,
    );
    up.report_and_check("Redis up, #[cached] load (L1/L2 hits)", CALL_BOUND);
}

// ---------------------------------------------------------------------------
// SIGSTOP: a hung server.

const HUNG_DEADLINE: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_each_miss_at_most_one_deadline() {
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .l2(redis(&server.url()).await)
        .l2_timeout(HUNG_DEADLINE)
        .without_breaker()
        .build()
        .unwrap();
    cache.set("faults:hung:before", &1u64, TTL).await.unwrap();
    cache.invalidate_local("faults:hung:before");

    let paused = server.clone();
    fault(move || paused.pause()).await;
    const TASKS: u64 = 32;
    const EACH: u64 = 3;
    let latencies = Latencies::new();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, latencies) = (cache.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut wrong = 0;
                for i in 0..EACH {
                    let key = format!("faults:hung:{t}:{i}");
                    let v: u64 = latencies
                        .time(cache.get_or_compute(&key, TTL, || async move { t * 1000 + i }))
                        .await;
                    wrong += u64::from(v != t * 1000 + i);
                }
                wrong
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0, "a call returned a wrong value");
    }
    let stats = cache.stats();
    let calls = TASKS * EACH;
    assert_eq!(stats.computes, calls);
    // The read is cut off at the deadline; that spends the call's whole L2
    // budget, so the write is skipped rather than waited for.
    assert_eq!(stats.l2.timeouts, calls, "{stats:?}");
    assert_eq!(stats.l2.skipped, calls, "{stats:?}");
    assert_eq!(stats.l2.errors, calls, "{stats:?}");
    assert_eq!(stats.l2.hits, 0);
    let summary = latencies.report_and_check(
        "SIGSTOP, breaker off: cold-key miss = one deadline",
        CALL_BOUND,
    );
    // The deadline, not anything else, is what ends the wait.
    assert!(summary.p50 >= HUNG_DEADLINE, "{summary}");
    assert!(summary.p50 < 2 * HUNG_DEADLINE, "{summary}");

    let resumed = server.clone();
    fault(move || resumed.resume()).await;
    assert_eq!(cache.get::<u64>("faults:hung:before").await, Some(1));
    assert_eq!(cache.stats().l2.hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_behind_the_breaker_stays_within_the_deadline_and_recovers() {
    const RECOVERY: Duration = Duration::from_millis(300);
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .l2(redis(&server.url()).await)
        .l2_timeout(HUNG_DEADLINE)
        .breaker(
            BreakerConfig::default()
                .failure_threshold(5)
                .recovery_timeout(RECOVERY)
                .success_threshold(2),
        )
        .build()
        .unwrap();
    cache.set("faults:hung2:before", &1u64, TTL).await.unwrap();

    let paused = server.clone();
    fault(move || paused.pause()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Latencies::new();
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let (cache, latencies, stop) = (cache.clone(), latencies.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut calls, mut wrong) = (0u64, 0u64);
                while !stop.load(SeqCst) {
                    let key = format!("faults:hung2:{t}:{calls}");
                    let expected = t * 1_000_000 + calls;
                    let v: u64 = latencies
                        .time(cache.get_or_compute(&key, TTL, || async move { expected }))
                        .await;
                    wrong += u64::from(v != expected);
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (calls, wrong)
            })
        })
        .collect();
    // Long enough for the breaker to open and for two probes to time out.
    eventually(
        "the breaker to open and re-open after a failed probe",
        || cache.stats().breaker_opened >= 3,
    )
    .await;
    stop.store(true, SeqCst);
    let mut calls = 0;
    for task in tasks {
        let (n, wrong) = task.await.unwrap();
        assert_eq!(wrong, 0, "a call returned a wrong value");
        calls += n;
    }
    let stats = cache.stats();
    assert_eq!(stats.computes, calls);
    assert!(stats.l2.timeouts >= 5, "{stats:?}");
    assert!(stats.l2.skipped > stats.l2.timeouts, "{stats:?}");
    latencies.report_and_check("SIGSTOP, breaker on: cold-key misses", CALL_BOUND);

    let resumed = server.clone();
    fault(move || resumed.resume()).await;
    let back_at = Instant::now();
    let hits_before = cache.stats().l2.hits;
    let recovered_in = loop {
        cache.invalidate_local("faults:hung2:before");
        // A miss while the breaker still skips L2; never another value.
        let got = cache.get::<u64>("faults:hung2:before").await;
        assert!(matches!(got, None | Some(1)), "{got:?}");
        let s = cache.stats();
        if got.is_some() && s.l2.hits > hits_before && s.breaker == BreakerState::Closed {
            break back_at.elapsed();
        }
        assert!(back_at.elapsed() < Duration::from_secs(10), "{s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!("SIGCONT: L2 hits and a closed breaker {recovered_in:?} after resume");
    assert!(recovered_in <= RECOVERY + Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// Restarted with another password.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_changed_password_degrades_to_uncached_calls() {
    const RECOVERY: Duration = Duration::from_millis(200);
    // The admin user is the testkit's way in after the password changes.
    let server = Arc::new(
        RedisServer::builder()
            .requirepass("old-secret")
            .acl_user("admin", "admin-secret")
            .start(),
    );
    let url = format!("redis://:old-secret@127.0.0.1:{}", server.port());
    let cache = TieredCache::builder()
        .without_l1()
        .l2(lazy_redis(&url))
        .l2_timeout(Duration::from_millis(200))
        .breaker(
            BreakerConfig::default()
                .failure_threshold(3)
                .recovery_timeout(RECOVERY)
                .success_threshold(1),
        )
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let call = |k: u64| {
        let runs = runs.clone();
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute(&format!("faults:auth:{k}"), TTL, || async move {
                    runs.fetch_add(1, SeqCst);
                    k + 100
                })
                .await
        }
    };
    for k in 0..10 {
        assert_eq!(call(k).await, k + 100);
        assert_eq!(call(k).await, k + 100);
    }
    assert_eq!(runs.load(SeqCst), 10);
    assert_eq!(cache.stats().l2.hits, 10);

    // The server comes back with a new password; no old connection survives.
    let changed = server.clone();
    fault(move || {
        changed.restart();
        assert_eq!(
            changed.command(&["CONFIG", "SET", "requirepass", "new-secret"]),
            "OK"
        );
        changed.command(&["CLIENT", "KILL", "USER", "default"]);
    })
    .await;

    let latencies = Latencies::new();
    for round in 0..3 {
        for k in 0..10 {
            assert_eq!(latencies.time(call(k)).await, k + 100, "round {round}");
        }
    }
    let stats = cache.stats();
    assert_eq!(runs.load(SeqCst), 40, "every call ran uncached: {stats:?}");
    assert_eq!(stats.l2.hits, 10);
    assert!(stats.l2.errors >= 3, "{stats:?}");
    assert!(stats.breaker_opened >= 1, "{stats:?}");
    assert!(stats.l2.skipped > 0, "{stats:?}");
    latencies.report_and_check("restarted with another password (AUTH fails)", CALL_BOUND);

    // What the backend reports: an auth error that names neither password.
    let err = cache.l2().unwrap().get("faults:auth:0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("old-secret") && !shown.contains("new-secret"),
        "{shown}"
    );

    // The operator fixes the password: the cache finds L2 again by itself.
    let fixed = server.clone();
    fault(move || fixed.restart()).await;
    let back_at = Instant::now();
    loop {
        assert_eq!(call(0).await, 100);
        let s = cache.stats();
        if s.l2.hits > 10 {
            break;
        }
        assert!(back_at.elapsed() < Duration::from_secs(10), "{s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "password fixed: L2 hits again after {:?}",
        back_at.elapsed()
    );
    assert!(back_at.elapsed() <= RECOVERY + Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// Restarted empty.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_is_refilled_without_errors() {
    const KEYS: u64 = 20;
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .without_l1()
        .l2(redis(&server.url()).await)
        .l2_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let call = |k: u64| {
        let runs = runs.clone();
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute(&format!("faults:empty:{k}"), TTL, || async move {
                    runs.fetch_add(1, SeqCst);
                    format!("value {k}")
                })
                .await
        }
    };
    for k in 0..KEYS {
        assert_eq!(call(k).await, format!("value {k}"));
        assert_eq!(call(k).await, format!("value {k}"));
    }
    assert_eq!(runs.load(SeqCst), KEYS);
    assert_eq!(server.command(&["DBSIZE"]), format!("(integer) {KEYS}"));

    let restarted = server.clone();
    fault(move || restarted.restart()).await;
    assert_eq!(server.command(&["DBSIZE"]), "(integer) 0");

    let latencies = Latencies::new();
    for k in 0..KEYS {
        assert_eq!(latencies.time(call(k)).await, format!("value {k}"));
        assert_eq!(call(k).await, format!("value {k}"));
    }
    let stats = cache.stats();
    // Each key recomputed once and written back; the dead pooled
    // connections were replaced without surfacing an error.
    assert_eq!(runs.load(SeqCst), 2 * KEYS, "{stats:?}");
    assert_eq!(stats.l2.hits, 2 * KEYS, "{stats:?}");
    assert_eq!(stats.l2.errors, 0, "{stats:?}");
    assert_eq!(stats.l2.sets, 2 * KEYS, "{stats:?}");
    assert_eq!(server.command(&["DBSIZE"]), format!("(integer) {KEYS}"));
    latencies.report_and_check("Redis restarted empty (first call per key)", CALL_BOUND);
}
