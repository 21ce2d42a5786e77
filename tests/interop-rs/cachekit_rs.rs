//! Interop values (issue 29) against cachekit-rs 0.13 in interop mode, in
//! one process over one real `redis-server` per test: what either library
//! writes, the other reads as an equal value without running its own
//! function; the same with encryption on both sides (one master key, one
//! tenant); and under another master key or tenant, a miss that leaves the
//! entry as it was, never a wrong value.
//!
//! cachekit-rs has no interop write call: its `set` writes plain
//! MessagePack (struct fields in declaration order, not sorted), which is
//! its interop value, and `interop_get` reads one. Its keys come from
//! `cachekit_rs::interop::interop_key` (its `#[cachekit]` macro is not
//! used: see Cargo.toml).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use cachekit::interop::DateTime;
use cachekit::keys::Timestamp;
use cachekit::{
    cached, Backend, Bytes, Encryption, Policy, RedisBackend, RedisConfig, TieredCache,
    TieredCacheBuilder,
};
use cachekit_rs::interop::{interop_key, serialize_value, InteropValue};
use cachekit_rs::CachekitError;
use cachekit_testkit::RedisServer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// 32 bytes, the only master key length every library of the family takes.
const MASTER_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_MASTER_HEX: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
const TENANT: &str = "tenant-a";
const TTL: Duration = Duration::from_secs(60);

// ---- values -------------------------------------------------------------

/// Fields out of alphabetical order on purpose: cachekit-rs writes them as
/// declared, cachekit's interop writer sorts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    id: u64,
    score: f64,
    active: bool,
    tags: Vec<String>,
    address: Address,
    limits: BTreeMap<String, i64>,
    nickname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    zip: String,
    city: String,
}

fn user(id: u64) -> User {
    User {
        name: format!("Zoë {id}"),
        id,
        // Integral: must stay a float64 in the value (keys collapse it).
        score: 2.0,
        active: true,
        tags: vec!["admin".into(), "ünïcödé".into()],
        address: Address {
            zip: "75001".into(),
            city: "Paris".into(),
        },
        limits: BTreeMap::from([("b".into(), -1), ("a".into(), 1 << 40)]),
        nickname: None,
    }
}

/// `user(id)` in cachekit-rs's closed interop data model.
fn user_value(id: u64) -> InteropValue {
    let u = user(id);
    map([
        ("name", InteropValue::from(u.name)),
        ("id", InteropValue::from(u.id)),
        ("score", InteropValue::Float(u.score)),
        ("active", InteropValue::from(u.active)),
        (
            "tags",
            InteropValue::Array(u.tags.into_iter().map(InteropValue::from).collect()),
        ),
        (
            "address",
            map([
                ("zip", InteropValue::from(u.address.zip)),
                ("city", InteropValue::from(u.address.city)),
            ]),
        ),
        (
            "limits",
            InteropValue::Map(
                u.limits
                    .into_iter()
                    .map(|(k, v)| (k, InteropValue::from(v)))
                    .collect(),
            ),
        ),
        ("nickname", InteropValue::Null),
    ])
}

