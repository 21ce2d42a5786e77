//! Opening connections: our own `bb8::ManageConnection`, so that the
//! connect deadline, TCP keepalive, TLS files, protocol, database and
//! credentials are all applied in one place and every failure is explained.
//!
//! A plain TCP connection is opened here and handed to redis-rs through
//! [`Coalesce`], which sends the commands of concurrent tasks in one write;
//! redis-rs still sets it up (AUTH, HELLO, SELECT) and drives it. TLS
//! connections, and all of them with `coalesce_writes(false)`, are opened
//! by redis-rs itself.

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use cachekit_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::socket2::{SockRef, TcpKeepalive};
use redis::io::tcp::TcpSettings;
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, RedisError, TlsCertificates,
};
use tokio::net::TcpStream;

use super::coalesce::Coalesce;
use super::Conn;
use crate::config::{parse_url, Protocol, RedisConfig};
use crate::errors::{self, Target};

/// Keepalive probes after the idle time: often enough to notice a dead
/// peer within a couple of minutes, rare enough to cost nothing.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Opens connections to one server.
#[derive(Clone)]
pub(crate) struct Manager {
    client: Client,
    /// The same server without credentials: after an authentication failure
    /// it tells "wrong password" from "this server wants none".
    probe: Option<Client>,
    connection_config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// Plain TCP connections go through [`Coalesce`]; TLS ones keep
    /// redis-rs's own transport.
    coalesce_writes: bool,
    target: Arc<Target>,
}

impl Manager {
    /// Prepares (without connecting) the clients for `config`, reading the
    /// TLS files.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self> {
        let url = parse_url(&config.url)?;
        let password = url.password.clone().or_else(|| config.password.clone());
        let target = Arc::new(Target {
            host: url.host.clone(),
            port: url.port,
            db: url.db,
            tls: url.tls,
            username: url.username.clone(),
        });

        let mut tcp = TcpSettings::default().set_nodelay(config.tcp_nodelay);
        if let Some(idle) = config.tcp_keepalive {
            tcp = tcp.set_keepalive(
                TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(idle.min(KEEPALIVE_INTERVAL)),
            );
        }
        let addr = if url.tls {
            install_crypto_provider();
            if config.tls_insecure {
                // Once per backend: its connections all share this manager.
                tracing::warn!(
                    server = %target,
                    "cachekit-redis: tls_insecure is set: the server's certificate and host name are not verified, so anyone on the network path can impersonate it; use it only in tests"
                );
            }
            ConnectionAddr::TcpTls {
                host: url.host.clone(),
                port: url.port,
                insecure: config.tls_insecure,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(url.host.clone(), url.port)
        };
        let protocol = match config.protocol {
            Protocol::Resp2 => ProtocolVersion::RESP2,
            Protocol::Resp3 => ProtocolVersion::RESP3,
        };
        let anonymous = RedisConnectionInfo::default()
            .set_db(url.db)
            .set_protocol(protocol)
            .set_lib_name("cachekit-redis", env!("CARGO_PKG_VERSION"));
        let mut settings = anonymous.clone();
        if let Some(user) = &url.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &password {
            settings = settings.set_password(password);
        }

        let certificates = tls_certificates(config)?;
        let open = |settings: RedisConnectionInfo| -> Result<Client> {
            let info = addr
                .clone()
                .into_connection_info()
                .map_err(|err| client_config_error(&target, err))?
                .set_tcp_settings(tcp.clone())
                .set_redis_settings(settings);
            let built = match &certificates {
                Some(certs) => Client::build_with_tls(info, certs.clone()),
                None => Client::open(info),
            };
            built.map_err(|err| client_config_error(&target, err))
        };
        let client = open(settings)?;
        let probe = if password.is_some() {
            Some(open(anonymous.set_db(0))?)
        } else {
            None
        };

        // Our own deadlines cover the whole exchange; redis-rs's would race
        // them and produce less specific errors.
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        Ok(Self {
            client,
            probe,
            connection_config,
            connect_timeout: config.connect_timeout,
            coalesce_writes: config.coalesce_writes,
            target,
        })
    }

    pub(crate) fn target(&self) -> Arc<Target> {
        self.target.clone()
    }

