//! Connecting: URL forms, host names and IPv6 literals, credentials,
//! databases, TLS, TCP keepalive, and the errors users hit, against real
//! servers.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::Duration;

use cachekit_core::{Backend, Error, ErrorKind};
use cachekit_redis::{Protocol, RedisBackend, RedisConfig};
use cachekit_testkit::RedisServer;

async fn connect(url: &str) -> cachekit_core::Result<RedisBackend> {
    RedisBackend::new(RedisConfig::builder().url(url).build()?).await
}

async fn round_trip(backend: &RedisBackend, server: &RedisServer) {
    backend
        .set("round-trip", "v".into(), None)
        .await
        .unwrap_or_else(|e| panic!("set failed: {e}\n{}", server.log()));
    let got = backend.get("round-trip").await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"v"[..]), "{}", server.log());
}

/// Neither form of the error may show `secret`.
fn assert_hidden(err: &Error, secret: &str) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(secret), "secret leaked: {shown}");
}

fn expect_err(result: cachekit_core::Result<RedisBackend>) -> Error {
    match result {
        Ok(backend) => panic!("expected an error, got {backend:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn plain_url_with_db_selects_that_database() {
    let server = RedisServer::start();
    for db in 0..16u32 {
        let backend = connect(&server.url_with_db(db)).await.unwrap();
        backend
            .set("marker", db.to_string().into(), None)
            .await
            .unwrap();
    }
    // Every database holds its own marker: each backend selected its index.
    let keyspace = server.command(&["INFO", "keyspace"]);
    for db in 0..16 {
        assert!(keyspace.contains(&format!("db{db}:keys=1")), "{keyspace}");
    }
    let db7 = connect(&server.url_with_db(7)).await.unwrap();
    assert_eq!(db7.get("marker").await.unwrap().as_deref(), Some(&b"7"[..]));
}

#[tokio::test]
async fn db_index_beyond_the_server_is_a_config_error() {
    let server = RedisServer::start();
    let err = expect_err(connect(&server.url_with_db(16)).await);
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("`db`"), "{err}");
}

#[tokio::test]
async fn legacy_password_and_resp3_work() {
    let server = RedisServer::builder().requirepass("pa55word").start();
    assert!(server.url().contains(":pa55word@"));
    let backend = connect(&server.url()).await.unwrap();
    round_trip(&backend, &server).await;
    assert!(!format!("{backend:?}").contains("pa55word"));

    let resp3 = RedisConfig::builder()
        .url(server.url())
        .protocol(Protocol::Resp3)
        .build()
        .unwrap();
    let backend = RedisBackend::new(resp3).await.unwrap();
    round_trip(&backend, &server).await;
}

#[tokio::test]
async fn password_field_is_used_when_the_url_has_none() {
    let server = RedisServer::builder().requirepass("from-field").start();
    let config = RedisConfig::builder()
        .url(server.url_without_auth())
        .password("from-field")
        .build()
        .unwrap();
    let backend = RedisBackend::new(config).await.unwrap();
    round_trip(&backend, &server).await;
}

#[tokio::test]
async fn percent_encoded_password() {
    let password = "p@ss:w/rd%#?&=+ é";
    let server = RedisServer::builder().requirepass(password).start();
    assert!(server.url().contains("%40"), "{}", server.url());
    let backend = connect(&server.url()).await.unwrap();
    round_trip(&backend, &server).await;
}

#[tokio::test]
async fn acl_user() {
    let server = RedisServer::builder()
        .acl_user("alice", "wonder-land")
        .start();
    assert!(server.url().contains("alice:wonder-land@"));
    let backend = connect(&server.url()).await.unwrap();
    round_trip(&backend, &server).await;
    assert_eq!(
        server.command(&["GET", "round-trip"]),
        "v",
        "written by the ACL user"
    );

    let wrong = format!("redis://alice:not-it@127.0.0.1:{}", server.port());
    let err = expect_err(connect(&wrong).await);
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.message().contains("`alice`"), "{err}");
    assert!(err
        .message()
        .contains(&format!("127.0.0.1:{}", server.port())));
    assert_hidden(&err, "not-it");
}

