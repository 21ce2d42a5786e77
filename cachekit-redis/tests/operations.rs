//! The Backend operations against a real server: conformance (RESP2,
//! RESP3, prefixed), WRONGTYPE handling, prefixes and `delete_prefix`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Backend, Ttl};
use cachekit_redis::{Protocol, RedisBackend, RedisConfig, Version};
use cachekit_testkit::{run_conformance, RedisServer};

async fn backend(server: &RedisServer, prefix: &str) -> RedisBackend {
    let config = RedisConfig::builder()
        .url(server.url())
        .key_prefix(prefix)
        .build()
        .unwrap();
    RedisBackend::new(config).await.unwrap()
}

/// The suite, one test per check, each on its own server: starting one
/// takes milliseconds.
mod conformance {
    use super::*;
    use cachekit_testkit::{conformance_tests, WithGuard};

    async fn on_a_fresh_server(protocol: Protocol) -> WithGuard<RedisBackend, RedisServer> {
        let server = RedisServer::start();
        let config = RedisConfig::builder()
            .url(server.url())
            .protocol(protocol)
            .build()
            .unwrap();
        WithGuard(RedisBackend::new(config).await.unwrap(), server)
    }

    conformance_tests!(resp2, async || on_a_fresh_server(Protocol::Resp2).await);

    conformance_tests!(resp3, async || on_a_fresh_server(Protocol::Resp3).await);
}

#[tokio::test]
async fn conformance_with_a_prefix_touches_only_prefixed_keys() {
    let server = RedisServer::start();
    server.command(&["SET", "outsider", "x"]);
    run_conformance(&backend(&server, "conf:").await).await;
    assert_eq!(server.command(&["GET", "outsider"]), "x");
    // The suite cleans up after itself: only the outsider is left (and
    // cachekit's deletion counters, under the prefix).
    assert_eq!(server.data_keys(0), 1);
    let counters = server.command(&["KEYS", "*__cachekit__:*"]);
    assert!(
        counters.lines().all(|k| k.contains("conf:__cachekit__:")),
        "{counters}"
    );
}

