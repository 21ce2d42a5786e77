//! `tls_insecure` is announced by one WARN per backend, not one per
//! connection, and not at all without it.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_testkit::logs;

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

fn warnings(text: &str) -> usize {
    text.lines()
        .filter(|line| line.contains("WARN") && line.contains("tls_insecure"))
        .count()
}

// Current-thread runtime: the pool's connection tasks log on this thread,
// inside the subscriber set below.
#[tokio::test]
async fn tls_insecure_warns_once_per_backend() {
    let server = RedisServer::builder().tls().start();
    let (subscriber, logs) = logs::capture();
    let _guard = tracing::subscriber::set_default(subscriber);

    let insecure = || {
        RedisConfig::builder()
            .url(server.url())
            .tls_insecure(true)
            .pool_size(4)
            .min_idle(3)
            .build()
            .unwrap()
    };
    let first = RedisBackend::new(insecure()).await.unwrap();
    for i in 0..20 {
        first.set(&format!("k{i}"), "v".into(), None).await.unwrap();
    }
    assert_eq!(warnings(&logs.text()), 1, "{}", logs.text());
    let second = RedisBackend::new(insecure()).await.unwrap();
    second.get("k1").await.unwrap();
    assert_eq!(warnings(&logs.text()), 2, "{}", logs.text());

    let verified = RedisConfig::builder()
        .url(server.url())
        .tls_ca_file(server.ca_cert_path())
        .build()
        .unwrap();
    RedisBackend::new(verified)
        .await
        .unwrap()
        .get("k1")
        .await
        .unwrap();
    let text = logs.text();
    assert_eq!(warnings(&text), 2, "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}