fn map<const N: usize>(entries: [(&str, InteropValue); N]) -> InteropValue {
    InteropValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

const UNICODE: &str = "héllo wörld — 日本語 🎉 \u{0}\u{10FFFF}";

fn bytes_value() -> ByteBuf {
    ByteBuf::from((0..=255u8).chain([0, 0xFF]).collect::<Vec<u8>>())
}

fn series() -> BTreeMap<String, Vec<f64>> {
    BTreeMap::from([
        ("z".into(), vec![1.5, -0.25]),
        ("é".into(), vec![]),
        ("a".into(), vec![3.0, 1e300]),
    ])
}

/// An argument that is a struct: a map with sorted keys in the key's hash.
#[derive(Debug, Clone, Serialize)]
struct Query {
    text: String,
    page: u32,
    exact: bool,
}

// ---- one key per argument shape ------------------------------------------

/// A key both libraries derive for the same arguments; the test fails if
/// they disagree.
fn key_of<A: Serialize>(operation: &str, ours: &A, theirs: &[InteropValue]) -> String {
    let key = cachekit::derive_key("interop", operation, ours).unwrap();
    let rs_key = interop_key("interop", operation, theirs).unwrap();
    assert_eq!(key, rs_key, "{operation}: the two libraries' keys differ");
    key
}

/// The argument shapes of the cases below, with their cachekit-rs twins.
fn keys() -> Vec<String> {
    vec![
        key_of("scalar", &(42u64,), &[InteropValue::from(42u64)]),
        key_of(
            "mixed",
            &("alice", -3i64, true),
            &["alice".into(), InteropValue::from(-3i64), true.into()],
        ),
        // An integral float argument hashes as the integer.
        key_of("float", &(2.0f64, 0.5f64), &[2.0.into(), 0.5.into()]),
        key_of("unicode", &(UNICODE,), &[UNICODE.into()]),
        key_of(
            "list",
            &(vec![1i64, 2, 3],),
            &[InteropValue::Array(vec![
                1i64.into(),
                2i64.into(),
                3i64.into(),
            ])],
        ),
        key_of(
            "struct",
            &(Query {
                text: "café".into(),
                page: 3,
                exact: false,
            },),
            &[map([
                ("text", "café".into()),
                ("page", 3u32.into()),
                ("exact", false.into()),
            ])],
        ),
        key_of(
            "bytes",
            &(ByteBuf::from(vec![0u8, 1, 0xFF]),),
            &[InteropValue::bytes([0u8, 1, 0xFF])],
        ),
        key_of("none", &(Option::<u8>::None,), &[InteropValue::Null]),
        key_of("empty", &(), &[]),
    ]
}

// ---- the two libraries over one server -----------------------------------

/// A cachekit-rs client without L1 (every read reaches Redis), encrypting
/// with `encryption` (hex master key, tenant) when given.
async fn rs_client(
    server: &RedisServer,
    encryption: Option<(&str, &str)>,
) -> cachekit_rs::CacheKit {
    let backend = cachekit_rs::backend::redis::RedisBackend::builder()
        .url(server.url())
        .build()
        .unwrap();
    // The returned handle only observes the connection task; dropping it
    // leaves the connection running.
    drop(backend.connect().await.unwrap());
    let builder = cachekit_rs::CacheKit::builder()
        .backend(Arc::new(backend))
        .no_l1();
    let builder = match encryption {
        Some((hex, tenant)) => builder.encryption(hex, tenant).unwrap(),
        None => builder,
    };
    builder.build().unwrap()
}

async fn redis(server: &RedisServer) -> RedisBackend {
    RedisBackend::new(RedisConfig::builder().url(server.url()).build().unwrap())
        .await
        .unwrap()
}

/// A cachekit cache over `server` without L1 (every read reaches Redis),
/// configured further by `configure`.
async fn ours(
    server: &RedisServer,
    configure: impl FnOnce(TieredCacheBuilder) -> TieredCacheBuilder,
) -> TieredCache {
    let builder = TieredCache::builder().without_l1().l2(redis(server).await);
    configure(builder).build().unwrap()
}

fn encryption(hex: &str, tenant: &str) -> Encryption {
    Encryption::from_hex(hex, tenant).unwrap()
}

/// The stored bytes, straight from Redis.
async fn stored(raw: &RedisBackend, key: &str) -> Bytes {
    raw.get(key).await.unwrap().expect("an entry under the key")
}

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

/// cachekit-rs's read-through, as its `#[cachekit]` functions do it:
/// `interop_get`, else compute (counted in `runs`) and `set_with_ttl`.
/// (Its macro is not used here: see Cargo.toml.)
async fn rs_read_through<T>(
    rs: &cachekit_rs::CacheKit,
    key: &str,
    runs: &AtomicU32,
    compute: impl FnOnce() -> T,
) -> T
where
    T: Serialize + DeserializeOwned,
{
    if let Some(value) = rs.interop_get::<T>(key).await.unwrap() {
        return value;
    }
    runs.fetch_add(1, SeqCst);
    let value = compute();
    rs.set_with_ttl(key, &value, TTL).await.unwrap();
    value
}

fn hits(text: &str, page: u32, exact: bool, boost: f64, offset: i64) -> Vec<String> {
    vec![
        format!("{text}/{page}/{exact}/{boost}/{offset}"),
        UNICODE.into(),
    ]
}

/// The backend of a function whose test put the server's URL in `url`
/// before the first call.
fn redis_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
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

// ---- encryption -----------------------------------------------------------

/// The encryption of every `#[cached(encrypted)]` function in this binary.
fn default_encryption_is_set() {
    static SET: Once = Once::new();
    SET.call_once(|| cachekit::set_default_encryption(encryption(MASTER_HEX, TENANT)).unwrap());
}

static SECRET_URL: OnceLock<String> = OnceLock::new();
static SECRET_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(interop, encrypted, namespace = "vault", name = "get_secret", ttl = 60, backend = redis_at(&SECRET_URL))]
async fn get_secret(id: u64) -> User {
    SECRET_RUNS.fetch_add(1, SeqCst);
    user(id)
}

