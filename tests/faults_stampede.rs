//! Distributed stampede protection with the Redis lock, across real
//! processes: this test binary re-runs itself as child processes (the
//! ignored `stampede_child` test, driven by an environment variable) that
//! talk to the parent over stdin/stdout.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/children.rs"]
mod children;
#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachekit::{BreakerConfig, DistributedLock, RedisBackend, StampedeConfig, TieredCache};
use cachekit_testkit::RedisServer;
use children::{field, hear, say, Child};
use common::{fault, lazy_redis, redis, Latencies, CALL_BOUND};
use serde::{Deserialize, Serialize};

const TTL: Option<Duration> = Some(Duration::from_secs(60));
const CHILD_ENV: &str = "CACHEKIT_FAULTS_STAMPEDE_CHILD";
const PROCESSES: usize = 4;
const CALLERS: u64 = 50;
const ANSWER: u64 = 42;
/// How long the body takes: long enough for every process to arrive
/// while it runs.
const BODY_TIME: Duration = Duration::from_millis(300);

/// The cached value: the answer, and which process computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Answer {
    value: u64,
    computed_by: u32,
}

fn stampede_cache(redis: RedisBackend, config: StampedeConfig) -> TieredCache {
    let lock: Arc<dyn DistributedLock> = Arc::new(redis.clone());
    TieredCache::builder()
        .l2(redis)
        .stampede_lock(lock, config)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// The child side.

/// Not a test on its own: the body of the child processes. Without the
/// environment variable it has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the stampede tests"]
async fn stampede_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("stampede_child runs only as a child of the stampede tests");
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (role, url, key) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    match role.as_str() {
        "call" => child_calls(&url, &key).await,
        "hold" => child_holds(&url, &key).await,
        other => panic!("unknown child role {other}"),
    }
}

/// `CALLERS` concurrent callers of one cold key, released by the parent's
/// `GO` so that every process starts at once.
async fn child_calls(url: &str, key: &str) {
    let config = StampedeConfig::default()
        .lease(Duration::from_secs(5))
        .max_wait(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10));
    let cache = stampede_cache(redis(url).await, config);
    let runs = Arc::new(AtomicU64::new(0));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, runs, key, mut go) =
                (cache.clone(), runs.clone(), key.to_owned(), go_rx.clone());
            tokio::spawn(async move {
                go.wait_for(|go| *go).await.unwrap();
                cache
                    .get_or_compute(&key, TTL, || async move {
                        runs.fetch_add(1, SeqCst);
                        tokio::time::sleep(BODY_TIME).await;
                        Answer {
                            value: ANSWER,
                            computed_by: std::process::id(),
                        }
                    })
                    .await
            })
        })
        .collect();
    say("READY");
    let line = tokio::task::spawn_blocking(hear).await.unwrap();
    assert_eq!(line, "GO", "the parent went away");
    go_tx.send(true).unwrap();
    let mut seen = Vec::new();
    for caller in callers {
        let answer = caller.await.unwrap();
        assert_eq!(answer.value, ANSWER);
        if !seen.contains(&answer.computed_by) {
            seen.push(answer.computed_by);
        }
    }
    let stats = cache.stats();
    let seen: Vec<String> = seen.iter().map(u32::to_string).collect();
    say(&format!(
        "RESULT pid={} runs={} computes={} lock_waits={} l2_hits={} computed_by={}",
        std::process::id(),
        runs.load(SeqCst),
        stats.computes,
        stats.lock_waits,
        stats.l2.hits,
        seen.join(",")
    ));
}

/// Takes the lock by starting a computation that never ends; the parent
/// kills this process while it holds the lock.
async fn child_holds(url: &str, key: &str) {
    let config = StampedeConfig::default().lease(Duration::from_millis(1500));
    let cache = stampede_cache(redis(url).await, config);
    let _: Answer = cache
        .get_or_compute(key, TTL, || async {
            say("COMPUTING");
            tokio::time::sleep(Duration::from_secs(60)).await;
            unreachable!("the parent kills this process first")
        })
        .await;
}

// ---------------------------------------------------------------------------
// The parent side.

fn spawn(role: &str, url: &str, key: &str) -> Child {
    let spec = format!("{role}|{url}|{key}");
    Child::spawn("stampede_child", CHILD_ENV, &spec, &[])
}

