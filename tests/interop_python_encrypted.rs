//! Encrypted interop values shared with cachekit-py 0.24 on one live
//! `redis-server` (issue 29): with the same master key and tenant (the
//! default one, or an explicit deployment UUID) each side reads what the
//! other wrote without running its function; with another key or tenant
//! an entry is a miss, never a wrong value, counted and left in place.
//!
//! cachekit-py runs as `tests/interop_py/calls.py` in the Python of
//! `.venv-interop` (`./scripts/install-deps.sh` makes it); without it these
//! tests fail, saying so.
#![cfg(feature = "redis")]

#[path = "interop_support/python.rs"]
#[allow(dead_code)]
mod python;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use cachekit::interop::DateTime;
use cachekit::keys::Timestamp;
use cachekit::{
    cached, derive_key, Backend, Encryption, Policy, RedisBackend, RedisConfig, TieredCache,
};
use cachekit_testkit::RedisServer;
use python::{py_calls, ran, redis_at, take_ran, PyCall, PyResult, PY_BODY_RAN};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The master key both sides share, in hex (`CACHEKIT_MASTER_KEY`'s form).
const KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Another master key.
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// A deployment UUID as a tenant, in the canonical form cachekit-py requires.
const TENANT: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const DEFAULT_TENANT: &str = "default";
const TTL: Option<Duration> = Some(Duration::from_secs(60));

fn encryption(key: &str, tenant: &str) -> Encryption {
    Encryption::from_hex(key, tenant).unwrap_or_else(|e| panic!("encryption: {e}"))
}

async fn raw(server: &RedisServer) -> RedisBackend {
    let config = RedisConfig::builder()
        .url(server.url())
        .build()
        .expect("config");
    RedisBackend::new(config).await.expect("redis")
}

/// An interop cache over `redis` with `encryption`.
fn cache(redis: &RedisBackend, encryption: Encryption) -> TieredCache {
    TieredCache::builder()
        .l2(redis.clone())
        .without_l1()
        .interop()
        .encryption(encryption)
        .build()
        .expect("cache")
}

async fn stored(redis: &RedisBackend, key: &str) -> Vec<u8> {
    match redis.get(key).await {
        Ok(Some(bytes)) => bytes.to_vec(),
        other => panic!("raw GET {key}: {other:?}"),
    }
}

fn key(ns: &str, op: &str, id: u64) -> String {
    derive_key(ns, op, &(id,)).expect("key")
}

static URL: OnceLock<String> = OnceLock::new();

/// A nested map with a datetime in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Card {
    number: String,
    limit: f64,
    issued: DateTime,
    tags: Vec<String>,
}

const ISSUED: &str = "2024-02-29T12:00:00.5+00:00";

fn card_of(id: u64, tags: &[String]) -> Card {
    Card {
        number: format!("4111-{id:04}"),
        limit: 1000.0,
        issued: DateTime(Timestamp::parse_rfc3339(ISSUED).expect("ISSUED")),
        tags: tags.to_vec(),
    }
}

fn card_json(id: u64, tags: &[&str]) -> serde_json::Value {
    json!({
        "number": format!("4111-{id:04}"), "limit": {"$float": "1000.0"},
        "issued": {"$datetime": "2024-02-29T12:00:00.500000+00:00"}, "tags": tags,
    })
}

#[cached(interop, encrypted, namespace = "vault", name = "note", ttl = 60, backend = redis_at(&URL))]
async fn note(id: u64) -> String {
    ran("note");
    format!("rust note {id} ☃")
}

#[cached(interop, encrypted, namespace = "vault", name = "card", ttl = 60, backend = redis_at(&URL))]
async fn card(id: u64, tags: Vec<String>) -> Card {
    ran("card");
    card_of(id, &tags)
}