#[tokio::test]
async fn missing_password_is_noauth() {
    let server = RedisServer::builder().requirepass("hunter2").start();
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let config = RedisConfig::builder()
            .url(server.url_without_auth())
            .protocol(protocol)
            .build()
            .unwrap();
        let err = expect_err(RedisBackend::new(config).await);
        assert_eq!(err.kind(), ErrorKind::Auth, "{protocol}: {err}");
        assert!(err.message().contains("NOAUTH"), "{protocol}: {err}");
        assert!(err.message().contains("CACHEKIT_REDIS_URL"), "{err}");
        assert!(
            err.message()
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{err}"
        );
    }
    // With a database index the handshake's SELECT meets NOAUTH first.
    let err = expect_err(connect(&format!("{}/3", server.url_without_auth())).await);
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.message().contains("NOAUTH"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_wrongpass_and_never_shown() {
    let server = RedisServer::builder().requirepass("right-one").start();
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let url = format!("redis://:wr0ng-pa55@127.0.0.1:{}/0", server.port());
        let config = RedisConfig::builder()
            .url(&url)
            .protocol(protocol)
            .build()
            .unwrap();
        assert!(!format!("{config:?} {config}").contains("wr0ng-pa55"));
        let err = expect_err(RedisBackend::new(config).await);
        assert_eq!(err.kind(), ErrorKind::Auth, "{protocol}: {err}");
        assert!(err.message().contains("WRONGPASS"), "{protocol}: {err}");
        assert_hidden(&err, "wr0ng-pa55");
        assert_hidden(&err, "right-one");
    }
}

#[tokio::test]
async fn password_for_a_server_without_one_says_so() {
    let server = RedisServer::start();
    let url = format!("redis://:unneeded-pw@127.0.0.1:{}", server.port());
    let err = expect_err(connect(&url).await);
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(
        err.message().contains("accepts clients without any"),
        "{err}"
    );
    assert_hidden(&err, "unneeded-pw");
}

#[tokio::test]
async fn connection_refused_names_host_port_and_bind() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://:refused-pw@127.0.0.1:{port}/0");
    let err = expect_err(connect(&url).await);
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.message().contains("`bind`"), "{err}");
    assert!(err.message().contains("refused"), "{err}");
    assert_hidden(&err, "refused-pw");
}

#[tokio::test]
async fn malformed_url_fails_before_connecting() {
    for url in [
        "redis://:pw-x@127.0.0.1:6379/zero",
        "http://127.0.0.1",
        "redis://",
    ] {
        let mut config = RedisConfig::default();
        config.url = url.to_owned();
        let err = expect_err(RedisBackend::new(config).await);
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
        assert!(
            err.message().contains("`url`") || err.message().contains("`db`"),
            "{url}: {err}"
        );
        assert_hidden(&err, "pw-x");
    }
}

#[tokio::test]
async fn lazy_backend_starts_without_server_and_fails_fast_per_operation() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = RedisConfig::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        // Long enough that a bare checkout timeout would show as one.
        .checkout_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let backend = RedisBackend::connect_lazy(config).unwrap();
    let err = backend.get("k").await.unwrap_err();
    // The refusal itself, not a checkout timeout.
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.message().contains("refused"), "{err}");
    let health = backend.health().await;
    assert!(!health.healthy);
    assert!(health.details["error"].contains("refused"), "{health:?}");
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    fn tls_config(server: &RedisServer) -> cachekit_redis::RedisConfigBuilder {
        RedisConfig::builder()
            .url(server.url())
            .tls_ca_file(server.ca_cert_path())
    }

    #[tokio::test]
    async fn server_signed_by_the_given_ca() {
        let server = RedisServer::builder().tls().start();
        assert!(server.url().starts_with("rediss://"));
        let backend = RedisBackend::new(tls_config(&server).build().unwrap())
            .await
            .unwrap();
        round_trip(&backend, &server).await;
        cachekit_testkit::run_conformance(&backend).await;
    }

    #[tokio::test]
    async fn host_name_matching_the_certificate_works() {
        let server = RedisServer::builder().tls().start();
        let config = RedisConfig::builder()
            .url(format!("rediss://localhost:{}", server.port()))
            .tls_ca_file(server.ca_cert_path())
            .build()
            .unwrap();
        let backend = RedisBackend::new(config).await.unwrap();
        round_trip(&backend, &server).await;
    }

    #[tokio::test]
    async fn wrong_ca_is_rejected() {
        let server = RedisServer::builder().tls().start();
        let config = RedisConfig::builder()
            .url(server.url())
            .tls_ca_file(server.other_ca_cert_path())
            .build()
            .unwrap();
        let err = expect_err(RedisBackend::new(config).await);
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.message().contains("TLS"), "{err}");
        assert!(err.message().contains("tls_ca_file"), "{err}");
        assert!(
            err.message()
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn insecure_switch_skips_verification() {
        let server = RedisServer::builder().tls().start();
        let config = RedisConfig::builder()
            .url(server.url())
            .tls_insecure(true)
            .build()
            .unwrap();
        let backend = RedisBackend::new(config).await.unwrap();
        round_trip(&backend, &server).await;
    }

    #[tokio::test]
    async fn mutual_tls() {
        let server = RedisServer::builder().tls_require_client_cert().start();

        let without = expect_err(RedisBackend::new(tls_config(&server).build().unwrap()).await);
        assert_eq!(without.kind(), ErrorKind::Connection, "{without}");
        assert!(
            without.message().contains("client certificate"),
            "{without}"
        );

        let config = tls_config(&server)
            .tls_client_cert(server.client_cert_path(), server.client_key_path())
            .build()
            .unwrap();
        let backend = RedisBackend::new(config).await.unwrap();
        round_trip(&backend, &server).await;
    }

    #[tokio::test]
    async fn plain_url_to_a_tls_port_and_missing_files_are_explained() {
        let server = RedisServer::builder().tls().start();
        let plain = format!("redis://127.0.0.1:{}", server.port());
        let err = expect_err(connect(&plain).await);
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "{err}"
        );
        assert!(err.message().contains("TLS"), "{err}");

        let config = RedisConfig::builder()
            .url(server.url())
            .tls_ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap();
        let err = expect_err(RedisBackend::new(config).await);
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.message().contains("`tls_ca_file`"), "{err}");
    }
}

