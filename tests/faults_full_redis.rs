//! A Redis at `maxmemory` under `noeviction` refuses writes with OOM. Those
//! refusals are skipped and counted (`TierStats::full`), logged at a low
//! rate naming `maxmemory-policy`, and never open the circuit breaker:
//! reads of what is stored keep hitting.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::time::Duration;

use cachekit::{BreakerState, ErrorKind, TieredCache};
use cachekit_testkit::logs::Logs;
use cachekit_testkit::RedisServer;
use common::redis;

const TTL: Option<Duration> = Some(Duration::from_secs(600));

#[tokio::test]
async fn a_full_redis_refuses_writes_but_reads_keep_hitting() {
    let server = RedisServer::builder()
        .config("maxmemory", "4mb")
        .config("maxmemory-policy", "noeviction")
        .start();
    // No L1: every read below is a Redis read.
    let cache = TieredCache::builder()
        .without_l1()
        .l2(redis(&server.url()).await)
        .build()
        .unwrap();
    cache.set("full:kept", &42u64, TTL).await.unwrap();
    let (logs, _guard) = Logs::start();

    let mut refused = 0;
    for i in 0..200u64 {
        // Incompressible, so that 64 KiB reach Redis.
        let mut rng = fastrand::Rng::with_seed(i);
        let value: Vec<u8> = (0..64 * 1024).map(|_| rng.u8(..)).collect();
        if let Err(err) = cache.set(&format!("full:big{i}"), &value, TTL).await {
            assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
            refused += 1;
        }
    }
    let s = cache.stats();
    println!("refused {refused} of 200 writes: {s:?}");
    assert!(refused >= 100, "Redis did not fill up: {refused} refused");
    assert_eq!(s.l2.full, refused);

    let mut hits = 0;
    for _ in 0..20 {
        if cache.get::<u64>("full:kept").await == Some(42) {
            hits += 1;
        }
    }
    let s = cache.stats();
    assert_eq!(hits, 20, "reads of a stored key while Redis is full: {s:?}");
    assert_eq!(
        (s.breaker, s.breaker_opened, s.l2.skipped),
        (BreakerState::Closed, 0, 0),
        "{s:?}"
    );

    let lines = logs.lines();
    println!("{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("maxmemory-policy")),
        "no line names maxmemory-policy: {lines:#?}"
    );
    assert!(
        lines.len() <= 3,
        "{} lines for {refused} refused writes",
        lines.len()
    );
}
