//! With `CACHEKIT_REDIS_URL` (or `REDIS_URL`) set, functions that name no
//! backend use that Redis behind an L1. (One test per file: the default is
//! resolved once per process.)
#![cfg(feature = "redis")]

use cachekit::cached;
use cachekit_testkit::RedisServer;

#[cached(namespace = "env", name = "lookup", ttl = 30)]
fn lookup(id: u64) -> u64 {
    id * 2
}

#[test]
fn redis_from_the_environment() {
    let server = RedisServer::start();
    // CACHEKIT_REDIS_URL wins over REDIS_URL, which points nowhere.
    std::env::set_var("CACHEKIT_REDIS_URL", server.url());
    std::env::set_var("REDIS_URL", "redis://127.0.0.1:1/0");

    // From a plain thread: the default is built without the caller's runtime.
    assert_eq!(std::thread::spawn(|| lookup(21)).join().unwrap(), 42);
    let key = cachekit::derive_key("env", "lookup", &(21u64,)).unwrap();
    assert_eq!(
        server.command(&["EXISTS", &key]),
        "(integer) 1",
        "{}",
        server.log()
    );
    let cache = lookup_cache().cache().unwrap();
    assert!(cache.l1().is_some());
    assert_eq!(cache.l2().unwrap().name(), "redis");
}
