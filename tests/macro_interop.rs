//! `#[cached(interop)]` and `#[cached(encrypted)]`: what the function
//! stores is what the cachekit family stores, under the same key, and what
//! it cannot read it leaves alone. (Against Python and cachekit-rs, live:
//! `interop_python.rs` and the `interop-rs` package.)

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::interop::DateTime;
use cachekit::keys::{canonical_value, Timestamp};
use cachekit::{cached, Backend, Encryption, MemoryBackend, TieredCache};
use serde::{Deserialize, Serialize};

/// The shared tier, kept so the tests can look at the stored bytes.
fn l2() -> Arc<MemoryBackend> {
    static L2: OnceLock<Arc<MemoryBackend>> = OnceLock::new();
    L2.get_or_init(|| Arc::new(MemoryBackend::builder().build().expect("an L2")))
        .clone()
}

/// No L1: every call reads the shared tier, as another process would.
fn shared() -> cachekit::Result<TieredCache> {
    TieredCache::builder().without_l1().l2_arc(l2()).build()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    since: DateTime,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    manager: Option<u64>,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(interop, namespace = "users", name = "get_user", ttl = 60, backend = shared())]
async fn get_user(id: u64, name: String) -> User {
    RUNS.fetch_add(1, SeqCst);
    User {
        id,
        name,
        since: DateTime(Timestamp::parse_rfc3339("2024-01-02T03:04:05Z").expect("RFC 3339")),
        avatar: vec![1, 2, 3],
        manager: None,
    }
}

async fn raw(key: &str) -> Option<bytes::Bytes> {
    l2().get(key).await.expect("a memory read")
}

#[tokio::test]
async fn an_interop_function_stores_the_familys_document_under_the_familys_key() {
    let user = get_user(7, "naïve ☃".into()).await;
    let key = cachekit::derive_key("users", "get_user", &(7u64, "naïve ☃")).unwrap();
    let stored = raw(&key).await.expect("stored under the interop key");
    assert_eq!(&stored[..], &canonical_value(&user).unwrap()[..]);
    assert!(
        stored
            .windows(26)
            .any(|w| w == b"\xa5value\xb92024-01-02T03:04:05+00:00"[..26].as_ref()),
        "the datetime is the family's sentinel map"
    );

    // Another language's entry under a key: read without running the body.
    let theirs = User {
        id: 8,
        name: "from python".into(),
        ..user.clone()
    };
    let key8 = cachekit::derive_key("users", "get_user", &(8u64, "x")).unwrap();
    l2().set(&key8, canonical_value(&theirs).unwrap().into(), None)
        .await
        .unwrap();
    let before = RUNS.load(SeqCst);
    assert_eq!(get_user(8, "x".into()).await, theirs);
    assert_eq!(RUNS.load(SeqCst), before);

    // A document of another shape: a miss, counted, left as it was.
    let key9 = cachekit::derive_key("users", "get_user", &(9u64, "x")).unwrap();
    let other = canonical_value(&serde_json::json!({"id": "not a number"})).unwrap();
    l2().set(&key9, other.clone().into(), None).await.unwrap();
    assert_eq!(get_user(9, "x".into()).await.id, 9);
    assert_eq!(raw(&key9).await.unwrap(), other);
    assert!(get_user_cache().cache().unwrap().stats().l2.foreign >= 1);
}

static SEALED_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(interop, encrypted, namespace = "secrets", name = "lookup", ttl = 60, backend = shared())]
fn lookup(id: u64) -> String {
    SEALED_RUNS.fetch_add(1, SeqCst);
    format!("secret {id}")
}

#[tokio::test]
async fn an_encrypted_function_stores_only_ciphertext_and_reads_it_back() {
    let master = "61".repeat(32);
    // `set_default_encryption` may run once per process: this is its only test.
    cachekit::set_default_encryption(Encryption::from_hex(&master, "default").unwrap()).unwrap();
    assert!(cachekit::set_default_encryption(Encryption::from_hex(&master, "x").unwrap()).is_err());
    let value = tokio::task::spawn_blocking(|| (lookup(1), lookup(1)))
        .await
        .unwrap();
    assert_eq!(value, ("secret 1".to_string(), "secret 1".to_string()));
    assert_eq!(SEALED_RUNS.load(SeqCst), 1);
    let key = cachekit::derive_key("secrets", "lookup", &(1u64,)).unwrap();
    let stored = raw(&key).await.unwrap();
    let document = canonical_value("secret 1").unwrap();
    assert_eq!(stored.len(), 12 + document.len() + 16);
    assert!(
        !stored.windows(6).any(|w| w == b"secret"),
        "no plaintext in L2"
    );

    // Rewritten under another key by someone else: never returned.
    let other = Encryption::from_hex(&"62".repeat(32), "default").unwrap();
    let foreign = TieredCache::builder()
        .without_l1()
        .l2_arc(l2())
        .interop()
        .encryption(other)
        .build()
        .unwrap();
    foreign
        .set(&key, &"planted".to_string(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let planted = raw(&key).await.unwrap();
    let read = tokio::task::spawn_blocking(|| lookup(1)).await.unwrap();
    assert_eq!(read, "secret 1");
    assert_eq!(SEALED_RUNS.load(SeqCst), 2);
    let stats = lookup_cache().cache().unwrap().stats().l2;
    assert_eq!(stats.undecryptable, 1);
    assert_eq!(raw(&key).await.unwrap(), planted, "left in place");
}
