//! What differs between the topologies above the connection layer: the
//! check that a single-server URL reaches a single server, and the
//! operations a cluster must split (pipelines by slot, SCAN per primary).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use cachekit_core::Result;
use redis::cluster_routing::Slot;

use crate::backend::Inner;
use crate::errors::{self, Op, Place};

/// Fails when a single-server URL reached a cluster node or a sentinel,
/// naming the URL form that fits. A server that will not run `INFO` (an
/// ACL, a renamed command) is taken at its word.
pub(crate) async fn check_mode(inner: &Inner) -> Result<()> {
    let target = inner.pool.target();
    if !matches!(target.place, Place::Tcp | Place::Unix(_)) {
        return Ok(());
    }
    let mut info = redis::cmd("INFO");
    info.arg("server");
    let Ok(text) = inner
        .pool
        .query::<String>(&info, Op::new("INFO server", None))
        .await
    else {
        return Ok(());
    };
    let mode = text
        .lines()
        .find_map(|line| line.strip_prefix("redis_mode:"))
        .map(str::trim);
    match mode.and_then(|mode| errors::mode_mismatch(target, mode)) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The cluster's live primaries, as one node sees them now.
pub(crate) async fn primaries(inner: &Inner) -> Result<Vec<(String, u16)>> {
    let mut nodes = redis::cmd("CLUSTER");
    nodes.arg("NODES");
    let text: String = inner
        .pool
        .query(&nodes, Op::new("CLUSTER NODES", None))
        .await?;
    Ok(crate::pool::primaries(&text))
}

/// `set_many` on a cluster: one pipeline per slot (a pipeline must stay on
/// one node), sent concurrently.
pub(crate) async fn set_by_slot(
    inner: &Inner,
    entries: &[(&str, Bytes)],
    ttl: Option<Duration>,
) -> Result<()> {
    let mut by_slot: HashMap<Slot, Vec<&(&str, Bytes)>> = HashMap::new();
    let mut key = Vec::new();
    for entry in entries {
        key.clear();
        key.extend_from_slice(inner.key_prefix.as_bytes());
        key.extend_from_slice(entry.0.as_bytes());
        by_slot.entry(Slot::for_key(&key)).or_default().push(entry);
    }
    let sends = by_slot
        .into_values()
        .map(|group| inner.set_pipelined(group.into_iter(), ttl));
    futures_util::future::try_join_all(sends).await?;
    Ok(())
}
