//! cachekit-py 0.24 and this crate sharing one live `redis-server` in
//! interop mode (issue 29): what one writes through its decorator, the
//! other reads without running its function, for every value type and
//! several argument shapes; random argument lists give the same keys in
//! both; and a cachekit-py auto-mode entry is a miss left in place.
//!
//! cachekit-py runs as `tests/interop_py/*.py` in the Python of
//! `.venv-interop` (`./scripts/install-deps.sh` makes it); without it these
//! tests fail, saying so. Encryption: `interop_python_encrypted.rs`.
#![cfg(feature = "redis")]

#[path = "interop_support/python.rs"]
#[allow(dead_code)]
mod python;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;

use cachekit::interop::{Date, DateTime, Time};
use cachekit::keys::Timestamp;
use cachekit::{cached, derive_key, Backend, KeyBuilder, RedisBackend, RedisConfig, TieredCache};
use cachekit_testkit::tagged::Json;
use cachekit_testkit::RedisServer;
use python::{
    py_calls, py_plant_auto_entry, ran, redis_at, run_script, take_ran, PyCall, PyResult,
    PY_BODY_RAN,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

static URL: OnceLock<String> = OnceLock::new();

const NS: &str = "cross";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: String,
}

/// A nested map: a struct in a struct, a list, every scalar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    admin: bool,
    score: f64,
    tags: Vec<String>,
    address: Address,
}

/// A MessagePack bin (a plain `Vec<u8>` would be an array of integers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

/// A calendar date and a time of day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot {
    day: Date,
    at: Time,
}

fn slot_of(id: u8) -> Slot {
    Slot {
        day: Date::new(2024, 2, 29 - id).expect("a date"),
        at: Time::new(id, 30, 5, u32::from(id) * 111_111).expect("a time"),
    }
}

