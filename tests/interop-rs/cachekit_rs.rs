//! Interop values (issue 29) against cachekit-rs 0.13 in interop mode, in
//! one process over one real `redis-server` per test, without encryption:
//! what either library writes, the other reads as an equal value without
//! running its own function, through a cache, a per-request entry or a
//! `#[cached]` function; a datetime crosses as the family's sentinel map;
//! and a value of another shape is a miss that leaves the entry as it was,
//! never a wrong value.
//!
//! cachekit-rs has no interop write call: its `set` writes plain
//! MessagePack (struct fields in declaration order, not sorted), which is
//! its interop value, and `interop_get` reads one. Its keys come from
//! `cachekit_rs::interop::interop_key` (its `#[cachekit]` macro is not
//! used: see Cargo.toml). Fixtures: `support/mod.rs`; encryption:
//! `cachekit_rs_encrypted.rs` and `cachekit_rs_env.rs`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;

use cachekit::interop::DateTime;
use cachekit::keys::Timestamp;
use cachekit::{cached, RedisBackend, TieredCache};
use cachekit_rs::interop::{interop_key, serialize_value, InteropValue};
use cachekit_testkit::RedisServer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use support::{
    bytes_value, keys, map, ours, redis, redis_at, rs_client, rs_read_through, series, stored,
    user, user_value, User, TTL, UNICODE,
};

/// cachekit-rs writes `value` under `key`; cachekit reads it back, through
/// a cache whose default is interop (`get`) and through a per-request
/// interop entry of a default cache, whose compute never runs.
async fn rs_writes_we_read<T>(
    rs: &cachekit_rs::CacheKit,
    interop_cache: &TieredCache,
    per_request: &TieredCache,
    key: &str,
    value: &T,
) where
    T: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static,
{
    rs.set_with_ttl(key, value, TTL).await.unwrap();
    assert_eq!(
        interop_cache.get::<T>(key).await.as_ref(),
        Some(value),
        "{key}"
    );
    let computes = AtomicU32::new(0);
    let read: T = per_request
        .entry(key)
        .interop()
        .or_compute(|| async {
            computes.fetch_add(1, SeqCst);
            value.clone()
        })
        .await;
    assert_eq!(&read, value, "{key}");
    assert_eq!(computes.load(SeqCst), 0, "{key}: the compute ran");
}

/// cachekit writes `value` under `key` in interop mode; cachekit-rs reads
/// an equal value. `canonical`, when given, is the value in cachekit-rs's
/// data model, whose canonical encoding must be byte for byte what cachekit
/// stored.
async fn we_write_rs_reads<T>(
    cache: &TieredCache,
    rs: &cachekit_rs::CacheKit,
    raw: &RedisBackend,
    key: &str,
    value: &T,
    canonical: Option<InteropValue>,
) where
    T: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static,
{
    cache.set(key, value, Some(TTL)).await.unwrap();
    assert_eq!(
        rs.interop_get::<T>(key).await.unwrap().as_ref(),
        Some(value),
        "{key}"
    );
    if let Some(canonical) = canonical {
        let expected = serialize_value(&canonical).unwrap();
        assert_eq!(stored(raw, key).await.as_ref(), &expected[..], "{key}");
    }
}

#[tokio::test]
async fn what_cachekit_rs_writes_cachekit_reads_without_computing() {
    let server = RedisServer::start();
    let rs = rs_client(&server, None).await;
    let interop = ours(&server, |b| b.interop()).await;
    let envelope = ours(&server, |b| b).await;
    let [k1, k2, k3, k4, k5, k6, k7, k8, k9] = <[String; 9]>::try_from(keys()).unwrap();

    rs_writes_we_read(&rs, &interop, &envelope, &k1, &-7i64).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k2, &2.0f64).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k3, &true).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k4, &UNICODE.to_string()).await;
    rs_writes_we_read(
        &rs,
        &interop,
        &envelope,
        &k5,
        &vec!["a".to_string(), UNICODE.into()],
    )
    .await;
    rs_writes_we_read(&rs, &interop, &envelope, &k6, &user(6)).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k7, &bytes_value()).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k8, &series()).await;
    rs_writes_we_read(&rs, &interop, &envelope, &k9, &u64::MAX).await;

    let stats = interop.stats();
    assert_eq!(
        (stats.l2.hits, stats.l2.misses, stats.l2.foreign),
        (9, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.computes, 0, "{stats:?}");
    assert_eq!(envelope.stats().computes, 0);
    assert_eq!(server.data_keys(0), 9, "{}", server.log());
}

