//! `#[cached]` on async functions against L1 only and against L1 + a
//! `MemoryBackend` L2: keys, return kinds, every option, the companions.
//!
//! Each test uses functions of its own, so per-function stats and caches
//! do not leak between tests running in parallel.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachekit::{cached, Backend, MemoryBackend, TieredCache, Ttl};

/// An L1-only cache of the function's own.
fn l1() -> cachekit::Result<TieredCache> {
    TieredCache::builder().build()
}

/// L1 in front of a `MemoryBackend` standing in for a shared L2.
fn l1_l2() -> cachekit::Result<TieredCache> {
    TieredCache::builder()
        .l2(MemoryBackend::builder().build()?)
        .build()
}

fn l2_of(handle: &cachekit::CachedFn) -> Arc<dyn Backend> {
    let cache = handle.cache().expect("the function has a cache");
    cache.l2().expect("the cache has an L2").clone()
}

const KEY_42: &str =
    "users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875";

#[cached(namespace = "users", name = "get_user", backend = l1_l2())]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[tokio::test]
async fn key_is_the_interop_key_of_the_arguments() {
    assert_eq!(get_user(42).await, "user 42");
    let l2 = l2_of(get_user_cache());
    assert!(l2.exists(KEY_42).await.unwrap(), "L2 holds {KEY_42}");
    let cache = get_user_cache().cache().unwrap();
    assert_eq!(
        cache.get::<String>(KEY_42).await.as_deref(),
        Some("user 42")
    );
    assert_eq!(
        cachekit::derive_key("users", "get_user", &(42u64,)).unwrap(),
        KEY_42
    );
}

static VALUE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
async fn doubled(x: u64) -> u64 {
    VALUE_RUNS.fetch_add(1, SeqCst);
    x * 2
}

#[tokio::test]
async fn a_plain_value_is_computed_once_per_arguments() {
    assert_eq!(doubled(2).await, 4);
    assert_eq!(doubled(2).await, 4);
    assert_eq!(doubled(3).await, 6);
    assert_eq!(VALUE_RUNS.load(SeqCst), 2);
    let stats = doubled_cache().stats();
    assert_eq!((stats.hits, stats.computes, stats.uncached), (1, 2, 0));
    assert_eq!(stats.calls(), 3);
}

static RESULT_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
async fn flaky(id: u64) -> Result<u64, String> {
    // Fails on the first run only.
    match RESULT_RUNS.fetch_add(1, SeqCst) {
        0 => Err(format!("db down for {id}")),
        _ => Ok(id + 100),
    }
}

#[tokio::test]
async fn only_ok_results_are_cached() {
    assert_eq!(flaky(1).await, Err("db down for 1".to_owned()));
    assert_eq!(flaky(1).await, Ok(101));
    assert_eq!(flaky(1).await, Ok(101));
    assert_eq!(RESULT_RUNS.load(SeqCst), 2);
    assert_eq!(flaky_cache().stats().hits, 1);
}

static OPTION_RUNS: AtomicU32 = AtomicU32::new(0);
static NONE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
async fn find(id: u64) -> Option<u64> {
    OPTION_RUNS.fetch_add(1, SeqCst);
    (id != 1).then_some(id)
}

#[cached(backend = l1(), cache_none)]
async fn find_negative(id: u64) -> Option<u64> {
    NONE_RUNS.fetch_add(1, SeqCst);
    (id != 1).then_some(id)
}

#[tokio::test]
async fn only_some_is_cached_unless_cache_none() {
    assert_eq!(find(1).await, None);
    assert_eq!(find(1).await, None);
    assert_eq!(find(2).await, Some(2));
    assert_eq!(find(2).await, Some(2));
    assert_eq!(OPTION_RUNS.load(SeqCst), 3, "None ran twice, Some once");

    assert_eq!(find_negative(1).await, None);
    assert_eq!(find_negative(1).await, None);
    assert_eq!(NONE_RUNS.load(SeqCst), 1, "None is cached with cache_none");
}

type Lookup<T> = Result<T, String>;
static ALIAS_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), returns = result)]
async fn behind_alias(ok: bool) -> Lookup<u8> {
    ALIAS_RUNS.fetch_add(1, SeqCst);
    if ok {
        Ok(1)
    } else {
        Err("no".into())
    }
}

