//! TLS servers: generated certificates and real handshakes with `openssl s_client`.

#![allow(clippy::unwrap_used)] // Tests may unwrap.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_testkit::RedisServer;

/// Runs `openssl s_client` against the server with PING and QUIT on stdin
/// and returns what it printed; the server closes after QUIT, so s_client
/// ends by itself. Bounded by a deadline in case a handshake hangs.
fn s_client(server: &RedisServer, ca: &Path, client_cert: Option<(&Path, &Path)>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .arg("-CAfile")
        .arg(ca);
    if let Some((cert, key)) = client_cert {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"PING\r\nQUIT\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "openssl s_client did not finish; server log:\n{}",
                server.log()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn tls_server_serves_the_generated_certificates() {
    let server = RedisServer::builder().tls().start();
    for path in [
        server.ca_cert_path(),
        server.client_cert_path(),
        server.client_key_path(),
        server.other_ca_cert_path(),
    ] {
        let pem = std::fs::read_to_string(path).unwrap();
        assert!(
            pem.starts_with("-----BEGIN "),
            "{} is not PEM",
            path.display()
        );
    }
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}", server.port())
    );

    let out = s_client(&server, server.ca_cert_path(), None);
    assert!(
        out.contains("+PONG"),
        "no PONG over TLS:\n{out}\nlog:\n{}",
        server.log()
    );
}

#[test]
fn tls_handshake_with_an_unrelated_ca_fails() {
    let server = RedisServer::builder().tls().start();
    let out = s_client(&server, server.other_ca_cert_path(), None);
    assert!(
        !out.contains("+PONG"),
        "an unrelated CA was accepted:\n{out}"
    );
    assert!(
        out.contains("verify error"),
        "expected a verification error:\n{out}"
    );
}

#[test]
fn tls_plain_tcp_is_not_served() {
    let server = RedisServer::builder().tls().requirepass("pw").start();
    assert!(server.url().starts_with("rediss://:pw@127.0.0.1:"));
    let err = server
        .try_command(&["PING"], Duration::from_secs(1))
        .expect_err("command() cannot speak TLS");
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn tls_client_certificate_can_be_required() {
    let server = RedisServer::builder().tls_require_client_cert().start();
    let without = s_client(&server, server.ca_cert_path(), None);
    assert!(
        !without.contains("+PONG"),
        "served a client without a certificate:\n{without}"
    );
    assert!(
        without.contains("certificate required"),
        "expected the server's alert:\n{without}"
    );
    let with = s_client(
        &server,
        server.ca_cert_path(),
        Some((server.client_cert_path(), server.client_key_path())),
    );
    assert!(
        with.contains("+PONG"),
        "refused the CA-signed client certificate:\n{with}"
    );
}

#[test]
fn tls_server_restarts_and_is_killed_on_drop() {
    let server = RedisServer::builder().tls().start();
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    let out = s_client(&server, server.ca_cert_path(), None);
    assert!(out.contains("+PONG"), "no PONG after restart:\n{out}");
    let pid = server.pid();
    drop(server);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
#[should_panic(expected = "needs a server started with RedisServer::builder().tls()")]
fn cert_paths_need_tls() {
    let server = RedisServer::start();
    let _ = server.ca_cert_path();
}
