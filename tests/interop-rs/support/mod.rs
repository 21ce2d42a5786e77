//! Fixtures and helpers of the cachekit-rs interop tests: the values and
//! their twins in cachekit-rs's data model, one key per argument shape
//! (both libraries must derive it), the two libraries' clients over one
//! `redis-server`, and cachekit-rs's read-through.
//!
//! Included by each test file with `#[path]`; not every file uses every
//! helper.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::{
    Backend, Bytes, Encryption, RedisBackend, RedisConfig, TieredCache, TieredCacheBuilder,
};
use cachekit_rs::interop::{interop_key, InteropValue};
use cachekit_testkit::RedisServer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

pub const TTL: Duration = Duration::from_secs(60);

// ---- values -------------------------------------------------------------

/// Fields out of alphabetical order on purpose: cachekit-rs writes them as
/// declared, cachekit's interop writer sorts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
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
pub struct Address {
    zip: String,
    city: String,
}

pub fn user(id: u64) -> User {
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
pub fn user_value(id: u64) -> InteropValue {
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

pub fn map<const N: usize>(entries: [(&str, InteropValue); N]) -> InteropValue {
    InteropValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub const UNICODE: &str = "héllo wörld — 日本語 🎉 \u{0}\u{10FFFF}";

pub fn bytes_value() -> ByteBuf {
    ByteBuf::from((0..=255u8).chain([0, 0xFF]).collect::<Vec<u8>>())
}

pub fn series() -> BTreeMap<String, Vec<f64>> {
    BTreeMap::from([
        ("z".into(), vec![1.5, -0.25]),
        ("é".into(), vec![]),
        ("a".into(), vec![3.0, 1e300]),
    ])
}

/// An argument that is a struct: a map with sorted keys in the key's hash.
#[derive(Debug, Clone, Serialize)]
pub struct Query {
    text: String,
    page: u32,
    exact: bool,
}

// ---- one key per argument shape ------------------------------------------

/// A key both libraries derive for the same arguments; the test fails if
/// they disagree.
pub fn key_of<A: Serialize>(operation: &str, ours: &A, theirs: &[InteropValue]) -> String {
    let key = cachekit::derive_key("interop", operation, ours).unwrap();
    let rs_key = interop_key("interop", operation, theirs).unwrap();
    assert_eq!(key, rs_key, "{operation}: the two libraries' keys differ");
    key
}

/// The argument shapes of the tests' cases, with their cachekit-rs twins.
pub fn keys() -> Vec<String> {
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
pub async fn rs_client(
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

pub async fn redis(server: &RedisServer) -> RedisBackend {
    RedisBackend::new(RedisConfig::builder().url(server.url()).build().unwrap())
        .await
        .unwrap()
}

/// A cachekit cache over `server` without L1 (every read reaches Redis),
/// configured further by `configure`.
pub async fn ours(
    server: &RedisServer,
    configure: impl FnOnce(TieredCacheBuilder) -> TieredCacheBuilder,
) -> TieredCache {
    let builder = TieredCache::builder().without_l1().l2(redis(server).await);
    configure(builder).build().unwrap()
}

pub fn encryption(hex: &str, tenant: &str) -> Encryption {
    Encryption::from_hex(hex, tenant).unwrap()
}

/// The stored bytes, straight from Redis.
pub async fn stored(raw: &RedisBackend, key: &str) -> Bytes {
    raw.get(key).await.unwrap().expect("an entry under the key")
}

/// cachekit-rs's read-through, as its `#[cachekit]` functions do it:
/// `interop_get`, else compute (counted in `runs`) and `set_with_ttl`.
/// (Its macro is not used here: see Cargo.toml.)
pub async fn rs_read_through<T>(
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

/// The backend of a function whose test put the server's URL in `url`
/// before the first call.
pub fn redis_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
}
