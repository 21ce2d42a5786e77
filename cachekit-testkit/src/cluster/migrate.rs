//! Moving one slot, with its keys, between primaries while clients run:
//! the manual resharding steps (`CLUSTER SETSLOT IMPORTING`/`MIGRATING`,
//! `MIGRATE` in batches, `CLUSTER SETSLOT NODE`) that `redis-cli --cluster
//! reshard` performs, with an optional pause between batches so that a
//! client's `ASK` redirects can be observed.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::slots::{self, NodeEntry};
use crate::redis_server::resp::{Connection, Reply};
use crate::topology::{text, TOPOLOGY_PATIENCE};

const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A planned migration of one slot; from
/// [`RedisCluster::slot_migration`](crate::RedisCluster::slot_migration).
///
/// ```no_run
/// use std::time::Duration;
/// use cachekit_testkit::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// let slot = cluster.key_slot("user:1");
/// let to = cluster.primaries().into_iter().find(|p| p.addr() != cluster.primary_for_slot(slot).addr()).unwrap().addr();
/// let migration = cluster
///     .slot_migration(slot, to)
///     .keys_per_batch(1)
///     .pause_between_batches(Duration::from_millis(50))
///     .spawn();
/// // ... run a load here: keys of `slot` answer ASK while they move ...
/// migration.join().unwrap();
/// assert_eq!(cluster.primary_for_slot(slot).addr(), to);
/// ```
#[must_use]
pub struct SlotMigration {
    slot: u16,
    from: SocketAddr,
    to: SocketAddr,
    password: Option<String>,
    nodes: Vec<SocketAddr>,
    keys_per_batch: usize,
    pause: Duration,
}

impl SlotMigration {
    pub(crate) fn new(
        slot: u16,
        from: SocketAddr,
        to: SocketAddr,
        password: Option<String>,
        nodes: Vec<SocketAddr>,
    ) -> Self {
        Self {
            slot,
            from,
            to,
            password,
            nodes,
            keys_per_batch: 100,
            pause: Duration::ZERO,
        }
    }

    /// Keys moved per `MIGRATE` (100 by default; at least 1).
    pub fn keys_per_batch(mut self, n: usize) -> Self {
        self.keys_per_batch = n.max(1);
        self
    }

    /// A pause after each `MIGRATE` batch (none by default), which keeps
    /// the slot half-moved, answering `ASK` for moved keys, for longer.
    pub fn pause_between_batches(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Runs the migration in a background thread. Join the handle: the
    /// thread panics with the reason when a step fails.
    pub fn spawn(self) -> JoinHandle<()> {
        thread::spawn(move || self.run())
    }

    /// Runs the migration on this thread and returns once every reachable
    /// node names `to` as the slot's owner.
    ///
    /// # Panics
    ///
    /// When `to` already owns the slot, a step fails, or the nodes do not
    /// agree on the new owner within 60 seconds.
    pub fn run(self) {
        let (slot, from, to) = (self.slot.to_string(), self.from, self.to);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let from_id = self.node_id(from);
        let to_id = self.node_id(to);
        self.expect_ok(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        self.expect_ok(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        let batch = self.keys_per_batch.to_string();
        loop {
            let keys = match self.call(from, &["CLUSTER", "GETKEYSINSLOT", &slot, &batch]) {
                Reply::Array(keys) => keys.iter().filter_map(text).collect::<Vec<_>>(),
                other => self.fail(format_args!("GETKEYSINSLOT answered {other:?}")),
            };
            if keys.is_empty() {
                break;
            }
            self.migrate(&keys);
            thread::sleep(self.pause);
        }
        // The target first, so that the slot is never without an owner.
        self.expect_ok(to, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        self.expect_ok(from, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        for node in self.nodes.clone() {
            // The other primaries learn it now rather than by gossip;
            // replicas refuse, and stopped nodes do not answer: both fine.
            if node != from && node != to {
                let _ = self.try_call(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            }
        }
        self.await_owner(to);
    }

    fn migrate(&self, keys: &[String]) {
        let port = self.to.port().to_string();
        let timeout = TIMEOUT.as_millis().to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", &timeout];
        if let Some(password) = &self.password {
            args.extend(["AUTH", password.as_str()]);
        }
        args.push("KEYS");
        args.extend(keys.iter().map(String::as_str));
        match self.call(self.from, &args) {
            // NOKEY: the batch's keys were deleted meanwhile.
            Reply::Simple(reply) if reply == "OK" || reply == "NOKEY" => {}
            other => self.fail(format_args!(
                "MIGRATE of {} keys answered {other:?}",
                keys.len()
            )),
        }
    }

    fn await_owner(&self, to: SocketAddr) {
        let started = std::time::Instant::now();
        let owned_by_target =
            |view: &[NodeEntry]| slots::owner(view, self.slot).and_then(|e| e.addr) == Some(to);
        loop {
            let pending: Vec<SocketAddr> = self
                .nodes
                .iter()
                .copied()
                .filter(|&node| match self.try_call(node, &["CLUSTER", "NODES"]) {
                    Ok(reply) => !owned_by_target(&parse_view(&reply)),
                    Err(_) => false, // stopped or paused: not asked
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            if started.elapsed() >= TOPOLOGY_PATIENCE {
                self.fail(format_args!(
                    "{pending:?} still do not name {to} as its owner"
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn node_id(&self, node: SocketAddr) -> String {
        match self.call(node, &["CLUSTER", "MYID"]) {
            reply @ (Reply::Bulk(_) | Reply::Simple(_)) => text(&reply).unwrap_or_default(),
            other => self.fail(format_args!("CLUSTER MYID on {node} answered {other:?}")),
        }
    }

    fn try_call(&self, node: SocketAddr, args: &[&str]) -> io::Result<Reply> {
        let mut conn = Connection::open(node, TIMEOUT)?;
        if let Some(password) = &self.password {
            conn.call(&["AUTH", password])?;
        }
        conn.call(args)
    }

    fn call(&self, node: SocketAddr, args: &[&str]) -> Reply {
        match self.try_call(node, args) {
            Ok(reply) => reply,
            Err(err) => self.fail(format_args!("{:?} on {node} failed: {err}", args.first())),
        }
    }

    fn expect_ok(&self, node: SocketAddr, args: &[&str]) {
        let reply = self.call(node, args);
        if reply != Reply::Simple("OK".to_owned()) {
            self.fail(format_args!("{args:?} on {node} answered {reply:?}"));
        }
    }

    fn fail(&self, problem: impl fmt::Display) -> ! {
        panic!(
            "migrating slot {} from {} to {}: {problem}",
            self.slot, self.from, self.to
        )
    }
}

fn parse_view(reply: &Reply) -> Vec<NodeEntry> {
    slots::parse_listing(&text(reply).unwrap_or_default())
}

impl fmt::Debug for SlotMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotMigration")
            .field("slot", &self.slot)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("keys_per_batch", &self.keys_per_batch)
            .field("pause", &self.pause)
            .finish_non_exhaustive()
    }
}
