//! The multi-process topologies (Sentinel, Cluster) and Unix sockets,
//! against real redis-server processes.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use cachekit_testkit::{RedisCluster, RedisServer, SentinelSet};

fn unix_ping(server: &RedisServer) -> String {
    let mut stream = UnixStream::connect(server.socket_path().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn unix_socket_answers_ping_and_survives_restart() {
    let server = RedisServer::builder().unix_socket().start();
    let path = server.socket_path().unwrap().to_owned();
    assert_eq!(server.unix_url(), format!("unix://{}", path.display()));
    assert_eq!(unix_ping(&server), "+PONG\r\n");
    // TCP stays on.
    assert_eq!(server.command(&["PING"]), "PONG");
    assert_eq!(
        server.command(&["CONFIG", "GET", "unixsocketperm"]),
        "unixsocketperm\n700"
    );
    server.restart();
    assert_eq!(unix_ping(&server), "+PONG\r\n");
}

#[test]
fn unix_url_carries_credentials_and_plain_servers_have_no_socket() {
    let server = RedisServer::builder()
        .unix_socket()
        .requirepass("p@ss word")
        .start();
    let path = server.socket_path().unwrap().display().to_string();
    assert_eq!(
        server.unix_url(),
        format!("unix://{path}?pass=p%40ss%20word")
    );
    assert!(unix_ping(&server).starts_with("-NOAUTH"));
    assert!(RedisServer::start().socket_path().is_none());
}

/// Every `ip` field in a rendered SENTINEL listing.
fn listed_ips(listing: &str) -> Vec<String> {
    let lines: Vec<&str> = listing.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "ip")
        .map(|pair| pair[1].to_owned())
        .collect()
}

#[test]
fn sentinel_set_replicates_and_fails_over_after_a_kill() {
    let started = Instant::now();
    let set = SentinelSet::start();
    eprintln!("sentinel set started in {:?}", started.elapsed());
    assert_eq!(set.master_name(), "mymaster");
    let primary = set.primary();
    assert_eq!(primary.addr(), set.data_nodes()[0].addr());
    assert_eq!(primary.command(&["SET", "k", "v"]), "OK");
    wait_replicated(primary);
    let replica = &set.data_nodes()[1];
    assert_eq!(replica.command(&["GET", "k"]), "v");
    assert_eq!(set.sentinel_addrs().len(), 3);
    assert_eq!(
        set.url(),
        format!("redis+sentinel://{}/mymaster", set.sentinel_hosts())
    );
    // Every address the sentinels hand out is loopback.
    let sentinel = &set.sentinels()[0];
    let others = sentinel.command(&["SENTINEL", "SENTINELS", "mymaster"]);
    let replicas = sentinel.command(&["SENTINEL", "REPLICAS", "mymaster"]);
    let ips = [listed_ips(&others), listed_ips(&replicas)].concat();
    assert_eq!(ips.len(), 3, "{others}\n{replicas}");
    assert!(ips.iter().all(|ip| ip == "127.0.0.1"), "{ips:?}");

    let killed = Instant::now();
    let old = set.kill_primary();
    let new = set.wait_for_failover(old);
    eprintln!("kill -> wait_for_failover: {:?}", killed.elapsed());
    assert_ne!(new, old);
    assert_eq!(set.primary().addr(), new);
    assert_eq!(set.primary().command(&["GET", "k"]), "v");
    assert_eq!(set.primary().command(&["SET", "k2", "v2"]), "OK");

    let restarted = Instant::now();
    set.restart_node(old);
    eprintln!("restart_node: {:?}", restarted.elapsed());
    let killed = Instant::now();
    let old2 = set.kill_primary();
    let new2 = set.wait_for_failover(old2);
    eprintln!("second kill -> wait_for_failover: {:?}", killed.elapsed());
    assert_eq!(new2, old);
}

#[test]
fn sentinel_passwords_and_a_paused_sentinel() {
    let set = SentinelSet::builder()
        .replicas(2)
        .master_name("cache")
        .requirepass("data p@ss")
        .sentinel_password("sentinel-pass")
        .start();
    assert_eq!(
        set.url(),
        format!(
            "redis+sentinel://:data%20p%40ss@{}/cache",
            set.sentinel_hosts()
        )
    );
    let debug = format!("{set:?}");
    assert!(
        !debug.contains("p@ss") && !debug.contains("sentinel-pass"),
        "{debug}"
    );
    let sentinel = &set.sentinels()[0];
    let mut raw = TcpStream::connect(sentinel.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"-NOAUTH"),
        "sentinel without its password"
    );
    assert_eq!(sentinel.command(&["PING"]), "PONG", "command() logs in");
    let data_node = &set.data_nodes()[1];
    assert_eq!(
        data_node.url(),
        format!("redis://:data%20p%40ss@{}", data_node.addr())
    );
    assert_eq!(set.data_nodes().len(), 3);
    wait_replicated(set.primary());

    // Two of three sentinels are a quorum and a majority: the failover
    // happens, and wait_for_failover does not wait on the paused one.
    sentinel.pause();
    let old = set.kill_primary();
    let new = set.wait_for_failover(old);
    assert_ne!(new, old);
    sentinel.resume();
    assert_eq!(set.primary().command(&["SET", "k", "v"]), "OK");
}

