//! Turning redis-rs and pool failures into cachekit [`Error`]s whose message
//! names the server, says what happened and what fixes it.
//!
//! Nothing here ever formats a password: the [`Target`] does not hold one,
//! and redis-rs errors are attached as sources only when they come from the
//! server or the socket (neither of which echoes credentials).

use std::fmt;
use std::time::Duration;

use cachekit_core::{Error, ErrorKind};
use redis::{RedisError, ServerErrorKind};

mod topology;

pub(crate) use topology::*;

/// The server as error messages name it. Holds no secret.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The server, or the first sentinel or cluster seed.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) db: i64,
    pub(crate) tls: bool,
    pub(crate) username: Option<String>,
    pub(crate) place: Place,
}

/// Where the data lives, as messages describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// `host:port`.
    Tcp,
    /// A Unix socket at this path.
    Unix(std::path::PathBuf),
    /// The primary the sentinels (`host:port,...`) name for `service`.
    Sentinel { service: String, sentinels: String },
    /// A cluster reached through these seeds (`host:port,...`).
    Cluster { seeds: String },
}

/// `host:port`, with an IPv6 address in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Tcp => f.write_str(&host_port(&self.host, self.port)),
            Place::Unix(path) => write!(f, "unix:{}", path.display()),
            Place::Sentinel { service, sentinels } => {
                write!(f, "the primary `{service}` (via sentinels {sentinels})")
            }
            Place::Cluster { seeds } => write!(f, "the cluster at {seeds}"),
        }
    }
}

impl Target {
    fn user(&self) -> String {
        match &self.username {
            Some(name) => format!("ACL user `{name}`"),
            None => "the default user".to_owned(),
        }
    }

    fn url_hint(&self) -> String {
        let s = if self.tls { "s" } else { "" };
        match &self.place {
            Place::Tcp => format!("redis{s}://:PASSWORD@{self}/{}", self.db),
            Place::Unix(path) => format!("unix://{}?pass=PASSWORD", path.display()),
            Place::Sentinel { service, sentinels } => {
                format!("redis{s}+sentinel://:PASSWORD@{sentinels}/{service}")
            }
            Place::Cluster { seeds } => format!("redis{s}+cluster://:PASSWORD@{seeds}"),
        }
    }
}

/// What was being done, for messages: `GET \`user:1\``.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub(crate) name: &'static str,
    pub(crate) key: Option<&'a str>,
}

impl<'a> Op<'a> {
    pub(crate) fn new(name: &'static str, key: Option<&'a str>) -> Self {
        Self { name, key }
    }
}

impl fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            Some(key) => write!(f, "{} `{key}`", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// Whether a reply says the key holds another type.
pub(crate) fn is_wrong_type(err: &RedisError) -> bool {
    err.code() == Some("WRONGTYPE")
}

/// Whether the connection that produced `err` must not be reused.
pub(crate) fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
        || matches!(
            err.kind(),
            redis::ErrorKind::Parse | redis::ErrorKind::Client
        )
}

/// Whether a reply says this server is no longer the primary: a replica
/// (READONLY) or one still loading after a restart (LOADING).
pub(crate) fn primary_moved(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::BusyLoading)
    )
}

/// A failure while opening a connection.
pub(crate) fn connect_error(err: RedisError, target: &Target) -> Error {
    if err.is_io_error() {
        return connect_io_error(&err, target).with_source(err);
    }
    let code = err.code().map(str::to_owned);
    let detail = err.detail().unwrap_or_default().to_owned();
    match (err.kind(), code.as_deref()) {
        // The handshake's SELECT reports NOAUTH as a generic error whose
        // detail keeps the server's words.
        (_, Some("NOAUTH")) => noauth(target).with_source(err),
        _ if detail.contains("Authentication required") => noauth(target).with_source(err),
        (redis::ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS")) => {
            wrongpass(target, None).with_source(err)
        }
        (_, Some("NOPERM")) => noperm(target, Op::new("connection setup", None)).with_source(err),
        (redis::ErrorKind::RESP3NotSupported, _) => Error::config(
            "protocol",
            format!("the server at {target} does not support RESP3 (HELLO 3, Redis 6+); use Protocol::Resp2"),
        )
        .with_source(err),
        _ if detail.contains("DB index is out of range") => Error::config(
            "db",
            format!(
                "the server at {target} has fewer databases than index {}; use an index below its `databases` setting (16 by default)",
                target.db
            ),
        )
        .with_source(err),
        _ => command_error(err, target, Op::new("connection setup", None)),
    }
}