#[tokio::test]
async fn returns_result_sees_through_an_alias() {
    for _ in 0..2 {
        assert!(behind_alias(false).await.is_err());
        assert_eq!(behind_alias(true).await, Ok(1));
    }
    assert_eq!(ALIAS_RUNS.load(SeqCst), 3, "the Err ran twice, the Ok once");
}

#[cached(backend = l1_l2(), ttl = 60)]
async fn with_ttl(x: u8) -> u8 {
    x
}

#[cached(backend = l1(), ttl = Duration::from_millis(1500))]
async fn with_duration(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn ttl_reaches_the_tiers() {
    with_ttl(1).await;
    let handle = with_ttl_cache();
    assert_eq!(handle.ttl(), Some(Duration::from_secs(60)));
    let key = handle.keys().unwrap().key(&(1u8,)).unwrap();
    match l2_of(handle).ttl(&key).await.unwrap() {
        Ttl::Remaining(left) => {
            assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60))
        }
        other => panic!("expected a TTL on the L2 entry, got {other:?}"),
    }
    with_duration(1).await;
    assert_eq!(
        with_duration_cache().ttl(),
        Some(Duration::from_millis(1500))
    );
}

#[cached(backend = l1_l2(), ttl = 60, l1_ttl = 5)]
async fn short_l1(x: u8) -> u8 {
    x
}

#[cached(backend = l1(), ttl = 60, l1_ttl = 5)]
async fn short_l1_only(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn l1_ttl_caps_the_in_process_copy() {
    short_l1(1).await;
    let handle = short_l1_cache();
    let key = handle.keys().unwrap().key(&(1u8,)).unwrap();
    let cache = handle.cache().unwrap();
    let l1_left = cache
        .l1()
        .unwrap()
        .ttl(&key)
        .await
        .unwrap()
        .remaining()
        .unwrap();
    let l2_left = l2_of(handle).ttl(&key).await.unwrap().remaining().unwrap();
    assert!(l1_left <= Duration::from_secs(5), "L1 {l1_left:?}");
    assert!(l2_left > Duration::from_secs(5), "L2 {l2_left:?}");

    // Without an L2, l1_ttl caps the entry's TTL itself.
    assert_eq!(short_l1_only_cache().ttl(), Some(Duration::from_secs(5)));
}

static L2_ONLY_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2(), l1 = false)]
async fn l2_only(x: u8) -> u8 {
    L2_ONLY_RUNS.fetch_add(1, SeqCst);
    x
}

#[cached(backend = l1(), l1 = false)]
async fn no_tier(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn l1_false_keeps_entries_out_of_process_memory() {
    assert_eq!(l2_only(1).await, 1);
    assert_eq!(l2_only(1).await, 1);
    assert_eq!(L2_ONLY_RUNS.load(SeqCst), 1);
    let cache = l2_only_cache().cache().unwrap();
    assert!(cache.l1().is_none());
    assert_eq!(cache.stats().l2.hits, 1);

    // With no L2 to fall back on, the function runs uncached.
    assert_eq!(no_tier(1).await, 1);
    assert_eq!(no_tier(1).await, 1);
    assert!(no_tier_cache().cache().is_none());
    assert_eq!(no_tier_cache().stats().uncached, 2);
}

/// One cache shared by the two versions, as after a deploy.
static SHARED: std::sync::OnceLock<TieredCache> = std::sync::OnceLock::new();

fn shared() -> TieredCache {
    SHARED
        .get_or_init(|| l1_l2().expect("a memory L2 builds"))
        .clone()
}

#[cached(backend = shared(), name = "profile", version = 1)]
async fn profile_v1(id: u64) -> u64 {
    id
}

#[cached(backend = shared(), name = "profile", version = 2)]
async fn profile_v2(id: u64) -> (u64, String) {
    (id, "new shape".into())
}

#[tokio::test]
async fn version_keeps_old_entries_from_being_read_as_the_new_type() {
    assert_eq!(profile_v1(7).await, 7);
    assert_eq!(profile_v2(7).await, (7, "new shape".to_owned()));
    assert_eq!(profile_v2_cache().stats().computes, 1);
    assert_eq!(profile_v1_cache().keys().unwrap().operation(), "profile.v1");
    assert_eq!(profile_v2_cache().keys().unwrap().operation(), "profile.v2");
}

struct Db {
    name: &'static str,
}

static KEYED_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), namespace = "t", name = "keyed", key = user_id, skip(db))]
async fn keyed(db: &Db, user_id: u64, verbose: bool) -> String {
    KEYED_RUNS.fetch_add(1, SeqCst);
    format!("{}:{user_id}:{verbose}", db.name)
}

