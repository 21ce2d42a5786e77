//! Encryption from the environment on both sides: `CACHEKIT_MASTER_KEY`
//! (hex) with no `CACHEKIT_DEPLOYMENT_UUID`, which both libraries read as
//! the tenant `"default"`. A binary of its own: the variables are the
//! process's, and cachekit reads them once, on the first encrypted call.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers too: a failed setup step must fail the test loudly"
)]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachekit::{cached, RedisBackend, RedisConfig, TieredCache};
use cachekit_rs::interop::{interop_key, InteropValue};
use cachekit_testkit::RedisServer;

const MASTER_HEX: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

static URL: OnceLock<String> = OnceLock::new();
static RUNS: AtomicU32 = AtomicU32::new(0);

fn redis_at(url: &OnceLock<String>) -> cachekit::Result<TieredCache> {
    let url = url.get().cloned().unwrap_or_default();
    let redis = RedisBackend::connect_lazy(RedisConfig::builder().url(url).build()?)?;
    TieredCache::builder().l2(redis).build()
}

#[cached(interop, encrypted, namespace = "orders", name = "total", ttl = 60, backend = redis_at(&URL))]
async fn total(order: u64, currency: String) -> f64 {
    RUNS.fetch_add(1, SeqCst);
    order as f64 * if currency == "EUR" { 1.25 } else { 1.0 }
}

#[tokio::test]
async fn both_libraries_encrypt_with_the_environments_key() {
    // Before any thread of this binary reads the environment.
    std::env::set_var("CACHEKIT_MASTER_KEY", MASTER_HEX);
    std::env::remove_var("CACHEKIT_DEPLOYMENT_UUID");
    let server = RedisServer::start();
    URL.set(server.url()).unwrap();

    let backend = cachekit_rs::backend::redis::RedisBackend::builder()
        .url(server.url())
        .build()
        .unwrap();
    drop(backend.connect().await.unwrap());
    let rs = cachekit_rs::CacheKit::builder()
        .backend(Arc::new(backend))
        .no_l1()
        .encryption_from_env()
        .unwrap()
        .build()
        .unwrap();
    let key = |order: u64, currency: &str| {
        interop_key(
            "orders",
            "total",
            &[InteropValue::from(order), currency.into()],
        )
        .unwrap()
    };

    // cachekit-rs writes, the function reads it without running.
    rs.set_with_ttl(&key(8, "EUR"), &10.5f64, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(total(8, "EUR".into()).await, 10.5);
    assert_eq!(RUNS.load(SeqCst), 0);
    // The function writes, cachekit-rs reads it.
    assert_eq!(total(4, "EUR".into()).await, 5.0);
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(
        rs.interop_get::<f64>(&key(4, "EUR")).await.unwrap(),
        Some(5.0)
    );

    let stats = total_cache().cache().unwrap().stats();
    assert_eq!(
        (stats.l2.undecryptable, stats.l2.foreign),
        (0, 0),
        "{stats:?}"
    );
    // Sealed, not plain: cachekit-rs without a key cannot read it.
    let backend = cachekit_rs::backend::redis::RedisBackend::builder()
        .url(server.url())
        .build()
        .unwrap();
    drop(backend.connect().await.unwrap());
    let plain = cachekit_rs::CacheKit::builder()
        .backend(Arc::new(backend))
        .no_l1()
        .build()
        .unwrap();
    assert!(plain.interop_get::<f64>(&key(4, "EUR")).await.is_err());
}
