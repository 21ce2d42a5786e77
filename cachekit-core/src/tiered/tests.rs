use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::*;
use crate::backend::{Health, Ttl};
use crate::error::{Error, ErrorKind};
use crate::keys::KeyBuilder;

/// A real in-memory backend with switchable failures, standing in for an
/// unhealthy L2. (Redis itself is only ever tested for real, in other crates.)
#[derive(Debug)]
pub(super) struct Flaky {
    pub(super) inner: MemoryBackend,
    pub(super) fail_reads: AtomicBool,
    pub(super) fail_writes: AtomicBool,
    /// Every call hangs (a SIGSTOPped server, as far as the caller can tell).
    pub(super) hang: AtomicBool,
    pub(super) calls: AtomicUsize,
    /// Reads that asked for the remaining TTL too.
    pub(super) ttl_reads: AtomicUsize,
}

impl Flaky {
    pub(super) fn new() -> Arc<Self> {
        Self::with_clock(crate::clock::Clock::system())
    }

    /// An L2 whose TTLs run on `clock` (give its cache the same one).
    pub(super) fn with_clock(clock: crate::clock::Clock) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryBackend::builder().clock(clock).build().unwrap(),
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            ttl_reads: AtomicUsize::new(0),
        })
    }
    async fn check(&self, flag: &AtomicBool) -> Result<()> {
        self.calls.fetch_add(1, SeqCst);
        if self.hang.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        if flag.load(SeqCst) {
            Err(Error::new(ErrorKind::Connection, "injected failure"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Backend for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.check(&self.fail_reads).await?;
        self.inner.get(key).await
    }
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        self.check(&self.fail_reads).await?;
        self.ttl_reads.fetch_add(1, SeqCst);
        self.inner.get_with_ttl(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.check(&self.fail_writes).await?;
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.check(&self.fail_writes).await?;
        self.inner.delete(key).await
    }
    async fn ttl(&self, key: &str) -> Result<Ttl> {
        self.check(&self.fail_reads).await?;
        self.inner.ttl(key).await
    }
    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        self.check(&self.fail_writes).await?;
        self.inner.expire(key, ttl).await
    }
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.check(&self.fail_writes).await?;
        self.inner.set_if_absent(key, value, ttl).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.check(&self.fail_writes).await?;
        self.inner.delete_prefix(prefix).await
    }
    async fn health(&self) -> Health {
        self.inner.health().await
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user-{id}"),
    }
}

fn two_tier(l2: &Arc<Flaky>) -> TieredCache {
    TieredCache::builder()
        .l2_arc(l2.clone() as Arc<dyn Backend>)
        .build()
        .unwrap()
}

fn l2_only(l2: &Arc<Flaky>) -> TieredCache {
    TieredCache::builder()
        .without_l1()
        .l2_arc(l2.clone() as Arc<dyn Backend>)
        .build()
        .unwrap()
}

#[tokio::test]
async fn l2_hit_fills_l1_for_at_most_the_remaining_l2_ttl() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    let bytes = Codec::default().encode(&profile(1)).unwrap();
    l2.inner
        .set("p:1", bytes, Some(Duration::from_secs(5)))
        .await
        .unwrap();

    assert_eq!(cache.get::<Profile>("p:1").await, Some(profile(1)));
    let l1_ttl = cache.l1().unwrap().ttl("p:1").await.unwrap();
    let left = l1_ttl.remaining().expect("L1 entry must expire");
    assert!(
        left <= Duration::from_secs(5),
        "L1 ttl {left:?} outlives L2's"
    );

    // The next read is an L1 hit: L2 is not asked again.
    l2.fail_reads.store(true, SeqCst);
    assert_eq!(cache.get::<Profile>("p:1").await, Some(profile(1)));
    let stats = cache.stats();
    assert_eq!((stats.l1.hits, stats.l1.misses), (1, 1));
    assert_eq!((stats.l2.hits, stats.l2.errors), (1, 0));
}

