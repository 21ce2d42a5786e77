//! The health probe: PING latency, a few INFO fields and the pool state.

use std::collections::HashMap;
use std::time::Instant;

use cachekit_core::Health;

use crate::errors::Op;
use crate::state::Inner;

/// INFO fields copied into the report as they are.
const INFO_FIELDS: [(&str, &str); 7] = [
    ("redis_version", "server_version"),
    ("role", "role"),
    ("used_memory", "used_memory"),
    ("used_memory_human", "used_memory_human"),
    ("connected_clients", "connected_clients"),
    ("keyspace_hits", "keyspace_hits"),
    ("keyspace_misses", "keyspace_misses"),
];

/// Never fails: what went wrong goes into `details["error"]`.
pub(crate) async fn probe(inner: &Inner) -> Health {
    let pool = &inner.pool;
    let started = Instant::now();
    let ping = pool
        .query::<redis::Value>(&redis::cmd("PING"), Op::new("PING", None))
        .await;
    let latency = started.elapsed();

    let state = pool.state();
    let stats = pool.statistics();
    let mut health = Health::new("redis", ping.is_ok(), latency)
        .detail("server", pool.target())
        .detail("db", pool.target().db)
        .detail("pool_size", state.max_size)
        .detail("pool_connections", state.connections)
        .detail("pool_idle", state.idle)
        .detail("pool_max_in_flight", state.max_in_flight)
        .detail("pool_in_flight", state.in_flight)
        .detail("pool_checkout_timeouts", stats.get_timed_out)
        .detail("pool_connections_created", stats.connections_created)
        .detail(
            "pool_connections_closed_broken",
            stats.connections_closed_broken,
        );
    if !inner.key_prefix.is_empty() {
        health = health.detail("key_prefix", &inner.key_prefix);
    }
    if let Some(channel) = inner.invalidations.get() {
        let stats = channel.stats();
        health = health
            .detail("invalidation", format!("{:?}", stats.state).to_lowercase())
            .detail("invalidation_losses", stats.losses);
    }
    if let Err(err) = ping {
        return health.detail("error", err);
    }

    // INFO may be renamed away or denied to an ACL user: the server still
    // answered PING, so it is healthy, and the report says why facts are
    // missing.
    if let Some(sentinels) = pool.sentinels() {
        if let Some(primary) = sentinels.current_primary() {
            health = health.detail("primary", primary);
        }
        health = health.detail("primary_switches", sentinels.switches());
    }
    // A cluster answers INFO with one reply per node.
    match pool
        .query::<redis::Value>(&redis::cmd("INFO"), Op::new("INFO", None))
        .await
    {
        Ok(redis::Value::Map(nodes)) => with_cluster_info(health, &nodes),
        Ok(reply) => match redis::from_redis_value::<String>(reply) {
            Ok(text) => with_info(health, &text),
            Err(err) => health.detail("info_error", err),
        },
        Err(err) => health.detail("info_error", err),
    }
}

/// INFO's `field: value` lines.
fn fields(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// A cluster's INFO, node by node: the counters summed over the nodes, the
/// version of the first.
fn with_cluster_info(mut health: Health, nodes: &[(redis::Value, redis::Value)]) -> Health {
    const SUMMED: [&str; 4] = [
        "used_memory",
        "connected_clients",
        "keyspace_hits",
        "keyspace_misses",
    ];
    let texts: Vec<String> = nodes
        .iter()
        .filter_map(|(_, info)| redis::from_redis_value_ref::<String>(info).ok())
        .collect();
    let mut summed = format!("role:cluster\ncluster_nodes:{}\n", texts.len());
    for field in SUMMED {
        let total: u64 = texts
            .iter()
            .filter_map(|text| fields(text).get(field).and_then(|v| v.parse::<u64>().ok()))
            .sum();
        summed.push_str(&format!("{field}:{total}\n"));
    }
    if let Some(version) = texts
        .first()
        .and_then(|t| fields(t).get("redis_version").map(|v| (*v).to_owned()))
    {
        summed.push_str(&format!("redis_version:{version}\n"));
    }
    health = health.detail("cluster_nodes", texts.len());
    with_info(health, &summed)
}

fn with_info(mut health: Health, text: &str) -> Health {
    let info = fields(text);
    for (field, name) in INFO_FIELDS {
        if let Some(value) = info.get(field) {
            health = health.detail(name, value);
        }
    }
    let hits = info
        .get("keyspace_hits")
        .and_then(|v| v.parse::<u64>().ok());
    let misses = info
        .get("keyspace_misses")
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(hits), Some(misses)) = (hits, misses) {
        let lookups = hits + misses;
        if lookups > 0 {
            // Display precision only: u64 -> f64 rounding is irrelevant here.
            #[allow(clippy::cast_precision_loss)]
            let ratio = hits as f64 / lookups as f64;
            health = health.detail("hit_ratio", format!("{ratio:.4}"));
        }
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn info_fields_and_hit_ratio() {
        let text = "# Server\r\nredis_version:7.2.4\r\nrole:master\r\n# Stats\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\nused_memory:1024\r\n";
        let health = with_info(Health::new("redis", true, Duration::ZERO), text);
        assert_eq!(health.details["server_version"], "7.2.4");
        assert_eq!(health.details["role"], "master");
        assert_eq!(health.details["hit_ratio"], "0.7500");
        assert_eq!(health.details["used_memory"], "1024");
    }

    #[test]
    fn a_cluster_sums_its_nodes() {
        let node = |version: &str, hits: u64| {
            redis::Value::BulkString(
                format!("redis_version:{version}\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:1\r\nused_memory:10\r\n")
                    .into_bytes(),
            )
        };
        let nodes = vec![
            (redis::Value::SimpleString("a:1".into()), node("7.0.15", 3)),
            (redis::Value::SimpleString("b:2".into()), node("7.0.15", 5)),
        ];
        let health = with_cluster_info(Health::new("redis", true, Duration::ZERO), &nodes);
        assert_eq!(health.details["cluster_nodes"], "2");
        assert_eq!(health.details["role"], "cluster");
        assert_eq!(health.details["used_memory"], "20");
        assert_eq!(health.details["hit_ratio"], "0.8000");
        assert_eq!(health.details["server_version"], "7.0.15");
    }

    #[test]
    fn no_lookups_means_no_ratio() {
        let text = "keyspace_hits:0\nkeyspace_misses:0\n";
        let health = with_info(Health::new("redis", true, Duration::ZERO), text);
        assert!(!health.details.contains_key("hit_ratio"));
    }
}