static SKIP_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), namespace = "t", name = "skipping", skip(db))]
async fn skipping(db: &Db, user_id: u64) -> u64 {
    let _ = db.name;
    SKIP_RUNS.fetch_add(1, SeqCst);
    user_id
}

#[tokio::test]
async fn key_and_skip_choose_what_the_key_is_made_of() {
    let (a, b) = (Db { name: "a" }, Db { name: "b" });
    assert_eq!(keyed(&a, 1, true).await, "a:1:true");
    // Same key (only user_id counts): the first result comes back.
    assert_eq!(keyed(&b, 1, false).await, "a:1:true");
    assert_eq!(KEYED_RUNS.load(SeqCst), 1);
    let expected = cachekit::derive_key("t", "keyed", &(1u64,)).unwrap();
    let cache = keyed_cache().cache().unwrap();
    assert_eq!(
        cache.get::<String>(&expected).await.as_deref(),
        Some("a:1:true")
    );
    // `_invalidate` takes what the key is made of: `user_id` and `verbose`.
    assert!(keyed_invalidate(1, false).await.unwrap());

    assert_eq!(skipping(&a, 5).await, 5);
    assert_eq!(skipping(&b, 5).await, 5);
    assert_eq!(SKIP_RUNS.load(SeqCst), 1);
    let expected = cachekit::derive_key("t", "skipping", &(5u64,)).unwrap();
    assert!(skipping_cache()
        .cache()
        .unwrap()
        .get::<u64>(&expected)
        .await
        .is_some());
    assert!(skipping_invalidate(5).await.unwrap());
}

mod billing {
    pub mod invoices {
        #[cachekit::cached(backend = super::super::l1())]
        pub async fn get(id: u64) -> u64 {
            id
        }
    }

    pub mod payments {
        #[cachekit::cached(backend = super::super::l1())]
        pub async fn get(id: u64) -> u64 {
            id + 1
        }
    }
}

struct Catalog;

impl Catalog {
    #[cached(backend = l1())]
    async fn get(&self, id: u64) -> u64 {
        id + 2
    }
}

#[tokio::test]
async fn default_segments_are_the_package_and_the_path() {
    billing::invoices::get(1).await;
    billing::payments::get(1).await;
    Catalog.get(1).await;
    let invoices = billing::invoices::get_cache().keys().unwrap();
    let payments = billing::payments::get_cache().keys().unwrap();
    let catalog = Catalog::get_cache().keys().unwrap();
    assert_eq!(invoices.namespace(), "cachekit");
    assert_eq!(invoices.operation(), "billing.invoices.get");
    assert_eq!(payments.operation(), "billing.payments.get");
    assert_eq!(catalog.operation(), "catalog.get");
}

static COMPANION_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1_l2())]
async fn counted(x: u64) -> (u64, u32) {
    (x, COMPANION_RUNS.fetch_add(1, SeqCst))
}

#[tokio::test]
async fn companions_invalidate_clear_bypass_and_refresh() {
    assert_eq!(counted(1).await, (1, 0));
    assert_eq!(counted(2).await, (2, 1));

    // Uncached: runs the body, leaves the cache and the stats alone.
    assert_eq!(counted_uncached(1).await, (1, 2));
    assert_eq!(counted(1).await, (1, 0));
    assert_eq!(counted_cache().stats().computes, 2);

    // Refresh: recompute and store.
    assert_eq!(counted_refresh(1).await, (1, 3));
    assert_eq!(counted(1).await, (1, 3));

    // Invalidate one call, in every tier.
    let key = counted_cache().keys().unwrap().key(&(1u64,)).unwrap();
    assert!(counted_invalidate(1).await.unwrap());
    assert!(!counted_invalidate(1).await.unwrap());
    assert!(!l2_of(counted_cache()).exists(&key).await.unwrap());
    assert_eq!(counted(1).await, (1, 4));

    // Clear: every entry of the function, every tier.
    assert_eq!(counted_clear().await.unwrap(), 2);
    assert_eq!(counted(2).await, (2, 5));
    let stats = counted_cache().stats();
    assert_eq!((stats.hits, stats.computes), (2, 5));
}