#[tokio::test]
async fn l1_max_ttl_caps_entries_filled_from_a_persistent_l2_entry() {
    let l2 = Flaky::new();
    let cache = TieredCache::builder()
        .l2_arc(l2.clone() as Arc<dyn Backend>)
        .l1_max_ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    let bytes = Codec::default().encode(&7u32).unwrap();
    l2.inner.set("n", bytes, None).await.unwrap();
    assert_eq!(cache.get::<u32>("n").await, Some(7));
    let left = cache.l1().unwrap().ttl("n").await.unwrap().remaining();
    assert!(
        left.is_some_and(|d| d <= Duration::from_secs(2)),
        "{left:?}"
    );
}

#[tokio::test]
async fn without_l2_the_l1_keeps_the_requested_ttl() {
    let cache = TieredCache::builder().build().unwrap();
    cache
        .set("k", &1u8, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let left = cache
        .l1()
        .unwrap()
        .ttl("k")
        .await
        .unwrap()
        .remaining()
        .unwrap();
    assert!(left > DEFAULT_L1_MAX_TTL);
}

#[tokio::test]
async fn set_writes_both_tiers_and_delete_removes_both() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    cache.set("k", &profile(2), None).await.unwrap();
    assert!(l2.inner.exists("k").await.unwrap());
    assert!(cache.l1().unwrap().exists("k").await.unwrap());
    assert!(cache.delete("k").await.unwrap());
    assert!(!l2.inner.exists("k").await.unwrap());
    assert!(!cache.l1().unwrap().exists("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
}

#[tokio::test]
async fn failed_l2_write_leaves_no_l1_entry_and_reports_the_error() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    cache.set("k", &1u32, None).await.unwrap();
    l2.fail_writes.store(true, SeqCst);
    let err = cache.set("k", &2u32, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(!cache.l1().unwrap().exists("k").await.unwrap());
    // L2 still has the old value, and that is what this process now reads.
    assert_eq!(cache.get::<u32>("k").await, Some(1));
    assert_eq!(cache.stats().l2.errors, 1);
}

#[tokio::test]
async fn get_or_compute_is_fail_open_when_l2_is_down() {
    let l2 = Flaky::new();
    l2.fail_reads.store(true, SeqCst);
    l2.fail_writes.store(true, SeqCst);
    let cache = two_tier(&l2);
    let v = cache
        .get_or_compute("k", None, || async { profile(3) })
        .await;
    assert_eq!(v, profile(3));
    let stats = cache.stats();
    assert_eq!(stats.computes, 1);
    assert_eq!(stats.l2.errors, 2, "one failed read and one failed write");
    // L1 still serves the computed value while L2 is down.
    let again: Profile = cache
        .get_or_compute("k", None, || async { panic!("must be an L1 hit") })
        .await;
    assert_eq!(again, profile(3));
}

#[tokio::test]
async fn errors_are_returned_and_not_cached() {
    let cache = TieredCache::builder().build().unwrap();
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        let r: Result<u32, &str> = cache
            .entry("k")
            .or_try_compute(|| async {
                calls.fetch_add(1, SeqCst);
                Err("db down")
            })
            .await;
        assert_eq!(r, Err("db down"));
    }
    assert_eq!(calls.load(SeqCst), 2);
    let ok: Result<u32, &str> = cache.entry("k").or_try_compute(|| async { Ok(5) }).await;
    assert_eq!(ok, Ok(5));
    assert_eq!(cache.get::<u32>("k").await, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_share_one_computation() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    let stats = thousand_callers(&cache).await;
    assert_eq!(stats.l1.hits + stats.coalesced, (CALLERS - 1) as u64);
    assert_eq!(stats.l2.sets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_l1_waiters_still_get_the_leaders_value() {
    // Without an L1 the leader copies its value only for callers waiting on
    // it; this checks they all get it.
    let l2 = Flaky::new();
    let cache = l2_only(&l2);
    let stats = thousand_callers(&cache).await;
    assert_eq!(stats.l2.hits + stats.coalesced, (CALLERS - 1) as u64);
    assert_eq!(stats.l2.sets, 1);
}

const CALLERS: usize = 1000;

/// Runs `CALLERS` concurrent calls of one cold key, checks they all got
/// the value from one computation, and returns the stats.
async fn thousand_callers(cache: &TieredCache) -> crate::TieredStats {
    let started = Arc::new(AtomicUsize::new(0));
    let computes = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        let cache = cache.clone();
        let started = started.clone();
        let computes = computes.clone();
        tasks.push(tokio::spawn(async move {
            started.fetch_add(1, SeqCst);
            cache
                .get_or_compute("cold", Some(Duration::from_secs(60)), || async move {
                    computes.fetch_add(1, SeqCst);
                    // Hold the computation open until every caller has arrived.
                    while started.load(SeqCst) < CALLERS {
                        tokio::task::yield_now().await;
                    }
                    profile(99)
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), profile(99));
    }
    assert_eq!(computes.load(SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.computes, 1);
    assert!(
        stats.coalesced > 0,
        "no caller waited: the test did not exercise single-flight"
    );
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let cache = TieredCache::builder().build().unwrap();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute("k", None, || async move {
                    let _ = entered_tx.send(());
                    std::future::pending::<u32>().await
                })
                .await
        })
    };
    entered_rx.await.unwrap();
    let follower = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_or_compute("k", None, || async { 8u32 }).await })
    };
    // Let the follower join the leader's flight before the leader goes away.
    while Arc::strong_count(&cache.inner) < 3 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    assert_eq!(follower.await.unwrap(), 8);
    assert_eq!(cache.stats().computes, 2);
}

#[tokio::test]
async fn undecodable_l2_values_are_deleted_counted_and_recomputed() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    l2.inner
        // A cachekit envelope cut short: deleted (another program's value
        // would be left in place).
        .set("k", Bytes::from_static(b"\xC1K\x01garbage"), None)
        .await
        .unwrap();
    let v = cache.get_or_compute("k", None, || async { 11u64 }).await;
    assert_eq!(v, 11);
    let stats = cache.stats();
    assert_eq!((stats.l2.corrupt, stats.computes), (1, 1));
    // The garbage was replaced by a valid envelope.
    let stored = l2.inner.get("k").await.unwrap().unwrap();
    assert_eq!(Codec::default().decode::<u64>(&stored).unwrap(), 11);
}

