//! Opening connections: our own `bb8::ManageConnection`, so that the
//! connect deadline, TCP keepalive, TLS files, protocol, database and
//! credentials are all applied in one place and every failure is explained
//! (bb8-redis's manager applies none of those). One manager serves the three
//! topologies: a server named by the URL, the primary the sentinels name,
//! or a cluster (one redis-rs cluster connection per pooled connection).
//!
//! A plain TCP connection to one server is opened here and handed to
//! redis-rs through [`Coalesce`], which sends the commands of concurrent
//! tasks in one write; redis-rs still sets it up (AUTH, HELLO, SELECT) and
//! drives it. TLS and Unix-socket connections, all of them with
//! `coalesce_writes(false)`, and cluster connections are opened by redis-rs
//! itself.

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::socket2::SockRef;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, RedisError};
use tokio::net::TcpStream;

use super::clients::{Clients, Endpoint};
use super::coalesce::Coalesce;
use super::sentinel::Sentinels;
use super::Targets;
use super::{cluster, Conn, Link};
use crate::config::bench::BenchDeadlines;
use crate::config::{parse_url, ParsedUrl, RedisConfig, Topology};
use crate::errors::{self, Place, Target};

/// How connections are opened.
#[derive(Clone)]
enum Connector {
    /// To the one server the URL names (TCP, TLS or a Unix socket).
    Direct(Endpoint),
    /// To the primary the sentinels name at the time.
    Sentinel(Arc<Sentinels>),
    /// To a cluster.
    Cluster(redis::cluster::ClusterClient),
}

/// Opens connections to one server, primary or cluster.
#[derive(Clone)]
pub(crate) struct Manager {
    connector: Connector,
    connection_config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// Plain TCP connections go through [`Coalesce`]; TLS ones keep
    /// redis-rs's own transport.
    coalesce_writes: bool,
    target: Arc<Target>,
    /// Where the invalidation listener connects.
    tracking: Targets,
}

/// How messages name what `url` points at.
fn target_of(url: &ParsedUrl) -> Target {
    let list = || {
        url.hosts
            .iter()
            .map(|(host, port)| errors::host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    };
    let place = match &url.topology {
        Topology::Standalone => Place::Tcp,
        Topology::Unix(path) => Place::Unix(path.clone()),
        Topology::Sentinel { service } => Place::Sentinel {
            service: service.clone(),
            sentinels: list(),
        },
        Topology::Cluster => Place::Cluster { seeds: list() },
    };
    Target {
        host: url.host().to_owned(),
        port: url.port(),
        db: url.db,
        tls: url.tls,
        username: url.username.clone(),
        place,
    }
}

impl Manager {
    /// Prepares (without connecting) the clients for `config`, reading the
    /// TLS files.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self> {
        let url = parse_url(&config.url)?;
        let target = Arc::new(target_of(&url));
        let clients = Clients::new(config, &url, &target)?;
        let (connector, tracking) = match &url.topology {
            Topology::Standalone | Topology::Unix(_) => {
                let addr = match &url.topology {
                    Topology::Unix(path) => ConnectionAddr::Unix(path.clone()),
                    _ => clients.tcp_addr(url.host(), url.port()),
                };
                let tracking = Targets::single(&clients, addr.clone(), target.clone())?;
                let endpoint = clients.endpoint(addr, target.clone())?;
                (Connector::Direct(endpoint), tracking)
            }
            Topology::Sentinel { service } => {
                let sentinels = Arc::new(Sentinels::new(
                    config,
                    &url,
                    service,
                    clients.clone(),
                    target.clone(),
                )?);
                let tracking = Targets::sentinel(sentinels.clone(), &clients);
                (Connector::Sentinel(sentinels), tracking)
            }
            Topology::Cluster => {
                let client = cluster::client(config, &url, &clients, &target)?;
                let tracking = Targets::cluster(&clients, target.clone());
                (Connector::Cluster(client), tracking)
            }
        };
        // Our own deadlines cover the whole exchange; redis-rs's would race
        // them and produce less specific errors.
        let redis_rs_deadlines = config.bench.deadlines == BenchDeadlines::RedisRs;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(redis_rs_deadlines.then_some(config.response_timeout));
        Ok(Self {
            connector,
            connection_config,
            connect_timeout: config.connect_timeout,
            coalesce_writes: config.coalesce_writes,
            target,
            tracking,
        })
    }

    /// The sentinels, when the primary is found through them.
    pub(crate) fn sentinels(&self) -> Option<Arc<Sentinels>> {
        match &self.connector {
            Connector::Sentinel(sentinels) => Some(sentinels.clone()),
            _ => None,
        }
    }

    /// Whether the connections are cluster connections.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.connector, Connector::Cluster(_))
    }

    /// Where the invalidation listener connects.
    pub(crate) fn tracking(&self) -> Targets {
        self.tracking.clone()
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
                Link::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&self.connection_config)
                        .await?,
                ),
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
        Ok(Conn::new(Link::Single(conn), Some(driver)))
    }

    /// Opens one connection within `connect_timeout`, explaining failures.
    pub(crate) async fn open_connection(&self) -> Result<Conn> {
        match &self.connector {
            Connector::Direct(endpoint) => self.open_endpoint(endpoint).await,
            Connector::Sentinel(sentinels) => sentinels.open(self).await,
            Connector::Cluster(client) => {
                cluster::open(client, &self.target, self.connect_timeout).await
            }
        }
    }

    /// Opens one connection to `endpoint` within `connect_timeout`.
    pub(crate) async fn open_endpoint(&self, endpoint: &Endpoint) -> Result<Conn> {
        let target = &endpoint.target;
        let attempt = tokio::time::timeout(self.connect_timeout, self.open(&endpoint.client));
        let outcome = if target.tls && self.connect_timeout > PLAIN_TEXT_PROBE_AFTER {
            // A plain-text server reads a TLS ClientHello as the start of
            // a command and waits for the rest: the handshake would hang
            // until connect_timeout. A handshake still running after a
            // moment is checked with a plain-text PING on the same port.
            tokio::pin!(attempt);
            tokio::select! {
                outcome = &mut attempt => outcome,
                () = tokio::time::sleep(PLAIN_TEXT_PROBE_AFTER) => {
                    let probe = speaks_plain_text(&target.host, target.port);
                    tokio::select! {
                        outcome = &mut attempt => outcome,
                        true = probe => return Err(errors::tls_to_plain_text(target)),
                    }
                }
            }
        } else {
            attempt.await
        };
        match outcome {
            Err(_elapsed) => Err(errors::connect_timeout(target, self.connect_timeout)),
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(self.explain(endpoint, err).await),
        }
    }

    async fn explain(&self, endpoint: &Endpoint, err: RedisError) -> Error {
        let auth_failed =
            err.kind() == redis::ErrorKind::AuthenticationFailed || err.code() == Some("WRONGPASS");
        match (&endpoint.probe, auth_failed) {
            (Some(probe), true) => {
                let probe = tokio::time::timeout(self.connect_timeout, self.open(probe)).await;
                let server_has_no_password = matches!(probe, Ok(Ok(_)));
                errors::wrongpass(&endpoint.target, Some(server_has_no_password)).with_source(err)
            }
            _ => errors::connect_error(err, &endpoint.target),
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