static NAN_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1())]
async fn ratio(x: f64) -> u32 {
    NAN_RUNS.fetch_add(1, SeqCst);
    x.is_nan().into()
}

#[tokio::test]
async fn arguments_without_a_key_run_uncached() {
    assert_eq!(ratio(f64::NAN).await, 1);
    assert_eq!(ratio(f64::NAN).await, 1);
    assert_eq!(NAN_RUNS.load(SeqCst), 2);
    assert_eq!(ratio_cache().stats().uncached, 2);
    assert!(!ratio_invalidate(f64::NAN).await.unwrap());
}

struct Tenant {
    name: &'static str,
}

impl Tenant {
    #[cached(backend = l1())]
    async fn label(&self, id: u64) -> String {
        format!("{}-{id}", self.name)
    }

    #[cached(backend = l1(), key = (self.name, id))]
    async fn own_label(&self, id: u64) -> String {
        format!("{}-{id}", self.name)
    }
}

#[tokio::test]
async fn self_is_not_part_of_the_key_unless_the_key_says_so() {
    let (a, b) = (Tenant { name: "a" }, Tenant { name: "b" });
    assert_eq!(a.label(1).await, "a-1");
    assert_eq!(b.label(1).await, "a-1");
    assert_eq!(a.own_label(1).await, "a-1");
    assert_eq!(b.own_label(1).await, "b-1");
    assert!(Tenant::own_label_invalidate(&b, 1).await.unwrap());
}

fn dyn_backend() -> cachekit::Result<Arc<dyn Backend>> {
    Ok(Arc::new(MemoryBackend::builder().build()?))
}

#[cached(backend = dyn_backend())]
async fn behind_dyn(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn a_dyn_backend_gets_an_l1_in_front() {
    assert_eq!(behind_dyn(1).await, 1);
    let cache = behind_dyn_cache().cache().unwrap();
    assert!(cache.l1().is_some());
    assert_eq!(cache.l2().unwrap().name(), "memory");
    assert_eq!(cache.stats().l2.sets, 1);
}

static ZERO_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(backend = l1(), ttl = Duration::ZERO)]
async fn zero_ttl(x: u8) -> u8 {
    ZERO_RUNS.fetch_add(1, SeqCst);
    x
}

#[tokio::test]
async fn a_zero_duration_ttl_disables_caching() {
    assert_eq!(zero_ttl(1).await, 1);
    assert_eq!(zero_ttl(1).await, 1);
    assert_eq!(ZERO_RUNS.load(SeqCst), 2);
    assert!(zero_ttl_cache().cache().is_none());
    assert_eq!(zero_ttl_cache().stats().uncached, 2);
}

static STALE_SOURCE_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static STALE_CLOCK: std::sync::OnceLock<cachekit::__private::clock::MockClock> =
    std::sync::OnceLock::new();

/// A cache on a clock the test advances.
fn stale_cache() -> cachekit::Result<TieredCache> {
    let (clock, mock) = cachekit::__private::clock::Clock::mock();
    assert!(STALE_CLOCK.set(mock).is_ok(), "built once");
    TieredCache::builder().clock(clock).build()
}

#[cached(
    backend = stale_cache(),
    ttl = 30,
    max_stale = 60,
    namespace = "tests",
    name = "stale_rate"
)]
async fn stale_rate(base: u32) -> Result<u32, String> {
    if STALE_SOURCE_UP.load(std::sync::atomic::Ordering::SeqCst) {
        Ok(base * 2)
    } else {
        Err("source down".into())
    }
}

#[tokio::test]
async fn max_stale_serves_the_old_value_when_the_source_fails() {
    assert_eq!(stale_rate(21).await, Ok(42));
    let cache = stale_rate_cache().cache().unwrap();
    let key = stale_rate_cache().keys().unwrap().key(&(21u32,)).unwrap();
    assert_eq!(cache.get::<u32>(&key).await, Some(42));
    // Past the TTL: plain reads stop seeing the value.
    STALE_CLOCK.get().unwrap().advance(Duration::from_secs(30));
    assert_eq!(cache.get::<u32>(&key).await, None);
    STALE_SOURCE_UP.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(stale_rate(21).await, Ok(42), "stale value served");
    assert_eq!(cache.stats().stale_served, 1);
    // Without a stale value the error comes through.
    assert_eq!(stale_rate(1).await, Err("source down".to_string()));
}
