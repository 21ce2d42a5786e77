//! Interop values and encryption through the tiers: what L2 holds, and
//! what a read does with values it cannot read.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use bytes::Bytes;

use crate::encryption::{aad, Encryption, TenantKey};
use crate::keys::canonical_value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

fn ada() -> User {
    User {
        name: "ada".into(),
        age: 36,
    }
}

const KEY: &str = "users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875";
const TTL: Option<Duration> = Some(Duration::from_secs(60));

fn master() -> Vec<u8> {
    vec![0x61; 32]
}

/// A cache with L1 off over a shared in-memory L2, so every read reaches it.
fn over(l2: &Arc<MemoryBackend>, policy: Policy) -> TieredCache {
    TieredCache::builder()
        .without_l1()
        .l2_arc(l2.clone())
        .policy(policy)
        .build()
        .unwrap()
}

async fn raw(l2: &MemoryBackend, key: &str) -> Option<Bytes> {
    l2.get(key).await.unwrap()
}

#[tokio::test]
async fn an_interop_cache_stores_exactly_the_canonical_document() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let cache = over(&l2, Policy::new().interop());
    cache.set(KEY, &ada(), TTL).await.unwrap();
    let stored = raw(&l2, KEY).await.unwrap();
    assert_eq!(&stored[..], &canonical_value(&ada()).unwrap()[..]);
    assert_eq!(&stored[..], b"\x82\xa3age\x24\xa4name\xa3ada");
    assert_eq!(cache.get::<User>(KEY).await, Some(ada()));
    // Written by another language: same bytes, read without computing.
    l2.set(
        "users:other:1",
        canonical_value(&ada()).unwrap().into(),
        TTL,
    )
    .await
    .unwrap();
    let v: User = cache
        .get_or_compute("users:other:1", TTL, || async { unreachable!() })
        .await;
    assert_eq!(v, ada());
}

#[tokio::test]
async fn a_document_of_another_shape_is_a_miss_left_in_place_and_not_replaced() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let theirs = canonical_value(&("a", "list")).unwrap();
    l2.set(KEY, theirs.clone().into(), TTL).await.unwrap();
    let cache = over(&l2, Policy::new().interop());
    let runs = AtomicUsize::new(0);
    for _ in 0..2 {
        let v = cache
            .get_or_compute(KEY, TTL, || async {
                runs.fetch_add(1, SeqCst);
                ada()
            })
            .await;
        assert_eq!(v, ada());
    }
    assert_eq!(runs.load(SeqCst), 2, "nothing of ours was stored in L2");
    assert_eq!(raw(&l2, KEY).await.unwrap(), theirs, "left in place");
    let stats = cache.stats().l2;
    assert_eq!((stats.foreign, stats.corrupt, stats.hits), (2, 0, 0));
    // A cachekit-py auto-mode frame under the key: the same.
    l2.set(KEY, Bytes::from_static(b"CK\x03\x00frame"), TTL)
        .await
        .unwrap();
    assert_eq!(cache.get::<User>(KEY).await, None);
    assert_eq!(cache.stats().l2.foreign, 3);
    assert_eq!(&raw(&l2, KEY).await.unwrap()[..2], b"CK");
}

