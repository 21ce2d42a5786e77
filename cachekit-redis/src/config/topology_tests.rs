//! The URL and environment forms of the three topologies.

use std::collections::HashMap;
use std::path::PathBuf;

use cachekit_core::ErrorKind;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn hosts(url: &ParsedUrl) -> Vec<(&str, u16)> {
    url.hosts.iter().map(|(h, p)| (h.as_str(), *p)).collect()
}

#[test]
fn sentinel_urls_name_the_sentinels_the_service_and_the_db() {
    let u = parse_url("redis+sentinel://alice:p%40ss@s1:26380,s2,[::1]:26381/mymaster/2").unwrap();
    assert_eq!(
        u.topology,
        Topology::Sentinel {
            service: "mymaster".into()
        }
    );
    assert_eq!(
        hosts(&u),
        vec![("s1", 26380), ("s2", 26379), ("::1", 26381)]
    );
    assert_eq!(u.db, 2);
    assert!(!u.tls);
    assert_eq!(u.username.as_deref(), Some("alice"));
    assert_eq!(u.password.as_deref(), Some("p@ss"));
    let tls = parse_url("rediss+sentinel://s1/cache-primary").unwrap();
    assert!(tls.tls);
    assert_eq!(tls.db, 0);
}

#[test]
fn cluster_urls_list_seeds_and_allow_only_db_zero() {
    let u = parse_url("redis+cluster://:pw@n1:7000,n2:7001,n3").unwrap();
    assert_eq!(u.topology, Topology::Cluster);
    assert_eq!(hosts(&u), vec![("n1", 7000), ("n2", 7001), ("n3", 6379)]);
    assert_eq!(u.password.as_deref(), Some("pw"));
    assert!(parse_url("rediss+cluster://n1:7000/0").unwrap().tls);
    let err = parse_url("redis+cluster://n1:7000/3").err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("only database 0"), "{err}");
}

#[test]
fn unix_urls_take_a_path_and_a_db() {
    for scheme in ["unix", "redis+unix"] {
        let u = parse_url(&format!("{scheme}:///run/redis/redis.sock?db=3")).unwrap();
        assert_eq!(
            u.topology,
            Topology::Unix(PathBuf::from("/run/redis/redis.sock"))
        );
        assert_eq!(u.db, 3);
        assert!(u.hosts.is_empty());
    }
    let u = parse_url("unix:///tmp/r.sock?pass=s3cret&user=bob").unwrap();
    assert_eq!(u.password.as_deref(), Some("s3cret"));
    assert_eq!(u.username.as_deref(), Some("bob"));
    for bad in [
        "unix://relative/r.sock",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?timeout=1",
        "unix:///",
    ] {
        let err = parse_url(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} parsed"));
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}: {err}");
    }
}

#[test]
fn malformed_topology_urls_say_what_is_wrong_and_hide_the_password() {
    for (bad, says) in [
        ("redis+sentinel://s1:26379", "service"),
        ("redis+sentinel://s1:26379/", "service"),
        ("redis+sentinel://s1:26379/my master", "service"),
        ("redis+sentinel://:s3cret@s1:x/mymaster", "host 1"),
        ("redis+sentinel://:s3cret@s1,,s2/mymaster", "host 2"),
        ("redis+cluster://:s3cret@n1:7000,n2:notaport", "host 2"),
        ("redis+cluster://:s3/cret@n1:7000", "percent-encode"),
        ("redis+cluster://:s3cret@n1:7000?x=1", "query"),
        ("redis+sentinel://s1/mymaster/2/3", "more than"),
        ("redis+sentinel://s1/mymaster/db", "database index"),
        ("redis+cluster:n1:7000", "`://`"),
    ] {
        let err = parse_url(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} parsed"));
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}: {err}");
        assert!(err.message().contains(says), "{bad}: {err}");
        assert!(!err.message().contains("s3cret"), "{bad}: {err}");
        assert!(!err.message().contains("cret"), "{bad}: {err}");
    }
}

