//! `#[cached]`'s default backend finds the primary through the sentinels
//! named by `REDIS_SENTINEL_HOST` / `REDIS_SENTINEL_PORT` /
//! `REDIS_SENTINEL_MASTER`, with the sentinels' own password from
//! `CACHEKIT_REDIS_SENTINEL_PASSWORD` and the data nodes' from
//! `REDIS_PASSWORD`. (One test per file: the default is process-wide.)
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit::{cached, DefaultBackendStatus};
use cachekit_testkit::SentinelSet;

#[cached(namespace = "sentinel", name = "lookup", ttl = 30)]
fn lookup(id: u64) -> u64 {
    id * 10
}

#[test]
fn the_default_backend_reaches_the_primary_through_the_sentinels() {
    let set = SentinelSet::builder()
        .master_name("cache")
        .requirepass("data-pw")
        .sentinel_password("sentinel-pw")
        .start();
    let first = set.sentinel_addrs()[0];
    for var in [
        "CACHEKIT_REDIS_URL",
        "REDIS_URL",
        "CACHEKIT_REDIS_CLUSTER_NODES",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("REDIS_SENTINEL_HOST", first.ip().to_string());
    std::env::set_var("REDIS_SENTINEL_PORT", first.port().to_string());
    std::env::set_var("REDIS_SENTINEL_MASTER", "cache");
    std::env::set_var("CACHEKIT_REDIS_SENTINEL_PASSWORD", "sentinel-pw");
    std::env::set_var("REDIS_PASSWORD", "data-pw");

    assert_eq!(
        cachekit::init_default_backend().unwrap(),
        DefaultBackendStatus::Redis
    );
    assert_eq!(lookup(4), 40);
    let key = cachekit::derive_key("sentinel", "lookup", &(4u64,)).unwrap();
    let primary = set.primary();
    assert_eq!(
        primary.command(&["EXISTS", &key]),
        "(integer) 1",
        "{}",
        set.logs()
    );
    assert_eq!(lookup(4), 40);
    assert_eq!(lookup_cache().stats().hits, 1);
}
