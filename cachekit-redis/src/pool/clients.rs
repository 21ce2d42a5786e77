//! Building redis-rs [`Client`]s: every setting a connection to one data
//! node needs (credentials, protocol, database, TCP settings, TLS files),
//! prepared once, so that a Sentinel backend can build a client for each
//! primary it discovers exactly as a standalone one builds its only one.

use std::sync::Arc;
use std::time::Duration;

use cachekit_core::{Error, Result};
use redis::io::tcp::socket2::TcpKeepalive;
use redis::io::tcp::TcpSettings;
use redis::{
    Client, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, RedisError,
};

use super::tls::{self, Certificates};
use crate::config::{ParsedUrl, Protocol, RedisConfig};
use crate::errors::Target;

/// Keepalive probes after the idle time: often enough to notice a dead
/// peer within a couple of minutes, rare enough to cost nothing.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A server to connect to: its client, a credential-less twin, and how
/// messages name it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) client: Client,
    /// The same server without credentials: after an authentication failure
    /// it tells "wrong password" from "this server wants none".
    pub(crate) probe: Option<Client>,
    pub(crate) target: Arc<Target>,
}

/// What every connection to a data node of one backend shares.
#[derive(Clone)]
pub(crate) struct Clients {
    pub(crate) tcp: TcpSettings,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) tls: bool,
    pub(crate) insecure: bool,
    pub(crate) certificates: Option<Certificates>,
}

impl Clients {
    /// The settings of `config` (whose URL parsed as `url`), reading the
    /// TLS files.
    pub(crate) fn new(config: &RedisConfig, url: &ParsedUrl, target: &Target) -> Result<Self> {
        let mut tcp = TcpSettings::default().set_nodelay(config.tcp_nodelay);
        if let Some(idle) = config.tcp_keepalive {
            tcp = tcp.set_keepalive(
                TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(idle.min(KEEPALIVE_INTERVAL)),
            );
        }
        if url.tls {
            tls::prepare(target)?;
            if config.tls_insecure {
                // Once per backend: its connections all share these settings.
                tracing::warn!(
                    server = %target,
                    "cachekit-redis: tls_insecure is set: the server's certificate and host name are not verified, so anyone on the network path can impersonate it; use it only in tests"
                );
            }
        }
        Ok(Self {
            tcp,
            protocol: match config.protocol {
                Protocol::Resp2 => ProtocolVersion::RESP2,
                Protocol::Resp3 => ProtocolVersion::RESP3,
            },
            username: url.username.clone(),
            password: url.password.clone().or_else(|| config.password.clone()),
            db: url.db,
            tls: url.tls,
            insecure: config.tls_insecure,
            certificates: tls::certificates(config)?,
        })
    }

    /// The address of `host:port` with this backend's TLS choice.
    pub(crate) fn tcp_addr(&self, host: &str, port: u16) -> ConnectionAddr {
        if self.tls {
            tls::addr(host, port, self.insecure)
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        }
    }

    /// The protocol, library name and database; no credentials.
    fn anonymous(&self) -> RedisConnectionInfo {
        RedisConnectionInfo::default()
            .set_db(self.db)
            .set_protocol(self.protocol)
            .set_lib_name("cachekit-redis", env!("CARGO_PKG_VERSION"))
    }

    /// A client for the server at `addr`, which messages call `target`.
    pub(crate) fn endpoint(&self, addr: ConnectionAddr, target: Arc<Target>) -> Result<Endpoint> {
        let anonymous = self.anonymous();
        let mut settings = anonymous.clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        let client = self.client(&addr, settings, &target)?;
        let probe = match self.password {
            Some(_) => Some(self.client(&addr, anonymous.set_db(0), &target)?),
            None => None,
        };
        Ok(Endpoint {
            client,
            probe,
            target,
        })
    }

    /// A client for `addr` with `settings`, this backend's TCP settings and
    /// TLS files.
    pub(crate) fn client(
        &self,
        addr: &ConnectionAddr,
        settings: RedisConnectionInfo,
        target: &Target,
    ) -> Result<Client> {
        let info = addr
            .clone()
            .into_connection_info()
            .map_err(|err| client_config_error(target, err))?
            .set_tcp_settings(self.tcp.clone())
            .set_redis_settings(settings);
        let built = match &self.certificates {
            Some(certs) => tls::client(info, certs),
            None => Client::open(info),
        };
        built.map_err(|err| client_config_error(target, err))
    }
}

pub(crate) fn client_config_error(target: &Target, err: RedisError) -> Error {
    // redis-rs reports TLS material problems as client-config errors.
    Error::config(
        "tls",
        format!("the TLS settings for {target} are not usable: {err}"),
    )
    .with_source(err)
}