/// A diagnosed authentication failure: `server_has_no_password` is what a
/// credential-less probe found.
pub(crate) fn wrongpass(target: &Target, server_has_no_password: Option<bool>) -> Error {
    let message = match server_has_no_password {
        Some(true) => format!(
            "the server at {target} rejected the credentials of {}, and it accepts clients without any: remove the user and password from the URL (and unset REDIS_PASSWORD), or configure `requirepass`/the ACL user on the server",
            target.user()
        ),
        _ => format!(
            "WRONGPASS: the server at {target} rejected the password for {}: check the password in CACHEKIT_REDIS_URL/REDIS_URL (percent-encode `@`, `:`, `/`, `%` in it) or REDIS_PASSWORD, and for an ACL user that it exists and is enabled (`ACL LIST`)",
            target.user()
        ),
    };
    Error::new(ErrorKind::Auth, message)
}

pub(crate) fn noauth(target: &Target) -> Error {
    Error::new(
        ErrorKind::Auth,
        format!(
            "NOAUTH: the server at {target} requires a password and none was given; set it in CACHEKIT_REDIS_URL as {} or in REDIS_PASSWORD",
            target.url_hint()
        ),
    )
}

fn noperm(target: &Target, op: Op<'_>) -> Error {
    Error::new(
        ErrorKind::Auth,
        format!(
            "NOPERM: {} on {target} may not run {op}; grant the command and key pattern to the user (`ACL SETUSER`)",
            target.user()
        ),
    )
}

fn connect_io_error(err: &RedisError, target: &Target) -> Error {
    // redis-rs keeps the io::Error private; its predicates and Display are
    // what can be read.
    let message = if err.is_connection_refusal() {
        format!(
            "cannot connect to Redis at {target}: connection refused. Is redis-server running and listening on that address? Check the host and port in CACHEKIT_REDIS_URL/REDIS_URL and the server's `bind` and `port` settings"
        )
    } else if err.is_timeout() {
        format!(
            "cannot connect to Redis at {target}: no answer (timed out). Check that the host is reachable from here (firewall, security group) and that the server's `bind` includes the interface you connect to"
        )
    } else if let Some(hint) = target.tls.then(|| tls_hint(err, target)).flatten() {
        format!("TLS handshake with {target} failed: {err}. {hint}")
    } else if err.is_connection_dropped() && target.tls {
        format!(
            "the server at {target} closed the connection during the TLS handshake ({err}). It may not speak TLS on this port (then use redis:// instead of rediss://), or it requires a client certificate (set `tls_client_cert_file` and `tls_client_key_file`)"
        )
    } else if err.is_connection_dropped() {
        format!(
            "the server at {target} closed the connection while it was being set up ({err}). If it expects TLS, use a rediss:// URL; otherwise check `maxclients` and the server log"
        )
    } else {
        format!(
            "cannot connect to Redis at {target}: {err}. Check the host name in CACHEKIT_REDIS_URL/REDIS_URL, DNS, and that the server's `bind` covers the address you connect to"
        )
    };
    Error::new(ErrorKind::Connection, message)
}