    async fn open(&self, client: &Client) -> std::result::Result<Conn, RedisError> {
        let info = client.get_connection_info();
        let mut conn = match info.addr() {
            ConnectionAddr::Tcp(host, port) if self.coalesce_writes => {
                self.open_coalesced(info, host, *port).await?
            }
            _ => Conn::new(
                client
                    .get_multiplexed_async_connection_with_config(&self.connection_config)
                    .await?,
                None,
            ),
        };
        // Surfaces NOAUTH here, where it can be explained, rather than on
        // the first cache operation.
        redis::cmd("PING")
            .query_async::<()>(&mut conn.inner)
            .await?;
        Ok(conn)
    }

    /// A plain TCP connection whose writes are [coalesced](Coalesce), set up
    /// (credentials, protocol, database) by redis-rs as its own would be.
    async fn open_coalesced(
        &self,
        info: &ConnectionInfo,
        host: &str,
        port: u16,
    ) -> std::result::Result<Conn, RedisError> {
        let socket = connect_any(host, port).await?;
        apply_tcp_settings(&socket, info.tcp_settings())?;
        let (conn, driver): (MultiplexedConnection, _) = MultiplexedConnection::new_with_config(
            info.redis_settings(),
            Coalesce::new(socket),
            self.connection_config.clone(),
        )
        .await?;
        let driver = tokio::spawn(driver).abort_handle();
        Ok(Conn::new(conn, Some(driver)))
    }

    /// Opens one connection within `connect_timeout`, explaining failures.
    pub(crate) async fn open_connection(&self) -> Result<Conn> {
        let attempt = tokio::time::timeout(self.connect_timeout, self.open(&self.client));
        let outcome = if self.target.tls && self.connect_timeout > PLAIN_TEXT_PROBE_AFTER {
            // A plain-text server reads a TLS ClientHello as the start of
            // a command and waits for the rest: the handshake would hang
            // until connect_timeout. A handshake still running after a
            // moment is checked with a plain-text PING on the same port.
            tokio::pin!(attempt);
            tokio::select! {
                outcome = &mut attempt => outcome,
                () = tokio::time::sleep(PLAIN_TEXT_PROBE_AFTER) => {
                    let probe = speaks_plain_text(&self.target.host, self.target.port);
                    tokio::select! {
                        outcome = &mut attempt => outcome,
                        true = probe => return Err(errors::tls_to_plain_text(&self.target)),
                    }
                }
            }
        } else {
            attempt.await
        };
        match outcome {
            Err(_elapsed) => Err(errors::connect_timeout(&self.target, self.connect_timeout)),
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(self.explain(err).await),
        }
    }

    async fn explain(&self, err: RedisError) -> Error {
        let auth_failed =
            err.kind() == redis::ErrorKind::AuthenticationFailed || err.code() == Some("WRONGPASS");
        match (&self.probe, auth_failed) {
            (Some(probe), true) => {
                let probe = tokio::time::timeout(self.connect_timeout, self.open(probe)).await;
                let server_has_no_password = matches!(probe, Ok(Ok(_)));
                errors::wrongpass(&self.target, Some(server_has_no_password)).with_source(err)
            }
            _ => errors::connect_error(err, &self.target),
        }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = Error;

    /// Opens the connection where its driver task and socket keep working
    /// while a blocking call blocks the caller's thread (see
    /// [`on_task_runtime`](cachekit_core::runtime::on_task_runtime)).
    async fn connect(&self) -> Result<Conn> {
        let manager = self.clone();
        cachekit_core::runtime::on_task_runtime(async move { manager.open_connection().await })
            .await
            .unwrap_or_else(|join| Err(connect_task_failed(&self.target, &join)))
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<()> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.inner)
            .await
            .map_err(|err| errors::command_error(err, &self.target, errors::Op::new("PING", None)))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.state.is_broken()
    }
}

/// How long a TLS handshake may run before the port is checked for a
/// plain-text server; handshakes on loopback and LANs take milliseconds.
const PLAIN_TEXT_PROBE_AFTER: Duration = Duration::from_millis(500);

/// Whether the server at `host:port` answers a plain-text `PING` with a
/// RESP reply (`+PONG`, `-NOAUTH ...`); a TLS server answers with an alert
/// or closes. Pends forever when it cannot tell, so that the caller's
/// connect attempt decides.
async fn speaks_plain_text(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let answered = async {
        let mut socket = connect_any(host, port).await.ok()?;
        socket.write_all(b"PING\r\n").await.ok()?;
        let mut first = [0u8; 1];
        let read = socket.read(&mut first).await.ok()?;
        Some(read == 1 && matches!(first[0], b'+' | b'-'))
    };
    match tokio::time::timeout(PLAIN_TEXT_PROBE_AFTER * 2, answered).await {
        Ok(Some(true)) => true,
        _ => std::future::pending().await,
    }
}

