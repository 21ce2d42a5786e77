//! A burst of concurrent reads larger than `max_l2_in_flight`, against a
//! healthy real redis-server, L1 off, every other setting at its default:
//! calls over the bound wait in line for a place within their L2 deadline,
//! so nothing that Redis holds is recomputed or read as a miss. Against a
//! hung (SIGSTOPped) server, the waiters skip L2 when their deadline passes.
//!
//! A debug build of the client serves about 23,000 reads a second on a
//! 2-core VM (a release build five times as many), so 20,000 calls cannot
//! all fit in the default 250 ms deadline there: debug builds give the
//! bursts a deadline of [`DEBUG_DEADLINE`] instead, release builds keep the
//! default (`cargo test --release --test burst`). Either way the old
//! behaviour, skipping L2 at once beyond the bound, fails them.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit::TieredCache;
use cachekit_testkit::RedisServer;
use common::{fault, redis, Latencies, CALL_BOUND};

const TTL: Option<Duration> = Some(Duration::from_secs(600));
/// The bursts' L2 deadline in debug builds (see the module docs).
const DEBUG_DEADLINE: Duration = Duration::from_secs(5);

/// One burst at a time: two at once on a 2-core machine measure each
/// other, not the cache.
/// (A tokio mutex: it is held across awaits, and works across the tests'
/// runtimes.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn key(i: usize) -> String {
    format!("burst:{i}")
}

/// A cache with L1 off and everything else at its defaults, and `n` keys
/// stored in Redis (written by a separate cache, a few hundred at a time).
async fn cache_with_keys(server: &RedisServer, n: usize) -> TieredCache {
    let writer = TieredCache::builder()
        .without_l1()
        .l2(redis(&server.url()).await)
        .build()
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let writes: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.set(&key(i), &(i as u64), TTL).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
    }
    let reader = TieredCache::builder()
        .without_l1()
        .l2(redis(&server.url()).await);
    let reader = if cfg!(debug_assertions) {
        reader.l2_timeout(DEBUG_DEADLINE)
    } else {
        reader
    };
    reader.build().unwrap()
}

async fn burst_of_get_or_compute(n: usize) {
    let _alone = SERIAL.lock().await;
    let server = RedisServer::start();
    let cache = cache_with_keys(&server, n).await;
    let computed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let (cache, computed) = (cache.clone(), computed.clone());
            tokio::spawn(async move {
                let v: u64 = cache
                    .get_or_compute(&key(i), TTL, || async move {
                        computed.fetch_add(1, SeqCst);
                        u64::MAX
                    })
                    .await;
                (i, v)
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for call in calls {
        let (i, v) = call.await.unwrap();
        if v != i as u64 && v != u64::MAX {
            wrong.push(i);
        }
    }
    let took = started.elapsed();
    let s = cache.stats();
    println!("BURST | get_or_compute x{n} | {took:?} | {s:?}");
    assert!(wrong.is_empty(), "wrong values for keys {wrong:?}");
    assert_eq!(
        computed.load(SeqCst),
        0,
        "{n} concurrent get_or_compute of keys Redis holds recomputed some ({took:?}; {s:?}; server log:\n{})",
        server.log()
    );
    assert_eq!((s.l2.hits, s.l2.skipped), (n as u64, 0), "{s:?}");
}

async fn burst_of_gets(n: usize) {
    let _alone = SERIAL.lock().await;
    let server = RedisServer::start();
    let cache = cache_with_keys(&server, n).await;
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { (i, cache.get::<u64>(&key(i)).await) })
        })
        .collect();
    let mut misses = 0;
    for call in calls {
        match call.await.unwrap() {
            (i, Some(v)) => assert_eq!(v, i as u64, "key {i}"),
            (_, None) => misses += 1,
        }
    }
    let took = started.elapsed();
    let s = cache.stats();
    println!("BURST | get x{n} | {took:?} | {s:?}");
    assert_eq!(
        misses,
        0,
        "{n} concurrent gets of keys Redis holds missed some ({took:?}; {s:?}; server log:\n{})",
        server.log()
    );
    assert_eq!((s.l2.hits, s.l2.skipped), (n as u64, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5000_get_or_compute_computes_nothing_redis_holds() {
    burst_of_get_or_compute(5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_get_or_compute_computes_nothing_redis_holds() {
    burst_of_get_or_compute(20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5000_gets_misses_nothing_redis_holds() {
    burst_of_gets(5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_gets_misses_nothing_redis_holds() {
    burst_of_gets(20_000).await;
}

/// Against a hung server, calls beyond the bound wait in line, and skip L2
/// when their deadline passes: each call takes about one deadline, never
/// much more (and, since timers never fire early, never less).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_skip_l2_when_their_deadline_passes_on_a_hung_redis() {
    const DEADLINE: Duration = Duration::from_millis(300);
    let _alone = SERIAL.lock().await;
    let server = Arc::new(RedisServer::start());
    let cache = TieredCache::builder()
        .without_l1()
        .l2(redis(&server.url()).await)
        .l2_timeout(DEADLINE)
        .without_breaker()
        .max_l2_in_flight(4)
        .build()
        .unwrap();
    let paused = server.clone();
    fault(move || paused.pause()).await;

    let latencies = Latencies::new();
    let reads: Vec<_> = (0..20)
        .map(|i| {
            let (cache, latencies) = (cache.clone(), latencies.clone());
            tokio::spawn(async move {
                let got = latencies.time(cache.get::<u64>(&key(i))).await;
                assert_eq!(got, None, "{i}");
            })
        })
        .collect();
    for r in reads {
        r.await.unwrap();
    }
    server.resume();
    let s = cache.stats();
    // Four held the places until their deadline; the other sixteen waited
    // for one until theirs (one that got a place just before its deadline
    // timed out instead of skipping).
    assert_eq!(s.l2.timeouts + s.l2.skipped, 20, "{s:?}");
    assert!(s.l2.timeouts >= 4, "{s:?}");
    let summary = latencies.report_and_check(
        "waiters beyond max_l2_in_flight on a hung Redis",
        CALL_BOUND,
    );
    assert!(
        summary.p50 >= DEADLINE,
        "calls beyond the bound skipped before their deadline: {summary}"
    );
}
