//! [`RedisConfigBuilder`]: fields set in code, over the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cachekit_core::Result;

use super::{bench, env, redact_url, Protocol, RedisConfig};

/// Builds a [`RedisConfig`]; fields not set keep their defaults.
///
/// Fields set on the builder win over the environment, whatever the order
/// of the calls: `builder().pool_size(4).env()` keeps 4.
#[derive(Clone, Default)]
#[must_use]
pub struct RedisConfigBuilder {
    read_env: bool,
    url: Option<String>,
    password: Option<String>,
    pool_size: Option<u32>,
    max_in_flight: Option<u32>,
    min_idle: Option<u32>,
    connect_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    checkout_timeout: Option<Duration>,
    tcp_keepalive: Option<Option<Duration>>,
    tcp_nodelay: Option<bool>,
    coalesce_writes: Option<bool>,
    protocol: Option<Protocol>,
    key_prefix: Option<String>,
    tls_ca_file: Option<PathBuf>,
    tls_client_cert_file: Option<PathBuf>,
    tls_client_key_file: Option<PathBuf>,
    tls_insecure: Option<bool>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
    read_from_replicas: Option<bool>,
    lock_wait: Option<Duration>,
    bench: Option<bench::BenchSwitches>,
}

impl fmt::Debug for RedisConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfigBuilder")
            .field("read_env", &self.read_env)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .field("pool_size", &self.pool_size)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisConfigBuilder {
    /// Fills every field not set on this builder from the environment (see
    /// [`RedisConfig::from_env`]).
    pub fn env(mut self) -> Self {
        self.read_env = true;
        self
    }

    /// The server URL, see [`RedisConfig::url`].
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The password used when the URL has none, see [`RedisConfig::password`].
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The most connections the pool opens (default 10).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// The most commands awaiting replies at once (default 256).
    pub fn max_in_flight(mut self, slots: u32) -> Self {
        self.max_in_flight = Some(slots);
        self
    }

    /// How many idle connections the pool keeps open.
    pub fn min_idle(mut self, count: u32) -> Self {
        self.min_idle = Some(count);
        self
    }

    /// How long opening one connection may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long one command may wait for its reply (default 1 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }

    /// How long an operation may wait for a free connection (default 1 s).
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.checkout_timeout = Some(timeout);
        self
    }

    /// TCP keepalive idle time, `None` to turn it off (default 60 s).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = Some(idle);
        self
    }

    /// Whether commands go out at once (`TCP_NODELAY`, default `true`); see
    /// [`RedisConfig::tcp_nodelay`] before turning it off.
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.tcp_nodelay = Some(nodelay);
        self
    }

    /// Whether concurrent commands leave in one write (default `true`); see
    /// [`RedisConfig::coalesce_writes`].
    pub fn coalesce_writes(mut self, coalesce: bool) -> Self {
        self.coalesce_writes = Some(coalesce);
        self
    }

    /// RESP2 or RESP3 (default RESP2).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Prepended to every key (default empty).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// PEM file with the CA that signed the server certificate.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// PEM files with the client certificate and its key, for mutual TLS.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_client_cert_file = Some(cert.into());
        self.tls_client_key_file = Some(key.into());
        self
    }

    /// Accept any server certificate and host name (tests only).
    pub fn tls_insecure(mut self, insecure: bool) -> Self {
        self.tls_insecure = Some(insecure);
        self
    }

    /// The sentinels' own credentials (see
    /// [`RedisConfig::sentinel_password`]); `None` for no user name.
    pub fn sentinel_credentials(
        mut self,
        username: Option<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sentinel_username = username;
        self.sentinel_password = Some(password.into());
        self
    }

    /// Cluster only: reads from replicas, see
    /// [`RedisConfig::read_from_replicas`].
    pub fn read_from_replicas(mut self, read_from_replicas: bool) -> Self {
        self.read_from_replicas = Some(read_from_replicas);
        self
    }

    /// How long `lock` waits for a lock held elsewhere (default 10 s).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// Bench-only: swaps parts of the connection layer (see
    /// `benches/layer.rs`); not a stable API.
    #[doc(hidden)]
    pub fn bench_switches(mut self, switches: bench::BenchSwitches) -> Self {
        self.bench = Some(switches);
        self
    }

    /// Checks the fields and returns the config.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](cachekit_core::ErrorKind::Config) naming the
    /// field (or environment variable) that is invalid. Nothing connects yet.
    pub fn build(self) -> Result<RedisConfig> {
        if self.read_env {
            env::warn_misspelled_once();
        }
        self.build_with_env(|name| std::env::var(name).ok())
    }

    pub(super) fn build_with_env(
        self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RedisConfig> {
        let mut config = RedisConfig::default();
        if self.read_env {
            env::apply(&mut config, lookup)?;
        }
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    fn apply(self, config: &mut RedisConfig) {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut config.url, self.url);
        set(&mut config.password, self.password.map(Some));
        set(&mut config.pool_size, self.pool_size);
        set(&mut config.max_in_flight, self.max_in_flight);
        set(&mut config.min_idle, self.min_idle.map(Some));
        set(&mut config.connect_timeout, self.connect_timeout);
        set(&mut config.response_timeout, self.response_timeout);
        set(&mut config.checkout_timeout, self.checkout_timeout);
        set(&mut config.tcp_keepalive, self.tcp_keepalive);
        set(&mut config.tcp_nodelay, self.tcp_nodelay);
        set(&mut config.coalesce_writes, self.coalesce_writes);
        set(&mut config.protocol, self.protocol);
        set(&mut config.key_prefix, self.key_prefix);
        set(&mut config.tls_ca_file, self.tls_ca_file.map(Some));
        set(
            &mut config.tls_client_cert_file,
            self.tls_client_cert_file.map(Some),
        );
        set(
            &mut config.tls_client_key_file,
            self.tls_client_key_file.map(Some),
        );
        set(&mut config.tls_insecure, self.tls_insecure);
        set(
            &mut config.sentinel_username,
            self.sentinel_username.map(Some),
        );
        set(
            &mut config.sentinel_password,
            self.sentinel_password.map(Some),
        );
        set(&mut config.read_from_replicas, self.read_from_replicas);
        set(&mut config.lock_wait, self.lock_wait);
        set(&mut config.bench, self.bench);
    }
}
