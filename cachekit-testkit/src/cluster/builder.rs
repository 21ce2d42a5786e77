//! Options for a [`RedisCluster`], and creating one.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use super::{slots, RedisCluster};
use crate::RedisServer;

/// Configures a [`RedisCluster`] before it starts.
///
/// ```no_run
/// use cachekit_testkit::RedisCluster;
///
/// let cluster = RedisCluster::builder()
///     .primaries(3)
///     .replicas_per_primary(1)
///     .requirepass("s3cret")
///     .start();
/// assert!(cluster.url().starts_with("redis+cluster://:s3cret@127.0.0.1:"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    requirepass: Option<String>,
    node_timeout: Duration,
}

impl Default for RedisClusterBuilder {
    fn default() -> Self {
        Self {
            primaries: 3,
            replicas_per_primary: 1,
            requirepass: None,
            node_timeout: Duration::from_millis(1000),
        }
    }
}

impl RedisClusterBuilder {
    /// How many primaries share the slots (3 by default; Redis needs 3 or more).
    pub fn primaries(mut self, n: usize) -> Self {
        self.primaries = n;
        self
    }

    /// How many replicas follow each primary (1 by default).
    pub fn replicas_per_primary(mut self, n: usize) -> Self {
        self.replicas_per_primary = n;
        self
    }

    /// Every node's password (`requirepass` and `masterauth`); in
    /// [`RedisCluster::url`].
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.requirepass = Some(password.into());
        self
    }

    /// `cluster-node-timeout` (1 s by default): how long a node may be
    /// unreachable before it is failed over.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Starts the nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok` and every replica
    /// is in sync.
    ///
    /// # Panics
    ///
    /// With fewer than 3 primaries, when a node does not come up,
    /// `redis-cli` is missing or fails, or the cluster does not settle
    /// within 60 seconds; the message includes the logs.
    pub fn start(self) -> RedisCluster {
        assert!(
            self.primaries >= 3,
            "a Redis Cluster needs at least 3 primaries"
        );
        let count = self.primaries * (1 + self.replicas_per_primary);
        let nodes: Vec<RedisServer> = (0..count).map(|_| self.node()).collect();
        let mut cluster = RedisCluster {
            password: self.requirepass.clone(),
            seeds: Vec::new(),
            nodes,
        };
        self.create(&cluster);
        cluster.wait_ready();
        let view = cluster.view();
        cluster.seeds = cluster
            .nodes
            .iter()
            .map(RedisServer::addr)
            .filter(|addr| {
                view.iter()
                    .any(|e| e.addr == Some(*addr) && e.is_serving_primary() && !e.slots.is_empty())
            })
            .collect();
        let covered = (0..slots::SLOTS).all(|slot| slots::owner(&view, slot).is_some());
        if !covered || cluster.seeds.len() != self.primaries {
            cluster.fail(format_args!(
                "after create, {} primaries serve slots (want {}), all slots covered: {covered}",
                cluster.seeds.len(),
                self.primaries
            ));
        }
        cluster
    }

    fn node(&self) -> RedisServer {
        let timeout = u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX);
        // Diskless sync without its default 5 s delay: replicas sync at once.
        let mut node = RedisServer::builder().config("repl-diskless-sync-delay", "0");
        node.cluster_node_timeout = Some(timeout);
        if let Some(password) = &self.requirepass {
            node = node
                .requirepass(password.clone())
                .config("masterauth", password.clone());
        }
        node.start()
    }

    /// `redis-cli --cluster create`: the first `primaries` nodes get the
    /// slots, the rest become their replicas.
    fn create(&self, cluster: &RedisCluster) {
        let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr().to_string()).collect();
        let mut cli = Command::new("redis-cli");
        cli.arg("--cluster").arg("create").args(&addrs);
        cli.arg("--cluster-replicas")
            .arg(self.replicas_per_primary.to_string())
            .arg("--cluster-yes");
        if let Some(password) = &self.requirepass {
            // Through the environment: never on a command line others can read.
            cli.env("REDISCLI_AUTH", password);
        }
        let output = match cli.output() {
            Ok(output) => output,
            Err(err) => cluster.fail(format_args!(
                "could not run redis-cli ({err}); install it with `sudo apt-get install -y redis-tools`"
            )),
        };
        if !output.status.success() {
            cluster.fail(format_args!(
                "redis-cli --cluster create {} failed ({}):\n{}{}",
                addrs.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
}

impl fmt::Debug for RedisClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterBuilder")
            .field("primaries", &self.primaries)
            .field("replicas_per_primary", &self.replicas_per_primary)
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}
