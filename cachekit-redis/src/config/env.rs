//! Reading [`RedisConfig`] fields from environment variables.
//!
//! The lookup is a parameter so that tests need not touch the process
//! environment, which every test thread shares.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use cachekit_core::{Error, Result};

use super::{redact_url, Protocol, RedisConfig, MAX_TCP_KEEPALIVE, MAX_WAIT};

/// Overlays `config` with whatever the environment sets.
pub(crate) fn apply(
    config: &mut RedisConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    // An empty variable counts as unset: `FOO= cmd` is a common way to
    // switch a setting off in shells and container specs.
    let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

    let url_source = topology_url(config, &get)?;
    if let Some(password) = lookup("REDIS_PASSWORD").filter(|p| !p.is_empty()) {
        config.password = Some(password);
    }
    if let Some(v) = get("CACHEKIT_REDIS_POOL_SIZE") {
        config.pool_size = number("CACHEKIT_REDIS_POOL_SIZE", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_MAX_IN_FLIGHT") {
        config.max_in_flight = number("CACHEKIT_REDIS_MAX_IN_FLIGHT", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_MIN_IDLE") {
        config.min_idle = Some(number("CACHEKIT_REDIS_MIN_IDLE", &v)?);
    }
    if let Some(v) = get("CACHEKIT_REDIS_CONNECT_TIMEOUT_MS") {
        config.connect_timeout = millis("CACHEKIT_REDIS_CONNECT_TIMEOUT_MS", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS") {
        config.response_timeout = millis("CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS") {
        config.checkout_timeout = millis("CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_LOCK_WAIT_MS") {
        config.lock_wait = millis("CACHEKIT_REDIS_LOCK_WAIT_MS", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_TCP_KEEPALIVE_SECS") {
        let name = "CACHEKIT_REDIS_TCP_KEEPALIVE_SECS";
        let secs: u64 = number(name, &v)?;
        if secs > MAX_TCP_KEEPALIVE.as_secs() {
            return Err(Error::config(
                name,
                format!(
                    "{secs} s is longer than the kernel accepts (TCP_KEEPIDLE: at most {} s); use at most that, or 0 to turn keepalive off",
                    MAX_TCP_KEEPALIVE.as_secs()
                ),
            ));
        }
        config.tcp_keepalive = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(v) = get("CACHEKIT_REDIS_TCP_NODELAY") {
        config.tcp_nodelay = boolean("CACHEKIT_REDIS_TCP_NODELAY", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_COALESCE_WRITES") {
        config.coalesce_writes = boolean("CACHEKIT_REDIS_COALESCE_WRITES", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_PROTOCOL") {
        config.protocol = Protocol::parse(&v).ok_or_else(|| {
            Error::config(
                "CACHEKIT_REDIS_PROTOCOL",
                format!("expected `resp2` or `resp3`, got {v:?}"),
            )
        })?;
    }
    // The prefix is taken verbatim: trailing separators are meaningful.
    if let Some(v) = lookup("CACHEKIT_REDIS_KEY_PREFIX") {
        config.key_prefix = v;
    }
    if let Some(v) = get("CACHEKIT_REDIS_TLS_CA_FILE") {
        config.tls_ca_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("CACHEKIT_REDIS_TLS_CERT_FILE") {
        config.tls_client_cert_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("CACHEKIT_REDIS_TLS_KEY_FILE") {
        config.tls_client_key_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("CACHEKIT_REDIS_TLS_INSECURE") {
        config.tls_insecure = boolean("CACHEKIT_REDIS_TLS_INSECURE", &v)?;
    }
    if let Some(v) = get("CACHEKIT_REDIS_SENTINEL_USERNAME") {
        config.sentinel_username = Some(v);
    }
    if let Some(v) = lookup("CACHEKIT_REDIS_SENTINEL_PASSWORD").filter(|p| !p.is_empty()) {
        config.sentinel_password = Some(v);
    }
    if let Some(v) = get("CACHEKIT_REDIS_READ_FROM_REPLICAS") {
        config.read_from_replicas = boolean("CACHEKIT_REDIS_READ_FROM_REPLICAS", &v)?;
    }
    // Checked here so that the message names the variable rather than the
    // field: the user wrote the variable.
    if let Err(err) = super::parse_url(&config.url) {
        let Some(source) = url_source else {
            return Err(err);
        };
        return Err(Error::config(
            source,
            format!("{} ({})", redact_url(&config.url), err.message()),
        ));
    }
    Ok(())
}

/// The variables that name a deployment, in the order they are read.
pub(crate) const SOURCES: [&str; 4] = [
    "CACHEKIT_REDIS_URL",
    "REDIS_URL",
    "CACHEKIT_REDIS_CLUSTER_NODES",
    "REDIS_SENTINEL_HOST",
];

/// Sets `config.url` from the first of `CACHEKIT_REDIS_URL`, `REDIS_URL`,
/// `CACHEKIT_REDIS_CLUSTER_NODES` and `REDIS_SENTINEL_HOST` (with
/// `REDIS_SENTINEL_PORT` and `REDIS_SENTINEL_MASTER`) that is set, and
/// returns which one it was.
fn topology_url(
    config: &mut RedisConfig,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<&'static str>> {
    if let Some(url) = get("CACHEKIT_REDIS_URL") {
        config.url = url.trim().to_owned();
        return Ok(Some("CACHEKIT_REDIS_URL"));
    }
    if let Some(url) = get("REDIS_URL") {
        config.url = url.trim().to_owned();
        return Ok(Some("REDIS_URL"));
    }
    if let Some(nodes) = get("CACHEKIT_REDIS_CLUSTER_NODES") {
        config.url = format!("redis+cluster://{}", without_spaces(&nodes));
        return Ok(Some("CACHEKIT_REDIS_CLUSTER_NODES"));
    }
    let Some(hosts) = get("REDIS_SENTINEL_HOST") else {
        return Ok(None);
    };
    let port: u16 = match get("REDIS_SENTINEL_PORT") {
        Some(v) => number("REDIS_SENTINEL_PORT", &v)?,
        None => 26379,
    };
    let master = get("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".to_owned());
    let hosts = without_spaces(&hosts)
        .split(',')
        .map(|host| with_port(host, port))
        .collect::<Vec<_>>()
        .join(",");
    config.url = format!("redis+sentinel://{hosts}/{}", master.trim());
    Ok(Some("REDIS_SENTINEL_HOST"))
}

fn without_spaces(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `host` with `:port` unless it names its own port; a bare IPv6 address
/// gets its brackets.
fn with_port(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// Every `CACHEKIT_REDIS_*` variable [`apply`] reads.
const KNOWN: &[&str] = &[
    "CACHEKIT_REDIS_URL",
    "CACHEKIT_REDIS_CLUSTER_NODES",
    "CACHEKIT_REDIS_SENTINEL_USERNAME",
    "CACHEKIT_REDIS_SENTINEL_PASSWORD",
    "CACHEKIT_REDIS_READ_FROM_REPLICAS",
    "CACHEKIT_REDIS_POOL_SIZE",
    "CACHEKIT_REDIS_MAX_IN_FLIGHT",
    "CACHEKIT_REDIS_MIN_IDLE",
    "CACHEKIT_REDIS_CONNECT_TIMEOUT_MS",
    "CACHEKIT_REDIS_RESPONSE_TIMEOUT_MS",
    "CACHEKIT_REDIS_CHECKOUT_TIMEOUT_MS",
    "CACHEKIT_REDIS_LOCK_WAIT_MS",
    "CACHEKIT_REDIS_TCP_KEEPALIVE_SECS",
    "CACHEKIT_REDIS_TCP_NODELAY",
    "CACHEKIT_REDIS_COALESCE_WRITES",
    "CACHEKIT_REDIS_PROTOCOL",
    "CACHEKIT_REDIS_KEY_PREFIX",
    "CACHEKIT_REDIS_TLS_CA_FILE",
    "CACHEKIT_REDIS_TLS_CERT_FILE",
    "CACHEKIT_REDIS_TLS_KEY_FILE",
    "CACHEKIT_REDIS_TLS_INSECURE",
];

const PREFIX: &str = "CACHEKIT_REDIS_";

/// The variables among `names` that carry our prefix but are not read,
/// each with the known variable closest to it (edit distance).
pub(crate) fn misspelled<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<(&'a str, &'static str)> {
    names
        .into_iter()
        .filter(|name| name.starts_with(PREFIX) && !KNOWN.contains(name))
        .filter_map(|name| {
            let closest = KNOWN
                .iter()
                .min_by_key(|known| strsim::levenshtein(name, known))?;
            Some((name, *closest))
        })
        .collect()
}

/// Logs one WARN per unknown `CACHEKIT_REDIS_*` variable of the process
/// environment, the first time the environment is read. Names only: a
/// value may be a secret.
pub(crate) fn warn_misspelled_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        for (name, closest) in misspelled(names.iter().map(String::as_str)) {
            let password = if name.contains("PASSWORD") {
                "; a password goes in CACHEKIT_REDIS_URL (redis://:PASSWORD@host) or REDIS_PASSWORD"
            } else {
                ""
            };
            tracing::warn!(
                "cachekit-redis: the environment variable `{name}` is not a cachekit setting and is ignored; did you mean `{closest}`?{password}"
            );
        }
    });
}

fn number<T: FromStr>(name: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| {
        Error::config(
            name,
            format!("expected a whole non-negative number, got {value:?}"),
        )
    })
}

fn millis(name: &str, value: &str) -> Result<Duration> {
    let duration = Duration::from_millis(number::<u64>(name, value)?);
    if duration > MAX_WAIT {
        return Err(Error::config(
            name,
            format!(
                "{} ms is longer than the supported maximum of {} ms (24 h)",
                duration.as_millis(),
                MAX_WAIT.as_millis()
            ),
        ));
    }
    Ok(duration)
}

fn boolean(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            name,
            format!("expected true or false, got {value:?}"),
        )),
    }
}