/// What to do about a TLS failure, read from rustls's wording; `None` when
/// the failure is not about TLS.
fn tls_hint(err: &RedisError, target: &Target) -> Option<String> {
    // rustls's Display spells some causes in words ("not valid for name"),
    // others by variant name (`CaUsedAsEndEntity`): compare both squashed.
    let text: String = err
        .to_string()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .collect();
    let hint = if text.contains("certificaterequired") {
        "The server requires a client certificate (mutual TLS): set `tls_client_cert_file` and `tls_client_key_file`".to_owned()
    } else if text.contains("alert")
        && (text.contains("unknownca") || text.contains("badcertificate"))
    {
        "The server rejected the client certificate: it must be signed by the CA in the server's `tls-ca-cert-file`".to_owned()
    } else if text.contains("notvalidforname") {
        format!(
            "The server's certificate does not name `{}` (the host in the URL): connect with a host name or address the certificate lists, or reissue it with `{}` in its subjectAltName",
            target.host, target.host
        )
    } else if text.contains("causedasendentity") {
        "The server's certificate is a CA certificate (the CA itself, which `tls_ca_file` rightly trusts, rather than a server certificate it signed): configure the server's `tls-cert-file` with a server certificate signed by that CA (with its `tls-key-file`), not the CA certificate itself".to_owned()
    } else if text.contains("expired") || text.contains("notvalidyet") {
        "The server's certificate is outside its validity period (expired or not yet valid): renew it, or check the clocks of both machines".to_owned()
    } else if text.contains("unknownissuer") {
        "The server's certificate is not signed by a trusted CA: set `tls_ca_file` to the CA that signed it (or tls_insecure, for tests only)".to_owned()
    } else if ["certificate", "tls", "handshake", "alert"]
        .iter()
        .any(|w| text.contains(w))
    {
        "Check `tls_ca_file`, the client certificate files and the host name in the URL".to_owned()
    } else {
        return None;
    };
    Some(hint)
}

/// A `rediss://` connection to a server that answered a plain-text PING
/// on the same port.
pub(crate) fn tls_to_plain_text(target: &Target) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!(
            "cannot connect to Redis at {target} over TLS: the server does not speak TLS on this port (it answers in plain text). Use a redis:// URL instead of rediss://, or connect to the server's `tls-port`"
        ),
    )
}

/// A connection attempt that did not finish within `connect_timeout`.
pub(crate) fn connect_timeout(target: &Target, limit: Duration) -> Error {
    let tls = if target.tls {
        "; the server may not speak TLS on this port (then use redis:// instead of rediss://)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Connection,
        format!(
            "cannot connect to Redis at {target}: the connection was not set up within connect_timeout ({limit:?}). The host may be unreachable (check `bind` and firewalls) or the server overloaded or stopped; raise connect_timeout if the network is slow{tls}"
        ),
    )
}

/// A reply that did not arrive within `response_timeout`.
pub(crate) fn response_timeout(target: &Target, op: Op<'_>, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{op} on {target}: no reply within response_timeout ({limit:?}). The server may be blocked by a slow command (see SLOWLOG GET), busy, or paused; raise response_timeout if this operation is legitimately slow"
        ),
    )
}

/// The deadline the operation ran within passed before it was done.
pub(crate) fn deadline_passed(target: &Target, op: Op<'_>) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("{op} on {target}: not done by the caller's deadline"),
    )
}

/// No in-flight slot became free within `checkout_timeout`.
pub(crate) fn pool_exhausted(target: &Target, op: Op<'_>, slots: u32, limit: Duration) -> Error {
    Error::new(
        ErrorKind::PoolExhausted,
        format!(
            "{op} on {target}: the pool is exhausted: all {slots} in-flight slots (max_in_flight) stayed busy for checkout_timeout ({limit:?}). Raise max_in_flight or checkout_timeout, or look for slow commands (SLOWLOG GET) or a stalled server"
        ),
    )
}

/// The pool could neither hand out nor open a connection in time.
pub(crate) fn checkout_connecting(target: &Target, op: Op<'_>, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{op} on {target}: no connection could be opened within checkout_timeout ({limit:?}). The server may be slow to accept connections or stopped; raise checkout_timeout above connect_timeout if connecting is legitimately slow"
        ),
    )
}

