//! Cross-process L1 invalidation, measured: one writer (the test) and one
//! or three reader processes (this binary re-run as children) on one
//! Redis, each with its own L1. The writer changes a value 1,000 times
//! through `set`, `delete`, `#[cached]` `_invalidate`, `_refresh` and
//! `_clear`; the readers read it in a tight loop through their caches
//! (L1 hits, mostly) and record what they saw and when. The test prints
//! the propagation delay (p50/p99/max) and fails on any read that returned
//! an older value more than [`BOUND`] after the change was acknowledged.
//! Also: writes by a client that is not cachekit, and the opt-outs.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/children.rs"]
#[allow(dead_code)]
mod children;
#[path = "invalidation_support/fleet.rs"]
mod fleet;
#[path = "invalidation_support/timeline.rs"]
#[allow(dead_code)]
mod timeline;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cachekit::ChannelState;
use cachekit_testkit::RedisServer;
use children::{field, hear, say, Child};
use fleet::{Op, Reader, Writer, BOUND, CHANGES, CHILD_ENTRY, CHILD_ENV, TTL};
use timeline::{now_ns, Timeline, Verdict};

/// The heavy tests run one at a time, so that their timings are their own.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial<F: Future>(test: F) -> F::Output {
    let _guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}

// ---------------------------------------------------------------------------
// The child side.

/// Not a test on its own: the body of the child processes. Without the
/// environment variable it has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the invalidation fleet tests"]
async fn fleet_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("fleet_child runs only as a child of the invalidation fleet tests");
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    match parts.as_slice() {
        ["read", url, op, processes] => {
            child_reads(url, Op::parse(op), processes.parse().unwrap()).await;
        }
        ["hold", url, key] => child_holds(url, key).await,
        other => panic!("unknown child spec {other:?}"),
    }
}

/// Reads in a loop from `GO` to `STOP`, then reports what it saw.
async fn child_reads(url: &str, op: Op, processes: usize) {
    let reader = Reader::new(url, op, processes).await;
    say("READY");
    assert_eq!(blocking(hear).await, "GO", "the parent went away");
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    tokio::task::spawn_blocking(move || {
        // "STOP", or the parent went away.
        let _ = hear();
        stopper.store(true, SeqCst);
    });
    let mut timeline = Timeline::default();
    while !stop.load(SeqCst) {
        for _ in 0..64 {
            let started = now_ns();
            let value = reader.read().await;
            timeline.record(started, value);
        }
        tokio::task::yield_now().await;
    }
    say(&format!("SEGMENTS {}", timeline.encode()));
    say(&format!(
        "RESULT reads={} {}",
        timeline.reads(),
        reader.stats()
    ));
}

/// Reads `key` into L1 with the cache the environment gives (the parent
/// sets `CACHEKIT_L1_INVALIDATION`), then reads it again when told.
async fn child_holds(url: &str, key: &str) {
    let cache = fleet::cache(url, None);
    fleet::live(&cache).await;
    let first: Option<u64> = cache.get(key).await;
    say(&format!(
        "HOLDING state={:?} value={first:?}",
        cache.invalidation_stats().state
    ));
    assert_eq!(blocking(hear).await, "AGAIN", "the parent went away");
    let again: Option<u64> = cache.get(key).await;
    say(&format!("AGAIN value={again:?}"));
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

// ---------------------------------------------------------------------------
// The parent side: propagation.

/// One writer and `processes - 1` readers; returns the failures.
async fn propagate(server: &RedisServer, op: Op, processes: usize) -> Vec<String> {
    let spec = format!("read|{}|{}|{processes}", server.url(), op.name());
    let mut readers: Vec<Child> = (1..processes)
        .map(|_| Child::spawn(CHILD_ENTRY, CHILD_ENV, &spec, &[]))
        .collect();
    let writer = Writer::new(server, op, processes).await;
    for reader in &readers {
        reader.expect("READY");
    }
    for reader in &mut readers {
        reader.send("GO");
    }
    let mut acks = Vec::with_capacity(CHANGES as usize);
    let started = std::time::Instant::now();
    // The readers' first loops, before the first change.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for version in 1..=CHANGES {
        writer.change(version).await;
        acks.push((version, now_ns()));
        tokio::time::sleep(fleet::PAUSE).await;
    }
    // Any reader still stale now is stale beyond the bound.
    tokio::time::sleep(BOUND + Duration::from_millis(100)).await;
    for reader in &mut readers {
        reader.send("STOP");
    }
    let mut verdict = Verdict::default();
    let mut results = Vec::new();
    for (i, reader) in readers.iter().enumerate() {
        let segments = timeline::decode(&reader.expect("SEGMENTS ")["SEGMENTS ".len()..]);
        let result = reader.expect("RESULT");
        verdict.judge(&format!("reader {i}"), &segments, &acks, BOUND);
        results.push(result);
    }
    for reader in readers {
        reader.finish();
    }
    let summary = verdict.summary();
    println!(
        "PROPAGATION | {} | processes={processes} | changes={CHANGES} | {summary} | {:.1}s",
        op.name(),
        started.elapsed().as_secs_f64()
    );
    for result in &results {
        println!("    {result} | writer {}", writer.stats());
        assert_eq!(field(result, "losses"), "0", "the channel broke: {result}");
    }
    verdict
        .violations
        .iter()
        .take(10)
        .map(|v| format!("{}: {v}", op.name()))
        .collect()
}

