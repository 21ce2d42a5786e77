//! [`RedisConfig::validate`]: every field checked, the first bad one named.

use std::time::Duration;

use cachekit_core::{Error, Result};

use super::{parse_url, RedisConfig, Topology};

/// The longest `connect_timeout`, `response_timeout`, `checkout_timeout`
/// and `lock_wait`: a day is already "never" for a cache, and a bound keeps
/// every deadline computed from them (`now + timeout`) far from overflow.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The longest keepalive idle time Linux accepts (`TCP_KEEPIDLE`, 32,767 s);
/// above it every connect fails with `EINVAL`.
pub(crate) const MAX_TCP_KEEPALIVE: Duration = Duration::from_secs(32_767);

pub(super) fn validate(config: &RedisConfig) -> Result<()> {
    let url = parse_url(&config.url)?;
    if config.pool_size == 0 {
        return Err(Error::config("pool_size", "must be at least 1"));
    }
    if config.max_in_flight == 0 {
        return Err(Error::config("max_in_flight", "must be at least 1"));
    }
    if let Some(min_idle) = config.min_idle {
        if min_idle > config.pool_size {
            return Err(Error::config(
                "min_idle",
                format!(
                    "{min_idle} is more than pool_size ({}); lower min_idle or raise pool_size",
                    config.pool_size
                ),
            ));
        }
    }
    durations(config)?;
    if config.read_from_replicas && url.topology != Topology::Cluster {
        return Err(Error::config(
            "read_from_replicas",
            format!(
                "reads from replicas are offered for Redis Cluster only (a redis+cluster:// URL); the URL names {}",
                url.topology.noun()
            ),
        ));
    }
    let tls_field = [
        ("tls_ca_file", config.tls_ca_file.is_some()),
        (
            "tls_client_cert_file",
            config.tls_client_cert_file.is_some(),
        ),
        ("tls_client_key_file", config.tls_client_key_file.is_some()),
        ("tls_insecure", config.tls_insecure),
    ]
    .into_iter()
    .find(|(_, set)| *set);
    if let (Some((field, _)), false) = (tls_field, url.tls) {
        return Err(Error::config(
            field,
            "TLS options need a `rediss://`, `rediss+sentinel://` or `rediss+cluster://` URL; the configured URL is not a TLS one",
        ));
    }
    match (&config.tls_client_cert_file, &config.tls_client_key_file) {
        (Some(_), None) => Err(Error::config(
            "tls_client_key_file",
            "a client certificate needs its private key: set tls_client_key_file too",
        )),
        (None, Some(_)) => Err(Error::config(
            "tls_client_cert_file",
            "a client key needs its certificate: set tls_client_cert_file too",
        )),
        _ => Ok(()),
    }
}

/// Every `Duration` field: within what the code and the kernel can honour.
fn durations(config: &RedisConfig) -> Result<()> {
    for (field, value, zero_ok) in [
        ("connect_timeout", config.connect_timeout, false),
        ("response_timeout", config.response_timeout, false),
        ("checkout_timeout", config.checkout_timeout, false),
        // Zero: one attempt, no wait.
        ("lock_wait", config.lock_wait, true),
    ] {
        if value.is_zero() && !zero_ok {
            return Err(Error::config(field, "must be longer than zero"));
        }
        if value > MAX_WAIT {
            return Err(Error::config(
                field,
                format!("{value:?} is longer than the supported maximum of {MAX_WAIT:?} (24 h)"),
            ));
        }
    }
    if let Some(idle) = config.tcp_keepalive {
        if idle < Duration::from_secs(1) {
            return Err(Error::config(
                "tcp_keepalive",
                "the kernel counts keepalive time in whole seconds: use at least 1 s, or None to turn keepalive off",
            ));
        }
        if idle > MAX_TCP_KEEPALIVE {
            return Err(Error::config(
                "tcp_keepalive",
                format!(
                    "{idle:?} is longer than the kernel accepts (TCP_KEEPIDLE: at most {} s); use at most that, or None to turn keepalive off",
                    MAX_TCP_KEEPALIVE.as_secs()
                ),
            ));
        }
    }
    Ok(())
}