/// A failed command on an open connection.
pub(crate) fn command_error(err: RedisError, target: &Target, op: Op<'_>) -> Error {
    if err.is_io_error() {
        let message = format!(
            "{op} on {target}: the connection failed ({err}). The server may have restarted, closed idle clients (`timeout`), or hit `maxclients`; the pool opens a new connection on the next operation"
        );
        return Error::new(ErrorKind::Connection, message).with_source(err);
    }
    let code = err.code().map(str::to_owned);
    let (kind, message) = match (err.kind(), code.as_deref()) {
        (_, Some("WRONGTYPE")) => (
            ErrorKind::WrongType,
            format!("{op} on {target}: the key holds a value that is not a string (a hash, list, set, ...); delete it or use another key"),
        ),
        (_, Some("NOAUTH")) => return noauth(target).with_source(err),
        (_, Some("WRONGPASS")) | (redis::ErrorKind::AuthenticationFailed, _) => {
            return wrongpass(target, None).with_source(err)
        }
        // This command or key only: the connection and other keys still work.
        (_, Some("NOPERM")) => (
            ErrorKind::PermissionDenied,
            format!(
                "NOPERM: {} on {target} may not run {op}; grant the command and key pattern to the user (`ACL SETUSER`)",
                target.user()
            ),
        ),
        (redis::ErrorKind::Server(ServerErrorKind::BusyLoading), _) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the server is still loading its dataset into memory; retry shortly"),
        ),
        (redis::ErrorKind::Server(ServerErrorKind::ReadOnly), _) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the server is a read-only replica; point the URL at the primary"),
        ),
        (redis::ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask), _) => {
            return cluster_node(target, op).with_source(err)
        }
        (_, Some("OOM")) => (
            ErrorKind::StorageFull,
            format!("{op} on {target}: write refused, the server reached `maxmemory`; raise maxmemory or set `maxmemory-policy` to an eviction policy such as allkeys-lru"),
        ),
        (_, Some("BUSY")) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the server is busy running a script; wait for it or SCRIPT KILL it"),
        ),
        (_, Some("MISCONF")) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the server refuses writes because it cannot save its snapshot (MISCONF); see the server log"),
        ),
        (
            redis::ErrorKind::Server(
                ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain,
            ),
            _,
        ) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the server cannot serve it now ({err}); retry shortly"),
        ),
        (redis::ErrorKind::Io, _) => (
            ErrorKind::Connection,
            format!("{op} on {target}: the connection failed ({err}); the pool opens a new connection on the next operation"),
        ),
        (redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType, _) => (
            ErrorKind::Protocol,
            format!("{op} on {target}: unexpected reply ({err}); is this a Redis-compatible server?"),
        ),
        // Any other error reply (`ERR ...`, EXECABORT, a script's error) is
        // the server refusing this command's arguments, not a sick server.
        (redis::ErrorKind::Server(_), _) | (_, Some(_)) => (
            ErrorKind::InvalidInput,
            format!("{op} on {target}: the server refused the command: {err}"),
        ),
        _ => (
            ErrorKind::Protocol,
            format!("{op} on {target}: unexpected failure: {err}"),
        ),
    };
    let transient = matches!(
        code.as_deref(),
        Some("OOM" | "BUSY" | "LOADING" | "MISCONF" | "CLUSTERDOWN" | "MASTERDOWN" | "TRYAGAIN")
    );
    let error = Error::new(kind, message).with_source(err);
    if transient {
        error.with_transient(true)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            host: "10.0.0.7".into(),
            port: 6380,
            db: 3,
            tls: false,
            username: None,
            place: Place::Tcp,
        }
    }

    #[test]
    fn refused_names_host_port_and_bind() {
        let io_err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = connect_error(RedisError::from(io_err), &target());
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.message().contains("10.0.0.7:6380"), "{err}");
        assert!(err.message().contains("`bind`"), "{err}");
    }

    #[test]
    fn timeouts_of_response_and_checkout_differ() {
        let t = target();
        let op = Op::new("GET", Some("k"));
        let response = response_timeout(&t, op, Duration::from_millis(5));
        let pool = pool_exhausted(&t, op, 4, Duration::from_millis(5));
        assert_eq!(response.kind(), ErrorKind::Timeout);
        assert_eq!(pool.kind(), ErrorKind::PoolExhausted);
        assert!(response.message().contains("response_timeout"));
        assert!(pool.message().contains("checkout_timeout"));
        assert!(pool.message().contains("all 4 in-flight slots"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let mut t = target();
        t.host = "::1".into();
        assert_eq!(t.to_string(), "[::1]:6380");
    }
}
