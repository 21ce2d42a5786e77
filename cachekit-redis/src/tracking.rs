//! Cross-process L1 invalidation for Redis: a listener per backend that
//! keeps one RESP3 connection per primary with `CLIENT TRACKING ON BCAST`
//! (prefixed by the backend's key prefix, if any) and subscribed to
//! [`CLEAR_CHANNEL`], and reports what it hears to the backend's
//! [`Invalidations`]. docs/architecture.md says why BCAST.
//!
//! The connection is pinged every [`PING_EVERY`]; a ping that fails or goes
//! unanswered for [`ping_deadline`], a closed connection, a Sentinel
//! switch or a change of the cluster's primaries reports the channel lost
//! and starts over. Each start flushes the L1s again, since what changed
//! in between is unknown.

mod feed;
mod targets;

use std::sync::{Arc, Weak};
use std::time::Duration;

use cachekit_core::{Error, Invalidations, Result};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::Notify;

use crate::pool::Endpoint;
use crate::state::Inner;
use feed::Feed;
pub(crate) use feed::CLEAR_CHANNEL;
use targets::Topology;

/// How often the listening connections are pinged: how long a server that
/// stopped answering (SIGSTOP, a dead host) goes unnoticed, at most, plus
/// the deadline.
const PING_EVERY: Duration = Duration::from_millis(200);

/// How often a cluster's primaries are compared with those listened to.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(1);

/// Pauses between attempts to set the channel up again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// What fixes a listener the server's ACL refuses.
const NOPERM_HINT: &str = "; let the user listen (ACL SETUSER <user> +client|tracking \
    +subscribe +ping &__cachekit__:clear) or turn L1 invalidation off \
    (TieredCacheBuilder::l1_invalidation(false) or CACHEKIT_L1_INVALIDATION=off); \
    until then L1 entries live at most l1_ttl_unsynced";

/// Starts the listener of `backend` (on cachekit's task runtime) and
/// returns its channel, down until the listener has set tracking up.
pub(crate) fn start(backend: &Arc<Inner>) -> Arc<Invalidations> {
    let channel = Arc::new(Invalidations::new(backend.shown.clone()));
    match cachekit_core::runtime::task_runtime() {
        Some(runtime) => {
            runtime.spawn(listen(Arc::downgrade(backend), channel.clone()));
        }
        None => channel.lost("no runtime to run the invalidation listener on"),
    }
    channel
}

/// The connections of one listening session.
struct Session {
    conns: Vec<MultiplexedConnection>,
    closed: Arc<Notify>,
    topology: Topology,
}

async fn listen(backend: Weak<Inner>, channel: Arc<Invalidations>) {
    let mut pause = RETRY_FIRST;
    loop {
        let Some(inner) = backend.upgrade() else {
            return;
        };
        let opened = open(&inner, &channel).await;
        let ping_deadline = ping_deadline(&inner);
        drop(inner);
        let session = match opened {
            Ok(session) => session,
            Err(err) => {
                channel.lost(&err.to_string());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
                continue;
            }
        };
        channel.resumed();
        pause = RETRY_FIRST;
        let why = watch(&backend, session, ping_deadline).await;
        match why {
            Some(why) => channel.lost(&why),
            None => return,
        }
    }
}

/// Connects to every server to listen to and turns tracking on.
async fn open(inner: &Inner, channel: &Arc<Invalidations>) -> Result<Session> {
    let (endpoints, topology) = inner.tracking.resolve(inner).await?;
    let closed = Arc::new(Notify::new());
    let mut conns = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        let feed = Feed {
            channel: channel.clone(),
            key_prefix: inner.key_prefix.clone(),
            closed: closed.clone(),
        };
        conns.push(track(inner, endpoint, feed).await?);
    }
    Ok(Session {
        conns,
        closed,
        topology,
    })
}

/// One listening connection to `endpoint`, tracking on.
async fn track(inner: &Inner, endpoint: &Endpoint, feed: Feed) -> Result<MultiplexedConnection> {
    let limit = inner.connect_timeout;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(limit))
        .set_push_sender(feed);
    let target = &endpoint.target;
    let failed = |what: &str, err: redis::RedisError| {
        let hint = if err.code() == Some("NOPERM") {
            NOPERM_HINT
        } else {
            ""
        };
        Error::new(
            cachekit_core::ErrorKind::Connection,
            format!("L1 invalidation: {what} on {target} failed: {err}{hint}"),
        )
    };
    let mut conn = endpoint
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|err| failed("connecting (RESP3)", err))?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    if !inner.key_prefix.is_empty() {
        tracking.arg("PREFIX").arg(&inner.key_prefix);
    }
    tracking
        .query_async::<()>(&mut conn)
        .await
        .map_err(|err| failed("CLIENT TRACKING ON BCAST", err))?;
    conn.subscribe(CLEAR_CHANNEL)
        .await
        .map_err(|err| failed("SUBSCRIBE", err))?;
    Ok(conn)
}

/// Pings the session's connections and watches the topology until one
/// of them says the channel is lost (the reason), or the backend is gone
/// (`None`).
async fn watch(backend: &Weak<Inner>, mut session: Session, deadline: Duration) -> Option<String> {
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_topology = Duration::ZERO;
    loop {
        tokio::select! {
            _ = session.closed.notified() => return Some("the connection closed".to_owned()),
            _ = ticks.tick() => {}
        }
        let inner = backend.upgrade()?;
        let ping_cmd = redis::cmd("PING");
        for conn in &mut session.conns {
            let ping = ping_cmd.query_async::<()>(conn);
            match tokio::time::timeout(deadline, ping).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Some(format!("PING failed: {err}")),
                Err(_) => return Some(format!("no answer to PING within {deadline:?}")),
            }
        }
        since_topology += PING_EVERY;
        let check = match session.topology {
            Topology::Fixed => false,
            Topology::Switches(_) => true,
            Topology::Primaries(_) => since_topology >= TOPOLOGY_EVERY,
        };
        if check {
            since_topology = Duration::ZERO;
            // A failed look is no verdict: the pings say whether we hear.
            if let Ok(now) = inner.tracking.current(&inner).await {
                if now != session.topology {
                    return Some("the primaries changed".to_owned());
                }
            }
        }
    }
}

/// How long a ping may go unanswered: the backend's response timeout,
/// within [100 ms, 1 s].
fn ping_deadline(inner: &Inner) -> Duration {
    inner
        .response_timeout
        .clamp(Duration::from_millis(100), Duration::from_secs(1))
}