#[tokio::test]
async fn what_cachekit_writes_cachekit_rs_reads_byte_for_byte() {
    let server = RedisServer::start();
    let rs = rs_client(&server, None).await;
    let raw = redis(&server).await;
    let cache = ours(&server, |b| b.interop()).await;
    let [k1, k2, k3, k4, k5, k6, k7, k8, k9] = <[String; 9]>::try_from(keys()).unwrap();

    we_write_rs_reads(&cache, &rs, &raw, &k1, &-7i64, Some((-7i64).into())).await;
    // A float64 stays a float64 (cb...), even when integral.
    we_write_rs_reads(&cache, &rs, &raw, &k2, &2.0f64, Some(2.0.into())).await;
    assert_eq!(
        stored(&raw, &k2).await.as_ref(),
        b"\xcb\x40\x00\x00\x00\x00\x00\x00\x00"
    );
    we_write_rs_reads(&cache, &rs, &raw, &k3, &true, Some(true.into())).await;
    we_write_rs_reads(
        &cache,
        &rs,
        &raw,
        &k4,
        &UNICODE.to_string(),
        Some(UNICODE.into()),
    )
    .await;
    let list = vec!["a".to_string(), UNICODE.into()];
    let list_value = InteropValue::Array(vec!["a".into(), UNICODE.into()]);
    we_write_rs_reads(&cache, &rs, &raw, &k5, &list, Some(list_value)).await;
    // Struct fields sorted at every level, where cachekit-rs keeps the
    // declared order.
    we_write_rs_reads(&cache, &rs, &raw, &k6, &user(6), Some(user_value(6))).await;
    let bytes = bytes_value();
    let bin = InteropValue::bytes(bytes.to_vec());
    we_write_rs_reads(&cache, &rs, &raw, &k7, &bytes, Some(bin)).await;
    let series_value = InteropValue::Map(
        series()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    InteropValue::Array(v.into_iter().map(InteropValue::Float).collect()),
                )
            })
            .collect(),
    );
    we_write_rs_reads(&cache, &rs, &raw, &k8, &series(), Some(series_value)).await;
    we_write_rs_reads(&cache, &rs, &raw, &k9, &u64::MAX, Some(u64::MAX.into())).await;

    // A read-through per request on a default (envelope) cache writes the
    // interop value too.
    let envelope = ours(&server, |b| b).await;
    let key = cachekit::derive_key("interop", "per_request", &(1u8,)).unwrap();
    let value: User = envelope
        .entry(&key)
        .interop()
        .or_compute(|| async { user(9) })
        .await;
    assert_eq!(rs.interop_get::<User>(&key).await.unwrap(), Some(value));
    assert_eq!(
        stored(&raw, &key).await.as_ref(),
        &serialize_value(&user_value(9)).unwrap()[..]
    );
}

#[tokio::test]
async fn a_value_of_another_shape_is_a_foreign_miss_left_in_place() {
    let server = RedisServer::start();
    let rs = rs_client(&server, None).await;
    let raw = redis(&server).await;
    let cache = ours(&server, |b| b.interop()).await;
    let key = interop_key("interop", "shape", &[]).unwrap();
    rs.set_with_ttl(&key, &"not a user", TTL).await.unwrap();
    let before = stored(&raw, &key).await;

    assert_eq!(cache.get::<User>(&key).await, None);
    let stats = cache.stats();
    assert_eq!((stats.l2.foreign, stats.l2.hits), (1, 0), "{stats:?}");
    assert_eq!(stored(&raw, &key).await, before);
    // And the string is still there for the reader it was meant for.
    assert_eq!(
        cache.get::<String>(&key).await.as_deref(),
        Some("not a user")
    );
}

/// A datetime as cachekit-rs writes one: the family's sentinel map, built
/// by hand (its data model has no datetime value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sentinel {
    #[serde(rename = "__datetime__")]
    datetime: bool,
    value: String,
}

