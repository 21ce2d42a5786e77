//! Each TLS failure is explained by its real cause, read from what rustls
//! reports against a real TLS `redis-server`.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::{Duration, Instant};

use cachekit_core::{Error, ErrorKind};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

async fn connect_err(config: RedisConfig) -> Error {
    match RedisBackend::new(config).await {
        Ok(backend) => panic!("expected an error, got {backend:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn host_name_mismatch_says_the_certificate_does_not_name_the_host() {
    let server = RedisServer::builder().tls().start();
    // The certificate names 127.0.0.1 and localhost; the same address
    // written as IPv4-mapped IPv6 reaches the server but is another name.
    let config = RedisConfig::builder()
        .url(format!("rediss://[::ffff:127.0.0.1]:{}", server.port()))
        .tls_ca_file(server.ca_cert_path())
        .build()
        .unwrap();
    let err = connect_err(config).await;
    eprintln!("mismatch: {err}");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let message = err.message();
    assert!(message.contains("does not name"), "{err}");
    assert!(message.contains("::ffff:127.0.0.1"), "{err}");
    assert!(!message.contains("trusted CA"), "{err}");
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_server_certificate_is_named() {
    let issuer = RedisServer::builder().tls().start();
    let ca_cert = issuer.ca_cert_path().to_owned();
    let ca_key = ca_cert.with_file_name("ca.key");
    assert!(ca_key.exists(), "{}", ca_key.display());
    let server = RedisServer::builder()
        .tls()
        .config("tls-cert-file", ca_cert.as_os_str())
        .config("tls-key-file", ca_key.as_os_str())
        .start();
    let config = RedisConfig::builder()
        .url(server.url())
        .tls_ca_file(&ca_cert)
        .build()
        .unwrap();
    let err = connect_err(config).await;
    eprintln!("ca as leaf: {err}");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let message = err.message();
    assert!(message.contains("is a CA certificate"), "{err}");
    assert!(!message.contains("set `tls_ca_file`"), "{err}");
}

#[tokio::test]
async fn rediss_against_a_plain_text_server_fails_fast_with_a_hint() {
    let server = RedisServer::start();
    let connect_timeout = Duration::from_secs(30);
    let config = RedisConfig::builder()
        .url(format!("rediss://127.0.0.1:{}", server.port()))
        .tls_insecure(true)
        .connect_timeout(connect_timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = connect_err(config).await;
    eprintln!("plain: {err}");
    // Not a timing target: only that it did not wait out connect_timeout.
    assert!(started.elapsed() < connect_timeout, "{err}");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.message().contains("does not speak TLS"), "{err}");
    assert!(err.message().contains("redis://"), "{err}");
}
