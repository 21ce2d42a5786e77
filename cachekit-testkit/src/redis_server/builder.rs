//! Options for a test server, and the command line they turn into.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use super::tls::TlsFiles;
use super::{RedisServer, HOST, SOCKET_FILE};

/// The configuration file written into the server's temp dir when there is
/// one (sentinels need a file they can rewrite).
pub(crate) const CONFIG_FILE: &str = "redis.conf";

/// Configures a [`RedisServer`] before it starts.
///
/// ```no_run
/// use cachekit_testkit::RedisServer;
///
/// let server = RedisServer::builder()
///     .requirepass("s3cret")
///     .config("maxmemory", "64mb")
///     .start();
/// assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct RedisServerBuilder {
    pub(crate) requirepass: Option<String>,
    pub(crate) acl_user: Option<(String, String)>,
    pub(crate) tls: bool,
    pub(crate) require_client_cert: bool,
    pub(crate) extra_args: Vec<OsString>,
    pub(crate) unix_socket: bool,
    /// Contents of a config file passed before every other argument.
    pub(crate) config_file: Option<String>,
    /// Runs as a sentinel (`--sentinel`); needs a `config_file`.
    pub(crate) sentinel: bool,
    /// Runs as a cluster node with this `cluster-node-timeout` (ms).
    pub(crate) cluster_node_timeout: Option<u64>,
}

impl RedisServerBuilder {
    /// Requires this password for the `default` user (legacy `AUTH password`).
    ///
    /// [`RedisServer::url`] then carries it as `redis://:PASSWORD@...`.
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.requirepass = Some(password.into());
        self
    }

    /// Creates an ACL user with full access (`user NAME on >PASSWORD ~* &* +@all`).
    ///
    /// The `default` user stays usable without a password unless
    /// [`requirepass`](Self::requirepass) is also set. [`RedisServer::url`]
    /// carries this user's credentials (`redis://NAME:PASSWORD@...`). A second
    /// call replaces the first user.
    pub fn acl_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.acl_user = Some((name.into(), password.into()));
        self
    }

    /// Serves TLS only, with certificates generated for this server.
    ///
    /// Client certificates are accepted but not required; see
    /// [`tls_require_client_cert`](Self::tls_require_client_cert).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serves TLS only and rejects clients without a certificate signed by
    /// the server's CA (`--tls-auth-clients yes`). Implies [`tls`](Self::tls).
    pub fn tls_require_client_cert(mut self) -> Self {
        self.tls = true;
        self.require_client_cert = true;
        self
    }

    /// Also listens on a Unix socket, `redis.sock` in the server's temp dir,
    /// readable and writable by this user only (`unixsocketperm 700`). TCP
    /// stays on; the socket comes back after a restart.
    ///
    /// See [`RedisServer::socket_path`] and [`RedisServer::unix_url`].
    pub fn unix_socket(mut self) -> Self {
        self.unix_socket = true;
        self
    }

    /// Appends one raw command-line argument, such as `--maxclients`.
    ///
    /// Arguments come after the harness's own, so they override them.
    pub fn extra_arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Sets one configuration directive (`--NAME VALUE` on the command line).
    pub fn config(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.extra_args.push(format!("--{name}").into());
        self.extra_args.push(value.into());
        self
    }

    /// Starts the server and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When `redis-server` (or, for TLS, `openssl`) is not installed, or the
    /// server does not come up within 10 seconds; the message includes the
    /// server's log.
    pub fn start(self) -> RedisServer {
        RedisServer::launch_new(self)
    }

    /// The full `redis-server` command line for `port`.
    pub(crate) fn server_args(
        &self,
        port: u16,
        dir: &Path,
        tls: Option<&TlsFiles>,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.config_file.is_some() {
            args.push(dir.join(CONFIG_FILE).into());
        }
        if self.sentinel {
            args.push("--sentinel".into());
        }
        let mut push = |name: &str, value: OsString| {
            args.push(format!("--{name}").into());
            args.push(value);
        };
        push("bind", HOST.into());
        match tls {
            Some(files) => {
                push("port", "0".into());
                push("tls-port", port.to_string().into());
                push("tls-cert-file", files.server_cert.clone().into());
                push("tls-key-file", files.server_key.clone().into());
                push("tls-ca-cert-file", files.ca_cert.clone().into());
                let auth_clients = if self.require_client_cert {
                    "yes"
                } else {
                    "optional"
                };
                push("tls-auth-clients", auth_clients.into());
            }
            None => push("port", port.to_string().into()),
        }
        push("save", "".into());
        push("appendonly", "no".into());
        push("dir", dir.into());
        push("logfile", dir.join(super::launch::LOG_FILE).into());
        push("daemonize", "no".into());
        push("protected-mode", "yes".into());
        if self.unix_socket {
            push("unixsocket", dir.join(SOCKET_FILE).into());
            push("unixsocketperm", "700".into());
        }
        if let Some(timeout) = self.cluster_node_timeout {
            push("cluster-enabled", "yes".into());
            push("cluster-config-file", dir.join("nodes.conf").into());
            push("cluster-node-timeout", timeout.to_string().into());
            push("cluster-announce-ip", HOST.into());
        }
        if let Some(password) = &self.requirepass {
            push("requirepass", password.into());
        }
        if let Some((name, password)) = &self.acl_user {
            // Redis joins the words after `--user` into one config line.
            args.push("--user".into());
            for word in [
                name.as_str(),
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ] {
                args.push(word.into());
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

impl fmt::Debug for RedisServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords stay out of Debug output; extra args may hold them too.
        f.debug_struct("RedisServerBuilder")
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field("acl_user", &self.acl_user.as_ref().map(|(name, _)| name))
            .field("tls", &self.tls)
            .field("require_client_cert", &self.require_client_cert)
            .field("extra_args", &self.extra_args.len())
            .field("unix_socket", &self.unix_socket)
            .field("sentinel", &self.sentinel)
            .field("cluster_node_timeout", &self.cluster_node_timeout)
            .finish_non_exhaustive()
    }
}
