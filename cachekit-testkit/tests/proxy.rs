//! LoopbackProxy modes against a real redis-server.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cachekit_testkit::{LoopbackProxy, ProxyMode, RedisServer};

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn connect(proxy: &LoopbackProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    stream
}

/// Reads until `expected` has arrived in full (or panics on EOF/timeout).
fn read_exactly(stream: &mut TcpStream, expected: &[u8]) {
    let mut buf = vec![0u8; expected.len()];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(expected)
    );
}

fn ping(stream: &mut TcpStream) {
    stream.write_all(PING).unwrap();
    read_exactly(stream, b"+PONG\r\n");
}

/// Asserts that nothing arrives within a short window and the connection stays open.
fn assert_silent(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(SHORT)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("the proxy closed a stalled connection"),
        Ok(n) => panic!(
            "a stalled proxy forwarded {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("a stalled connection failed: {e}"),
    }
    stream.set_read_timeout(Some(LONG)).unwrap();
}

/// Asserts the peer closed the connection (EOF or reset) without answering.
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Ok(n) => panic!(
            "expected a closed connection, read {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("expected a closed connection, got {e}"),
    }
}

fn await_connections(proxy: &LoopbackProxy, n: usize) {
    let deadline = Instant::now() + LONG;
    while proxy.connections() != n {
        assert!(
            Instant::now() < deadline,
            "connections() stayed {} instead of {n}",
            proxy.connections()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pass_forwards_both_ways_and_counts_connections() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    assert_eq!(proxy.mode(), ProxyMode::Pass);
    assert_ne!(proxy.port(), server.port());
    assert_eq!(proxy.connections(), 0);
    let mut a = connect(&proxy);
    let mut b = connect(&proxy);
    ping(&mut a);
    ping(&mut b);
    await_connections(&proxy, 2);
    // The same server is behind the proxy.
    a.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\nproxied\r\n")
        .unwrap();
    read_exactly(&mut a, b"+OK\r\n");
    assert_eq!(server.command(&["GET", "k"]), "proxied");
    drop(a);
    await_connections(&proxy, 1);
    drop(b);
    await_connections(&proxy, 0);
}

#[test]
fn stall_holds_requests_until_pass() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut stream = connect(&proxy);
    ping(&mut stream);

    proxy.set_mode(ProxyMode::Stall);
    stream.write_all(PING).unwrap();
    assert_silent(&mut stream);
    // A connection opened while stalled is held too.
    let mut late = connect(&proxy);
    late.write_all(PING).unwrap();
    assert_silent(&mut late);
    assert_eq!(proxy.connections(), 2);

    proxy.set_mode(ProxyMode::Pass);
    read_exactly(&mut stream, b"+PONG\r\n");
    read_exactly(&mut late, b"+PONG\r\n");
    ping(&mut stream);
}

#[test]
fn stall_holds_replies_until_pass() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut sub = connect(&proxy);
    sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
        .unwrap();
    read_exactly(&mut sub, b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");

    proxy.set_mode(ProxyMode::Stall);
    assert_eq!(server.command(&["PUBLISH", "ch", "hi"]), "(integer) 1");
    assert_silent(&mut sub);

    proxy.set_mode(ProxyMode::Pass);
    read_exactly(&mut sub, b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
}

#[test]
fn drop_closes_current_and_new_connections() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut stream = connect(&proxy);
    ping(&mut stream);

    proxy.set_mode(ProxyMode::Drop);
    assert_eq!(
        proxy.connections(),
        0,
        "set_mode(Drop) returned with connections open"
    );
    assert_closed(&mut stream);

    // New connections are accepted by the kernel but closed at once.
    if let Ok(mut fresh) = TcpStream::connect(proxy.addr()) {
        fresh.set_read_timeout(Some(LONG)).unwrap();
        let _ = fresh.write_all(PING);
        assert_closed(&mut fresh);
    }

    proxy.set_mode(ProxyMode::Pass);
    let mut again = connect(&proxy);
    ping(&mut again);
}

#[test]
fn drop_then_pass_still_cuts_old_connections() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut stream = connect(&proxy);
    ping(&mut stream);
    proxy.set_mode(ProxyMode::Drop);
    proxy.set_mode(ProxyMode::Pass);
    stream.set_read_timeout(Some(LONG)).unwrap();
    let _ = stream.write_all(PING);
    assert_closed(&mut stream);
}

#[test]
fn server_death_closes_the_client_side() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut stream = connect(&proxy);
    ping(&mut stream);
    server.stop();
    assert_closed(&mut stream);
    await_connections(&proxy, 0);
    // With the server gone the proxy accepts, fails upstream and closes.
    let mut fresh = connect(&proxy);
    assert_closed(&mut fresh);
    server.restart();
    let mut again = connect(&proxy);
    ping(&mut again);
}

#[test]
fn dropping_the_proxy_closes_everything() {
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let addr = proxy.addr();
    let mut stream = connect(&proxy);
    ping(&mut stream);
    drop(proxy);
    assert_closed(&mut stream);
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener outlived the proxy"
    );
}

#[tokio::test]
async fn works_from_a_current_thread_runtime() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = RedisServer::start();
    let proxy = LoopbackProxy::start(server.addr());
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(PING).await.unwrap();
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    proxy.set_mode(ProxyMode::Drop);
    assert_eq!(stream.read(&mut buf).await.unwrap_or(0), 0);
}
