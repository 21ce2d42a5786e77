//! Every `Duration` field of `RedisConfig` works at the longest value
//! `build()` accepts, and beyond it is refused naming the field, never
//! panicking on `now + timeout`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::Duration;

use cachekit_core::{Backend, ErrorKind};
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn the_longest_accepted_durations_work() {
    let server = RedisServer::start();
    let config = RedisConfig::builder()
        .url(server.url())
        .connect_timeout(DAY)
        .response_timeout(DAY)
        .checkout_timeout(DAY)
        .lock_wait(DAY)
        .tcp_keepalive(Some(Duration::from_secs(32_767)))
        .build()
        .unwrap();
    let redis = RedisBackend::new(config).await.unwrap();
    redis.set("k", "v".into(), None).await.unwrap();
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let guard = redis.lock("job", Duration::from_secs(5)).await.unwrap();
    guard.release().await.unwrap();
    assert!(redis.health().await.healthy, "{}", server.log());
}

#[tokio::test]
async fn longer_durations_set_in_place_are_refused_by_new() {
    let server = RedisServer::start();
    type Set = fn(&mut RedisConfig);
    let cases: [(&str, Set); 5] = [
        ("connect_timeout", |c| c.connect_timeout = Duration::MAX),
        ("response_timeout", |c| c.response_timeout = Duration::MAX),
        ("checkout_timeout", |c| c.checkout_timeout = Duration::MAX),
        ("lock_wait", |c| c.lock_wait = Duration::MAX),
        ("tcp_keepalive", |c| {
            c.tcp_keepalive = Some(Duration::from_secs(32_768))
        }),
    ];
    for (field, set) in cases {
        let mut config = RedisConfig::builder().url(server.url()).build().unwrap();
        set(&mut config);
        let err = RedisBackend::new(config.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{field}: {err}");
        assert!(err.message().contains(&format!("`{field}`")), "{err}");
        let err = RedisBackend::connect_lazy(config).unwrap_err();
        assert!(err.message().contains(&format!("`{field}`")), "{err}");
    }
}
