//! Sentinel: finding the primary and following it through failovers.
//!
//! Each new pooled connection asks the sentinels for the primary
//! (`SENTINEL get-master-addr-by-name`), connects to it as to a standalone
//! server, and checks with `ROLE` that it is a primary. Connections are
//! dropped, and the next one asks again, when they fail at the socket
//! level, when the server answers READONLY or LOADING, and when a sentinel
//! announces `+switch-master` for the service (a task stays subscribed).
//!
//! redis-rs's `sentinel` module does the same discovery, but returns a
//! client of its own making: it would bypass the connect deadline, the
//! coalescing transport and the failure messages of [`Manager`], and its
//! errors do not say which sentinel failed how. The discovery here is one
//! command per sentinel on redis-rs connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use cachekit_core::{ErrorKind, Result};
use futures_util::StreamExt;
use redis::{Client, ProtocolVersion, RedisConnectionInfo, Value};

use super::clients::Clients;
use super::{Conn, Manager};
use crate::config::{ParsedUrl, RedisConfig};
use crate::errors::{self, host_port, Place, SentinelFailure, Target};

/// How long the watcher waits before subscribing again when no sentinel
/// took its subscription.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The sentinels of one service and the state of the primary they name.
pub(crate) struct Sentinels {
    service: String,
    /// `host:port` of each sentinel, with a client carrying the sentinels'
    /// own credentials.
    sentinels: Vec<(String, Client)>,
    /// The settings of connections to data nodes.
    clients: Clients,
    target: Arc<Target>,
    connect_timeout: Duration,
    /// The sentinel that answered last: asked first next time.
    preferred: AtomicUsize,
    /// How many primary switches were announced; connections opened before
    /// the last one are broken.
    switches: Arc<AtomicU64>,
    watching: Once,
    /// The primary last connected to, for the health report.
    current: Mutex<Option<String>>,
}

impl Sentinels {
    pub(crate) fn new(
        config: &RedisConfig,
        url: &ParsedUrl,
        service: &str,
        clients: Clients,
        target: Arc<Target>,
    ) -> Result<Self> {
        let mut settings = RedisConnectionInfo::default()
            .set_protocol(ProtocolVersion::RESP2)
            .set_lib_name("cachekit-redis", env!("CARGO_PKG_VERSION"));
        if let Some(user) = &config.sentinel_username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.sentinel_password {
            settings = settings.set_password(password);
        }
        let sentinels = url
            .hosts
            .iter()
            .map(|(host, port)| {
                let shown = host_port(host, *port);
                let client =
                    clients.client(&clients.tcp_addr(host, *port), settings.clone(), &target)?;
                Ok((shown, client))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            service: service.to_owned(),
            sentinels,
            clients,
            target,
            connect_timeout: config.connect_timeout,
            preferred: AtomicUsize::new(0),
            switches: Arc::new(AtomicU64::new(0)),
            watching: Once::new(),
            current: Mutex::new(None),
        })
    }

