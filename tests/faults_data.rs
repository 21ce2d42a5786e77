//! Redis holds something other than a valid cachekit value under a cache
//! key: garbage, damaged or truncated envelopes, a value of another type,
//! or a Redis hash/list/set/... Each must be a counted miss, overwritten by
//! the recomputed value: never a panic, an error for the caller, or a
//! wrong value.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachekit::{Backend, Codec, RedisBackend, TieredCache, TieredStats};
use cachekit_testkit::RedisServer;
use common::redis;
use serde::{Deserialize, Serialize};

const TTL: Option<Duration> = Some(Duration::from_secs(60));
const HEADER_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    sku: u64,
    cents: u64,
    name: String,
}

fn quote(sku: u64) -> Quote {
    Quote {
        sku,
        cents: sku * 100 + 99,
        name: format!("item {sku}"),
    }
}

/// A quote whose name is long and repetitive, so its envelope is LZ4-compressed.
fn compressible_quote(sku: u64) -> Quote {
    Quote {
        name: "cachekit ".repeat(1000),
        ..quote(sku)
    }
}

/// An older shape of the value: no `name`.
#[derive(Serialize)]
struct OldQuote {
    sku: u64,
    cents: u64,
}

/// A cache without L1, so every read goes to Redis, and the raw backend
/// beside it to plant values.
struct Fixture {
    server: RedisServer,
    raw: Arc<RedisBackend>,
    cache: TieredCache,
    runs: Arc<AtomicU64>,
}