#[test]
fn topology_urls_are_redacted() {
    for (url, shown) in [
        (
            "redis+sentinel://alice:s3cret@s1:26379,s2:26380/mymaster/1",
            "redis+sentinel://alice:***@s1:26379,s2:26380/mymaster/1",
        ),
        (
            "rediss+cluster://:s3cret@n1:7000,n2:7001",
            "rediss+cluster://:***@n1:7000,n2:7001",
        ),
        ("redis+cluster://n1:7000", "redis+cluster://n1:7000"),
        (
            "unix:///run/redis.sock?db=1&pass=s3cret",
            "unix:///run/redis.sock?<hidden>",
        ),
    ] {
        assert_eq!(redact_url(url), shown);
    }
    for hidden in [
        "redis+cluster://:s3/cret@n1:7000",
        "redis+sentinel://:s3cret@s1:x/m",
        "unix://:s3cret@/run/redis.sock",
    ] {
        assert!(
            !redact_url(hidden).contains("cret"),
            "{}",
            redact_url(hidden)
        );
    }
}

#[test]
fn the_environment_names_a_cluster_or_sentinels_when_no_url_is_set() {
    let build = |pairs: &[(&str, &str)]| RedisConfig::builder().env().build_with_env(env(pairs));
    let c = build(&[("CACHEKIT_REDIS_CLUSTER_NODES", "n1:7000, n2:7001")]).unwrap();
    assert_eq!(c.url, "redis+cluster://n1:7000,n2:7001");
    let c = build(&[
        ("REDIS_SENTINEL_HOST", "s1"),
        ("REDIS_SENTINEL_PORT", "26380"),
    ])
    .unwrap();
    assert_eq!(c.url, "redis+sentinel://s1:26380/mymaster");
    let c = build(&[
        ("REDIS_SENTINEL_HOST", "s1,s2:26381,::1"),
        ("REDIS_SENTINEL_MASTER", "cache"),
        ("CACHEKIT_REDIS_SENTINEL_USERNAME", "watcher"),
        ("CACHEKIT_REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
        ("REDIS_PASSWORD", "data-secret"),
    ])
    .unwrap();
    assert_eq!(
        c.url,
        "redis+sentinel://s1:26379,s2:26381,[::1]:26379/cache"
    );
    assert_eq!(c.sentinel_username.as_deref(), Some("watcher"));
    assert_eq!(c.sentinel_password.as_deref(), Some("sentinel-secret"));
    assert_eq!(c.password.as_deref(), Some("data-secret"));
    let shown = format!("{c:?} {c}");
    assert!(!shown.contains("secret"), "{shown}");
    // A URL wins over both.
    let c = build(&[
        ("REDIS_URL", "redis://h:1"),
        ("REDIS_SENTINEL_HOST", "s1"),
        ("CACHEKIT_REDIS_CLUSTER_NODES", "n1:7000"),
    ])
    .unwrap();
    assert_eq!(c.url, "redis://h:1");
    // Errors name the variable the user wrote.
    let err = build(&[("REDIS_SENTINEL_HOST", "s1"), ("REDIS_SENTINEL_PORT", "x")]).unwrap_err();
    assert!(err.message().contains("REDIS_SENTINEL_PORT"), "{err}");
    let err = build(&[("CACHEKIT_REDIS_CLUSTER_NODES", "n1:7000,:x")]).unwrap_err();
    assert!(
        err.message().contains("CACHEKIT_REDIS_CLUSTER_NODES"),
        "{err}"
    );
}

#[test]
fn read_from_replicas_needs_a_cluster() {
    let err = RedisConfig::builder()
        .url("redis://h")
        .read_from_replicas(true)
        .build()
        .unwrap_err();
    assert!(err.message().contains("read_from_replicas"), "{err}");
    RedisConfig::builder()
        .url("redis+cluster://n1:7000")
        .read_from_replicas(true)
        .build()
        .unwrap();
}