#[tokio::test]
async fn encrypted_values_cross_both_ways_under_one_key_and_tenant() {
    default_encryption_is_set();
    let server = RedisServer::start();
    SECRET_URL.set(server.url()).unwrap();
    let rs = rs_client(&server, Some((MASTER_HEX, TENANT))).await;
    let raw = redis(&server).await;
    let enc = encryption(MASTER_HEX, TENANT);
    let interop = ours(&server, |b| b.interop().encryption(enc.clone())).await;
    let default = ours(&server, |b| b).await;
    let policy = Policy::new().interop().encryption(enc.clone());
    let [k1, _, _, k4, k5, k6, k7, k8, _] = <[String; 9]>::try_from(keys()).unwrap();

    // cachekit-rs writes: a cache encrypting by default reads it, and so
    // does a per-request policy on a default cache, without computing.
    let value = user(1);
    rs.set_with_ttl(&k6, &value, TTL).await.unwrap();
    let sealed = stored(&raw, &k6).await;
    let plain = cachekit_rs::serializer::serialize(&value).unwrap();
    assert_eq!(
        sealed.len(),
        12 + plain.len() + 16,
        "nonce || ciphertext || tag"
    );
    assert_eq!(interop.get::<User>(&k6).await, Some(value.clone()));
    let read: User = default
        .entry(&k6)
        .policy(policy.clone())
        .or_compute(|| async { user(666) })
        .await;
    assert_eq!(read, value);
    rs.set_with_ttl(&k4, &UNICODE, TTL).await.unwrap();
    assert_eq!(interop.get::<String>(&k4).await.as_deref(), Some(UNICODE));
    rs.set_with_ttl(&k7, &bytes_value(), TTL).await.unwrap();
    assert_eq!(interop.get::<ByteBuf>(&k7).await, Some(bytes_value()));
    rs.set_with_ttl(&k1, &-7i64, TTL).await.unwrap();
    assert_eq!(interop.get::<i64>(&k1).await, Some(-7));

    // cachekit writes: cachekit-rs reads; the stored bytes are the
    // canonical document sealed, never the document itself.
    interop
        .set(&k5, &vec!["x".to_string(), UNICODE.into()], Some(TTL))
        .await
        .unwrap();
    let read: Option<Vec<String>> = rs.interop_get(&k5).await.unwrap();
    assert_eq!(read, Some(vec!["x".to_string(), UNICODE.into()]));
    let value: BTreeMap<String, Vec<f64>> = default
        .entry(&k8)
        .policy(policy.clone())
        .or_compute(|| async { series() })
        .await;
    assert_eq!(
        rs.interop_get::<BTreeMap<String, Vec<f64>>>(&k8)
            .await
            .unwrap(),
        Some(value)
    );
    let document = serialize_value(&user_value(2)).unwrap();
    interop.set(&k6, &user(2), Some(TTL)).await.unwrap();
    let sealed = stored(&raw, &k6).await;
    assert_eq!(sealed.len(), 12 + document.len() + 16);
    assert!(!sealed.windows(document.len()).any(|w| w == &document[..]));
    assert_eq!(rs.interop_get::<User>(&k6).await.unwrap(), Some(user(2)));

    // An encrypted function and cachekit-rs: each reads the other's entry
    // without computing.
    let secret_key = |id: u64| interop_key("vault", "get_secret", &[id.into()]).unwrap();
    let rs_runs = AtomicU32::new(0);
    let theirs = rs_read_through(&rs, &secret_key(3), &rs_runs, || user(3)).await;
    assert_eq!(get_secret(3).await, theirs);
    assert_eq!(get_secret(4).await, user(4));
    let theirs = rs_read_through(&rs, &secret_key(4), &rs_runs, || user(666)).await;
    assert_eq!(theirs, user(4));
    assert_eq!(SECRET_RUNS.load(SeqCst), 1, "ours computed 4 only");
    assert_eq!(rs_runs.load(SeqCst), 1, "cachekit-rs computed 3 only");

    for stats in [
        interop.stats(),
        default.stats(),
        get_secret_cache().cache().unwrap().stats(),
    ] {
        assert_eq!(
            (stats.l2.undecryptable, stats.l2.foreign),
            (0, 0),
            "{stats:?}"
        );
    }
}