mod keepalive {
    use super::*;

    /// Local ports of the server's clients, except the one listing them.
    fn client_ports(server: &RedisServer) -> Vec<u16> {
        server
            .command(&["CLIENT", "LIST"])
            .lines()
            .filter(|line| !line.contains("cmd=client|list"))
            .filter_map(|line| {
                let addr = line.split(' ').find_map(|f| f.strip_prefix("addr="))?;
                addr.rsplit_once(':')?.1.parse().ok()
            })
            .collect()
    }

    /// `(timer kind, ticks until it fires)` of the socket from
    /// 127.0.0.1:`port` to `server`, from /proc/net/tcp: kind 2 is the
    /// keepalive timer. The server's side is part of the match: Linux lets
    /// connections to different servers share a local port, and the tests
    /// of this binary connect to many servers at once.
    fn socket_timer(port: u16, server: &RedisServer) -> Option<(u8, u64)> {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let local = format!("0100007F:{port:04X}");
        let remote = format!("0100007F:{:04X}", server.port());
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
                return None;
            }
            let (kind, when) = fields.get(5)?.split_once(':')?;
            Some((
                u8::from_str_radix(kind, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ))
        })
    }

    #[tokio::test]
    async fn keepalive_is_set_on_the_socket_with_the_configured_idle_time() {
        let server = RedisServer::start();
        let config = RedisConfig::builder()
            .url(server.url())
            .tcp_keepalive(Some(Duration::from_secs(7)))
            .build()
            .unwrap();
        let backend = RedisBackend::new(config).await.unwrap();
        let ports = client_ports(&server);
        assert_eq!(ports.len(), 1, "the backend's one connection: {ports:?}");
        // The keepalive timer is armed once the socket goes idle after the
        // handshake; poll the kernel's table for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let (kind, when) = loop {
            match socket_timer(ports[0], &server) {
                Some((2, when)) => break (2, when),
                other if std::time::Instant::now() > deadline => {
                    panic!("no keepalive timer on port {}: {other:?}", ports[0])
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert_eq!(kind, 2);
        // In USER_HZ ticks (100/s): at most our 7 s, far below the kernel
        // default of 7200 s that an unconfigured socket would show.
        assert!(
            when <= 7 * 100,
            "keepalive fires in {when} ticks, not within 7 s"
        );
        drop(backend);
    }

    #[tokio::test]
    async fn keepalive_off_leaves_no_timer() {
        let server = RedisServer::start();
        let config = RedisConfig::builder()
            .url(server.url())
            .tcp_keepalive(None)
            .build()
            .unwrap();
        let _backend = RedisBackend::new(config).await.unwrap();
        let ports = client_ports(&server);
        assert_eq!(ports.len(), 1, "{ports:?}");
        let timer = socket_timer(ports[0], &server).expect("the socket is in /proc/net/tcp");
        assert_ne!(timer.0, 2, "keepalive timer armed although turned off");
    }
}

/// Whether this machine's loopback interface has `::1`.
fn has_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|table| {
        table
            .lines()
            .any(|line| line.starts_with("00000000000000000000000000000001"))
    })
}

#[tokio::test]
async fn host_names_and_ipv6_literals_connect_over_plain_tcp() {
    let ipv6 = has_ipv6_loopback();
    let bind = if ipv6 { "127.0.0.1 ::1" } else { "127.0.0.1" };
    let server = RedisServer::builder().config("bind", bind).start();
    // `localhost` may resolve to `::1` first; each address is tried in turn.
    let mut urls = vec![format!("redis://localhost:{}", server.port())];
    if ipv6 {
        urls.push(format!("redis://[::1]:{}", server.port()));
    } else {
        eprintln!("no ::1 on this machine's loopback: the IPv6 literal is not tried");
    }
    for coalesce in [true, false] {
        for url in &urls {
            let config = RedisConfig::builder()
                .url(url.as_str())
                .coalesce_writes(coalesce)
                .build()
                .unwrap();
            let backend = RedisBackend::new(config)
                .await
                .unwrap_or_else(|e| panic!("{url} (coalesce {coalesce}): {e}"));
            round_trip(&backend, &server).await;
        }
    }
}
