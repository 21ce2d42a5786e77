//! A Redis Sentinel deployment on loopback: a primary, its replicas and
//! the sentinels watching them, every one a real `redis-server` process.

mod builder;
mod view;

use std::fmt;
use std::net::SocketAddr;

pub use builder::SentinelSetBuilder;

use crate::redis_server::encode_userinfo;
use crate::topology::{self, is_live, wait_until};
use crate::RedisServer;

/// A primary, its replicas and the sentinels monitoring them, on
/// `127.0.0.1` and free ports, with short timeouts so that a failover
/// takes a few seconds (`down-after-milliseconds` 1000,
/// `failover-timeout` 5000).
///
/// Every address the sentinels hand out is `127.0.0.1:PORT`. Dropping the
/// set kills every process.
///
/// ```no_run
/// use cachekit_testkit::SentinelSet;
///
/// let set = SentinelSet::start(); // 1 primary, 1 replica, 3 sentinels
/// assert_eq!(set.master_name(), "mymaster");
/// set.primary().command(&["SET", "k", "v"]);
/// let old = set.kill_primary();
/// let new = set.wait_for_failover(old);
/// assert_ne!(old, new);
/// assert_eq!(set.primary().addr(), new);
/// ```
pub struct SentinelSet {
    master_name: String,
    password: Option<String>,
    // Sentinels first: dropped first, they cannot react to the data nodes' end.
    sentinels: Vec<RedisServer>,
    data_nodes: Vec<RedisServer>,
}

impl SentinelSet {
    /// Starts one primary, one replica and three sentinels watching them
    /// as `mymaster`, and waits until a failover could start at once.
    ///
    /// # Panics
    ///
    /// When a process does not come up or the set does not settle within
    /// 60 seconds; the message includes the logs.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options: more replicas or sentinels, another master name, passwords.
    pub fn builder() -> SentinelSetBuilder {
        SentinelSetBuilder::default()
    }

