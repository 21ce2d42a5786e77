//! The RedisServer harness against real redis-server processes.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cachekit_testkit::RedisServer;

/// Sends one inline PING on a fresh connection and returns the first reply line.
fn raw_ping(server: &RedisServer, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(server.addr())?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn plain_server_answers_ping_and_commands() {
    let server = RedisServer::start();
    assert_eq!(server.host(), "127.0.0.1");
    assert_ne!(server.port(), 0);
    assert_eq!(
        raw_ping(&server, Duration::from_secs(5)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.url_without_auth(), server.url());
    assert_eq!(
        server.url_with_db(3),
        format!("redis://127.0.0.1:{}/3", server.port())
    );

    assert_eq!(server.command(&["SET", "k", "v"]), "OK");
    assert_eq!(server.command(&["GET", "k"]), "v");
    assert_eq!(server.command(&["GET", "missing"]), "(nil)");
    assert_eq!(server.command(&["INCR", "n"]), "(integer) 1");
    assert_eq!(server.command(&["HSET", "h", "f", "x"]), "(integer) 1");
    assert!(server
        .command(&["GET", "h"])
        .starts_with("(error) WRONGTYPE"));
    assert_eq!(server.command(&["RPUSH", "l", "a", "b"]), "(integer) 2");
    assert_eq!(server.command(&["LRANGE", "l", "0", "-1"]), "a\nb");
    server.flushall();
    assert_eq!(server.command(&["DBSIZE"]), "(integer) 0");
}

#[test]
fn harness_settings_are_applied() {
    let server = RedisServer::builder().config("maxmemory", "12mb").start();
    assert_eq!(
        server.command(&["CONFIG", "GET", "bind"]),
        "bind\n127.0.0.1"
    );
    assert_eq!(server.command(&["CONFIG", "GET", "save"]), "save\n");
    assert_eq!(
        server.command(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nno"
    );
    assert_eq!(
        server.command(&["CONFIG", "GET", "maxmemory"]),
        "maxmemory\n12582912"
    );
    assert!(
        server.log().contains("Ready to accept connections"),
        "log: {}",
        server.log()
    );
}

#[test]
fn extra_arg_reaches_the_command_line() {
    let server = RedisServer::builder()
        .extra_arg("--maxclients")
        .extra_arg("77")
        .start();
    assert_eq!(
        server.command(&["CONFIG", "GET", "maxclients"]),
        "maxclients\n77"
    );
}

#[test]
fn requirepass_rejects_unauthenticated_commands() {
    let server = RedisServer::builder().requirepass("p@ss word/1").start();
    assert!(
        raw_ping(&server, Duration::from_secs(5))
            .unwrap()
            .starts_with("-NOAUTH"),
        "an unauthenticated PING must be refused"
    );
    // command() logs in first.
    assert_eq!(server.command(&["PING"]), "PONG");
    assert_eq!(
        server.url(),
        format!("redis://:p%40ss%20word%2F1@127.0.0.1:{}", server.port())
    );
    assert_eq!(
        server.url_without_auth(),
        format!("redis://127.0.0.1:{}", server.port())
    );
    assert!(
        !format!("{server:?}").contains("p@ss"),
        "Debug leaks the password"
    );
}

#[test]
fn requirepass_accepts_auth() {
    let server = RedisServer::builder().requirepass("secret").start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("-WRONGPASS"));
    stream
        .write_all(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*1\r\n$4\r\nPING\r\n")
        .unwrap();
    let mut got = String::new();
    while !got.ends_with("+PONG\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert_ne!(n, 0, "connection closed after AUTH; got {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(got, "+OK\r\n+PONG\r\n");
}

#[test]
fn command_reports_a_refused_login() {
    let server = RedisServer::builder().requirepass("old").start();
    assert_eq!(
        server.command(&["CONFIG", "SET", "requirepass", "new"]),
        "OK"
    );
    assert!(server.command(&["PING"]).starts_with("(error) WRONGPASS"));
}

#[test]
fn acl_user_works_and_default_user_stays_open() {
    let server = RedisServer::builder().acl_user("app", "pw:1").start();
    assert_eq!(server.command(&["ACL", "WHOAMI"]), "app");
    assert_eq!(server.command(&["SET", "k", "v"]), "OK");
    assert_eq!(
        server.url(),
        format!("redis://app:pw%3A1@127.0.0.1:{}", server.port())
    );
    // The default user still needs no password.
    assert_eq!(
        raw_ping(&server, Duration::from_secs(5)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn acl_user_with_requirepass_locks_the_default_user() {
    let server = RedisServer::builder()
        .requirepass("default-pw")
        .acl_user("app", "app-pw")
        .start();
    assert!(raw_ping(&server, Duration::from_secs(5))
        .unwrap()
        .starts_with("-NOAUTH"));
    assert_eq!(server.command(&["ACL", "WHOAMI"]), "app");
    assert!(server.url().starts_with("redis://app:app-pw@"));
}

#[test]
fn pause_stops_answers_until_resume() {
    let server = RedisServer::start();
    server.pause();
    assert!(server.is_running(), "a paused server is still running");
    let err = server
        .try_command(&["PING"], Duration::from_millis(300))
        .expect_err("a paused server must not answer");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "unexpected error {err:?}"
    );
    server.resume();
    assert_eq!(server.command(&["PING"]), "PONG");
    // resume() on a running server changes nothing.
    server.resume();
    assert_eq!(server.command(&["PING"]), "PONG");
}

#[test]
fn restart_keeps_the_port_and_loses_the_data() {
    let server = RedisServer::start();
    let (port, first_pid) = (server.port(), server.pid());
    assert_eq!(server.command(&["SET", "k", "v"]), "OK");
    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert!(
        !process_exists(first_pid),
        "the old process survived the restart"
    );
    assert_eq!(
        raw_ping(&server, Duration::from_secs(5)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(server.command(&["GET", "k"]), "(nil)");
}

#[test]
fn stop_then_restart() {
    let server = RedisServer::builder().requirepass("pw").start();
    let pid = server.pid();
    server.stop();
    assert!(!server.is_running());
    assert!(!process_exists(pid));
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "a stopped server still accepts"
    );
    server.stop();
    server.restart();
    assert!(server.is_running());
    assert_eq!(server.command(&["PING"]), "PONG");
}

#[tokio::test]
async fn while_paused_runs_the_future_on_a_paused_server_then_resumes_it() {
    let server = RedisServer::start();
    let answered = server
        .while_paused(async {
            server
                .try_command(&["PING"], Duration::from_millis(300))
                .is_ok()
        })
        .await;
    assert!(!answered, "the server answered while paused");
    assert_eq!(server.command(&["PING"]), "PONG");
}

#[test]
fn restart_of_a_paused_server() {
    let server = RedisServer::start();
    server.pause();
    server.restart();
    assert_eq!(server.command(&["PING"]), "PONG");
}

#[test]
fn is_running_notices_a_shutdown() {
    let server = RedisServer::start();
    // SHUTDOWN closes the connection without a reply.
    let _ = server.try_command(&["SHUTDOWN", "NOSAVE"], Duration::from_secs(5));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "server ignored SHUTDOWN"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn drop_kills_the_process() {
    let server = RedisServer::start();
    let pid = server.pid();
    assert!(process_exists(pid));
    drop(server);
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its RedisServer"
    );
}

#[test]
fn drop_kills_a_paused_process() {
    let server = RedisServer::start();
    let pid = server.pid();
    server.pause();
    drop(server);
    assert!(
        !process_exists(pid),
        "paused redis-server {pid} outlived its RedisServer"
    );
}

#[test]
fn bad_config_panics_with_the_log() {
    let result = std::panic::catch_unwind(|| {
        RedisServer::builder()
            .config("no-such-directive", "1")
            .start()
    });
    let panic = result.expect_err("a bad directive must fail the start");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("no-such-directive"),
        "message without the log: {message}"
    );
}

#[test]
fn servers_run_side_by_side() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(server.command(&["SET", "who", &i.to_string()]), "OK");
    }
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(server.command(&["GET", "who"]), i.to_string());
    }
}
