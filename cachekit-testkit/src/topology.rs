//! What the multi-process topologies ([`SentinelSet`](crate::SentinelSet),
//! [`RedisCluster`](crate::RedisCluster)) share: polling until a condition
//! holds, reading replies, and collecting every process's log for a failure
//! message.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::redis_server::resp::Reply;
use crate::RedisServer;

/// How long a topology may take to start, fail over or settle before the
/// harness gives up. Generous: two cores shared by parallel tests.
pub(crate) const TOPOLOGY_PATIENCE: Duration = Duration::from_secs(60);
/// The deadline of one probe; a paused or dead process counts as not ready.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of each process's log quoted in a failure message.
const LOG_LINES: usize = 40;

/// Polls `check` until it returns `Ok`; after [`TOPOLOGY_PATIENCE`] panics
/// with `what`, the last reason `check` gave, and `logs()`.
pub(crate) fn wait_until<T>(
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
    logs: impl FnOnce() -> String,
) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(reason) if started.elapsed() >= TOPOLOGY_PATIENCE => panic!(
                "gave up after {TOPOLOGY_PATIENCE:?} waiting for {what}; last: {reason}\n{}",
                logs()
            ),
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Whether the process is up and not frozen, so it should answer.
pub(crate) fn is_live(server: &RedisServer) -> bool {
    server.is_running() && !server.is_paused()
}

/// One command with [`PROBE_TIMEOUT`], errors (I/O or a Redis error reply)
/// as text.
pub(crate) fn probe(server: &RedisServer, args: &[&str]) -> Result<Reply, String> {
    match server.call(args, PROBE_TIMEOUT) {
        Ok(Reply::Error(err)) => Err(format!("{} answered {:?}: {err}", server.addr(), args[0])),
        Ok(reply) => Ok(reply),
        Err(err) => Err(format!(
            "{} did not answer {:?}: {err}",
            server.addr(),
            args[0]
        )),
    }
}

/// The text of a bulk or simple reply.
pub(crate) fn text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Reply::Simple(s) => Some(s.clone()),
        Reply::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A flat `[name, value, name, value, ...]` array (as SENTINEL MASTER
/// answers) as a map.
pub(crate) fn fields(reply: &Reply) -> HashMap<String, String> {
    let Reply::Array(items) = reply else {
        return HashMap::new();
    };
    items
        .chunks_exact(2)
        .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
        .collect()
}

/// `name:value` lines of an INFO section.
pub(crate) fn info_field(
    server: &RedisServer,
    section: &str,
    name: &str,
) -> Result<String, String> {
    let reply = probe(server, &["INFO", section])?;
    let info = text(&reply).unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
        .ok_or_else(|| format!("{} INFO {section} has no {name}", server.addr()))
}

/// The first element of ROLE (`master`, `slave` or `sentinel`).
pub(crate) fn role(server: &RedisServer) -> Result<String, String> {
    match probe(server, &["ROLE"])? {
        Reply::Array(items) => items.first().and_then(text),
        _ => None,
    }
    .ok_or_else(|| format!("{} gave an odd ROLE reply", server.addr()))
}

/// `ip:port` as a loopback socket address.
pub(crate) fn parse_addr(ip: &str, port: &str) -> Option<SocketAddr> {
    format!("{ip}:{port}").parse().ok()
}

/// The last lines of every process's log, each under a heading.
pub(crate) fn logs_of<'a>(
    groups: impl IntoIterator<Item = (&'a str, &'a [RedisServer])>,
) -> String {
    let mut out = String::new();
    for (kind, servers) in groups {
        for server in servers {
            let log = server.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_LINES)..];
            let _ = writeln!(
                out,
                "--- {kind} {} (last {} lines) ---",
                server.addr(),
                tail.len()
            );
            for line in tail {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}