fn profile_of(id: u64, name: &str, admin: bool, score: f64) -> Profile {
    Profile {
        id,
        name: name.to_owned(),
        admin,
        score,
        tags: vec!["naïve".into(), "☃".into()],
        address: Address {
            city: "Zürich".into(),
            zip: format!("80{id:02}"),
        },
    }
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

// One function per value type; together they take no arguments, an
// integer, a string, several mixed ones, a list, a UUID, a datetime, and
// (for cachekit-py) a parameter default.

#[cached(interop, namespace = "cross", name = "answer", ttl = 60, backend = redis_at(&URL))]
async fn answer() -> i64 {
    ran("answer");
    42
}

#[cached(interop, namespace = "cross", name = "version", ttl = 60, backend = redis_at(&URL))]
async fn version() -> String {
    ran("version");
    "rust 1".to_owned()
}

#[cached(interop, namespace = "cross", name = "double", ttl = 60, backend = redis_at(&URL))]
async fn double(n: i64) -> i64 {
    ran("double");
    n * 2
}

#[cached(interop, namespace = "cross", name = "half", ttl = 60, backend = redis_at(&URL))]
async fn half(n: i64) -> f64 {
    ran("half");
    n as f64 / 2.0
}

#[cached(interop, namespace = "cross", name = "greet", ttl = 60, backend = redis_at(&URL))]
async fn greet(name: &str) -> String {
    ran("greet");
    format!("naïve ☃ 日本, {name}")
}

#[cached(interop, namespace = "cross", name = "profile", ttl = 60, backend = redis_at(&URL))]
async fn profile(id: u64, name: &str, admin: bool, score: f64) -> Profile {
    ran("profile");
    profile_of(id, name, admin, score)
}

#[cached(interop, namespace = "cross", name = "totals", ttl = 60, backend = redis_at(&URL))]
async fn totals(items: Vec<i64>) -> Vec<i64> {
    ran("totals");
    items
        .iter()
        .scan(0, |sum, item| {
            *sum += item;
            Some(*sum)
        })
        .collect()
}

#[cached(interop, namespace = "cross", name = "blob", ttl = 60, backend = redis_at(&URL))]
async fn blob(len: u8) -> Blob {
    ran("blob");
    Blob((0..len).map(|i| i.wrapping_mul(51)).collect())
}

/// `user` is a UUID: cachekit-py hashes a `UUID` as its lowercase string.
#[cached(interop, namespace = "cross", name = "account", ttl = 60, backend = redis_at(&URL))]
fn account(user: &str) -> String {
    ran("account");
    format!("acct-{user}")
}

#[cached(interop, namespace = "cross", name = "seen", ttl = 60, backend = redis_at(&URL))]
async fn seen(at: Timestamp) -> DateTime {
    ran("seen");
    DateTime(at)
}

#[cached(interop, namespace = "cross", name = "slot", ttl = 60, backend = redis_at(&URL))]
async fn slot(id: u8) -> Slot {
    ran("slot");
    slot_of(id)
}

#[cached(interop, cache_none, namespace = "cross", name = "nickname", ttl = 60, backend = redis_at(&URL))]
async fn nickname(id: u64) -> Option<String> {
    ran("nickname");
    (id == 0).then(|| "root".to_owned())
}

/// cachekit-py's `def get_user(uid, name="x")`, called as `get_user(uid)`.
#[cached(interop, namespace = "cross", name = "get_user", ttl = 60, backend = redis_at(&URL))]
async fn get_user(uid: u64, name: &str) -> String {
    ran("get_user");
    format!("{name}#{uid}")
}

#[tokio::test]
async fn values_cross_both_ways_without_running_the_other_body() {
    let server = RedisServer::start();
    URL.set(server.url())
        .unwrap_or_else(|_| panic!("URL set twice"));

    // Rust writes (each body runs once)...
    assert_eq!(version().await, "rust 1");
    assert_eq!(double(50).await, 100);
    assert_eq!(half(6).await, 3.0);
    assert_eq!(greet("Zoë").await, "naïve ☃ 日本, Zoë");
    assert_eq!(
        profile(8, "grace", false, 2.0).await,
        profile_of(8, "grace", false, 2.0)
    );
    assert_eq!(totals(vec![-5, 10, 1 << 40]).await, [-5, 5, 5 + (1 << 40)]);
    assert_eq!(blob(4).await, Blob(vec![0, 51, 102, 153]));
    let user_b = "9f3c2d4e-0000-4000-8000-00000000000b";
    assert_eq!(
        tokio::task::spawn_blocking(move || account(user_b))
            .await
            .expect("account"),
        format!("acct-{user_b}")
    );
    let seen_b = "2023-12-31T23:59:59.999999+00:00";
    assert_eq!(seen(at(seen_b)).await, DateTime(at(seen_b)));
    assert_eq!(slot(2).await, slot_of(2));
    assert_eq!(nickname(9).await, None);
    assert_eq!(get_user(7, "x").await, "x#7");
    assert_eq!(
        take_ran(),
        [
            "version", "double", "half", "greet", "profile", "totals", "blob", "account", "seen",
            "slot", "nickname", "get_user"
        ]
    );

    // ...and cachekit-py writes other arguments and reads Rust's, in one run.
    let user_a = "9F3C2D4E-0000-4000-8000-00000000000A";
    let seen_a = "2024-05-06T12:38:09.123456+05:30";
    let writes = [
        PyCall::write(NS, "answer", json!([]), json!(42)),
        PyCall::write(NS, "double", json!([21]), json!(42)),
        PyCall::write(NS, "half", json!([4]), json!({"$float": "2.0"})),
        PyCall::write(NS, "greet", json!(["Åsa"]), json!("naïve ☃ 日本, Åsa")),
        PyCall::write(
            NS,
            "profile",
            json!([7, "ada", true, {"$float": "1.5"}]),
            json!({
                "id": 7, "name": "ada", "admin": true, "score": {"$float": "1.5"},
                "tags": ["naïve", "☃"], "address": {"city": "Zürich", "zip": "8007"},
            }),
        ),
        PyCall::write(NS, "totals", json!([[1, 2, 3]]), json!([1, 3, 6])),
        PyCall::write(NS, "blob", json!([3]), json!({"$bytes": "003366"})),
        PyCall::write(
            NS,
            "account",
            json!([{"$uuid": user_a}]),
            json!(format!("acct-{}", user_a.to_lowercase())),
        ),
        PyCall::write(
            NS,
            "seen",
            json!([{"$datetime": seen_a}]),
            json!({"$datetime": seen_a}),
        ),
        PyCall::write(
            NS,
            "slot",
            json!([1]),
            json!({"day": {"$date": "2024-02-28"}, "at": {"$time": "01:30:05.111111"}}),
        ),
        PyCall::write(NS, "nickname", json!([8]), json!(null)),
        PyCall::write(NS, "get_user", json!([6, "x"]), json!("x#6")).defaults(1),
    ];
    let reads = [
        (PyCall::read(NS, "version", json!([])), json!("rust 1")),
        (PyCall::read(NS, "double", json!([50])), json!(100)),
        (
            PyCall::read(NS, "half", json!([6])),
            json!({"$float": "3.0"}),
        ),
        (
            PyCall::read(NS, "greet", json!(["Zoë"])),
            json!("naïve ☃ 日本, Zoë"),
        ),
        (
            PyCall::read(NS, "profile", json!([8, "grace", false, {"$float": "2.0"}])),
            json!({
                "id": 8, "name": "grace", "admin": false, "score": {"$float": "2.0"},
                "tags": ["naïve", "☃"], "address": {"city": "Zürich", "zip": "8008"},
            }),
        ),
        (
            PyCall::read(NS, "totals", json!([[-5, 10, 1_i64 << 40]])),
            json!([-5, 5, 5 + (1_i64 << 40)]),
        ),
        (
            PyCall::read(NS, "blob", json!([4])),
            json!({"$bytes": "00336699"}),
        ),
        (
            PyCall::read(NS, "account", json!([{"$uuid": user_b}])),
            json!(format!("acct-{user_b}")),
        ),
        (
            PyCall::read(NS, "seen", json!([{"$datetime": seen_b}])),
            json!({"$datetime": seen_b}),
        ),
        (
            PyCall::read(NS, "slot", json!([2])),
            json!({"day": {"$date": "2024-02-27"}, "at": {"$time": "02:30:05.222222"}}),
        ),
        (PyCall::read(NS, "nickname", json!([9])), json!(null)),
        (
            PyCall::read(NS, "get_user", json!([7, "x"])).defaults(1),
            json!("x#7"),
        ),
    ];
    let calls: Vec<PyCall> = writes
        .iter()
        .cloned()
        .chain(reads.iter().map(|(call, _)| call.clone()))
        .collect();
    let results = py_calls(&server, &calls);
    let (wrote, read) = results.split_at(writes.len());
    for (call, result) in writes.iter().zip(wrote) {
        assert!(
            result.ran,
            "cachekit-py did not compute {call:?}: {result:?}"
        );
    }
    for ((call, expected), result) in reads.iter().zip(read) {
        let want = PyResult {
            ran: false,
            value: expected.clone(),
        };
        assert_eq!(
            result,
            &want,
            "cachekit-py reading {call:?}; server log:\n{}",
            server.log()
        );
    }

    // Rust reads what cachekit-py wrote, without running a body.
    assert_eq!(answer().await, 42);
    assert_eq!(double(21).await, 42);
    assert_eq!(half(4).await, 2.0);
    assert_eq!(greet("Åsa").await, "naïve ☃ 日本, Åsa");
    assert_eq!(
        profile(7, "ada", true, 1.5).await,
        profile_of(7, "ada", true, 1.5)
    );
    assert_eq!(totals(vec![1, 2, 3]).await, [1, 3, 6]);
    assert_eq!(blob(3).await, Blob(vec![0, 51, 102]));
    let lower_a = user_a.to_lowercase();
    let acct = tokio::task::spawn_blocking(move || account(&lower_a)).await;
    assert_eq!(
        acct.expect("account"),
        format!("acct-{}", user_a.to_lowercase())
    );
    // The same instant, whatever offset cachekit-py wrote it with.
    assert_eq!(
        seen(at(seen_a)).await,
        DateTime(at("2024-05-06T07:08:09.123456Z"))
    );
    assert_eq!(slot(1).await, slot_of(1));
    assert_eq!(nickname(8).await, None);
    assert_eq!(get_user(6, "x").await, "x#6");
    assert_eq!(
        take_ran(),
        Vec::<&str>::new(),
        "Rust bodies ran for what cachekit-py wrote; server log:\n{}",
        server.log()
    );
    assert_eq!(
        answer_cache().cache().map(|c| c.stats().l2.foreign),
        Some(0)
    );
}

/// Seeded random argument lists (every type of the interop data model,
/// nested, maps in random key order) get the same key from cachekit-py's
/// `generate_interop_key` and from [`derive_key`] / [`KeyBuilder`].
#[test]
fn random_argument_lists_give_the_same_keys() {
    const SEED: &str = "29";
    const COUNT: usize = 200;
    let out = run_script("keys.py", &[SEED, &COUNT.to_string()], None);
    let vectors = Json::parse(&out).unwrap_or_else(|e| panic!("keys.py: {e}: {out}"));
    let vectors = vectors.as_array().expect("keys.py prints a list");
    assert_eq!(vectors.len(), COUNT);
    let text = |v: &Json, name: &str| {
        v.get(name)
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("keys.py entry without {name}: {v:?}"))
            .to_owned()
    };
    let mut mismatches = Vec::new();
    for v in vectors {
        let (ns, op, want) = (text(v, "namespace"), text(v, "operation"), text(v, "key"));
        let args = v
            .get("args")
            .map(Json::to_arg)
            .unwrap_or_else(|| panic!("keys.py entry without args: {v:?}"))
            .unwrap_or_else(|e| panic!("keys.py args: {e}"));
        let key = derive_key(&ns, &op, &args).map_err(|e| e.to_string());
        let built = KeyBuilder::new(&ns, &op)
            .and_then(|b| b.key(&args))
            .map_err(|e| e.to_string());
        if key.as_deref() != Ok(want.as_str()) || built.as_deref() != Ok(want.as_str()) {
            mismatches.push(format!(
                "{args:?}: python {want}, derive_key {key:?}, KeyBuilder {built:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {COUNT} keys differ (seed {SEED}):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// A cachekit-py auto-mode entry (its CK frame) under an interop key is a
/// miss for a Rust interop reader: counted foreign, left in place, and not
/// replaced by a read-through, which computes its own value; cachekit-py's
/// own interop reader refuses the frame too (and replaces it).
#[tokio::test]
async fn a_python_auto_mode_entry_is_a_foreign_miss_left_in_place() {
    let server = RedisServer::start();
    let key = derive_key("auto", "lookup", &(1u64,)).expect("key");
    let framed = py_plant_auto_entry(&server, "auto", json!([1]), json!("from python"), &key);
    assert!(framed.starts_with(b"CK"), "not a CK frame: {framed:?}");

    let config = RedisConfig::builder()
        .url(server.url())
        .build()
        .expect("config");
    let raw = RedisBackend::new(config).await.expect("redis");
    let cache = TieredCache::builder()
        .l2(raw.clone())
        .interop()
        .build()
        .expect("cache");
    let left_in_place = || async {
        let stored = raw.get(&key).await.expect("raw GET");
        assert_eq!(
            stored.as_deref(),
            Some(&framed[..]),
            "the entry was not left in place"
        );
    };
    assert_eq!(cache.get::<String>(&key).await, None);
    let stats = cache.stats().l2;
    assert_eq!((stats.foreign, stats.corrupt), (1, 0), "{stats:?}");
    left_in_place().await;

    let runs = AtomicU32::new(0);
    let value = cache
        .entry(&key)
        .or_compute(|| async {
            runs.fetch_add(1, SeqCst);
            "from rust".to_owned()
        })
        .await;
    assert_eq!((value.as_str(), runs.load(SeqCst)), ("from rust", 1));
    assert_eq!(cache.stats().l2.foreign, 2);
    left_in_place().await;

    let read = py_calls(&server, &[PyCall::read("auto", "lookup", json!([1]))]);
    assert_eq!(
        read,
        [PyResult {
            ran: true,
            value: json!(PY_BODY_RAN)
        }],
        "server log:\n{}",
        server.log()
    );

    // cachekit-py replaced the frame with its own document, which a request
    // that asks for interop reads (from a cache that does not by default).
    let plain = TieredCache::builder()
        .l2(raw.clone())
        .without_l1()
        .build()
        .expect("cache");
    let value = plain
        .entry(&key)
        .interop()
        .or_compute(|| async {
            runs.fetch_add(1, SeqCst);
            "from rust".to_owned()
        })
        .await;
    assert_eq!((value.as_str(), runs.load(SeqCst)), (PY_BODY_RAN, 1));
}