/// `#[cached(interop, encrypted)]` with the process-wide key and the
/// default tenant, against cachekit-py's `encryption=True`.
#[tokio::test]
async fn encrypted_values_cross_both_ways() {
    let server = RedisServer::start();
    URL.set(server.url())
        .unwrap_or_else(|_| panic!("URL set twice"));
    cachekit::set_default_encryption(encryption(KEY, DEFAULT_TENANT))
        .unwrap_or_else(|e| panic!("set_default_encryption: {e}"));
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Rust writes; the stored bytes do not show the value.
    assert_eq!(note(2).await, "rust note 2 ☃");
    assert_eq!(card(2, tags(&["gold"])).await, card_of(2, &tags(&["gold"])));
    assert_eq!(take_ran(), ["note", "card"]);
    let redis = raw(&server).await;
    let sealed = stored(&redis, &key("vault", "note", 2)).await;
    assert!(
        !sealed.windows(9).any(|w| w == b"rust note"),
        "stored in the clear: {sealed:?}"
    );

    // cachekit-py writes 1 with the same key, 3 with another key and 4 for
    // another tenant, and reads 2.
    let py = |call: PyCall| call.encrypted(KEY, DEFAULT_TENANT);
    let results = py_calls(
        &server,
        &[
            py(PyCall::write(
                "vault",
                "note",
                json!([1]),
                json!("python note 1 ☃"),
            )),
            py(PyCall::write(
                "vault",
                "card",
                json!([1, ["silver", "naïve"]]),
                card_json(1, &["silver", "naïve"]),
            )),
            PyCall::write("vault", "note", json!([3]), json!("python, other key"))
                .encrypted(OTHER_KEY, DEFAULT_TENANT),
            PyCall::write("vault", "note", json!([4]), json!("python, other tenant"))
                .encrypted(KEY, TENANT),
            py(PyCall::read("vault", "note", json!([2]))),
            py(PyCall::read("vault", "card", json!([2, ["gold"]]))),
        ],
    );
    let read = |value| PyResult { ran: false, value };
    assert!(results[..4].iter().all(|r| r.ran), "{results:?}");
    assert_eq!(
        results[4..],
        [read(json!("rust note 2 ☃")), read(card_json(2, &["gold"]))],
        "server log:\n{}",
        server.log()
    );

    // Rust reads 1 without running a body; 3 and 4 do not verify: misses
    // that compute their own value and leave cachekit-py's entries alone.
    assert_eq!(note(1).await, "python note 1 ☃");
    let silver = tags(&["silver", "naïve"]);
    assert_eq!(card(1, silver.clone()).await, card_of(1, &silver));
    assert_eq!(take_ran(), Vec::<&str>::new());
    let theirs = [
        stored(&redis, &key("vault", "note", 3)).await,
        stored(&redis, &key("vault", "note", 4)).await,
    ];
    assert_eq!(note(3).await, "rust note 3 ☃");
    assert_eq!(note(4).await, "rust note 4 ☃");
    assert_eq!(take_ran(), ["note", "note"]);
    let stats = note_cache().cache().map(|c| c.stats().l2);
    assert_eq!(
        stats.map(|s| (s.undecryptable, s.foreign)),
        Some((2, 0)),
        "{stats:?}"
    );
    for (id, theirs) in [3, 4].into_iter().zip(theirs) {
        assert_eq!(
            stored(&redis, &key("vault", "note", id)).await,
            theirs,
            "note {id} was not left in place"
        );
    }
}

