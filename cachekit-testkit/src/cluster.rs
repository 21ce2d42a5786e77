//! A Redis Cluster on loopback: primaries and their replicas, every one a
//! real `redis-server` process in cluster mode.

mod builder;
mod migrate;
mod slots;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::thread::JoinHandle;

pub use builder::RedisClusterBuilder;
pub use migrate::SlotMigration;

use crate::redis_server::encode_userinfo;
use crate::topology::{self, is_live, wait_until};
use crate::RedisServer;
use slots::NodeEntry;

/// Primaries and replicas joined by `redis-cli --cluster create`, on
/// `127.0.0.1` and free ports (each port and port + 10000, the cluster
/// bus, below the kernel's ephemeral range), with `cluster-node-timeout`
/// 1000 ms so that a replica takes over within a few seconds.
///
/// Dropping the cluster kills every node.
///
/// ```no_run
/// use cachekit_testkit::RedisCluster;
///
/// let cluster = RedisCluster::start(); // 3 primaries, 1 replica each
/// let node = cluster.primary_for_key("user:1");
/// assert_eq!(node.command(&["SET", "user:1", "v"]), "OK");
/// let old = cluster.kill_primary_for_key("user:1");
/// cluster.wait_for_promotion(old);
/// assert_ne!(cluster.primary_for_key("user:1").addr(), old);
/// ```
pub struct RedisCluster {
    password: Option<String>,
    /// The primaries when the cluster was created.
    seeds: Vec<SocketAddr>,
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three primaries with one replica each and waits until every
    /// node reports `cluster_state:ok` and every replica is in sync.
    ///
    /// # Panics
    ///
    /// When a node does not come up, `redis-cli --cluster create` fails, or
    /// the cluster does not settle within 60 seconds; the message includes
    /// the logs.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options: how many primaries and replicas, a password.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// `127.0.0.1:A,127.0.0.1:B,...`: the primaries at start, as
    /// `CACHEKIT_REDIS_CLUSTER_NODES` takes them.
    pub fn seed_nodes(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(ToString::to_string).collect();
        seeds.join(",")
    }

    /// `redis+cluster://[:PASSWORD@]127.0.0.1:A,127.0.0.1:B,...` with the
    /// primaries at start and the password percent-encoded.
    pub fn url(&self) -> String {
        let auth = match &self.password {
            Some(password) => format!(":{}@", encode_userinfo(password)),
            None => String::new(),
        };
        format!("redis+cluster://{auth}{}", self.seed_nodes())
    }

