//! [`RedisConfig`]: where the server is, how to reach it, and how the pool behaves.

pub(crate) mod bench;
mod builder;
mod env;
mod url;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cachekit_core::Result;

pub use self::builder::RedisConfigBuilder;
pub(crate) use self::url::{parse_url, redact_url, ParsedUrl, Topology};
pub(crate) use self::validate::{MAX_TCP_KEEPALIVE, MAX_WAIT};

/// The URL used when neither the code nor the environment names one.
pub const DEFAULT_URL: &str = "redis://localhost:6379";

/// Which Redis serialization protocol the connections speak.
///
/// RESP3 needs Redis 6 or newer; the cache operations behave the same with
/// either.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, understood by every Redis version (the default).
    #[default]
    Resp2,
    /// RESP3 (`HELLO 3`), Redis 6 and newer.
    Resp3,
}

impl Protocol {
    /// `"resp2"` or `"resp3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Resp2 => "resp2",
            Protocol::Resp3 => "resp3",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "2" | "resp2" => Some(Protocol::Resp2),
            "3" | "resp3" => Some(Protocol::Resp3),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything [`RedisBackend`](crate::RedisBackend) needs to know, each field
/// with a documented default.
///
/// Build one with [`RedisConfig::builder`] (or [`RedisConfig::from_env`]);
/// the fields are public so that a built config can also be adjusted in
/// place. [`RedisBackend::new`](crate::RedisBackend::new) validates it again.
///
/// `Debug` and `Display` never show the password.
///
/// ```
/// use std::time::Duration;
/// use cachekit::redis::RedisConfig;
///
/// let config = RedisConfig::builder()
///     .url("redis://:s3cret@cache.internal:6379/2")
///     .pool_size(20)
///     .response_timeout(Duration::from_millis(250))
///     .key_prefix("myapp:")
///     .build()?;
/// assert_eq!(config.pool_size, 20);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), cachekit::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone)]
pub struct RedisConfig {
    /// Where the data is. One server:
    /// `redis://[user][:password@]host[:port][/db]` (`rediss://` for TLS)
    /// or `unix:///path/to/redis.sock[?db=N]`. Sentinel:
    /// `redis+sentinel://[user][:password@]host:26379[,host:port...]/service_name[/db]`
    /// (`rediss+sentinel://` for TLS; the credentials are the data
    /// nodes'). Cluster: `redis+cluster://[user][:password@]host:port[,host:port...]`
    /// (`rediss+cluster://`). Percent-encode special characters in the user
    /// name and password. Default [`DEFAULT_URL`].
    pub url: String,
    /// The password, used only when `url` carries none (the environment's
    /// `REDIS_PASSWORD` lands here). Default `None`.
    pub password: Option<String>,
    /// The most connections the pool opens. Each is multiplexed: commands
    /// from concurrent tasks pipeline on it, and they fill one connection
    /// (64 awaiting replies) before another is opened, as one connection's
    /// pipeline batches writes and reads best. Default 10.
    pub pool_size: u32,
    /// The most commands awaiting replies at once, across all connections;
    /// an operation waits up to `checkout_timeout` for a free slot, then
    /// fails with [`ErrorKind::PoolExhausted`](cachekit_core::ErrorKind::PoolExhausted).
    /// Default 256.
    pub max_in_flight: u32,
    /// How many idle connections the pool keeps open. Default `None`: only
    /// the connection opened by [`RedisBackend::new`](crate::RedisBackend::new)
    /// and those opened when concurrent operations find none free.
    pub min_idle: Option<u32>,
    /// How long opening one connection may take, TCP, TLS, authentication
    /// and database selection included. Default 2 s; at most 24 h.
    pub connect_timeout: Duration,
    /// How long one command or pipeline may wait for its reply. Default 1 s;
    /// at most 24 h.
    /// The deadlines of all commands are kept by one thread per process
    /// (`cachekit-deadlines`), which fires each at most about 1 ms late.
    pub response_timeout: Duration,
    /// How long an operation may wait for an in-flight slot and a pooled
    /// connection. Default 1 s; at most 24 h.
    pub checkout_timeout: Duration,
    /// TCP keepalive idle time set on every connection's socket (probes then
    /// follow every 10 s, or every `idle` if shorter); `None` turns keepalive
    /// off. Default `Some(60 s)`; from 1 s to 32,767 s (Linux's
    /// `TCP_KEEPIDLE` limit).
    pub tcp_keepalive: Option<Duration>,
    /// Send every command at once (`TCP_NODELAY`). Default `true`.
    ///
    /// With Nagle's algorithm (`false`) the kernel holds a command written
    /// while earlier bytes are unacknowledged until their ACK arrives. That
    /// merges commands from many concurrent tasks into fewer packets (on
    /// loopback, a few percent more throughput at 64 tasks per connection),
    /// but a value spanning several TCP segments can wait for the server's
    /// delayed ACK, up to 40 ms on Linux. Redis itself and most Redis clients
    /// set `TCP_NODELAY`; turn it off only after measuring your workload.
    pub tcp_nodelay: bool,
    /// Send the commands of concurrent tasks in one write. Default `true`.
    ///
    /// A connection's first flush of a batch lets the tasks that are ready
    /// to run queue their commands first, then sends all of them in one
    /// write: fewer system calls on both sides and fewer packets, without
    /// Nagle's wait for an ACK. A lone command goes out after one pass of
    /// the scheduler. Applies to plain TCP; TLS connections keep redis-rs's
    /// own transport.
    pub coalesce_writes: bool,
    /// The wire protocol (the parser option). Default [`Protocol::Resp2`].
    pub protocol: Protocol,
    /// Prepended to every key: `{key_prefix}{key}`. Default empty.
    pub key_prefix: String,
    /// PEM file with the CA certificate(s) that signed the server's
    /// certificate; `None` uses the system's trust store. Default `None`.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file with the client certificate for mutual TLS. Default `None`.
    pub tls_client_cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key. Default `None`.
    pub tls_client_key_file: Option<PathBuf>,
    /// Accept any server certificate and host name. For tests only: it
    /// disables the protection TLS exists for. Default `false`.
    pub tls_insecure: bool,
    /// The sentinels' own ACL user, when they have one. Default `None`.
    pub sentinel_username: Option<String>,
    /// The sentinels' own password (`requirepass` in sentinel.conf), which
    /// is often not the data nodes'. Default `None`.
    pub sentinel_password: Option<String>,
    /// Cluster only: send reads (GET, MGET, EXISTS, TTL...) to a random
    /// replica of the key's shard. Replicas lag behind their primary, so a
    /// read can miss or see an older value just after a write; use it only
    /// where that is acceptable. Default `false`.
    pub read_from_replicas: bool,
    /// How long [`RedisBackend::lock`](crate::RedisBackend::lock) waits for a
    /// lock held by someone else (zero: one attempt). Default 10 s; at most
    /// 24 h.
    pub lock_wait: Duration,
    /// Bench-only (`benches/layer.rs`): parts of the connection layer
    /// swapped for bb8's or redis-rs's own. Default: none swapped.
    #[doc(hidden)]
    pub bench: bench::BenchSwitches,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            password: None,
            pool_size: 10,
            max_in_flight: 256,
            min_idle: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            checkout_timeout: Duration::from_secs(1),
            tcp_keepalive: Some(Duration::from_secs(60)),
            tcp_nodelay: true,
            coalesce_writes: true,
            protocol: Protocol::Resp2,
            key_prefix: String::new(),
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            tls_insecure: false,
            sentinel_username: None,
            sentinel_password: None,
            read_from_replicas: false,
            lock_wait: Duration::from_secs(10),
            bench: bench::BenchSwitches::default(),
        }
    }
}