    /// The name the sentinels know the primary by (`mymaster` by default).
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// Every sentinel's address, in start order.
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(RedisServer::addr).collect()
    }

    /// `127.0.0.1:A,127.0.0.1:B,...`: the sentinels, as
    /// `REDIS_SENTINEL_HOST`-style lists are written.
    pub fn sentinel_hosts(&self) -> String {
        let hosts: Vec<String> = self
            .sentinel_addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        hosts.join(",")
    }

    /// `redis+sentinel://[:PASSWORD@]127.0.0.1:A,127.0.0.1:B,.../MASTER`,
    /// with the data nodes' password percent-encoded (the sentinels' own
    /// password is not part of the URL).
    pub fn url(&self) -> String {
        let auth = match &self.password {
            Some(password) => format!(":{}@", encode_userinfo(password)),
            None => String::new(),
        };
        format!(
            "redis+sentinel://{auth}{}/{}",
            self.sentinel_hosts(),
            encode_userinfo(&self.master_name)
        )
    }

    /// The primary and replicas, in start order (the first was the primary
    /// at start).
    pub fn data_nodes(&self) -> &[RedisServer] {
        &self.data_nodes
    }

    /// The sentinels, for stopping, pausing or restarting one.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The data node the sentinels name as primary now (the first running
    /// sentinel that answers is asked).
    ///
    /// # Panics
    ///
    /// When no sentinel answers, or one names an address that is not a
    /// data node of this set.
    pub fn primary(&self) -> &RedisServer {
        let addr = self
            .sentinels
            .iter()
            .filter(|s| is_live(s))
            .find_map(|s| view::named_primary(s, &self.master_name).ok())
            .unwrap_or_else(|| self.fail("no running sentinel names a primary"));
        self.node(addr)
    }

    /// The data node at `addr`.
    fn node(&self, addr: SocketAddr) -> &RedisServer {
        self.data_nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| self.fail(format_args!("{addr} is not a data node of this set")))
    }

    /// SIGKILLs the current primary and returns its address, without
    /// waiting for the failover ([`wait_for_failover`](Self::wait_for_failover)
    /// does). Waits first, if needed, until the sentinels could fail over
    /// (they agree on the primary and see an in-sync replica).
    ///
    /// # Panics
    ///
    /// As [`primary`](Self::primary), when the primary is already down, or
    /// when the set does not settle within 60 seconds.
    pub fn kill_primary(&self) -> SocketAddr {
        let primary = self.primary();
        if !primary.is_running() {
            self.fail(format_args!(
                "the primary {} is already down",
                primary.addr()
            ));
        }
        self.wait_ready();
        let primary = self.primary();
        primary.stop();
        primary.addr()
    }

    /// Blocks until every running sentinel names the same primary other
    /// than `old` and that node answers ROLE with `master`; returns its
    /// address.
    ///
    /// # Panics
    ///
    /// After 60 seconds, with every process's log.
    pub fn wait_for_failover(&self, old: SocketAddr) -> SocketAddr {
        let what = format!("the sentinels to promote a replica in place of {old}");
        wait_until(
            &what,
            || {
                let named = view::agreed_primary(&self.sentinels, &self.master_name)?;
                if named == old {
                    return Err(format!("the sentinels still name {old}"));
                }
                let role = topology::role(self.node(named))?;
                if role != "master" {
                    return Err(format!("{named} is named but answers ROLE {role:?}"));
                }
                Ok(named)
            },
            || self.logs(),
        )
    }

    /// A graceful failover: waits until the set could fail over, sends
    /// `SENTINEL FAILOVER <master>` to a running sentinel, then
    /// [`wait_for_failover`](Self::wait_for_failover). Returns the new
    /// primary's address. The old primary stays up and the sentinels turn
    /// it into a replica of the new one (within about ten seconds; the
    /// next `failover` or [`kill_primary`](Self::kill_primary) waits for
    /// that).
    ///
    /// # Panics
    ///
    /// When no sentinel accepts the failover or it does not complete within
    /// 60 seconds; the message includes the logs.
    pub fn failover(&self) -> SocketAddr {
        self.wait_ready();
        let old = self.primary().addr();
        wait_until(
            "a sentinel to accept SENTINEL FAILOVER",
            || {
                let sentinel = self
                    .sentinels
                    .iter()
                    .find(|s| is_live(s))
                    .ok_or("no running sentinel")?;
                topology::probe(sentinel, &["SENTINEL", "FAILOVER", &self.master_name]).map(drop)
            },
            || self.logs(),
        );
        self.wait_for_failover(old)
    }

    /// Starts the data node at `addr` again (after
    /// [`kill_primary`](Self::kill_primary) or a `stop()`), on its old port,
    /// makes it a replica of the current primary, and waits until it is in
    /// sync and every running sentinel sees it as a healthy replica.
    ///
    /// # Panics
    ///
    /// When `addr` is not a data node of this set, the node does not come
    /// up, or the set does not settle within 60 seconds.
    pub fn restart_node(&self, addr: SocketAddr) {
        let primary = self.primary().addr();
        if primary == addr {
            self.fail(format_args!(
                "restart_node({addr}): the sentinels still name it primary; wait_for_failover first"
            ));
        }
        let node = self.node(addr);
        node.restart();
        let port = primary.port().to_string();
        let reply = node.command(&["REPLICAOF", "127.0.0.1", &port]);
        if reply != "OK" {
            self.fail(format_args!("REPLICAOF on {addr} answered {reply:?}"));
        }
        self.wait_ready();
    }

    /// Waits until a failover could start at once: every running sentinel
    /// names the same primary, which answers as master, sees the other
    /// sentinels, and sees every running data node as an in-sync replica;
    /// and every such replica reports its link to the primary up.
    ///
    /// [`start`](SentinelSetBuilder::start), [`failover`](Self::failover),
    /// [`kill_primary`](Self::kill_primary) and
    /// [`restart_node`](Self::restart_node) call it already.
    ///
    /// # Panics
    ///
    /// After 60 seconds, with every process's log.
    pub fn wait_ready(&self) {
        wait_until(
            "the sentinel set to settle (agreed primary, in-sync replicas)",
            || view::ready(self),
            || self.logs(),
        );
    }

    /// Every process's recent log lines, sentinels first.
    pub fn logs(&self) -> String {
        topology::logs_of([
            ("sentinel", &self.sentinels[..]),
            ("data node", &self.data_nodes[..]),
        ])
    }

    fn fail(&self, problem: impl fmt::Display) -> ! {
        panic!(
            "sentinel set {:?}: {problem}\n{}",
            self.master_name,
            self.logs()
        )
    }
}

impl fmt::Debug for SentinelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSet")
            .field("master_name", &self.master_name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("data_nodes", &self.data_nodes)
            .field("sentinels", &self.sentinels)
            .finish()
    }
}
