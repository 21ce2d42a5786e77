//! Errors about the topology: a URL for one kind of deployment pointed at
//! another, sentinels that cannot name a primary, a cluster seed that is not
//! in cluster mode. Each names what was found and the URL form that fits.

use cachekit_core::{Error, ErrorKind};

use super::{Op, Place, Target};

/// A single-server URL whose server answered `MOVED`/`ASK`: a cluster node.
pub(crate) fn cluster_node(target: &Target, op: Op<'_>) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!(
            "{op} on {target}: this server is a Redis Cluster node (it redirected the command with MOVED/ASK); use redis+cluster://{target} (or CACHEKIT_REDIS_CLUSTER_NODES) so that commands go to the node owning each key"
        ),
    )
}

/// What a server's `INFO server` says it runs as, when that is not what the
/// URL expects.
pub(crate) fn mode_mismatch(target: &Target, mode: &str) -> Option<Error> {
    let message = match (mode, &target.place) {
        ("cluster", Place::Tcp | Place::Unix(_)) => format!(
            "the server at {target} is a Redis Cluster node: use redis+cluster://{target} (or CACHEKIT_REDIS_CLUSTER_NODES) instead of a single-server URL"
        ),
        ("sentinel", Place::Tcp | Place::Unix(_)) => format!(
            "the server at {target} is a Redis Sentinel, which stores no data: use redis+sentinel://{target}/<service name> (the master name in sentinel.conf), or REDIS_SENTINEL_HOST/REDIS_SENTINEL_PORT/REDIS_SENTINEL_MASTER"
        ),
        _ => return None,
    };
    Some(Error::new(ErrorKind::Config, message))
}

/// A cluster seed whose server has cluster support disabled.
pub(crate) fn not_cluster(target: &Target) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "{target}: the server answering is not in cluster mode (`cluster-enabled no`): use redis://host:port for a single server or redis+sentinel:// for Sentinel, or point the URL at the cluster's nodes"
        ),
    )
}

/// How one sentinel failed to name the primary.
pub(crate) struct SentinelFailure {
    pub(crate) sentinel: String,
    pub(crate) kind: ErrorKind,
    pub(crate) why: String,
}

/// No sentinel named a primary for the service.
pub(crate) fn no_primary(target: &Target, service: &str, failures: &[SentinelFailure]) -> Error {
    let unknown = failures.iter().all(|f| f.kind == ErrorKind::Config);
    let auth = failures.iter().find(|f| f.kind == ErrorKind::Auth);
    let list = failures
        .iter()
        .map(|f| format!("{}: {}", f.sentinel, f.why))
        .collect::<Vec<_>>()
        .join("; ");
    let (kind, message) = if unknown && !failures.is_empty() {
        (
            ErrorKind::Config,
            format!(
                "no sentinel knows a primary named `{service}` ({list}); check the service name in the URL path or REDIS_SENTINEL_MASTER against `sentinel monitor` in sentinel.conf"
            ),
        )
    } else if let Some(auth) = auth {
        (
            ErrorKind::Auth,
            format!(
                "sentinel {} refused the sentinel credentials ({}); set the sentinels' own password with CACHEKIT_REDIS_SENTINEL_PASSWORD (and _USERNAME) or RedisConfig::sentinel_password: it is often not the data nodes' password",
                auth.sentinel, auth.why
            ),
        )
    } else {
        (
            ErrorKind::Connection,
            format!(
                "cannot find {target}: no sentinel answered ({list}). Check that the sentinels run and that the hosts and ports in the URL or REDIS_SENTINEL_HOST/REDIS_SENTINEL_PORT are theirs (26379 by default)"
            ),
        )
    };
    Error::new(kind, message)
}

/// The server the sentinels named could not be used as the primary.
pub(crate) fn primary_unusable(service: &str, primary: &str, cause: &Error) -> Error {
    Error::new(
        cause.kind(),
        format!(
            "the sentinels name {primary} as the primary of `{service}`, but: {}",
            cause.message()
        ),
    )
}

/// The server the sentinels named says it is a replica: a failover is
/// under way, or the sentinels' view is stale.
pub(crate) fn not_a_primary(service: &str, primary: &str, role: &str) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!(
            "the sentinels name {primary} as the primary of `{service}`, but it says it is a {role}: a failover is probably under way; the next operation asks the sentinels again"
        ),
    )
}
