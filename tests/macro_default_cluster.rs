//! `#[cached]`'s default backend uses the cluster named by
//! `CACHEKIT_REDIS_CLUSTER_NODES`: each key lands on its slot's primary.
//! (One test per file: the default is process-wide.)
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use cachekit::{cached, DefaultBackendStatus};
use cachekit_testkit::RedisCluster;

#[cached(namespace = "cluster", name = "lookup", ttl = 30)]
fn lookup(id: u64) -> u64 {
    id + 7
}

#[test]
fn the_default_backend_stores_each_key_on_its_slots_primary() {
    let cluster = RedisCluster::start();
    for var in ["CACHEKIT_REDIS_URL", "REDIS_URL", "REDIS_SENTINEL_HOST"] {
        std::env::remove_var(var);
    }
    std::env::set_var("CACHEKIT_REDIS_CLUSTER_NODES", cluster.seed_nodes());
    assert_eq!(
        cachekit::init_default_backend().unwrap(),
        DefaultBackendStatus::Redis
    );
    let mut primaries = std::collections::BTreeSet::new();
    for id in 0..30u64 {
        assert_eq!(lookup(id), id + 7);
        let key = cachekit::derive_key("cluster", "lookup", &(id,)).unwrap();
        let owner = cluster.primary_for_key(&key);
        assert_eq!(
            owner.command(&["EXISTS", &key]),
            "(integer) 1",
            "{}",
            cluster.logs()
        );
        primaries.insert(owner.port());
    }
    assert_eq!(primaries.len(), 3, "30 keys should reach every primary");
    assert_eq!(lookup(3), 10);
}