#[tokio::test]
async fn a_datetime_crosses_as_the_familys_sentinel_map() {
    let server = RedisServer::start();
    let rs = rs_client(&server, None).await;
    let raw = redis(&server).await;
    let cache = ours(&server, |b| b.interop()).await;
    let text = "2024-01-02T03:04:05.123456+00:00";
    let at = DateTime(Timestamp::parse_rfc3339(text).unwrap());
    let sentinel = Sentinel {
        datetime: true,
        value: text.into(),
    };

    let key = interop_key("interop", "datetime", &[1u64.into()]).unwrap();
    rs.set_with_ttl(&key, &sentinel, TTL).await.unwrap();
    assert_eq!(cache.get::<DateTime>(&key).await, Some(at));

    let key = interop_key("interop", "datetime", &[2u64.into()]).unwrap();
    cache.set(&key, &at, Some(TTL)).await.unwrap();
    assert_eq!(
        rs.interop_get::<Sentinel>(&key).await.unwrap(),
        Some(sentinel)
    );
    let document = map([("__datetime__", true.into()), ("value", text.into())]);
    assert_eq!(
        stored(&raw, &key).await.as_ref(),
        &serialize_value(&document).unwrap()[..]
    );
}

// ---- read-through on both sides -----------------------------------------

fn hits(text: &str, page: u32, exact: bool, boost: f64, offset: i64) -> Vec<String> {
    vec![
        format!("{text}/{page}/{exact}/{boost}/{offset}"),
        UNICODE.into(),
    ]
}

static MACRO_URL: OnceLock<String> = OnceLock::new();
static USER_RUNS: AtomicU32 = AtomicU32::new(0);
static SEARCH_RUNS: AtomicU32 = AtomicU32::new(0);
static RS_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(interop, namespace = "users", name = "get_user", ttl = 60, backend = redis_at(&MACRO_URL))]
async fn get_user(id: u64) -> User {
    USER_RUNS.fetch_add(1, SeqCst);
    user(id)
}

#[cached(interop, namespace = "users", name = "search", ttl = 60, backend = redis_at(&MACRO_URL))]
async fn search(text: String, page: u32, exact: bool, boost: f64, offset: i64) -> Vec<String> {
    SEARCH_RUNS.fetch_add(1, SeqCst);
    hits(&text, page, exact, boost, offset)
}

fn user_key(id: u64) -> String {
    interop_key("users", "get_user", &[InteropValue::from(id)]).unwrap()
}

fn search_key(text: &str, page: u32, exact: bool, boost: f64, offset: i64) -> String {
    let args = [
        text.into(),
        page.into(),
        exact.into(),
        boost.into(),
        offset.into(),
    ];
    interop_key("users", "search", &args).unwrap()
}

#[tokio::test]
async fn cached_functions_and_cachekit_rs_read_each_others_entries() {
    let server = RedisServer::start();
    MACRO_URL.set(server.url()).unwrap();
    let rs = rs_client(&server, None).await;

    // cachekit-rs first: its compute runs, our body does not.
    let theirs = rs_read_through(&rs, &user_key(1), &RS_RUNS, || user(1)).await;
    assert_eq!(get_user(1).await, theirs);
    assert_eq!((RS_RUNS.load(SeqCst), USER_RUNS.load(SeqCst)), (1, 0));
    // Ours first: the reverse.
    assert_eq!(get_user(2).await, user(2));
    let theirs = rs_read_through(&rs, &user_key(2), &RS_RUNS, || user(666)).await;
    assert_eq!(theirs, user(2));
    assert_eq!((RS_RUNS.load(SeqCst), USER_RUNS.load(SeqCst)), (1, 1));

    // Five arguments: a Unicode string, an integral float (hashed as an
    // integer), a negative and a large integer.
    let text = "naïve 検索";
    let key = search_key(text, 2, true, 3.0, -40);
    let theirs = rs_read_through(&rs, &key, &RS_RUNS, || hits(text, 2, true, 3.0, -40)).await;
    assert_eq!(search(text.into(), 2, true, 3.0, -40).await, theirs);
    let expected = hits(text, 3, false, 0.5, 1 << 40);
    assert_eq!(search(text.into(), 3, false, 0.5, 1 << 40).await, expected);
    let key = search_key(text, 3, false, 0.5, 1 << 40);
    assert_eq!(
        rs_read_through(&rs, &key, &RS_RUNS, Vec::<String>::new).await,
        expected
    );
    assert_eq!((RS_RUNS.load(SeqCst), SEARCH_RUNS.load(SeqCst)), (2, 1));

    assert_eq!(server.data_keys(0), 4, "{}", server.log());
    let stats = get_user_cache().cache().unwrap().stats();
    assert_eq!(
        (stats.l2.foreign, stats.l2.undecryptable),
        (0, 0),
        "{stats:?}"
    );
}
