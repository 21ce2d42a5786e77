//! The multi-process topologies (Sentinel, Cluster) and Unix sockets,
//! against real redis-server processes.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use cachekit_testkit::{RedisServer, SentinelSet};

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
fn plain_server_has_no_socket() {
    let server = RedisServer::start();
    assert!(server.socket_path().is_none());
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
    assert_eq!(primary.command(&["WAIT", "1", "5000"]), "(integer) 1");
    let replica = &set.data_nodes()[1];
    assert_eq!(replica.command(&["GET", "k"]), "v");

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
