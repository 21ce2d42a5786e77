//! What differs between the topologies above the connection layer: the
//! check that a single-server URL reaches a single server, and the
//! operations a cluster must send key by key (batches) or node by node
//! (SCAN).

use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Result, Ttl};

use crate::errors::{self, Op, Place};
use crate::state::Inner;
use crate::wire::ttl_of;

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
    Ok(crate::pool::primaries(&cluster_nodes(inner).await?))
}

/// The cluster's live primaries, as one node sees them now, if together
/// they serve every slot.
///
/// # Errors
/// [`ErrorKind::Connection`](cachekit_core::ErrorKind::Connection) when
/// some slots have no live primary (a failover under way): whoever
/// listens to these primaries would not hear those slots' changes once a
/// promoted replica serves them.
pub(crate) async fn serving_primaries(inner: &Inner) -> Result<Vec<(String, u16)>> {
    let text = cluster_nodes(inner).await?;
    let served = crate::pool::served_slots(&text);
    if served < crate::pool::SLOTS {
        let unserved = crate::pool::SLOTS - served;
        return Err(cachekit_core::Error::new(
            cachekit_core::ErrorKind::Connection,
            format!(
                "{unserved} of the cluster's slots have no live primary (a failover under way, \
                 or a primary down with no replica to promote); waiting until every slot is served"
            ),
        ));
    }
    Ok(crate::pool::primaries(&text))
}

async fn cluster_nodes(inner: &Inner) -> Result<String> {
    let mut nodes = redis::cmd("CLUSTER");
    nodes.arg("NODES");
    inner
        .pool
        .query(&nodes, Op::new("CLUSTER NODES", None))
        .await
}

// A cluster gets single-key commands only, never a pipeline of several
// keys or MGET: redis-rs (1.8) redirects a pipeline that meets ASK as a
// whole, after one ASKING, so during a slot migration the pipeline's first
// command would reach the importing node even for a key still on the
// migrating one (a duplicate, which MIGRATE then refuses with BUSYKEY, and
// a write readers do not see), and the rest bounce with MOVED until the
// retries run out; MGET answers TRYAGAIN while a slot is half moved.
// Interop keys carry no hash tags, so the keys of one batch almost never
// share a slot: redis-rs split such pipelines and MGETs into one command
// per key already.

/// `set_many` on a cluster: one SET per key, sent concurrently.
pub(crate) async fn set_each(
    inner: &Inner,
    entries: &[(&str, Bytes)],
    ttl: Option<Duration>,
) -> Result<()> {
    let sets = entries
        .iter()
        .map(|(key, value)| inner.set_one(key, value, ttl));
    futures_util::future::try_join_all(sets).await?;
    Ok(())
}

/// `get_many` on a cluster: one GET per key, sent concurrently, in the
/// caller's order.
pub(crate) async fn get_each(inner: &Inner, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
    futures_util::future::try_join_all(keys.iter().map(|key| inner.get_one(key))).await
}

/// `get_with_ttl` on a cluster: GET and PTTL in one script, a single-key
/// command that follows redirects like any other (a GET + PTTL pipeline
/// meets redis-rs's pipeline redirects, see above), in one round trip and
/// one reply deadline.
pub(crate) async fn get_with_ttl_scripted(
    inner: &Inner,
    key: &str,
) -> Result<Option<(Bytes, Ttl)>> {
    let full = inner.prefixed(key);
    let (value, pttl): (Option<Bytes>, i64) = inner
        .scripts
        .get_with_ttl
        .run(&inner.pool, Op::new("GET+PTTL", Some(key)), 1, |cmd| {
            cmd.arg(full);
        })
        .await?;
    Ok(value.map(|value| (value, ttl_of(pttl))))
}
