//! `init_default_backend` refuses a bad Redis configuration instead of
//! falling back, leaves the default unchosen, and after the environment is
//! fixed chooses Redis. (One test per file: the default is process-wide.)
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit::{cached, DefaultBackendStatus};
use cachekit_testkit::RedisServer;

#[cached(namespace = "strict", name = "lookup", ttl = 30)]
fn lookup(id: u64) -> u64 {
    id + 1
}

#[test]
fn strict_start_returns_the_error_then_uses_redis() {
    std::env::remove_var("REDIS_URL");
    std::env::set_var("CACHEKIT_REDIS_URL", "redis://u:1234/Zq8SECRETxK@host");
    let err = cachekit::init_default_backend().unwrap_err();
    assert_eq!(err.kind(), cachekit::ErrorKind::Config, "{err}");
    assert!(err.message().contains("CACHEKIT_REDIS_URL"), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
    assert_eq!(
        cachekit::default_backend_status(),
        DefaultBackendStatus::Unresolved
    );

    std::env::set_var("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS", "40000");
    let server = RedisServer::start();
    std::env::set_var("CACHEKIT_REDIS_URL", server.url());
    let err = cachekit::init_default_backend().unwrap_err();
    assert!(
        err.message().contains("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS"),
        "{err}"
    );

    std::env::remove_var("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS");
    assert_eq!(
        cachekit::init_default_backend().unwrap(),
        DefaultBackendStatus::Redis
    );
    assert_eq!(
        cachekit::default_backend_status(),
        DefaultBackendStatus::Redis
    );
    assert_eq!(std::thread::spawn(|| lookup(1)).join().unwrap(), 2);
    let key = cachekit::derive_key("strict", "lookup", &(1u64,)).unwrap();
    assert_eq!(
        server.command(&["EXISTS", &key]),
        "(integer) 1",
        "{}",
        server.log()
    );
    // Chosen: a second call reports the same, and set_default_backend is too late.
    assert_eq!(
        cachekit::init_default_backend().unwrap(),
        DefaultBackendStatus::Redis
    );
    assert!(
        cachekit::set_default_backend(cachekit::TieredCache::builder().build().unwrap()).is_err()
    );
}
