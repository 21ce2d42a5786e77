//! What an operator's log shows during a real outage (redis-server killed):
//! one line when L2 becomes unavailable, a summary per interval rather than
//! a line per call, and one line when it is back.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use cachekit::{BreakerConfig, TieredCache};
use cachekit_testkit::logs::Logs;
use cachekit_testkit::RedisServer;
use common::lazy_redis;

const TTL: Option<Duration> = Some(Duration::from_secs(60));

#[tokio::test]
async fn an_outage_logs_a_handful_of_lines_and_its_recovery() {
    let server = RedisServer::start();
    let cache = TieredCache::builder()
        .without_l1()
        .l2(lazy_redis(&server.url()))
        .l2_timeout(Duration::from_millis(300))
        .breaker(
            BreakerConfig::default()
                .recovery_timeout(Duration::from_millis(200))
                .success_threshold(1),
        )
        .build()
        .unwrap();
    cache.set("outage:warm", &1u64, TTL).await.unwrap();
    let (logs, _guard) = Logs::start();
    server.stop();

    for i in 0..300u64 {
        assert_eq!(cache.get::<u64>(&format!("outage:r{i}")).await, None);
        assert!(cache.set(&format!("outage:w{i}"), &i, TTL).await.is_err());
    }
    let during = logs.lines();
    println!("during the outage: {during:#?}");
    let s = cache.stats();
    assert!(s.l2.errors + s.l2.skipped >= 600, "{s:?}");
    assert!(
        during.len() <= 8,
        "{} WARN lines for 600 failed or skipped calls: {during:#?}",
        during.len()
    );
    assert!(
        during.iter().any(|l| l.contains("L2 unavailable")),
        "{during:#?}"
    );
    assert!(
        during.iter().all(|l| l.len() < 600),
        "a line is long: {during:#?}"
    );

    server.restart();
    let give_up = Instant::now() + Duration::from_secs(15);
    let recovered = loop {
        cache.get::<u64>("outage:warm").await;
        let lines = logs.lines();
        if let Some(line) = lines.iter().find(|l| l.contains("L2 available again")) {
            break line.clone();
        }
        assert!(Instant::now() < give_up, "no recovery line: {lines:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("{recovered}");
    assert!(recovered.contains("reads and"), "{recovered}");
    // The restarted server is empty (no persistence); L2 works again.
    cache.set("outage:after", &2u64, TTL).await.unwrap();
    assert_eq!(cache.get::<u64>("outage:after").await, Some(2));
}