#[tokio::test]
async fn a_value_of_another_type_is_a_miss_not_a_wrong_value() {
    let cache = TieredCache::builder().build().unwrap();
    cache.set("k", &"text", None).await.unwrap();
    assert_eq!(cache.get::<Profile>("k").await, None);
    assert_eq!(cache.stats().l1.corrupt, 1);
}

#[tokio::test]
async fn l2_only_cache_works() {
    let l2 = Flaky::new();
    let cache = l2_only(&l2);
    assert!(cache.l1().is_none());
    assert_eq!(cache.get_or_compute("k", None, || async { 1u8 }).await, 1);
    assert_eq!(cache.get_or_compute("k", None, || async { 2u8 }).await, 1);
    assert_eq!(cache.stats().l2.hits, 1);
}

#[tokio::test]
async fn reads_ask_for_the_ttl_only_when_l1_needs_it() {
    let l2 = Flaky::new();
    let l2_only = l2_only(&l2);
    l2_only
        .set("k", &1u8, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(l2_only.get::<u8>("k").await, Some(1));
    assert_eq!(l2.ttl_reads.load(SeqCst), 0, "no L1 to fill: plain GET");
    let two_tier = two_tier(&l2);
    assert_eq!(two_tier.get::<u8>("k").await, Some(1));
    assert_eq!(
        l2.ttl_reads.load(SeqCst),
        1,
        "filling L1 needs the remaining TTL"
    );
}

#[test]
fn build_rejects_zero_ttls_and_no_tiers() {
    let err = TieredCache::builder()
        .l1_max_ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.message().contains("l1_max_ttl"));
    let err = TieredCache::builder().without_l1().build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[test]
fn blocking_api_outside_any_runtime() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    assert_eq!(cache.get_or_compute_blocking("k", None, || 4u16), 4);
    assert_eq!(cache.get_or_compute_blocking("k", None, || 5u16), 4);
    // L2 (reached through cachekit's own runtime) holds the value too.
    cache.invalidate_local("k");
    assert_eq!(cache.get_blocking::<u16>("k"), Some(4));
    assert!(cache.delete_blocking("k").unwrap());
    assert_eq!(cache.get_blocking::<u16>("k"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_inside_a_multi_thread_runtime() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    cache.set_blocking("k", &9u8, None).unwrap();
    cache.invalidate_local("k");
    assert_eq!(cache.get_blocking::<u8>("k"), Some(9));
}

#[test]
fn blocking_api_inside_a_local_set_on_a_multi_thread_runtime() {
    // Tokio refuses `block_in_place` here although the runtime is
    // multi-thread; the calls must still work, not panic.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    let local = tokio::task::LocalSet::new();
    let calls = || {
        assert_eq!(cache.get_or_compute_blocking("k", None, || 3u8), 3);
        cache.invalidate_local("k");
        assert_eq!(cache.get_or_compute_blocking("k", None, || 4u8), 3);
        assert!(cache.delete_blocking("k").unwrap());
    };
    rt.block_on(local.run_until(async { calls() }));
    // In a task of the LocalSet, and again after the first refusal.
    rt.block_on(local.run_until(async {
        let cache = cache.clone();
        tokio::task::spawn_local(async move {
            cache.set_blocking("j", &5u8, None).unwrap();
            cache.invalidate_local("j");
            assert_eq!(cache.get_blocking::<u8>("j"), Some(5));
        })
        .await
        .unwrap();
    }));
    // Outside the LocalSet this thread, refused once, keeps to the helper
    // thread; a worker still blocks in place.
    rt.block_on(async { calls() });
    rt.block_on(rt.spawn({
        let cache = cache.clone();
        async move {
            assert_eq!(cache.get_or_compute_blocking("w", None, || 6u8), 6);
        }
    }))
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_api_inside_a_current_thread_runtime() {
    let l2 = Flaky::new();
    let cache = two_tier(&l2);
    assert_eq!(cache.get_or_compute_blocking("k", None, || 6u8), 6);
    cache.invalidate_local("k");
    assert_eq!(cache.get_or_compute_blocking("k", None, || 7u8), 6);
}

#[test]
fn blocking_single_flight_across_threads() {
    let cache = TieredCache::builder().build().unwrap();
    let computes = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, computes, barrier) = (cache.clone(), computes.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_compute_blocking("k", None, || {
                    computes.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    3u8
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 3);
    }
    assert_eq!(computes.load(SeqCst), 1);
}

#[tokio::test]
async fn a_request_by_arguments_caches_under_their_interop_key() {
    let cache = TieredCache::builder().build().unwrap();
    let users = KeyBuilder::new("users", "name").unwrap();
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let name: String = cache
            .entry_for(&users, &(42,))
            .ttl(Duration::from_secs(60))
            .or_compute(|| async {
                calls.fetch_add(1, SeqCst);
                "Ada".to_owned()
            })
            .await;
        assert_eq!(name, "Ada");
    }
    assert_eq!(calls.load(SeqCst), 1);
    let key = users.key(&(42,)).unwrap();
    assert_eq!(cache.get::<String>(&key).await.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn arguments_without_a_key_run_uncached_or_fail_a_strict_request() {
    let cache = TieredCache::builder().build().unwrap();
    let rates = KeyBuilder::new("fx", "rate").unwrap();
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        let v: u32 = cache
            .entry_for(&rates, &(f64::NAN,))
            .or_compute(|| async { calls.fetch_add(1, SeqCst) as u32 })
            .await;
        let _ = v;
    }
    assert_eq!(calls.load(SeqCst), 2, "each call runs: nothing is cached");
    assert_eq!(cache.stats().uncached, 2);
    let strict: Result<u32, Error> = cache
        .entry_for(&rates, &(f64::NAN,))
        .strict()
        .blocking()
        .or_try_compute(|| Ok(1));
    assert_eq!(strict.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_nonsense_refresh_fraction_never_refreshes_and_never_panics() {
    let cache = TieredCache::builder().build().unwrap();
    let ttl = Duration::from_secs(60);
    for fraction in [f64::NAN, -1.0, f64::INFINITY, 1e300] {
        let v: u32 = cache
            .entry("k")
            .ttl(ttl)
            .refresh_ahead(fraction)
            .or_compute(|| async { 7 })
            .await;
        assert_eq!(v, 7);
    }
}
