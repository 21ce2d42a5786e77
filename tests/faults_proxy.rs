//! The network between the application and Redis misbehaves: a loopback
//! proxy stalls or drops the connections while large values are in
//! transit. Calls must return the right value within a bound, and the cache
//! must use L2 again once traffic flows.
//!
//! The proxy switches at an arbitrary moment of a continuous stream of
//! 256 KiB replies, so the switch usually lands in the middle of one; the
//! testkit has no byte-exact trigger to guarantee it.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachekit::{BreakerConfig, BreakerState, TieredCache};
use cachekit_testkit::eventually;
use cachekit_testkit::{LoopbackProxy, ProxyMode, RedisServer};
use common::{fault, redis, Latencies, CALL_BOUND};

const TTL: Option<Duration> = Some(Duration::from_secs(60));
const DEADLINE: Duration = Duration::from_millis(150);
const RECOVERY: Duration = Duration::from_millis(300);
const KEYS: usize = 8;
const VALUE_LEN: usize = 256 * 1024;
const WORKERS: usize = 6;

/// A large value that LZ4 cannot shrink much, different for every key.
fn blob(key: usize) -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (key as u64 + 1);
    (0..VALUE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

const HEALTHY: u8 = 0;
const FAULTY: u8 = 1;
const RECOVERING: u8 = 2;

/// A load of readers through the proxy (no L1, so every call crosses it),
/// with one fault injected in the middle.
struct Load {
    cache: TieredCache,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU8>,
    wrong: Arc<AtomicU64>,
    faulty: Latencies,
    healthy: Latencies,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(url: &str) -> Self {
        let cache = TieredCache::builder()
            .without_l1()
            .l2(redis(url).await)
            .l2_timeout(DEADLINE)
            .breaker(
                BreakerConfig::default()
                    .failure_threshold(5)
                    .recovery_timeout(RECOVERY)
                    .success_threshold(2),
            )
            .build()
            .unwrap();
        let expected: Arc<Vec<String>> = Arc::new((0..KEYS).map(blob).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(HEALTHY));
        let wrong = Arc::new(AtomicU64::new(0));
        let (faulty, healthy) = (Latencies::new(), Latencies::new());
        let workers = (0..WORKERS)
            .map(|w| {
                let (cache, expected, stop, phase, wrong) = (
                    cache.clone(),
                    expected.clone(),
                    stop.clone(),
                    phase.clone(),
                    wrong.clone(),
                );
                let (faulty, healthy) = (faulty.clone(), healthy.clone());
                tokio::spawn(async move {
                    let mut i = w;
                    while !stop.load(SeqCst) {
                        let k = i % KEYS;
                        let was = phase.load(SeqCst);
                        let started = Instant::now();
                        let value: String =
                            cache
                                .get_or_compute(&format!("faults:proxy:{k}"), TTL, || async move {
                                    blob(k)
                                })
                                .await;
                        let took = started.elapsed();
                        if value != expected[k] {
                            wrong.fetch_add(1, SeqCst);
                        }
                        if was == FAULTY || phase.load(SeqCst) == FAULTY {
                            faulty.record(took);
                        } else {
                            healthy.record(took);
                        }
                        i += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Self {
            cache,
            stop,
            phase,
            wrong,
            faulty,
            healthy,
            workers,
        }
    }

    /// Runs `inject`, waits until the breaker has opened and a probe has
    /// failed, runs `heal`, and returns how long L2 hits took to resume.
    async fn fault_and_heal(
        &self,
        inject: impl FnOnce() + Send + 'static,
        heal: impl FnOnce() + Send + 'static,
    ) -> Duration {
        let cache = &self.cache;
        eventually("L2 hits through the proxy", || cache.stats().l2.hits >= 30).await;
        self.phase.store(FAULTY, SeqCst);
        fault(inject).await;
        eventually("the breaker to open and a probe to fail", || {
            cache.stats().breaker_opened >= 2
        })
        .await;
        fault(heal).await;
        self.phase.store(RECOVERING, SeqCst);
        let hits = cache.stats().l2.hits;
        eventually("L2 hits after the proxy passes traffic again", || {
            let s = cache.stats();
            s.l2.hits > hits && s.breaker == BreakerState::Closed
        })
        .await
    }

    async fn finish(self, fault_name: &str) {
        self.stop.store(true, SeqCst);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let stats = self.cache.stats();
        println!("{fault_name}: {stats:?}");
        assert_eq!(self.wrong.load(SeqCst), 0, "a call returned a wrong value");
        assert!(stats.l2.errors >= 5, "{stats:?}");
        assert!(stats.l2.skipped > 0, "{stats:?}");
        assert!(stats.computes >= KEYS as u64, "{stats:?}");
        assert_eq!(stats.breaker, BreakerState::Closed);
        self.faulty.report_and_check(fault_name, CALL_BOUND);
        self.healthy.report_and_check(
            &format!("{fault_name}: calls outside the fault"),
            CALL_BOUND,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_stalls_mid_response_costs_calls_at_most_the_deadline() {
    let server = RedisServer::start();
    let proxy = Arc::new(LoopbackProxy::start(server.addr()));
    let load = Load::start(&server.url_with_port(proxy.port())).await;
    let (stall, pass) = (proxy.clone(), proxy.clone());
    let recovered_in = load
        .fault_and_heal(
            move || stall.set_mode(ProxyMode::Stall),
            move || pass.set_mode(ProxyMode::Pass),
        )
        .await;
    println!("stall: L2 hits resumed {recovered_in:?} after the proxy passed traffic again");
    assert!(recovered_in <= RECOVERY + Duration::from_secs(1));
    let stats = load.cache.stats();
    assert!(stats.l2.timeouts >= 5, "a stall is a deadline: {stats:?}");
    load.finish("proxy stalls mid-response").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_drops_connections_mid_response_fails_no_call() {
    let server = RedisServer::start();
    let proxy = Arc::new(LoopbackProxy::start(server.addr()));
    let load = Load::start(&server.url_with_port(proxy.port())).await;
    let (drop_all, pass) = (proxy.clone(), proxy.clone());
    let recovered_in = load
        .fault_and_heal(
            move || drop_all.set_mode(ProxyMode::Drop),
            move || pass.set_mode(ProxyMode::Pass),
        )
        .await;
    println!("drop: L2 hits resumed {recovered_in:?} after the proxy passed traffic again");
    assert!(recovered_in <= RECOVERY + Duration::from_secs(1));
    load.finish("proxy drops connections mid-response").await;
}
