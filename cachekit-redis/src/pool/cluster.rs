//! Redis Cluster through redis-rs's `cluster-async`: it keeps the slot map,
//! routes each command to the node owning its key's slot, follows `MOVED`
//! and `ASK`, splits `MGET`/`UNLINK`/`DEL` by slot and refreshes the map
//! after a failover or resharding. Here: building its client from a
//! [`RedisConfig`], opening connections with our deadline and messages,
//! and listing the primaries for the commands that must visit each one
//! (SCAN).

use std::time::Duration;

use cachekit_core::Result;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_read_routing::RandomReplicaStrategy;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{Cmd, IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult, Value};
use redis::{ErrorKind, ServerErrorKind};

use super::clients::{client_config_error, Clients};
use super::{Conn, Link};
use crate::config::{ParsedUrl, RedisConfig};
use crate::errors::{self, Target};

/// The redis-rs cluster client for `config`.
pub(crate) fn client(
    config: &RedisConfig,
    url: &ParsedUrl,
    clients: &Clients,
    target: &Target,
) -> Result<ClusterClient> {
    let mut settings = RedisConnectionInfo::default()
        .set_protocol(clients.protocol)
        .set_lib_name("cachekit-redis", env!("CARGO_PKG_VERSION"));
    if let Some(user) = &clients.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &clients.password {
        settings = settings.set_password(password);
    }
    let seeds = url
        .hosts
        .iter()
        .map(|(host, port)| {
            clients
                .tcp_addr(host, *port)
                .into_connection_info()
                .map(|info| info.set_redis_settings(settings.clone()))
                .map_err(|err| client_config_error(target, err))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut builder = ClusterClientBuilder::new(seeds)
        .use_protocol(clients.protocol)
        .tcp_settings(clients.tcp.clone())
        // No response timeout of redis-rs's: cachekit's reply deadline
        // bounds every command (and all of redis-rs's redirects and
        // retries for it), and a second one would cost a tokio timer per
        // command.
        .connection_timeout(config.connect_timeout);
    if let Some(certificates) = &clients.certificates {
        builder = super::tls::cluster_certs(builder, certificates);
    }
    if config.read_from_replicas {
        builder = builder.read_routing_strategy(RandomReplicaStrategy);
    }
    builder
        .build()
        .map_err(|err| client_config_error(target, err))
}

/// Opens a cluster connection (to every node in the slot map) within
/// `connect_timeout`.
pub(crate) async fn open(
    client: &ClusterClient,
    target: &Target,
    connect_timeout: Duration,
) -> Result<Conn> {
    match tokio::time::timeout(connect_timeout, client.get_async_connection()).await {
        Err(_elapsed) => Err(errors::connect_timeout(target, connect_timeout)),
        Ok(Err(err)) => Err(explain(err, target)),
        Ok(Ok(conn)) => Ok(Conn::new(Link::Cluster(conn), None)),
    }
}

fn explain(err: RedisError, target: &Target) -> cachekit_core::Error {
    let text = err.to_string();
    if text.contains("cluster support disabled") {
        return errors::not_cluster(target).with_source(err);
    }
    // A login refused while the slot map's connections open comes back as
    // an I/O error ("Failed to create initial connections") whose text
    // keeps the cause.
    if text.contains("AuthenticationFailed") || text.contains("WRONGPASS") {
        return errors::wrongpass(target, None).with_source(err);
    }
    if text.contains("NOAUTH") || text.contains("Authentication required") {
        return errors::noauth(target).with_source(err);
    }
    errors::connect_error(err, target)
}

/// How many more redirects a command follows after redis-rs gave up.
const REDIRECT_ROUNDS: usize = 3;

/// Follows the redirect that redis-rs stopped at (its retries spent) for
/// one command: the command was not run (a server that redirects does
/// not run it), so sending it again is safe whatever it does.
///
/// redis-rs (1.8) answers an `ASK` by sending `ASKING` on the node's
/// shared multiplexed connection, waiting for its reply, and only then
/// sending the command: a command of another task sent in between takes
/// the one-shot `ASKING` flag, and ours is answered `MOVED` back to the
/// migrating node, which answers `ASK` again. Under load during a slot
/// migration, enough commands lose that race sixteen times in a row to
/// fail. Here `ASKING` and the command go as one pipeline, written at
/// once, so nothing comes between them.
pub(crate) async fn after_redirects(
    conn: &mut ClusterConnection,
    cmd: &Cmd,
    mut err: RedisError,
) -> RedisResult<Value> {
    for _ in 0..REDIRECT_ROUNDS {
        let sent = match err.kind() {
            ErrorKind::Server(ServerErrorKind::Ask) => {
                let Some((host, port)) = err.redirect_node().and_then(|(a, _)| split_addr(a))
                else {
                    return Err(err);
                };
                let mut asking = redis::pipe();
                asking.cmd("ASKING").add_command(cmd.clone());
                let node = SingleNodeRoutingInfo::ByAddress { host, port };
                // The command's reply only: skip the one to ASKING.
                conn.route_pipeline(asking, 1, 1, node)
                    .await
                    .and_then(|replies| {
                        replies.into_iter().next().ok_or_else(|| {
                            RedisError::from((
                                ErrorKind::UnexpectedReturnType,
                                "ASKING and the command returned no reply",
                            ))
                        })
                    })
            }
            // A node that lost the ASKING race points back at the
            // migrating one: start over, with redis-rs's retries again.
            ErrorKind::Server(ServerErrorKind::Moved) => {
                redis::aio::ConnectionLike::req_packed_command(conn, cmd).await
            }
            _ => return Err(err),
        };
        match sent.and_then(Value::extract_error) {
            Ok(value) => return Ok(value),
            Err(next) => err = next,
        }
    }
    Err(err)
}

/// `host:port` (an IPv6 host in brackets or not) as its parts.
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// The primaries' addresses from `CLUSTER NODES` output: nodes flagged
/// `master` and not `fail`, without their bus port.
pub(crate) fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let addr = fields.next()?;
            let flags = fields.next()?;
            if !is_live_primary(flags) {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

fn is_live_primary(flags: &str) -> bool {
    flags.split(',').any(|f| f == "master")
        && !flags.split(',').any(|f| f == "fail" || f == "noaddr")
}

/// The number of slots of a cluster.
pub(crate) const SLOTS: usize = 16384;

/// How many distinct slots the live primaries of `CLUSTER NODES` output
/// serve (slot fields `A-B` or `A`; the bracketed migration notes aside).
pub(crate) fn served_slots(nodes: &str) -> usize {
    let mut served = vec![false; SLOTS];
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields.get(2).is_some_and(|flags| is_live_primary(flags)) {
            continue;
        }
        for range in fields.iter().skip(8).filter(|f| !f.starts_with('[')) {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let (Ok(first), Ok(last)) = (first.parse::<usize>(), last.parse::<usize>()) else {
                continue;
            };
            if let Some(slots) = served.get_mut(first..=last.min(SLOTS - 1)) {
                slots.fill(true);
            }
        }
    }
    served.iter().filter(|s| **s).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_addresses_split_into_host_and_port() {
        assert_eq!(
            split_addr("127.0.0.1:7001"),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(split_addr("[::1]:7001"), Some(("::1".to_owned(), 7001)));
        assert_eq!(split_addr("::1:7001"), Some(("::1".to_owned(), 7001)));
        assert_eq!(split_addr("host"), None);
        assert_eq!(split_addr("host:port"), None);
    }

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,host-3 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 master,fail - 1426238316232 1426238315000 5 connected
e7d1 ::1:30001@40001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(served_slots(nodes), SLOTS);
        let failed = nodes.replace("myself,master", "myself,master,fail");
        assert_eq!(served_slots(&failed), SLOTS - 5461);
        let odd = "a 1.2.3.4:1@2 master - 0 0 1 connected 5 9-7 x-1 [3->-b] 16380-99999 0-2";
        assert_eq!(served_slots(odd), 1 + 4 + 3);
        assert_eq!(
            primaries(nodes),
            vec![
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30003),
                ("::1".to_owned(), 30001),
            ]
        );
    }
}
