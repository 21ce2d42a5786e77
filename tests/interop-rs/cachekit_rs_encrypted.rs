//! Interop values (issue 29) against cachekit-rs 0.13 in interop mode with
//! encryption on both sides, in one process over one real `redis-server`
//! per test: under one master key and tenant, what either library writes
//! (through a cache, a per-request policy or a `#[cached(encrypted)]`
//! function), the other reads as an equal value without running its own
//! function, and the stored bytes are sealed; under another master key or
//! tenant, copied under another cache key, or read without a key, a miss
//! that leaves the entry as it was, never a wrong value; and a plain entry
//! is no value for an encrypting reader.
//!
//! Fixtures: `support/mod.rs`; the plain values: `cachekit_rs.rs`;
//! encryption from the environment: `cachekit_rs_env.rs`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Once, OnceLock};

use cachekit::{cached, Backend, Policy, TieredCache};
use cachekit_rs::interop::{interop_key, serialize_value, InteropValue};
use cachekit_rs::CachekitError;
use cachekit_testkit::RedisServer;
use serde_bytes::ByteBuf;
use support::{
    bytes_value, encryption, keys, ours, redis, redis_at, rs_client, rs_read_through, series,
    stored, user, user_value, User, TTL, UNICODE,
};

/// 32 bytes, the only master key length every library of the family takes.
const MASTER_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_MASTER_HEX: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
const TENANT: &str = "tenant-a";

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
