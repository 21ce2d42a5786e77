//! What the sentinels and data nodes of a [`SentinelSet`] say about the
//! deployment, as checks that return why they do not hold yet.

use std::net::SocketAddr;

use super::SentinelSet;
use crate::redis_server::resp::Reply;
use crate::topology::{self, fields, is_live, parse_addr, probe, text};
use crate::RedisServer;

/// The primary one sentinel names for `master`.
pub(super) fn named_primary(sentinel: &RedisServer, master: &str) -> Result<SocketAddr, String> {
    let reply = probe(sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", master])?;
    let Reply::Array(items) = &reply else {
        return Err(format!("{} knows no master {master:?}", sentinel.addr()));
    };
    let (Some(ip), Some(port)) = (items.first().and_then(text), items.get(1).and_then(text)) else {
        return Err(format!("{} gave an odd address reply", sentinel.addr()));
    };
    parse_addr(&ip, &port).ok_or_else(|| format!("{} named {ip}:{port}", sentinel.addr()))
}

/// The primary every running sentinel names, when they agree.
pub(super) fn agreed_primary(
    sentinels: &[RedisServer],
    master: &str,
) -> Result<SocketAddr, String> {
    let mut agreed = None;
    for sentinel in sentinels.iter().filter(|s| is_live(s)) {
        let named = named_primary(sentinel, master)?;
        match agreed {
            None => agreed = Some(named),
            Some(first) if first != named => {
                return Err(format!("sentinels disagree: {first} and {named}"))
            }
            Some(_) => {}
        }
    }
    agreed.ok_or_else(|| "no sentinel is running".to_owned())
}

/// Whether a failover could start now; see [`SentinelSet::wait_ready`].
pub(super) fn ready(set: &SentinelSet) -> Result<(), String> {
    let master = set.master_name.as_str();
    let primary = agreed_primary(&set.sentinels, master)?;
    let primary_node = set.node(primary);
    let role = topology::role(primary_node)?;
    if role != "master" {
        return Err(format!("the named primary {primary} answers ROLE {role:?}"));
    }
    let replicas: Vec<&RedisServer> = set
        .data_nodes
        .iter()
        .filter(|n| n.addr() != primary && is_live(n))
        .collect();
    for replica in &replicas {
        demote_stale_primary(replica, primary)?;
        replica_in_sync(replica, primary)?;
    }
    let others = (set.sentinels.len() - 1).to_string();
    for sentinel in set.sentinels.iter().filter(|s| is_live(s)) {
        let state = fields(&probe(sentinel, &["SENTINEL", "MASTER", master])?);
        let field = |name: &str| state.get(name).map_or("?", String::as_str);
        if field("flags") != "master" || field("num-other-sentinels") != others {
            return Err(format!(
                "{} sees the primary with flags {} and {} other sentinels (want {others})",
                sentinel.addr(),
                field("flags"),
                field("num-other-sentinels"),
            ));
        }
        let seen = probe(sentinel, &["SENTINEL", "REPLICAS", master])?;
        for replica in &replicas {
            sentinel_sees_replica(sentinel, &seen, replica.addr())?;
        }
    }
    Ok(())
}

/// After a graceful failover the old primary stays a primary until the
/// sentinels notice and reconfigure it, 8 to 20 seconds later; the harness
/// does for them what they would do, so a test need not sit through it.
fn demote_stale_primary(node: &RedisServer, primary: SocketAddr) -> Result<(), String> {
    if topology::role(node)? != "master" {
        return Ok(());
    }
    let port = primary.port().to_string();
    probe(node, &["REPLICAOF", "127.0.0.1", &port]).map(drop)
}

fn replica_in_sync(replica: &RedisServer, primary: SocketAddr) -> Result<(), String> {
    let master_port = topology::info_field(replica, "replication", "master_port")?;
    let link = topology::info_field(replica, "replication", "master_link_status")?;
    if master_port != primary.port().to_string() || link != "up" {
        return Err(format!(
            "replica {} follows port {master_port} with link {link} (want {} up)",
            replica.addr(),
            primary.port()
        ));
    }
    Ok(())
}

fn sentinel_sees_replica(
    sentinel: &RedisServer,
    seen: &Reply,
    replica: SocketAddr,
) -> Result<(), String> {
    let Reply::Array(entries) = seen else {
        return Err(format!(
            "{} gave an odd SENTINEL REPLICAS reply",
            sentinel.addr()
        ));
    };
    let port = replica.port().to_string();
    let entry = entries
        .iter()
        .map(fields)
        .find(|e| e.get("port") == Some(&port))
        .ok_or_else(|| format!("{} does not list replica {replica}", sentinel.addr()))?;
    let field = |name: &str| entry.get(name).map_or("?", String::as_str);
    // The sentinel refreshes a healthy replica's INFO every 10 s, so its
    // `master-link-status` may lag; the replica's own INFO is checked
    // instead (replica_in_sync). A replica the sentinel may promote is one
    // it reaches and does not think down.
    if field("flags") != "slave" {
        return Err(format!(
            "{} sees replica {replica} with flags {}",
            sentinel.addr(),
            field("flags"),
        ));
    }
    Ok(())
}