    /// Every node, primaries and replicas, in start order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node at `addr`.
    ///
    /// # Panics
    ///
    /// When no node of this cluster listens there.
    pub fn node(&self, addr: SocketAddr) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| self.fail(format_args!("{addr} is not a node of this cluster")))
    }

    /// The slot of `key` (CRC16 of the key or its `{hash tag}`, mod 16384),
    /// computed locally.
    pub fn key_slot(&self, key: &str) -> u16 {
        slots::key_slot(key)
    }

    /// `count` keys of the form `key:N` that hash to `slot`.
    ///
    /// # Panics
    ///
    /// When `slot` is 16384 or more.
    pub fn keys_in_slot(&self, slot: u16, count: usize) -> Vec<String> {
        assert!(slot < slots::SLOTS, "slot {slot} is out of range 0..16384");
        slots::keys_in_slot(slot, count)
    }

    /// The cluster's view from the first running node that answers.
    fn view(&self) -> Vec<NodeEntry> {
        self.nodes
            .iter()
            .filter(|n| is_live(n))
            .find_map(|n| slots::cluster_nodes(n).ok())
            .unwrap_or_else(|| self.fail("no running node answers CLUSTER NODES"))
    }

    /// The primary serving `slot`, as the first running node that answers
    /// sees it.
    ///
    /// # Panics
    ///
    /// When no node answers or no serving primary owns the slot (during a
    /// failover, before [`wait_for_promotion`](Self::wait_for_promotion)).
    pub fn primary_for_slot(&self, slot: u16) -> &RedisServer {
        let view = self.view();
        match slots::owner(&view, slot).and_then(|e| e.addr) {
            Some(addr) => self.node(addr),
            None => self.fail(format_args!("no serving primary owns slot {slot}")),
        }
    }

    /// The primary serving `key`'s slot; see [`primary_for_slot`](Self::primary_for_slot).
    pub fn primary_for_key(&self, key: &str) -> &RedisServer {
        self.primary_for_slot(slots::key_slot(key))
    }

    /// The primaries serving slots now, in start order.
    pub fn primaries(&self) -> Vec<&RedisServer> {
        let view = self.view();
        self.nodes
            .iter()
            .filter(|n| {
                view.iter().any(|e| {
                    e.addr == Some(n.addr()) && e.is_serving_primary() && !e.slots.is_empty()
                })
            })
            .collect()
    }

    /// `n_each` keys (`key:N`) for every primary serving slots now, so a
    /// test touches all of them: `n_each * primaries` keys in all.
    pub fn keys_on_distinct_primaries(&self, n_each: usize) -> Vec<String> {
        let view = self.view();
        let serving: Vec<&NodeEntry> = view
            .iter()
            .filter(|e| e.is_serving_primary() && !e.slots.is_empty())
            .collect();
        let mut counts: HashMap<&str, usize> = serving.iter().map(|e| (e.id.as_str(), 0)).collect();
        let mut keys = Vec::new();
        for i in 0u64.. {
            if counts.values().all(|&c| c >= n_each) {
                break;
            }
            let key = format!("key:{i}");
            let slot = slots::key_slot(&key);
            let Some(owner) = serving.iter().find(|e| e.owns(slot)) else {
                continue;
            };
            if let Some(count) = counts.get_mut(owner.id.as_str()) {
                if *count < n_each {
                    *count += 1;
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// SIGKILLs the primary serving `key` and returns its address, without
    /// waiting for its replica to take over.
    ///
    /// # Panics
    ///
    /// As [`primary_for_key`](Self::primary_for_key).
    pub fn kill_primary_for_key(&self, key: &str) -> SocketAddr {
        let primary = self.primary_for_key(key);
        primary.stop();
        primary.addr()
    }

    /// Blocks until `old` serves no slot in the view of any running node,
    /// every slot's owner answers ROLE with `master`, all running nodes
    /// agree on who owns what, and each reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// After 60 seconds, with every node's log.
    pub fn wait_for_promotion(&self, old: SocketAddr) {
        wait_until(
            &format!("a replica to take over the slots of {old}"),
            || self.promoted(old),
            || self.logs(),
        );
    }

    fn promoted(&self, old: SocketAddr) -> Result<(), String> {
        let mut agreed: Option<SlotMap> = None;
        for node in self.nodes.iter().filter(|n| is_live(n)) {
            let state = cluster_state(node)?;
            if state != "ok" {
                return Err(format!("{} reports cluster_state:{state}", node.addr()));
            }
            let view = slots::cluster_nodes(node)?;
            // Until the cluster marks it failed (`fail?` first, then `fail`),
            // the old primary keeps its slots in every view.
            if view
                .iter()
                .any(|e| e.addr == Some(old) && !e.slots.is_empty())
            {
                return Err(format!("{} still sees {old} owning slots", node.addr()));
            }
            if let Some(slot) = (0..slots::SLOTS).find(|&s| slots::owner(&view, s).is_none()) {
                return Err(format!(
                    "{} sees no serving primary for slot {slot}",
                    node.addr()
                ));
            }
            let mut map: SlotMap = view
                .into_iter()
                .filter(|e| e.is_serving_primary() && !e.slots.is_empty())
                .filter_map(|e| Some((e.addr?, e.slots)))
                .collect();
            map.sort();
            match &agreed {
                None => agreed = Some(map),
                Some(first) if *first != map => {
                    return Err(format!("{} sees another slot map", node.addr()))
                }
                Some(_) => {}
            }
        }
        for (addr, _) in agreed.unwrap_or_default() {
            let role = topology::role(self.node(addr))?;
            if role != "master" {
                return Err(format!("{addr} owns slots but answers ROLE {role:?}"));
            }
        }
        Ok(())
    }

    /// Starts the node at `addr` again (after a kill or `stop()`) on its old
    /// port with its old cluster identity, and waits until it rejoins: as a
    /// replica when a replica took over its slots meanwhile.
    ///
    /// # Panics
    ///
    /// When the node does not come up or the cluster does not settle within
    /// 60 seconds; the message includes the logs.
    pub fn restart_node(&self, addr: SocketAddr) {
        self.node(addr).restart();
        self.wait_ready();
    }

    /// Waits until every running node reports `cluster_state:ok`, knows
    /// every running node as connected and not failed, and every running
    /// replica's link to its primary is up.
    ///
    /// # Panics
    ///
    /// After 60 seconds, with every node's log.
    pub fn wait_ready(&self) {
        wait_until("the cluster to settle", || self.ready(), || self.logs());
    }

    fn ready(&self) -> Result<(), String> {
        let live: Vec<&RedisServer> = self.nodes.iter().filter(|n| is_live(n)).collect();
        for node in &live {
            let state = cluster_state(node)?;
            if state != "ok" {
                return Err(format!("{} reports cluster_state:{state}", node.addr()));
            }
            let view = slots::cluster_nodes(node)?;
            for other in &live {
                let entry = view
                    .iter()
                    .find(|e| e.addr == Some(other.addr()))
                    .ok_or_else(|| format!("{} does not know {}", node.addr(), other.addr()))?;
                let failing = entry.has_flag("fail") || entry.has_flag("fail?");
                if failing || entry.has_flag("handshake") || !entry.connected {
                    return Err(format!(
                        "{} sees {} as {:?}",
                        node.addr(),
                        other.addr(),
                        entry.flags
                    ));
                }
            }
            if topology::role(node)? == "slave" {
                let link = topology::info_field(node, "replication", "master_link_status")?;
                if link != "up" {
                    return Err(format!("replica {} has its link {link}", node.addr()));
                }
            }
        }
        Ok(())
    }

    /// A live migration of `slot` (and its keys) from its owner to the
    /// primary at `to`; configure it, then [`run`](SlotMigration::run) or
    /// [`spawn`](SlotMigration::spawn) it.
    pub fn slot_migration(&self, slot: u16, to: SocketAddr) -> SlotMigration {
        let from = self.primary_for_slot(slot).addr();
        SlotMigration::new(
            slot,
            from,
            to,
            self.password.clone(),
            self.nodes.iter().map(RedisServer::addr).collect(),
        )
    }

    /// [`slot_migration`](Self::slot_migration) run in a background thread
    /// with default settings; join the handle to learn whether it worked
    /// (the thread panics with the reason when not).
    pub fn migrate_slot_async(&self, slot: u16, to: SocketAddr) -> JoinHandle<()> {
        self.slot_migration(slot, to).spawn()
    }

    /// Sends `args` to every running node, in start order; returns the
    /// rendered replies.
    pub fn command_on_all(&self, args: &[&str]) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| is_live(n))
            .map(|n| n.command(args))
            .collect()
    }

    /// Sends `args` to every primary serving slots now; returns the
    /// rendered replies.
    pub fn command_on_primaries(&self, args: &[&str]) -> Vec<String> {
        self.primaries().iter().map(|n| n.command(args)).collect()
    }

    /// [`RedisServer::data_keys`] of database 0 on every primary.
    pub fn data_keys_on_primaries(&self) -> Vec<u64> {
        self.primaries().iter().map(|n| n.data_keys(0)).collect()
    }

    /// `FLUSHALL` on every primary (replicas follow).
    ///
    /// # Panics
    ///
    /// When a primary refuses or does not answer.
    pub fn flushall(&self) {
        for node in self.primaries() {
            node.flushall();
        }
    }

    /// Every node's recent log lines.
    pub fn logs(&self) -> String {
        topology::logs_of([("cluster node", &self.nodes[..])])
    }

    fn fail(&self, problem: impl fmt::Display) -> ! {
        panic!("redis cluster: {problem}\n{}", self.logs())
    }
}

/// Every serving primary with the slot ranges it owns, sorted.
type SlotMap = Vec<(SocketAddr, Vec<(u16, u16)>)>;

/// `cluster_state` from CLUSTER INFO.
fn cluster_state(node: &RedisServer) -> Result<String, String> {
    let reply = topology::probe(node, &["CLUSTER", "INFO"])?;
    topology::text(&reply)
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .map(|state| state.trim().to_owned())
        .ok_or_else(|| format!("{} CLUSTER INFO has no cluster_state", node.addr()))
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("seeds", &self.seeds)
            .field("nodes", &self.nodes)
            .finish()
    }
}