#[test]
fn sentinel_graceful_failover_twice() {
    let set = SentinelSet::start();
    let first = set.primary().addr();
    let t = Instant::now();
    let second = set.failover();
    eprintln!("failover 1: {:?}", t.elapsed());
    let t = Instant::now();
    let third = set.failover();
    eprintln!("failover 2: {:?}", t.elapsed());
    assert_ne!(first, second);
    assert_eq!(third, first);
}

#[test]
fn cluster_starts_routes_keys_and_promotes_a_replica() {
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.primaries().len(), 3);
    assert_eq!(cluster.seed_nodes().split(',').count(), 3);
    assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));

    let keys = cluster.keys_on_distinct_primaries(2);
    assert_eq!(keys.len(), 6);
    let mut owners = std::collections::BTreeSet::new();
    for key in &keys {
        let slot = cluster.key_slot(key);
        let primary = cluster.primary_for_key(key);
        owners.insert(primary.addr());
        // The local hash agrees with the server's.
        assert_eq!(
            primary.command(&["CLUSTER", "KEYSLOT", key]),
            format!("(integer) {slot}")
        );
        // The owner takes the write; any other primary redirects it.
        assert_eq!(primary.command(&["SET", key, "v"]), "OK");
        let other = cluster
            .primaries()
            .into_iter()
            .find(|p| p.addr() != primary.addr())
            .unwrap();
        let moved = other.command(&["GET", key]);
        assert_eq!(moved, format!("(error) MOVED {slot} {}", primary.addr()));
    }
    assert_eq!(owners.len(), 3);

    let key = &keys[0];
    // Replication is asynchronous: the write must reach the replica before
    // the kill for the promoted replica to have it.
    wait_replicated(cluster.primary_for_key(key));
    let killed = Instant::now();
    let old = cluster.kill_primary_for_key(key);
    cluster.wait_for_promotion(old);
    eprintln!("kill -> wait_for_promotion: {:?}", killed.elapsed());
    let new = cluster.primary_for_key(key);
    assert_ne!(new.addr(), old);
    assert_eq!(new.command(&["ROLE"]).lines().next(), Some("master"));
    assert_eq!(new.command(&["GET", key]), "v");
    assert_eq!(new.command(&["SET", key, "w"]), "OK");

    let restarted = Instant::now();
    cluster.restart_node(old);
    eprintln!("restart_node: {:?}", restarted.elapsed());
    assert_eq!(
        cluster.node(old).command(&["ROLE"]).lines().next(),
        Some("slave")
    );
}

#[test]
fn cluster_slot_migration_moves_keys_under_asks() {
    let cluster = RedisCluster::builder().requirepass("p@ss word").start();
    assert!(cluster
        .url()
        .starts_with("redis+cluster://:p%40ss%20word@127.0.0.1:"));
    let slot = cluster.key_slot("user:1");
    let keys = cluster.keys_in_slot(slot, 5);
    let from = cluster.primary_for_slot(slot);
    for key in &keys {
        assert_eq!(cluster.key_slot(key), slot);
        assert_eq!(from.command(&["SET", key, key]), "OK");
    }
    let to = cluster
        .primaries()
        .into_iter()
        .find(|p| p.addr() != from.addr())
        .unwrap();
    let migration = cluster
        .slot_migration(slot, to.addr())
        .keys_per_batch(1)
        .pause_between_batches(Duration::from_millis(300))
        .spawn();
    // Mid-migration, a key already moved is answered with ASK by the source.
    let asked = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        keys.iter()
            .any(|k| from.command(&["GET", k]).starts_with("(error) ASK "))
    });
    migration.join().unwrap();
    assert!(asked, "no ASK seen during a slow migration");
    assert_eq!(cluster.primary_for_slot(slot).addr(), to.addr());
    assert_eq!(
        from.command(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]),
        "(integer) 0"
    );
    for key in &keys {
        assert_eq!(to.command(&["GET", key]), *key);
        assert!(from.command(&["GET", key]).starts_with("(error) MOVED "));
    }
    cluster.flushall();
    assert!(cluster
        .command_on_primaries(&["DBSIZE"])
        .iter()
        .all(|n| n == "(integer) 0"));
}

/// Blocks until every replica of `primary` has acknowledged all it was
/// sent (`INFO replication`: each `slaveN` offset equals
/// `master_repl_offset`). `WAIT` cannot say it here: it counts the writes
/// of its own connection, and each `command` opens a new one.
fn wait_replicated(primary: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = primary.command(&["INFO", "replication"]);
        let field = |line: &str, name: &str| -> Option<u64> {
            line.split(',')
                .find_map(|part| part.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        let sent = info.lines().find_map(|l| field(l, "master_repl_offset:"));
        let acked: Vec<Option<u64>> = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("offset="))
            .map(|l| field(l.split_once(':').map_or("", |(_, rest)| rest), "offset="))
            .collect();
        if let Some(sent) = sent {
            if !acked.is_empty() && acked.iter().all(|a| *a == Some(sent)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replicas of {} did not catch up: {info}",
            primary.addr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
