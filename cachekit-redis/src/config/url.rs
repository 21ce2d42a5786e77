//! Parsing and redacting the URLs of the three topologies: one server
//! (`redis://`, `rediss://`, `unix://`, `redis+unix://`), Sentinel
//! (`redis+sentinel://`, `rediss+sentinel://`) and Cluster
//! (`redis+cluster://`, `rediss+cluster://`).
//!
//! Parsed here rather than by redis-rs so that every mistake becomes a
//! config error naming the field, and so that no parser's message can echo
//! the password back.
//!
//! The rule for everything shown about a URL: never a part that could hold
//! a secret. A malformed URL may carry its password anywhere (after an
//! unencoded `/` it lands in the path, after `?` in the query, with one
//! slash in the path), so only the scheme (when it is one we know), host
//! and port are shown, and only when they parse unambiguously; otherwise
//! the message says which part is wrong without quoting it.

mod hosts;
mod unix;

use std::path::PathBuf;

use cachekit_core::{Error, Result};

/// How the servers a URL names are deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server over TCP (`redis://`, `rediss://`).
    Standalone,
    /// One server over a Unix socket.
    Unix(PathBuf),
    /// The primary the sentinels name for `service`; the hosts are the
    /// sentinels.
    Sentinel { service: String },
    /// A Redis Cluster; the hosts are seed nodes.
    Cluster,
}

impl Topology {
    /// How the topology is called in messages.
    pub(crate) fn noun(&self) -> &'static str {
        match self {
            Topology::Standalone | Topology::Unix(_) => "a single server",
            Topology::Sentinel { .. } => "Sentinel",
            Topology::Cluster => "Redis Cluster",
        }
    }
}

/// What a URL says: where, who, which database, whether TLS.
///
/// No `Debug`: it holds the password.
#[derive(Clone)]
pub(crate) struct ParsedUrl {
    pub(crate) topology: Topology,
    pub(crate) tls: bool,
    /// The server (standalone), the sentinels or the cluster's seed nodes;
    /// empty for a Unix socket.
    pub(crate) hosts: Vec<(String, u16)>,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

impl ParsedUrl {
    /// The first host named (the server itself when standalone); `""` for a
    /// Unix socket.
    pub(crate) fn host(&self) -> &str {
        self.hosts.first().map_or("", |(host, _)| host.as_str())
    }

    /// The first host's port; 0 for a Unix socket.
    pub(crate) fn port(&self) -> u16 {
        self.hosts.first().map_or(0, |(_, port)| *port)
    }
}

const DEFAULT_PORT: u16 = 6379;

const EXPECTED: &str = "expected redis://[user][:password@]host[:port][/db] (rediss:// for TLS), \
     unix:///path/to/redis.sock[?db=N], \
     redis+sentinel://[user][:password@]host:26379[,host:port...]/service_name[/db] or \
     redis+cluster://[user][:password@]host:port[,host:port...]";

/// Schemes that may be named in messages: anything else could be a
/// password typed where the scheme belongs.
const KNOWN_SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "valkey",
    "valkeys",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
    "http",
    "https",
    "tcp",
];

