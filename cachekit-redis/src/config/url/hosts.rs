//! The multi-host URLs: `redis+sentinel://` and `redis+cluster://` (and
//! their `rediss+` TLS forms), whose authority lists several `host:port`
//! pairs. The `url` crate cannot parse such an authority, so it is split
//! here and each host is checked by the `url` crate on its own.

use cachekit_core::{Error, Result};

use super::{bad_url, database, decode, ParsedUrl, Topology, DEFAULT_PORT};

/// The port sentinels listen on when the URL gives none.
const SENTINEL_PORT: u16 = 26379;

/// A URL cut into its parts, nothing decoded yet.
struct Parts<'a> {
    tls: bool,
    sentinel: bool,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    path: &'a str,
    query: bool,
    fragment: bool,
}

/// `None` when the scheme is not followed by `://` or an `@` sits after
/// the authority (then the "hosts" may be part of the credentials).
fn split(text: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('@') {
        return None;
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    Some(Parts {
        tls: scheme.starts_with("rediss"),
        sentinel: scheme.ends_with("sentinel"),
        userinfo,
        hosts,
        path: &tail[..path_end],
        query: tail.contains('?'),
        fragment: tail.contains('#'),
    })
}

/// One `host[:port]` of the list, checked by the `url` crate.
fn host(text: &str, default_port: u16) -> Option<(String, u16)> {
    if text.is_empty() || text.contains(['/', '?', '#', '@']) {
        return None;
    }
    let url = ::url::Url::parse(&format!("redis://{text}")).ok()?;
    let host = match url.host()? {
        ::url::Host::Domain(domain) if !domain.is_empty() => domain.to_owned(),
        ::url::Host::Domain(_) => return None,
        ::url::Host::Ipv4(ip) => ip.to_string(),
        ::url::Host::Ipv6(ip) => ip.to_string(),
    };
    Some((host, url.port().unwrap_or(default_port)))
}

/// A service name as Sentinel configs write them: safe to show.
fn is_service_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn parse(text: &str, shown: &str) -> Result<ParsedUrl> {
    let bad = |problem: &str| bad_url(shown, problem);
    if !text
        .split_once(':')
        .is_some_and(|(_, rest)| rest.starts_with("//"))
    {
        return Err(bad("no host name: the scheme must be followed by `://`"));
    }
    let parts = split(text).ok_or_else(|| {
        bad("an `@` after a `/`, `?` or `#`: percent-encode `/` as %2F, `?` as %3F and `#` as %23 in the user name and password")
    })?;
    let default_port = if parts.sentinel {
        SENTINEL_PORT
    } else {
        DEFAULT_PORT
    };
    let mut hosts = Vec::new();
    for (index, text) in parts.hosts.split(',').enumerate() {
        let Some(parsed) = host(text, default_port) else {
            return Err(bad(&format!(
                "host {} of the list is not a host name or address with an optional port",
                index + 1
            )));
        };
        hosts.push(parsed);
    }
    if parts.query {
        return Err(bad(
            "query parameters are not read (set RedisConfig fields such as `protocol` instead)",
        ));
    }
    if parts.fragment {
        return Err(bad("a `#fragment` is not read"));
    }
    let (username, password) = match parts.userinfo {
        None => (None, None),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(decode(password, "password", shown)?)),
                None => (userinfo, None),
            };
            let user = match user {
                "" => None,
                user => Some(decode(user, "user name", shown)?),
            };
            (user, password)
        }
    };
    let (topology, db) = if parts.sentinel {
        sentinel_path(parts.path, shown)?
    } else {
        (Topology::Cluster, cluster_db(parts.path, shown)?)
    };
    Ok(ParsedUrl {
        topology,
        tls: parts.tls,
        hosts,
        db,
        username,
        password,
    })
}

/// `/service_name[/db]`.
fn sentinel_path(path: &str, shown: &str) -> Result<(Topology, i64)> {
    let mut segments = path.trim_start_matches('/').split('/');
    let service = segments.next().unwrap_or("");
    if !is_service_name(service) {
        return Err(Error::config(
            "url",
            format!(
                "{shown} must name the Sentinel service (the master name in sentinel.conf, such as `mymaster`) as its path: redis+sentinel://host:26379/mymaster; names are letters, digits, `-`, `_` and `.`"
            ),
        ));
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(db) => database(db).ok_or_else(|| {
            Error::config(
                "db",
                format!(
                    "the second path segment of {shown} must be a database index (0, 1, 2, ...)"
                ),
            )
        })?,
    };
    if segments.next().is_some_and(|rest| !rest.is_empty()) {
        return Err(Error::config(
            "url",
            format!("{shown} has more than /service_name/db in its path"),
        ));
    }
    Ok((
        Topology::Sentinel {
            service: service.to_owned(),
        },
        db,
    ))
}

/// A cluster has database 0 only.
fn cluster_db(path: &str, shown: &str) -> Result<i64> {
    match path.trim_matches('/') {
        "" | "0" => Ok(0),
        _ => Err(Error::config(
            "db",
            format!("Redis Cluster has only database 0: remove the path from {shown}"),
        )),
    }
}

/// What [`redact_url`](super::redact_url) shows of a multi-host URL;
/// `None` when it cannot be shown safely.
pub(super) fn redact(text: &str) -> Option<String> {
    let parts = split(text)?;
    let scheme = text.split_once("://")?.0.to_ascii_lowercase();
    let mut shown = format!("{scheme}://");
    match parts.userinfo.map(|info| info.split_once(':')) {
        None => {}
        Some(None) => shown.push_str("***@"),
        Some(Some((user, _))) => {
            shown.push_str(user);
            shown.push_str(":***@");
        }
    }
    let hosts: Option<Vec<&str>> = parts
        .hosts
        .split(',')
        .map(|text| host(text, 0).map(|_| text))
        .collect();
    shown.push_str(&hosts?.join(","));
    let mut segments = parts.path.trim_start_matches('/').split('/');
    if !parts.path.is_empty() {
        shown.push('/');
        match segments.next() {
            Some(first) if is_service_name(first) || first.is_empty() => shown.push_str(first),
            _ => shown.push_str("<hidden>"),
        }
        for segment in segments {
            shown.push('/');
            shown.push_str(if database(segment).is_some() || segment.is_empty() {
                segment
            } else {
                "<hidden>"
            });
        }
    }
    if parts.query {
        shown.push_str("?<hidden>");
    }
    if parts.fragment {
        shown.push_str("#<hidden>");
    }
    Some(shown)
}
