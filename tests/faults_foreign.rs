//! Values under a cache key that cachekit did not write (another library's,
//! plain text, a newer envelope version) are misses left in place, counted
//! as foreign; only cachekit envelopes that are damaged are deleted. And a
//! valid envelope nested too deep is a counted miss on a worker's stack,
//! never a stack overflow.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

#[path = "faults_support/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachekit::{Backend, Codec, CodecConfig, RedisBackend, TieredCache};
use cachekit_testkit::RedisServer;
use common::redis;
use serde::{Deserialize, Serialize};

const TTL: Option<Duration> = Some(Duration::from_secs(60));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    sku: u64,
    name: String,
}

/// Caches over one server: one without L1 (a plain GET per read) and one
/// with it (GET and PTTL per read), and the raw backend to plant values.
async fn fixture(server: &RedisServer) -> (Arc<RedisBackend>, [TieredCache; 2]) {
    let raw = Arc::new(redis(&server.url()).await);
    let build = |l1: bool| {
        let builder = TieredCache::builder().l2_arc(raw.clone());
        let builder = if l1 { builder } else { builder.without_l1() };
        builder.l2_timeout(Duration::from_secs(2)).build().unwrap()
    };
    (raw.clone(), [build(false), build(true)])
}

/// What other programs leave under a key.
fn foreign_values() -> Vec<(&'static str, Bytes)> {
    let quote = Quote {
        sku: 1,
        name: "one".into(),
    };
    let mut version_2 = Codec::default().encode(&quote).unwrap().to_vec();
    version_2[2] = 2;
    vec![
        ("text", Bytes::from_static(b"hello, world")),
        ("json", Bytes::from_static(br#"{"sku":1,"name":"one"}"#)),
        ("msgpack", rmp_serde::to_vec_named(&quote).unwrap().into()),
        ("empty", Bytes::new()),
        ("one-byte-of-magic", Bytes::from_static(b"\xC1")),
        ("newer-envelope", version_2.into()),
        ("binary", Bytes::from(vec![0xFF; 64 << 10])),
    ]
}

#[tokio::test]
async fn foreign_values_are_counted_misses_left_in_place_byte_for_byte() {
    let server = RedisServer::start();
    let (raw, caches) = fixture(&server).await;
    let values = foreign_values();
    for (which, cache) in caches.iter().enumerate() {
        for (case, bytes) in &values {
            let key = format!("foreign:{which}:{case}");
            raw.set(&key, bytes.clone(), TTL).await.unwrap();
            assert_eq!(cache.get::<Quote>(&key).await, None, "{case}");
            let kept = raw.get(&key).await.unwrap();
            assert_eq!(kept.as_ref(), Some(bytes), "{case}: left as it was");
        }
        let stats = cache.stats();
        let n = values.len() as u64;
        assert_eq!(
            (stats.l2.foreign, stats.l2.corrupt, stats.l2.misses),
            (n, 0, n),
            "{stats:?}"
        );
        assert_eq!(stats.l2.errors, 0, "{stats:?}");
    }
}

#[tokio::test]
async fn damaged_envelopes_are_counted_and_deleted() {
    let server = RedisServer::start();
    let (raw, caches) = fixture(&server).await;
    let valid = Codec::default()
        .encode(&Quote {
            sku: 2,
            name: "two".into(),
        })
        .unwrap();
    let flip = |at: usize| {
        let mut out = valid.to_vec();
        out[at] ^= 0x01;
        Bytes::from(out)
    };
    let damaged = [
        ("checksum", flip(8)),
        ("payload", flip(valid.len() - 1)),
        ("magic-only", valid.slice(..2)),
        ("cut-short", valid.slice(..valid.len() - 1)),
        ("header-only", valid.slice(..16)),
        (
            "another-type",
            Codec::default().encode("not a quote").unwrap(),
        ),
    ];
    for (which, cache) in caches.iter().enumerate() {
        for (case, bytes) in &damaged {
            let key = format!("damaged:{which}:{case}");
            raw.set(&key, bytes.clone(), TTL).await.unwrap();
            assert_eq!(cache.get::<Quote>(&key).await, None, "{case}");
            assert_eq!(server.command(&["EXISTS", &key]), "(integer) 0", "{case}");
        }
        let stats = cache.stats();
        let n = damaged.len() as u64;
        assert_eq!(
            (stats.l2.corrupt, stats.l2.foreign, stats.l2.misses),
            (n, 0, n),
            "{stats:?}"
        );
    }
}

#[tokio::test]
async fn a_read_through_replaces_a_foreign_value_with_its_own() {
    let server = RedisServer::start();
    let (raw, [cache, _]) = fixture(&server).await;
    let key = "foreign:read-through";
    raw.set(key, Bytes::from_static(b"plain text"), TTL)
        .await
        .unwrap();
    let want = Quote {
        sku: 3,
        name: "three".into(),
    };
    let got = cache
        .get_or_compute(key, TTL, {
            let want = want.clone();
            || async move { want }
        })
        .await;
    assert_eq!(got, want);
    let stats = cache.stats();
    assert_eq!((stats.l2.foreign, stats.computes), (1, 1), "{stats:?}");
    let stored = raw.get(key).await.unwrap().unwrap();
    assert_eq!(Codec::default().decode::<Quote>(&stored).unwrap(), want);
}

/// Recurses through a map per level, as most recursive structs do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    label: String,
    child: Option<Box<Node>>,
}

fn chain(depth: usize) -> Node {
    let mut node = Node {
        label: String::new(),
        child: None,
    };
    for _ in 1..depth {
        node = Node {
            label: String::new(),
            child: Some(Box::new(node)),
        };
    }
    node
}

/// Runs `f` on a thread with `stack` bytes of stack; an overflow aborts the
/// test process, which fails the run.
fn on_stack<R: Send + 'static>(stack: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_deep_envelope_is_a_counted_miss_on_a_worker_stack_not_an_abort() {
    let server = RedisServer::start();
    let url = server.url();
    // Written by a codec that allows it, on a stack roomy enough to
    // serialize 1,000 levels: a valid envelope, checksum and all.
    let deep = on_stack(256 << 20, || {
        Codec::new(CodecConfig::default().max_depth(5000))
            .encode(&chain(1000))
            .unwrap()
    });
    // Read on a thread with a tokio worker's 2 MiB stack.
    let stats = on_stack(2 << 20, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let raw = Arc::new(redis(&url).await);
            raw.set("deep", deep, TTL).await.unwrap();
            let cache = TieredCache::builder()
                .l2_arc(raw.clone())
                .l2_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            assert_eq!(cache.get::<Node>("deep").await, None);
            assert_eq!(raw.get("deep").await.unwrap(), None, "deleted");
            cache.stats()
        })
    });
    assert_eq!((stats.l2.corrupt, stats.l2.misses), (1, 1), "{stats:?}");
}