    /// Opens a connection to the primary the sentinels name now.
    pub(crate) async fn open(self: &Arc<Self>, manager: &Manager) -> Result<Conn> {
        self.watching.call_once(|| self.watch());
        let seen = self.switches.load(Ordering::Acquire);
        let (host, port) = self.primary().await?;
        let shown = host_port(&host, port);
        let target = Arc::new(Target {
            host: host.clone(),
            port,
            place: Place::Tcp,
            ..(*self.target).clone()
        });
        let endpoint = self
            .clients
            .endpoint(self.clients.tcp_addr(&host, port), target)?;
        let mut conn = manager
            .open_endpoint(&endpoint)
            .await
            .map_err(|err| errors::primary_unusable(&self.service, &shown, &err))?;
        self.check_role(&mut conn, &shown).await?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(shown);
        }
        Ok(conn.until_switch(self.switches.clone(), seen))
    }

    /// The primary the last connection went to.
    pub(crate) fn current_primary(&self) -> Option<String> {
        self.current.lock().ok().and_then(|current| current.clone())
    }

    /// How messages name the deployment.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// How many `+switch-master` announcements for the service were seen.
    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// `ROLE` must say `master`. A user whose ACL forbids ROLE gets the
    /// sentinels' word for it.
    async fn check_role(&self, conn: &mut Conn, shown: &str) -> Result<()> {
        let reply = tokio::time::timeout(
            self.connect_timeout,
            redis::cmd("ROLE").query_async::<Value>(&mut conn.inner),
        )
        .await;
        let role = match reply {
            Err(_elapsed) => {
                return Err(errors::connect_timeout(&self.target, self.connect_timeout))
            }
            Ok(Err(err)) if err.code() == Some("NOPERM") => return Ok(()),
            Ok(Err(err)) => return Err(errors::connect_error(err, &self.target)),
            Ok(Ok(Value::Array(items))) => match items.first() {
                Some(Value::BulkString(role)) => String::from_utf8_lossy(role).into_owned(),
                Some(Value::SimpleString(role)) => role.clone(),
                _ => String::new(),
            },
            Ok(Ok(_)) => String::new(),
        };
        if role == "master" {
            Ok(())
        } else {
            let role = if role.is_empty() {
                "non-primary"
            } else {
                &role
            };
            Err(errors::not_a_primary(&self.service, shown, role))
        }
    }

    /// Asks the sentinels in turn, from the one that answered last, for the
    /// primary's address.
    pub(crate) async fn primary(&self) -> Result<(String, u16)> {
        let count = self.sentinels.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for index in (0..count).map(|i| (first + i) % count) {
            let (shown, client) = &self.sentinels[index];
            match self.ask(client).await {
                Ok(Some(addr)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(addr);
                }
                Ok(None) => failures.push(SentinelFailure {
                    sentinel: shown.clone(),
                    kind: ErrorKind::Config,
                    why: format!("knows no primary named `{}`", self.service),
                }),
                Err(err) => failures.push(failure(shown, &err)),
            }
        }
        Err(errors::no_primary(&self.target, &self.service, &failures))
    }

    /// One sentinel's answer: the address, or `None` if it does not monitor
    /// the service.
    async fn ask(&self, client: &Client) -> std::result::Result<Option<(String, u16)>, Asked> {
        let query = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.service)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match tokio::time::timeout(self.connect_timeout, query).await {
            Err(_elapsed) => Err(Asked::TimedOut(self.connect_timeout)),
            Ok(result) => result.map_err(Asked::Failed),
        }
    }

    /// Starts the task that follows `+switch-master` announcements.
    fn watch(self: &Arc<Self>) {
        let Some(runtime) = cachekit_core::runtime::task_runtime() else {
            return;
        };
        runtime.spawn(watch(Arc::downgrade(self)));
    }
}

/// Why a sentinel gave no answer.
enum Asked {
    TimedOut(Duration),
    Failed(redis::RedisError),
}

fn failure(sentinel: &str, asked: &Asked) -> SentinelFailure {
    let (kind, why) = match asked {
        Asked::TimedOut(limit) => (
            ErrorKind::Connection,
            format!("no answer within connect_timeout ({limit:?})"),
        ),
        Asked::Failed(err)
            if err.kind() == redis::ErrorKind::AuthenticationFailed
                || matches!(err.code(), Some("WRONGPASS" | "NOAUTH")) =>
        {
            (
                ErrorKind::Auth,
                err.code().unwrap_or("authentication failed").to_owned(),
            )
        }
        Asked::Failed(err) if err.is_connection_refusal() => {
            (ErrorKind::Connection, "connection refused".to_owned())
        }
        Asked::Failed(err) => (ErrorKind::Connection, err.to_string()),
    };
    SentinelFailure {
        sentinel: sentinel.to_owned(),
        kind,
        why,
    }
}

/// Stays subscribed to `+switch-master` on one sentinel after another; on
/// an announcement for our service, every connection opened before it is
/// broken. Ends when the backend is dropped.
async fn watch(sentinels: Weak<Sentinels>) {
    let mut next = 0;
    loop {
        let Some(client) = sentinels.upgrade().map(|s| {
            let count = s.sentinels.len().max(1);
            next %= count;
            s.sentinels.get(next).map(|(_, client)| client.clone())
        }) else {
            return;
        };
        next += 1;
        if let Some(client) = client {
            follow(&sentinels, &client).await;
        }
        if sentinels.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

/// Follows one sentinel's announcements until its connection ends or the
/// backend is dropped.
async fn follow(sentinels: &Weak<Sentinels>, client: &Client) {
    let Ok(Ok(mut pubsub)) =
        tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub()).await
    else {
        return;
    };
    if pubsub.subscribe("+switch-master").await.is_err() {
        return;
    }
    let mut messages = pubsub.on_message();
    loop {
        // Wakes now and then to notice a dropped backend.
        let message = match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(_idle) => {
                if sentinels.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        let Some(sentinels) = sentinels.upgrade() else {
            return;
        };
        let payload: String = message.get_payload().unwrap_or_default();
        // `<name> <old ip> <old port> <new ip> <new port>`
        let mut words = payload.split_whitespace();
        if words.next() == Some(sentinels.service.as_str()) {
            sentinels.switches.fetch_add(1, Ordering::AcqRel);
            tracing::info!(
                server = %sentinels.target,
                announcement = %payload,
                "cachekit-redis: the sentinels switched the primary; connections to the old one are dropped"
            );
        }
    }
}