impl Fixture {
    async fn start() -> Self {
        let server = RedisServer::start();
        let raw = Arc::new(redis(&server.url()).await);
        let cache = TieredCache::builder()
            .without_l1()
            .l2_arc(raw.clone())
            .l2_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        Self {
            server,
            raw,
            cache,
            runs: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn call(&self, key: &str, want: &Quote) -> Quote {
        let (runs, want) = (self.runs.clone(), want.clone());
        self.cache
            .get_or_compute(key, TTL, || async move {
                runs.fetch_add(1, SeqCst);
                want
            })
            .await
    }

    /// Plants `bytes` under a fresh key, then checks that a read-through
    /// returns the right value, counts the entry as corrupt or foreign
    /// (`faults_foreign.rs` tells which is which), recomputes
    /// once and leaves a valid envelope behind that the next call hits.
    async fn check_overwritten(&self, case: &str, bytes: Bytes, want: &Quote) {
        let key = format!("faults:data:{case}");
        self.raw.set(&key, bytes, TTL).await.unwrap();
        let before = self.cache.stats();
        let runs = self.runs.load(SeqCst);

        assert_eq!(&self.call(&key, want).await, want, "{case}");
        let after = self.cache.stats();
        assert_eq!(
            undecodable(&after),
            undecodable(&before) + 1,
            "{case}: {after:?}"
        );
        assert_eq!(after.computes, before.computes + 1, "{case}");
        assert_eq!(after.l2.sets, before.l2.sets + 1, "{case}");
        assert_eq!(after.l2.errors, before.l2.errors, "{case}");
        assert_eq!(self.runs.load(SeqCst), runs + 1, "{case}");

        let stored = self.raw.get(&key).await.unwrap().unwrap();
        let decoded: Quote = Codec::default().decode(&stored).unwrap();
        assert_eq!(&decoded, want, "{case}: the entry was overwritten");
        assert_eq!(&self.call(&key, want).await, want, "{case}");
        assert_eq!(
            self.runs.load(SeqCst),
            runs + 1,
            "{case}: the next call hits"
        );
    }
}

/// `envelope` with header byte `at` replaced by `value`.
fn with_byte(envelope: &[u8], at: usize, value: u8) -> Bytes {
    let mut out = envelope.to_vec();
    out[at] = value;
    Bytes::from(out)
}

/// `envelope` with the declared payload length replaced.
fn with_declared_len(envelope: &[u8], len: u32) -> Bytes {
    let mut out = envelope.to_vec();
    out[4..8].copy_from_slice(&len.to_be_bytes());
    Bytes::from(out)
}

fn snapshot(stats: &TieredStats) -> (u64, u64, u64) {
    (undecodable(stats), stats.l2.errors, stats.computes)
}

/// L2 values that did not decode: damaged envelopes (deleted) and values
/// cachekit did not write (left in place until the recomputed value
/// replaces them).
fn undecodable(stats: &TieredStats) -> u64 {
    stats.l2.corrupt + stats.l2.foreign
}

#[tokio::test]
async fn garbage_and_damaged_envelopes_are_counted_misses_and_overwritten() {
    let f = Fixture::start().await;
    let codec = Codec::default();
    let want = quote(7);
    let valid = codec.encode(&want).unwrap();
    let lz4 = codec.encode(&compressible_quote(8)).unwrap();
    assert_eq!(lz4[3], 1, "the big quote is LZ4-compressed");
    let last = valid.len() - 1;

    let cases: Vec<(&str, Bytes)> = vec![
        ("empty", Bytes::new()),
        ("text", Bytes::from_static(b"hello, world")),
        ("0xff-1mib", Bytes::from(vec![0xFF; 1 << 20])),
        // What a library writing plain MessagePack would leave.
        ("bare-msgpack", valid.slice(HEADER_LEN..)),
        ("bad-magic", with_byte(&valid, 0, b'X')),
        ("version-2", with_byte(&valid, 2, 2)),
        ("unknown-flag", with_byte(&valid, 3, 0x80)),
        ("checksum-flipped", with_byte(&valid, 8, valid[8] ^ 0x01)),
        (
            "payload-flipped",
            with_byte(&valid, last, valid[last] ^ 0x01),
        ),
        (
            "declares-more",
            with_declared_len(&valid, (valid.len() - HEADER_LEN + 1) as u32),
        ),
        ("declares-4gib", with_declared_len(&valid, u32::MAX)),
        // Claims far more than LZ4 can expand its few bytes to.
        ("lz4-bomb", with_declared_len(&lz4, 30 << 20)),
        ("lz4-flag-on-plain", with_byte(&valid, 3, 1)),
        (
            "lz4-payload-flipped",
            with_byte(&lz4, lz4.len() - 1, lz4[lz4.len() - 1] ^ 0x55),
        ),
        // Valid envelopes of something that is not a Quote.
        ("other-type", codec.encode("not a quote").unwrap()),
        (
            "older-shape",
            codec.encode(&OldQuote { sku: 7, cents: 799 }).unwrap(),
        ),
    ];
    let count = cases.len() as u64;
    for (case, bytes) in cases {
        f.check_overwritten(case, bytes, &want).await;
    }
    let stats = f.cache.stats();
    assert_eq!(snapshot(&stats), (count, 0, count), "{stats:?}");
}

#[tokio::test]
async fn every_truncation_of_an_envelope_is_a_counted_miss() {
    let f = Fixture::start().await;
    let codec = Codec::default();
    let mut count = 0;
    for (label, want) in [("plain", quote(11)), ("lz4", compressible_quote(12))] {
        let valid = codec.encode(&want).unwrap();
        for len in 0..valid.len() {
            let case = format!("truncated-{label}-{len}");
            f.check_overwritten(&case, valid.slice(..len), &want).await;
            count += 1;
        }
    }
    let stats = f.cache.stats();
    assert_eq!(snapshot(&stats), (count, 0, count), "{stats:?}");
    println!("{count} truncated envelopes: each a counted miss, recomputed and overwritten");
}

#[tokio::test]
async fn a_plain_get_of_garbage_misses_and_deletes_the_entry() {
    let f = Fixture::start().await;
    let key = "faults:data:get-garbage";
    f.raw
        .set(key, Bytes::from_static(b"\xC1K\x01garbage"), TTL)
        .await
        .unwrap();
    assert_eq!(f.cache.get::<Quote>(key).await, None);
    let stats = f.cache.stats();
    assert_eq!(
        (stats.l2.corrupt, stats.l2.misses, stats.l2.errors),
        (1, 1, 0)
    );
    assert_eq!(f.server.command(&["EXISTS", key]), "(integer) 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_a_corrupt_key_recompute_it_once() {
    let f = Arc::new(Fixture::start().await);
    let key = "faults:data:contended";
    let want = quote(21);
    f.raw
        .set(key, Bytes::from_static(b"garbage"), TTL)
        .await
        .unwrap();
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (f, want) = (f.clone(), want.clone());
            tokio::spawn(async move { f.call(key, &want).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), want);
    }
    let stats = f.cache.stats();
    assert_eq!(f.runs.load(SeqCst), 1, "{stats:?}");
    assert_eq!(stats.l2.foreign, 1, "not an envelope: {stats:?}");
    assert_eq!(stats.l2.errors, 0, "{stats:?}");
}

#[tokio::test]
async fn keys_of_another_redis_type_are_misses_then_overwritten() {
    let f = Fixture::start().await;
    let want = quote(3);
    let plant: [(&str, &[&str]); 6] = [
        ("hash", &["HSET", "{key}", "field", "value"]),
        ("list", &["LPUSH", "{key}", "a", "b"]),
        ("set", &["SADD", "{key}", "a"]),
        ("zset", &["ZADD", "{key}", "1", "a"]),
        ("stream", &["XADD", "{key}", "*", "field", "value"]),
        ("hll", &["PFADD", "{key}", "a"]),
    ];
    let mut misses = 0;
    let mut foreign = 0;
    for (kind, command) in plant {
        let key = format!("faults:data:type-{kind}");
        let command: Vec<&str> = command
            .iter()
            .map(|arg| if *arg == "{key}" { key.as_str() } else { arg })
            .collect();
        assert!(!f.server.command(&command).starts_with("(error)"), "{kind}");
        let expected_type = if kind == "hll" { "string" } else { kind };
        assert_eq!(f.server.command(&["TYPE", &key]), expected_type);

        // A plain read misses (HyperLogLogs are strings, not envelopes).
        assert_eq!(f.cache.get::<Quote>(&key).await, None, "{kind}");
        misses += 1;
        // It is left in place, so the read-through below finds it again.
        foreign += 2 * u64::from(kind == "hll");
        // A read-through recomputes and replaces the key.
        assert_eq!(f.call(&key, &want).await, want, "{kind}");
        misses += 1;
        assert_eq!(f.server.command(&["TYPE", &key]), "string", "{kind}");
        assert_eq!(f.call(&key, &want).await, want, "{kind}");
    }
    let stats = f.cache.stats();
    assert_eq!(f.runs.load(SeqCst), 6, "{stats:?}");
    assert_eq!(
        stats.l2.errors, 0,
        "WRONGTYPE is a miss, not an error: {stats:?}"
    );
    assert_eq!(stats.l2.misses, misses, "{stats:?}");
    assert_eq!(stats.l2.foreign, foreign, "{stats:?}");
    assert_eq!(stats.l2.hits, 6, "{stats:?}");
}

#[tokio::test]
async fn text_values_written_by_another_client_are_counted_misses() {
    let f = Fixture::start().await;
    let want = quote(5);
    let plant: [(&str, &[&str]); 4] = [
        ("int", &["SET", "{key}", "42"]),
        (
            "json",
            &["SET", "{key}", r#"{"sku":5,"cents":599,"name":"item 5"}"#],
        ),
        ("incr", &["INCR", "{key}"]),
        ("setbit", &["SETBIT", "{key}", "100", "1"]),
    ];
    for (kind, command) in plant {
        let key = format!("faults:data:text-{kind}");
        let command: Vec<&str> = command
            .iter()
            .map(|arg| if *arg == "{key}" { key.as_str() } else { arg })
            .collect();
        assert!(!f.server.command(&command).starts_with("(error)"), "{kind}");
        f.check_overwritten_planted(&key, &want).await;
    }
    let stats = f.cache.stats();
    assert_eq!(snapshot(&stats), (4, 0, 4), "{stats:?}");
}

impl Fixture {
    /// [`check_overwritten`](Self::check_overwritten) for a key planted
    /// through the raw RESP helper.
    async fn check_overwritten_planted(&self, key: &str, want: &Quote) {
        let before = self.cache.stats();
        assert_eq!(&self.call(key, want).await, want, "{key}");
        let after = self.cache.stats();
        assert_eq!(after.l2.foreign, before.l2.foreign + 1, "{key}: {after:?}");
        let stored = self.raw.get(key).await.unwrap().unwrap();
        assert_eq!(&Codec::default().decode::<Quote>(&stored).unwrap(), want);
    }
}
