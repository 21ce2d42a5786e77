//! `from_env` against a real server. The only test in this binary, because
//! the process environment is shared by every test thread.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit_core::Backend;
use cachekit_redis::{RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

#[tokio::test]
async fn from_env_reads_url_password_and_knobs_and_code_wins() {
    let server = RedisServer::builder().requirepass("env-secret").start();
    let other = RedisServer::start();
    std::env::set_var(
        "CACHEKIT_REDIS_URL",
        format!("{}/2", server.url_without_auth()),
    );
    std::env::set_var("REDIS_URL", other.url());
    std::env::set_var("REDIS_PASSWORD", "env-secret");
    std::env::set_var("CACHEKIT_REDIS_KEY_PREFIX", "envapp:");
    std::env::set_var("CACHEKIT_REDIS_POOL_SIZE", "3");

    let redis = RedisBackend::from_env().await.unwrap();
    redis.set("k", "v".into(), None).await.unwrap();
    // CACHEKIT_REDIS_URL won over REDIS_URL, with REDIS_PASSWORD and db 2.
    let keyspace = server.command(&["INFO", "keyspace"]);
    assert!(keyspace.contains("db2:keys=1"), "{keyspace}");
    assert_eq!(other.command(&["DBSIZE"]), "(integer) 0");
    assert_eq!(redis.key_prefix(), "envapp:");
    assert_eq!(redis.pool_state().max_size, 3);
    assert!(!format!("{redis:?}").contains("env-secret"));

    let config = RedisConfig::builder()
        .env()
        .pool_size(5)
        .key_prefix("code:")
        .build()
        .unwrap();
    assert_eq!((config.pool_size, config.key_prefix.as_str()), (5, "code:"));

    // Without CACHEKIT_REDIS_URL, REDIS_URL is used (that server has no
    // password, so REDIS_PASSWORD goes too).
    std::env::remove_var("CACHEKIT_REDIS_URL");
    std::env::remove_var("REDIS_PASSWORD");
    let redis = RedisBackend::from_env().await.unwrap();
    redis.set("k", "v".into(), None).await.unwrap();
    assert_eq!(other.command(&["GET", "envapp:k"]), "v");

    std::env::set_var("CACHEKIT_REDIS_POOL_SIZE", "many");
    let err = RedisBackend::from_env().await.unwrap_err();
    assert!(err.message().contains("CACHEKIT_REDIS_POOL_SIZE"), "{err}");
}