impl RedisConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RedisConfigBuilder {
        RedisConfigBuilder::default()
    }

    /// The defaults overlaid with the environment.
    ///
    /// The URL comes from `CACHEKIT_REDIS_URL`, else `REDIS_URL`; else a
    /// cluster from `CACHEKIT_REDIS_CLUSTER_NODES` (`host:port,host:port`);
    /// else Sentinel from `REDIS_SENTINEL_HOST` (one host or a comma list),
    /// `REDIS_SENTINEL_PORT` (default 26379) and `REDIS_SENTINEL_MASTER`
    /// (default `mymaster`); else [`DEFAULT_URL`]. `REDIS_PASSWORD` is used
    /// when the URL has no password; `CACHEKIT_REDIS_SENTINEL_PASSWORD` and
    /// `CACHEKIT_REDIS_SENTINEL_USERNAME` are the sentinels' own
    /// credentials; `CACHEKIT_REDIS_READ_FROM_REPLICAS` (`true`/`false`)
    /// sets [`read_from_replicas`](Self::read_from_replicas). Other knobs: `CACHEKIT_REDIS_POOL_SIZE`,
    /// `CACHEKIT_REDIS_MAX_IN_FLIGHT`,
    /// `CACHEKIT_REDIS_MIN_IDLE`, `CACHEKIT_REDIS_CONNECT_TIMEOUT_MS`,
    /// `CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS`,
    /// `CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS`,
    /// `CACHEKIT_REDIS_TCP_KEEPALIVE_SECS` (0 turns it off),
    /// `CACHEKIT_REDIS_TCP_NODELAY` (`true`/`false`),
    /// `CACHEKIT_REDIS_COALESCE_WRITES` (`true`/`false`),
    /// `CACHEKIT_REDIS_PROTOCOL` (`resp2`/`resp3`),
    /// `CACHEKIT_REDIS_KEY_PREFIX`, `CACHEKIT_REDIS_TLS_CA_FILE`,
    /// `CACHEKIT_REDIS_TLS_CERT_FILE`, `CACHEKIT_REDIS_TLS_KEY_FILE`,
    /// `CACHEKIT_REDIS_TLS_INSECURE` (`true`/`false`),
    /// `CACHEKIT_REDIS_LOCK_WAIT_MS`.
    ///
    /// To let code override some fields, use
    /// `RedisConfig::builder().env().pool_size(..).build()`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](cachekit_core::ErrorKind::Config) naming the
    /// variable whose value does not parse, or the field that is invalid.
    pub fn from_env() -> Result<Self> {
        Self::builder().env().build()
    }

    /// The first environment variable that names a Redis deployment
    /// (`CACHEKIT_REDIS_URL`, `REDIS_URL`, `CACHEKIT_REDIS_CLUSTER_NODES`,
    /// `REDIS_SENTINEL_HOST`) and is set and not empty: by name, since the
    /// value may hold a password. `None` when the environment names no
    /// Redis, and [`from_env`](Self::from_env) would use [`DEFAULT_URL`].
    pub fn env_source() -> Option<&'static str> {
        env::SOURCES
            .into_iter()
            .find(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
    }

    /// Checks every field; [`RedisConfigBuilder::build`] and
    /// [`RedisBackend::new`](crate::RedisBackend::new) call it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](cachekit_core::ErrorKind::Config) naming the
    /// first invalid field.
    pub fn validate(&self) -> Result<()> {
        validate::validate(self)
    }

    /// `url` with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be added without deciding
        // here whether it may be shown.
        let Self {
            url,
            password,
            pool_size,
            max_in_flight,
            min_idle,
            connect_timeout,
            response_timeout,
            checkout_timeout,
            tcp_keepalive,
            tcp_nodelay,
            coalesce_writes,
            protocol,
            key_prefix,
            tls_ca_file,
            tls_client_cert_file,
            tls_client_key_file,
            tls_insecure,
            sentinel_username,
            sentinel_password,
            read_from_replicas,
            lock_wait,
            bench,
        } = self;
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(url))
            .field("password", &password.as_ref().map(|_| "***"))
            .field("pool_size", pool_size)
            .field("max_in_flight", max_in_flight)
            .field("min_idle", min_idle)
            .field("connect_timeout", connect_timeout)
            .field("response_timeout", response_timeout)
            .field("checkout_timeout", checkout_timeout)
            .field("tcp_keepalive", tcp_keepalive)
            .field("tcp_nodelay", tcp_nodelay)
            .field("coalesce_writes", coalesce_writes)
            .field("protocol", protocol)
            .field("key_prefix", key_prefix)
            .field("tls_ca_file", tls_ca_file)
            .field("tls_client_cert_file", tls_client_cert_file)
            .field("tls_client_key_file", tls_client_key_file)
            .field("tls_insecure", tls_insecure)
            .field("sentinel_username", sentinel_username)
            .field(
                "sentinel_password",
                &sentinel_password.as_ref().map(|_| "***"),
            )
            .field("read_from_replicas", read_from_replicas)
            .field("lock_wait", lock_wait)
            .field("bench", bench)
            .finish()
    }
}

impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pool_size {}, {}, key_prefix {:?})",
            redact_url(&self.url),
            self.pool_size,
            self.protocol,
            self.key_prefix
        )
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod topology_tests;