async fn propagation(processes: usize) {
    let server = RedisServer::start();
    let mut failures = Vec::new();
    for op in Op::ALL {
        failures.extend(propagate(&server, op, processes).await);
    }
    assert!(
        failures.is_empty(),
        "reads older than the last change beyond {BOUND:?}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_change_reaches_another_process_within_the_bound() {
    serial(propagation(2));
}

#[test]
fn every_change_reaches_three_other_processes_within_the_bound() {
    serial(propagation(4));
}

// ---------------------------------------------------------------------------
// Writers that are not cachekit, and the opt-outs.

/// A `SET` of a raw value by another client, then a `DEL`, each take the
/// entry out of L1: the next reads recompute, never return the old value.
#[test]
fn a_raw_write_or_delete_by_another_client_drops_the_l1_entry() {
    serial(async {
        let server = RedisServer::start();
        let cache = fleet::cache(&server.url(), None);
        fleet::live(&cache).await;
        let key = "fleet:foreign";
        let runs = AtomicU64::new(0);
        let read = || cache.get_or_compute(key, TTL, || async { runs.fetch_add(1, SeqCst) + 1 });
        assert_eq!(read().await, 1);
        assert_eq!(read().await, 1, "an L1 hit");
        let heard = cache.invalidation_stats().keys;
        assert_eq!(server.command(&["SET", key, "raw"]), "OK");
        let value = until_changed(&read, 1).await;
        assert!(value >= 2, "recomputed: the raw value is not ours");
        assert!(cache.stats().l2.foreign >= 1, "{:?}", cache.stats());
        assert!(cache.invalidation_stats().keys > heard);

        assert_eq!(server.command(&["DEL", key]), "(integer) 1");
        let after = until_changed(&read, value).await;
        assert!(after > value, "recomputed after the delete");
        assert_eq!(
            cache.stats().computes,
            runs.load(SeqCst),
            "{:?}",
            cache.stats()
        );
    });
}

/// Reads until the value is not `old` (within the testkit's patience),
/// then until it stays put; returns where it settled. Once changed it never
/// goes back: a read may compute once more (a change announced while a
/// computation ran keeps its result out of the cache), but only ever a
/// newer value.
async fn until_changed<F, Fut>(read: &F, old: u64) -> u64
where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    let deadline = std::time::Instant::now() + cachekit_testkit::PATIENCE;
    let mut value = read().await;
    let mut same = 0;
    while value == old || same < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "L1 kept serving {old} (or kept recomputing: {value}) after another client changed the key"
        );
        let next = read().await;
        if value == old {
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            assert!(
                next >= value,
                "went back after changing: {value}, then {next}"
            );
        }
        same = if next == value { same + 1 } else { 0 };
        value = next;
    }
    value
}

/// `.l1_invalidation(false)` and `CACHEKIT_L1_INVALIDATION=off` give the
/// old behaviour: a change another process made is not seen until the L1
/// entry's lifetime ends, while a cache with invalidation on has seen it.
/// (The proof that the propagation tests can fail.)
#[test]
fn turned_off_l1_serves_another_process_s_change_until_it_expires() {
    serial(async {
        let server = RedisServer::start();
        let key = "fleet:off";
        let writer = fleet::cache(&server.url(), Some(true));
        writer.set(key, &1_u64, TTL).await.unwrap();
        let on = fleet::cache(&server.url(), None);
        let off = fleet::cache(&server.url(), Some(false));
        fleet::live(&on).await;
        assert_eq!(off.invalidation_stats().state, ChannelState::Off);
        let mut env_off = Child::spawn(
            CHILD_ENTRY,
            CHILD_ENV,
            &format!("hold|{}|{key}", server.url()),
            &[("CACHEKIT_L1_INVALIDATION", "off")],
        );
        let mut env_on = Child::spawn(
            CHILD_ENTRY,
            CHILD_ENV,
            &format!("hold|{}|{key}", server.url()),
            &[("CACHEKIT_L1_INVALIDATION", "on")],
        );
        assert_eq!(env_off.expect("HOLDING"), "HOLDING state=Off value=Some(1)");
        // Live before it reads: what it reads then lives the full L1 lifetime.
        assert_eq!(env_on.expect("HOLDING"), "HOLDING state=Live value=Some(1)");
        assert_eq!(on.get::<u64>(key).await, Some(1));
        assert_eq!(off.get::<u64>(key).await, Some(1));

        writer.set(key, &2_u64, TTL).await.unwrap();
        fleet::until("the live cache sees the change", || async {
            on.get::<u64>(key).await == Some(2)
        })
        .await;
        assert_eq!(
            off.get::<u64>(key).await,
            Some(1),
            "stale: invalidation is off"
        );
        env_off.send("AGAIN");
        assert_eq!(env_off.expect("AGAIN"), "AGAIN value=Some(1)");
        env_on.send("AGAIN");
        assert_eq!(env_on.expect("AGAIN"), "AGAIN value=Some(2)");
        env_off.finish();
        env_on.finish();
        // Until its L1 lifetime ends.
        let short = fleet::cache_with(&server.url(), Some(false), Duration::from_secs(1));
        assert_eq!(short.get::<u64>(key).await, Some(2));
        writer.set(key, &3_u64, TTL).await.unwrap();
        assert_eq!(short.get::<u64>(key).await, Some(2));
        fleet::until("the L1 entry expires", || async {
            short.get::<u64>(key).await == Some(3)
        })
        .await;
    });
}