#[tokio::test]
async fn an_encrypted_interop_value_is_the_familys_sealed_document() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let enc = Encryption::new(master(), "cross-sdk-test").unwrap();
    let cache = over(&l2, Policy::new().interop().encryption(enc));
    cache.set(KEY, &ada(), TTL).await.unwrap();
    let stored = raw(&l2, KEY).await.unwrap();
    assert_eq!(
        stored.len(),
        12 + 15 + 16,
        "nonce, the 15-byte document, tag"
    );
    let key = TenantKey::derive(&master(), "cross-sdk-test").unwrap();
    let plain = key
        .decrypt(&stored, &aad("cross-sdk-test", KEY, "msgpack", false))
        .unwrap();
    assert_eq!(plain, canonical_value(&ada()).unwrap());
    assert_eq!(cache.get::<User>(KEY).await, Some(ada()));
    // A plaintext reader sees no value, and neither does a reader with
    // another key or tenant; none of them deletes or replaces it.
    for policy in [
        Policy::new().interop(),
        Policy::new()
            .interop()
            .encryption(Encryption::new([0x62; 32], "cross-sdk-test").unwrap()),
        Policy::new()
            .interop()
            .encryption(Encryption::new(master(), "default").unwrap()),
    ] {
        let reader = over(&l2, policy);
        let v = reader
            .get_or_compute(KEY, TTL, || async {
                User {
                    name: "mine".into(),
                    age: 1,
                }
            })
            .await;
        assert_eq!(v.name, "mine", "never another key's value");
        assert_eq!(raw(&l2, KEY).await.unwrap(), stored, "left in place");
    }
    assert_eq!(cache.get::<User>(KEY).await, Some(ada()));
}

#[tokio::test]
async fn a_value_that_does_not_verify_is_counted_and_never_returned() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let enc = Encryption::new(master(), "default").unwrap();
    let cache = over(&l2, Policy::new().interop().encryption(enc.clone()));
    cache.set(KEY, &ada(), TTL).await.unwrap();
    let mut stored = raw(&l2, KEY).await.unwrap().to_vec();
    // Copied to another key: bound to the first one, so it fails there.
    l2.set("users:get_user:other", stored.clone().into(), TTL)
        .await
        .unwrap();
    assert_eq!(cache.get::<User>("users:get_user:other").await, None);
    // One flipped bit anywhere.
    stored[20] ^= 1;
    l2.set(KEY, stored.into(), TTL).await.unwrap();
    assert_eq!(cache.get::<User>(KEY).await, None);
    let stats = cache.stats().l2;
    assert_eq!(
        (stats.undecryptable, stats.foreign, stats.corrupt),
        (2, 0, 0)
    );
    assert!(raw(&l2, KEY).await.is_some(), "left in place");
}

#[tokio::test]
async fn an_envelope_cache_can_encrypt_too() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let enc = Encryption::new(master(), "default").unwrap();
    let cache = over(&l2, Policy::new().encryption(enc));
    let big = "x".repeat(64 * 1024);
    cache.set("k", &big, TTL).await.unwrap();
    let stored = raw(&l2, "k").await.unwrap();
    assert!(
        !stored.starts_with(&[0xC1, 0x4B]),
        "the envelope is inside the ciphertext"
    );
    assert!(
        stored.len() < 4096,
        "compressed before it was encrypted: {}",
        stored.len()
    );
    assert_eq!(cache.get::<String>("k").await, Some(big));
    let plain = over(&l2, Policy::new());
    assert_eq!(plain.get::<String>("k").await, None);
    assert!(raw(&l2, "k").await.is_some());
}

#[tokio::test]
async fn the_format_and_encryption_can_be_chosen_per_request() {
    let l2 = Arc::new(MemoryBackend::builder().build().unwrap());
    let cache = over(&l2, Policy::new());
    let v = cache
        .entry(KEY)
        .ttl(Duration::from_secs(60))
        .interop()
        .or_compute(|| async { ada() })
        .await;
    assert_eq!(v, ada());
    assert_eq!(
        &raw(&l2, KEY).await.unwrap()[..],
        &canonical_value(&ada()).unwrap()[..]
    );
    let enc = Encryption::new(master(), "default").unwrap();
    let sealed = cache
        .entry("sealed")
        .policy(Policy::new().ttl(Duration::from_secs(60)).encryption(enc))
        .or_compute(|| async { 7u8 })
        .await;
    assert_eq!(sealed, 7);
    assert_eq!(raw(&l2, "sealed").await.unwrap().len(), 12 + 16 + 17);
}