/// Parses `text`, naming the `url` field (and never a secret) on error.
pub(crate) fn parse_url(text: &str) -> Result<ParsedUrl> {
    let shown = redact_url(text);
    let bad = |problem: &str| bad_url(&shown, problem);
    match scheme_of(text).as_deref() {
        Some("redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster") => {
            return hosts::parse(text, &shown);
        }
        Some("unix" | "redis+unix") => return unix::parse(text, &shown),
        _ => {}
    }
    let url = ::url::Url::parse(text).map_err(|err| {
        // ParseError's Display names the part ("invalid port number"),
        // never the input.
        bad(&format!("the URL does not parse ({err})"))
    })?;
    let tls = match url.scheme() {
        "redis" | "valkey" => false,
        "rediss" | "valkeys" => true,
        other if KNOWN_SCHEMES.contains(&other) => {
            return Err(bad(&format!("unsupported scheme `{other}`")))
        }
        _ => return Err(bad("unsupported scheme")),
    };
    if !text
        .split_once(':')
        .is_some_and(|(_, rest)| rest.starts_with("//"))
    {
        return Err(bad("no host name: the scheme must be followed by `://`"));
    }
    if credentials_misplaced(&url) {
        return Err(bad(
            "an `@` after a `/`, `?` or `#`: percent-encode `/` as %2F, `?` as %3F and `#` as %23 in the user name and password",
        ));
    }
    let host = match url.host() {
        Some(::url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
        Some(::url::Host::Ipv4(ip)) => ip.to_string(),
        // Without brackets: the resolver wants the bare address.
        Some(::url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host name")),
    };
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let db = match url.path().trim_matches('/') {
        "" => 0,
        path => match database(path) {
            Some(db) => db,
            None => {
                return Err(Error::config(
                    "db",
                    format!(
                        "the path of {shown} must be a database index (0, 1, 2, ...), not text or several segments"
                    ),
                ))
            }
        },
    };
    if url.query().is_some() {
        return Err(bad(
            "query parameters are not read (set RedisConfig fields such as `protocol` instead)",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad(
            "a `#fragment` is not read (for an unverified TLS connection set `tls_insecure`)",
        ));
    }
    let username = match url.username() {
        "" => None,
        name => Some(decode(name, "user name", &shown)?),
    };
    let password = match url.password() {
        None => None,
        Some(pw) => Some(decode(pw, "password", &shown)?),
    };
    Ok(ParsedUrl {
        topology: Topology::Standalone,
        tls,
        hosts: vec![(host, port)],
        db,
        username,
        password,
    })
}

/// A config error on the `url` field saying what is wrong with it.
fn bad_url(shown: &str, problem: &str) -> Error {
    Error::config("url", format!("{problem} in {shown}; {EXPECTED}"))
}

/// The scheme, lowercased, when `text` has one.
fn scheme_of(text: &str) -> Option<String> {
    text.split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
}

/// Percent-decodes the `what` part (user name, password) of a URL.
fn decode(part: &str, what: &str, shown: &str) -> Result<String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| {
            Error::config(
                "url",
                format!("the {what} in {shown} is not valid UTF-8 after percent-decoding"),
            )
        })
}

/// A database index: digits only (no sign, no second segment).
fn database(path: &str) -> Option<i64> {
    if path.is_empty() || !path.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    path.parse().ok()
}

/// Whether an `@` sits after the authority: then the "host" the parser
/// found is really part of the credentials (`redis://u:12/34@host`).
fn credentials_misplaced(url: &::url::Url) -> bool {
    url.path().contains('@')
        || url.query().is_some_and(|q| q.contains('@'))
        || url.fragment().is_some_and(|f| f.contains('@'))
}

/// `text` as messages and `Debug` may show it: scheme, host, port and
/// database, user name only beside a password, the password as `***`, and
/// never a path, query or fragment (shown as `<hidden>`).
///
/// A URL that does not parse, or whose host may be part of its credentials,
/// is shown by its scheme alone (when it is a known one).
pub(crate) fn redact_url(text: &str) -> String {
    match scheme_of(text).as_deref() {
        Some("redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster") => {
            return hosts::redact(text).unwrap_or_else(|| unparsable(text));
        }
        Some("unix" | "redis+unix") => {
            return unix::redact(text).unwrap_or_else(|| unparsable(text));
        }
        _ => {}
    }
    let Ok(url) = ::url::Url::parse(text) else {
        return unparsable(text);
    };
    let host = match url.host_str() {
        Some(host) if !host.is_empty() && !credentials_misplaced(&url) => host,
        _ => return unparsable(text),
    };
    let mut shown = format!("{}://", url.scheme());
    match (url.username(), url.password()) {
        ("", None) => {}
        // A lone user-info part is as likely a password missing its `:`.
        (_, None) => shown.push_str("***@"),
        (user, Some(_)) => {
            shown.push_str(user);
            shown.push_str(":***@");
        }
    }
    shown.push_str(host);
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    match url.path() {
        "" | "/" => shown.push_str(url.path()),
        path if database(path.trim_start_matches('/')).is_some() => shown.push_str(path),
        _ => shown.push_str("/<hidden>"),
    }
    if url.query().is_some() {
        shown.push_str("?<hidden>");
    }
    if url.fragment().is_some() {
        shown.push_str("#<hidden>");
    }
    shown
}

/// A URL that does not parse: only a known scheme is shown.
fn unparsable(text: &str) -> String {
    let scheme = scheme_of(text).filter(|scheme| KNOWN_SCHEMES.contains(&scheme.as_str()));
    match scheme {
        Some(scheme) => format!("a {scheme}: URL (the rest hidden: it may hold a password)"),
        None => "a URL (hidden: it may hold a password)".to_owned(),
    }
}