/// Connects to every address `host` resolves to at once, as redis-rs does,
/// and keeps the first that answers: an unreachable IPv6 address listed
/// first costs no connect timeout. When all fail, the last error is kept.
async fn connect_any(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let addrs = tokio::net::lookup_host((host, port)).await?;
    connect_first(host, addrs).await
}

async fn connect_first(
    host: &str,
    addrs: impl IntoIterator<Item = std::net::SocketAddr>,
) -> std::io::Result<TcpStream> {
    let mut attempts = tokio::task::JoinSet::new();
    for addr in addrs {
        attempts.spawn(TcpStream::connect(addr));
    }
    let mut last = None;
    while let Some(attempt) = attempts.join_next().await {
        match attempt {
            // Dropping the set aborts the attempts still running.
            Ok(Ok(socket)) => return Ok(socket),
            Ok(Err(err)) => last = Some(err),
            Err(join) => last = Some(std::io::Error::other(join)),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// What redis-rs sets on the sockets it opens.
fn apply_tcp_settings(socket: &TcpStream, settings: &TcpSettings) -> std::io::Result<()> {
    socket.set_nodelay(settings.nodelay())?;
    if let Some(keepalive) = settings.keepalive() {
        SockRef::from(socket).set_tcp_keepalive(keepalive)?;
    }
    Ok(())
}

/// The task opening a connection on cachekit's runtime panicked or was
/// cancelled (the process is shutting down).
fn connect_task_failed(target: &Target, join: &tokio::task::JoinError) -> Error {
    Error::new(
        cachekit_core::ErrorKind::Connection,
        format!(
            "cannot connect to Redis at {target}: the task opening the connection ended early ({join}); the next operation tries again"
        ),
    )
}

fn client_config_error(target: &Target, err: RedisError) -> Error {
    // redis-rs reports TLS material problems as client-config errors.
    Error::config(
        "tls",
        format!("the TLS settings for {target} are not usable: {err}"),
    )
    .with_source(err)
}

/// rustls needs one process-wide crypto provider. ring is chosen because
/// aws-lc-rs needs cmake to build; if the application installed another
/// provider first, that one is kept.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn tls_certificates(config: &RedisConfig) -> Result<Option<TlsCertificates>> {
    let root_cert = config
        .tls_ca_file
        .as_deref()
        .map(|path| read_pem("tls_ca_file", path))
        .transpose()?;
    let client_tls = match (&config.tls_client_cert_file, &config.tls_client_key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read_pem("tls_client_cert_file", cert)?,
            client_key: read_pem("tls_client_key_file", key)?,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|err| Error::config(field, format!("cannot read {}: {err}", path.display())))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(Error::config(
            field,
            format!(
                "{} is not a PEM file (no `-----BEGIN` line)",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::io::tcp::socket2::{Domain, Socket, Type};

    use super::*;

    #[tokio::test]
    async fn an_address_that_never_answers_does_not_hold_up_the_next() {
        // A listener whose accept queue is full: Linux drops further SYNs,
        // so a connect to it hangs (for minutes, retrying).
        let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        full.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        full.listen(0).unwrap();
        let full_addr = full.local_addr().unwrap().as_socket().unwrap();
        let mut queued = Vec::new();
        for _ in 0..2 {
            let Ok(Ok(socket)) =
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(full_addr))
                    .await
            else {
                break;
            };
            queued.push(socket);
        }
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();

        let socket = tokio::time::timeout(
            Duration::from_secs(20),
            connect_first("test", [full_addr, live_addr]),
        )
        .await
        .expect("the live address was not tried while the first hung")
        .unwrap();
        assert_eq!(socket.peer_addr().unwrap(), live_addr);
    }

    #[tokio::test]
    async fn when_every_address_fails_the_error_says_why() {
        // A port nothing listens on: connection refused.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let err = connect_first("test", [addr]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let err = connect_first("nowhere", []).await.unwrap_err();
        assert!(
            err.to_string().contains("nowhere resolves to no address"),
            "{err}"
        );
    }
}