/// A deployment UUID as the tenant, through the cache's own API: the
/// builder's default and a per-request policy.
#[tokio::test]
async fn an_explicit_tenant_crosses_both_ways() {
    let server = RedisServer::start();
    let redis = raw(&server).await;
    let tenant = cache(&redis, encryption(KEY, TENANT));
    let plain = TieredCache::builder()
        .l2(redis.clone())
        .without_l1()
        .build()
        .expect("cache");
    let policy = Policy::new().interop().encryption(encryption(KEY, TENANT));

    tenant
        .set(&key("tenant", "lookup", 2), &"rust 2".to_owned(), TTL)
        .await
        .expect("set");
    plain
        .set_with(
            &key("tenant", "lookup", 3),
            &"rust 3".to_owned(),
            &policy.clone().ttl(Duration::from_secs(60)),
        )
        .await
        .expect("set_with");

    let py = |call: PyCall| call.encrypted(KEY, TENANT);
    let results = py_calls(
        &server,
        &[
            py(PyCall::write(
                "tenant",
                "lookup",
                json!([1]),
                json!("python 1"),
            )),
            py(PyCall::read("tenant", "lookup", json!([2]))),
            py(PyCall::read("tenant", "lookup", json!([3]))),
        ],
    );
    let read = |value| PyResult { ran: false, value };
    assert!(results[0].ran, "{results:?}");
    assert_eq!(
        results[1..],
        [read(json!("rust 2")), read(json!("rust 3"))],
        "server log:\n{}",
        server.log()
    );

    let runs = AtomicU32::new(0);
    let computed = || async {
        runs.fetch_add(1, SeqCst);
        "rust 1".to_owned()
    };
    assert_eq!(
        tenant
            .entry(&key("tenant", "lookup", 1))
            .or_compute(computed)
            .await,
        "python 1"
    );
    let one = key("tenant", "lookup", 1);
    let by_policy = plain.entry(&one).policy(policy).or_compute(computed).await;
    assert_eq!((by_policy.as_str(), runs.load(SeqCst)), ("python 1", 0));
}

/// Another master key or tenant never yields a value: on the Rust side a
/// miss counted undecryptable, the entry left as it was; on the Python
/// side a recomputation.
#[tokio::test]
async fn undecryptable_entries_are_misses_left_in_place() {
    let server = RedisServer::start();
    let written = py_calls(
        &server,
        &[
            PyCall::write("neg", "secret", json!([1]), json!("python secret"))
                .encrypted(KEY, DEFAULT_TENANT),
        ],
    );
    assert!(written[0].ran, "{written:?}");
    let redis = raw(&server).await;
    let k1 = key("neg", "secret", 1);
    let before = stored(&redis, &k1).await;

    for (name, wrong) in [
        ("another master key", encryption(OTHER_KEY, DEFAULT_TENANT)),
        ("another tenant", encryption(KEY, TENANT)),
    ] {
        let wrong = cache(&redis, wrong);
        assert_eq!(wrong.get::<String>(&k1).await, None, "{name}");
        let stats = wrong.stats().l2;
        assert_eq!(
            (stats.undecryptable, stats.foreign, stats.corrupt),
            (1, 0, 0),
            "{name}: {stats:?}"
        );
        assert_eq!(
            stored(&redis, &k1).await,
            before,
            "{name}: the entry was not left in place"
        );
    }
    let right = cache(&redis, encryption(KEY, DEFAULT_TENANT));
    assert_eq!(
        right.get::<String>(&k1).await.as_deref(),
        Some("python secret")
    );

    // A read-through with the wrong key computes its own value.
    let wrong = cache(&redis, encryption(OTHER_KEY, DEFAULT_TENANT));
    let runs = AtomicU32::new(0);
    let value = wrong
        .entry(&k1)
        .or_compute(|| async {
            runs.fetch_add(1, SeqCst);
            "rust's own".to_owned()
        })
        .await;
    assert_eq!((value.as_str(), runs.load(SeqCst)), ("rust's own", 1));
    assert_eq!(wrong.stats().l2.undecryptable, 1);
    assert_eq!(
        stored(&redis, &k1).await,
        before,
        "a read-through replaced the entry"
    );

    // cachekit-py with the wrong key or tenant runs its body.
    for id in [2, 3, 4] {
        right
            .set(&key("neg", "mine", id), &format!("rust secret {id}"), TTL)
            .await
            .expect("set");
    }
    let results = py_calls(
        &server,
        &[
            PyCall::read("neg", "mine", json!([2])).encrypted(KEY, DEFAULT_TENANT),
            PyCall::read("neg", "mine", json!([3])).encrypted(OTHER_KEY, DEFAULT_TENANT),
            PyCall::read("neg", "mine", json!([4])).encrypted(KEY, TENANT),
        ],
    );
    let outcome = |ran, value: &str| PyResult {
        ran,
        value: json!(value),
    };
    assert_eq!(
        results,
        [
            outcome(false, "rust secret 2"),
            outcome(true, PY_BODY_RAN),
            outcome(true, PY_BODY_RAN),
        ],
        "server log:\n{}",
        server.log()
    );
}