/// Readers with another master key, another tenant, the right key for
/// another cache key, or no key at all.
struct WrongReaders {
    other_key: TieredCache,
    other_tenant: TieredCache,
    unencrypted: TieredCache,
}

impl WrongReaders {
    async fn new(server: &RedisServer) -> Self {
        Self {
            other_key: ours(server, |b| {
                b.interop().encryption(encryption(OTHER_MASTER_HEX, TENANT))
            })
            .await,
            other_tenant: ours(server, |b| {
                b.interop().encryption(encryption(MASTER_HEX, "tenant-b"))
            })
            .await,
            unencrypted: ours(server, |b| b.interop()).await,
        }
    }
}

#[tokio::test]
async fn another_key_or_tenant_misses_and_leaves_the_entry_in_place() {
    let server = RedisServer::start();
    let raw = redis(&server).await;
    let rs = rs_client(&server, Some((MASTER_HEX, TENANT))).await;
    let wrong = WrongReaders::new(&server).await;
    let key = interop_key("vault", "get_secret", &[InteropValue::from(7u64)]).unwrap();
    rs.set_with_ttl(&key, &user(7), TTL).await.unwrap();
    let sealed = stored(&raw, &key).await;

    // cachekit: a miss, never a value, counted; the entry stays as it was.
    for cache in [&wrong.other_key, &wrong.other_tenant] {
        assert_eq!(cache.get::<User>(&key).await, None);
        let stats = cache.stats();
        assert_eq!((stats.l2.undecryptable, stats.l2.hits), (1, 0), "{stats:?}");
        assert_eq!(stored(&raw, &key).await, sealed);
    }
    // Ciphertext is not a document: a foreign miss for a reader without a key.
    assert_eq!(wrong.unencrypted.get::<User>(&key).await, None);
    assert_eq!(wrong.unencrypted.stats().l2.foreign, 1);
    assert_eq!(stored(&raw, &key).await, sealed);

    // The right key and tenant, but the entry copied under another cache
    // key: the tag binds the key.
    let right = ours(&server, |b| {
        b.interop().encryption(encryption(MASTER_HEX, TENANT))
    })
    .await;
    let copy = interop_key("vault", "get_secret", &[InteropValue::from(8u64)]).unwrap();
    raw.set(&copy, sealed.clone(), Some(TTL)).await.unwrap();
    assert_eq!(right.get::<User>(&copy).await, None);
    assert_eq!(right.stats().l2.undecryptable, 1);
    assert_eq!(stored(&raw, &copy).await, sealed);
    // The original still reads.
    assert_eq!(right.get::<User>(&key).await, Some(user(7)));

    // cachekit-rs, the other way round: an error, never a value, and the
    // entry stays.
    right.set(&key, &user(9), Some(TTL)).await.unwrap();
    let ours_sealed = stored(&raw, &key).await;
    for (hex, tenant) in [(OTHER_MASTER_HEX, TENANT), (MASTER_HEX, "tenant-b")] {
        let reader = rs_client(&server, Some((hex, tenant))).await;
        let read = reader.interop_get::<User>(&key).await;
        assert!(
            matches!(read, Err(CachekitError::Encryption(_))),
            "{tenant}: {read:?}"
        );
        assert_eq!(stored(&raw, &key).await, ours_sealed);
    }
    let plain_reader = rs_client(&server, None).await;
    assert!(plain_reader.interop_get::<User>(&key).await.is_err());
    assert_eq!(stored(&raw, &key).await, ours_sealed);
    assert_eq!(rs.interop_get::<User>(&key).await.unwrap(), Some(user(9)));
}

#[tokio::test]
async fn a_plain_entry_is_no_value_for_an_encrypting_reader() {
    let server = RedisServer::start();
    let raw = redis(&server).await;
    let rs = rs_client(&server, None).await;
    let key = interop_key("vault", "get_secret", &[InteropValue::from(5u64)]).unwrap();
    rs.set_with_ttl(&key, &user(5), TTL).await.unwrap();
    let plain = stored(&raw, &key).await;

    let encrypting = ours(&server, |b| {
        b.interop().encryption(encryption(MASTER_HEX, TENANT))
    })
    .await;
    assert_eq!(encrypting.get::<User>(&key).await, None);
    assert_eq!(encrypting.stats().l2.undecryptable, 1);
    assert_eq!(stored(&raw, &key).await, plain);
}