#[test]
fn four_processes_of_fifty_callers_run_the_body_once() {
    let server = RedisServer::start();
    let key = "faults:stampede:cold";
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn("call", &server.url(), key))
        .collect();
    for child in &children {
        child.expect("READY");
    }
    for child in &mut children {
        child.send("GO");
    }
    let results: Vec<String> = children.iter().map(|c| c.expect("RESULT")).collect();
    for child in children {
        child.finish();
    }
    for line in &results {
        println!("{line}");
    }
    let runs: u64 = results
        .iter()
        .map(|l| field(l, "runs").parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        runs, 1,
        "the body ran more than once across processes: {results:#?}"
    );
    let computer = results
        .iter()
        .find(|l| field(l, "runs") == "1")
        .map(|l| field(l, "pid"))
        .unwrap();
    for line in &results {
        // Every caller of every process got the one computed value.
        assert_eq!(field(line, "computed_by"), computer, "{results:#?}");
    }
    let waited = results
        .iter()
        .filter(|l| field(l, "lock_waits") != "0")
        .count();
    assert_eq!(
        waited,
        PROCESSES - 1,
        "the other processes waited: {results:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_delays_the_others_only_until_its_lease_ends() {
    let server = RedisServer::start();
    let key = "faults:stampede:orphan";
    let lock_key = format!("{key}:lock");
    let holder = spawn("hold", &server.url(), key);
    let holder = fault(move || {
        holder.expect("COMPUTING");
        holder
    })
    .await;
    drop(holder); // SIGKILL while it holds the lock
    let probed_at = Instant::now();
    let pttl: u64 = server
        .command(&["PTTL", &lock_key])
        .trim_start_matches("(integer) ")
        .parse()
        .unwrap();
    assert!(pttl > 0, "the dead holder's lock is still there");

    let config = StampedeConfig::default()
        .lease(Duration::from_secs(5))
        .max_wait(Duration::from_secs(10))
        .poll_interval(Duration::from_millis(10));
    let cache = stampede_cache(redis(&server.url()).await, config);
    let started = Arc::new(Mutex::new(None));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, started) = (cache.clone(), started.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute(key, TTL, || async move {
                        *started.lock().unwrap() = Some(Instant::now());
                        Answer {
                            value: ANSWER,
                            computed_by: std::process::id(),
                        }
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().value, ANSWER);
    }
    let stats = cache.stats();
    assert_eq!(stats.computes, 1, "{stats:?}");
    assert!(stats.lock_waits > 0, "{stats:?}");
    let body_started = started.lock().unwrap().unwrap();
    let waited = body_started - probed_at;
    println!("dead holder: lock had {pttl} ms left; the body started {waited:?} later");
    // Not before the orphaned lease ran out (PTTL rounds down), and not
    // long after it either.
    assert!(waited + Duration::from_millis(2) >= Duration::from_millis(pttl));
    assert!(waited <= Duration::from_millis(pttl) + CALL_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_holder_is_waited_for_at_most_max_wait() {
    const MAX_WAIT: Duration = Duration::from_millis(300);
    let server = RedisServer::start();
    let key = "faults:stampede:slow";
    let backend = redis(&server.url()).await;
    // Another process took the lock and is still computing.
    let token = DistributedLock::try_lock(&backend, key, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let config = StampedeConfig::default()
        .max_wait(MAX_WAIT)
        .poll_interval(Duration::from_millis(10));
    let cache = stampede_cache(backend.clone(), config);
    let latencies = Latencies::new();
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (cache, latencies) = (cache.clone(), latencies.clone());
            tokio::spawn(async move {
                latencies
                    .time(cache.get_or_compute(key, TTL, || async move { i }))
                    .await
            })
        })
        .collect();
    let mut values = Vec::new();
    for caller in callers {
        values.push(caller.await.unwrap());
    }
    // One computation in this process, shared by every caller.
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    let stats = cache.stats();
    assert_eq!(stats.computes, 1, "{stats:?}");
    assert!(stats.lock_waits > 0, "{stats:?}");
    let summary = latencies.report_and_check(
        "stampede lock held elsewhere: wait max_wait, then compute",
        MAX_WAIT + CALL_BOUND,
    );
    // The caller that led this process's flight waited the whole max_wait
    // (the others joined it a little later).
    assert!(summary.max >= MAX_WAIT, "{summary}");
    // The holder's lock was left alone.
    assert!(DistributedLock::unlock(&backend, key, &token)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_lock_does_not_hold_calls_when_redis_is_down() {
    let server = RedisServer::start();
    let backend = lazy_redis(&server.url());
    let cache = stampede_cache(backend, StampedeConfig::default());
    server.stop();
    let latencies = Latencies::new();
    for i in 0..20u64 {
        let key = format!("faults:stampede:down:{i}");
        let v = latencies
            .time(cache.get_or_compute(&key, TTL, || async move { i }))
            .await;
        assert_eq!(v, i);
    }
    assert_eq!(cache.stats().computes, 20);
    latencies.report_and_check("stampede lock, Redis killed", CALL_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_lock_does_not_hold_calls_when_redis_hangs() {
    const DEADLINE: Duration = Duration::from_millis(150);
    let server = Arc::new(RedisServer::start());
    // The Redis client's own response timeout is long, so only cachekit's
    // L2 deadline can keep the calls short.
    let config = cachekit::RedisConfig::builder()
        .url(server.url())
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    let lock: Arc<dyn DistributedLock> = Arc::new(backend.clone());
    let cache = TieredCache::builder()
        .l2(backend)
        .l2_timeout(DEADLINE)
        .breaker(BreakerConfig::default().failure_threshold(2))
        .stampede_lock(lock, StampedeConfig::default())
        .build()
        .unwrap();
    let paused = server.clone();
    fault(move || paused.pause()).await;
    let latencies = Latencies::new();
    for i in 0..5u64 {
        let key = format!("faults:stampede:hung:{i}");
        let v = latencies
            .time(cache.get_or_compute(&key, TTL, || async move { i }))
            .await;
        assert_eq!(v, i);
    }
    let stats = cache.stats();
    assert_eq!(stats.computes, 5);
    assert!(stats.breaker_opened >= 1, "{stats:?}");
    latencies.report_and_check("stampede lock, Redis SIGSTOP", CALL_BOUND);
}