#[tokio::test]
async fn get_with_ttl_reports_value_and_lifetime() {
    let server = RedisServer::start();
    let redis = backend(&server, "").await;
    redis.set("forever", "a".into(), None).await.unwrap();
    redis
        .set("brief", "b".into(), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    let (value, ttl) = redis.get_with_ttl("forever").await.unwrap().unwrap();
    assert_eq!((value.as_ref(), ttl), (&b"a"[..], Ttl::Persistent));
    let (value, ttl) = redis.get_with_ttl("brief").await.unwrap().unwrap();
    assert_eq!(value.as_ref(), b"b");
    let left = ttl.remaining().unwrap();
    assert!(
        left > Duration::from_secs(25) && left <= Duration::from_secs(30),
        "{left:?}"
    );
    assert_eq!(redis.get_with_ttl("none").await.unwrap(), None);
}

#[tokio::test]
async fn wrongtype_read_is_a_miss_and_write_replaces() {
    let server = RedisServer::start();
    let redis = backend(&server, "").await;
    let hash = |key: &str| {
        assert_eq!(server.command(&["HSET", key, "field", "v"]), "(integer) 1");
    };

    hash("h");
    assert_eq!(redis.get("h").await.unwrap(), None);
    assert_eq!(redis.get_with_ttl("h").await.unwrap(), None);
    assert_eq!(redis.get_many(&["h"]).await.unwrap(), vec![None]);
    assert_eq!(redis.get_versioned("h").await.unwrap(), None);

    redis.set("h", "str".into(), None).await.unwrap();
    assert_eq!(redis.get("h").await.unwrap().as_deref(), Some(&b"str"[..]));
    assert_eq!(server.command(&["TYPE", "h"]), "string");

    hash("n");
    assert!(redis.set_if_absent("n", "nx".into(), None).await.unwrap());
    assert_eq!(redis.get("n").await.unwrap().as_deref(), Some(&b"nx"[..]));
    assert!(!redis
        .set_if_absent("n", "again".into(), None)
        .await
        .unwrap());

    hash("m");
    redis
        .set_many(&[("m", Bytes::from("many"))], None)
        .await
        .unwrap();
    assert_eq!(redis.get("m").await.unwrap().as_deref(), Some(&b"many"[..]));

    hash("c");
    redis
        .set_if_version("c", "cas".into(), &Version::absent(), None)
        .await
        .unwrap();
    assert_eq!(redis.get("c").await.unwrap().as_deref(), Some(&b"cas"[..]));
}

#[tokio::test]
async fn prefixed_keys_never_collide_with_unprefixed_ones() {
    let server = RedisServer::start();
    let bare = backend(&server, "").await;
    let app = backend(&server, "app:").await;
    let other = backend(&server, "other:").await;

    bare.set("k", "bare".into(), None).await.unwrap();
    app.set("k", "app".into(), None).await.unwrap();
    other.set("k", "other".into(), None).await.unwrap();
    assert_eq!(bare.get("k").await.unwrap().as_deref(), Some(&b"bare"[..]));
    assert_eq!(app.get("k").await.unwrap().as_deref(), Some(&b"app"[..]));
    assert_eq!(server.command(&["GET", "app:k"]), "app");
    assert_eq!(server.command(&["GET", "other:k"]), "other");

    // Everything under the app prefix, and nothing else; with no key
    // prefix, that would be the whole database, which is refused.
    app.set("j", "app".into(), None).await.unwrap();
    let refused = bare.clear_key_prefix().await.unwrap_err();
    assert_eq!(
        refused.kind(),
        cachekit_core::ErrorKind::InvalidInput,
        "{refused}"
    );
    assert_eq!(app.clear_key_prefix().await.unwrap(), 2);
    assert_eq!(app.get("k").await.unwrap(), None);
    assert_eq!(bare.get("k").await.unwrap().as_deref(), Some(&b"bare"[..]));
    assert_eq!(
        other.get("k").await.unwrap().as_deref(),
        Some(&b"other"[..])
    );
    assert!(!app.delete("k").await.unwrap());
    assert!(!bare.exists("app:j").await.unwrap());
}

#[tokio::test]
async fn delete_prefix_removes_exactly_its_keys_among_100k() {
    let server = RedisServer::start();
    let redis = backend(&server, "").await;

    // Glob characters in the prefix must match only themselves: unescaped,
    // `t[1]*?:` would also match the decoys `t1...`.
    let prefix = r"t[1]*?\:";
    let targets: Vec<String> = (0..1500).map(|i| format!("{prefix}{i}")).collect();
    let decoys: Vec<String> = (0..500)
        .flat_map(|i| {
            [
                format!("t1x:{i}"),
                format!("t[1]*?:{i}"),
                format!("T[1]*?\\:{i}"),
            ]
        })
        .collect();
    let others: Vec<String> = (0..100_000).map(|i| format!("other:{i}")).collect();
    let value = Bytes::from_static(b"v");
    for chunk in others
        .chunks(10_000)
        .chain(decoys.chunks(10_000))
        .chain(targets.chunks(10_000))
    {
        let entries: Vec<(&str, Bytes)> =
            chunk.iter().map(|k| (k.as_str(), value.clone())).collect();
        redis.set_many(&entries, None).await.unwrap();
    }
    let total = others.len() + decoys.len() + targets.len();
    assert_eq!(server.command(&["DBSIZE"]), format!("(integer) {total}"));

    assert_eq!(
        redis.delete_prefix(prefix).await.unwrap(),
        targets.len() as u64
    );
    assert_eq!(server.data_keys(0), (others.len() + decoys.len()) as u64);
    let sample: Vec<&str> = decoys.iter().map(String::as_str).step_by(7).collect();
    assert!(redis
        .get_many(&sample)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));
    assert_eq!(redis.delete_prefix(prefix).await.unwrap(), 0);
}
