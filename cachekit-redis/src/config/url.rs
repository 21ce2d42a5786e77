//! Parsing and redacting `redis://` / `rediss://` URLs.
//!
//! Parsed here rather than by redis-rs so that every mistake becomes a
//! config error naming the field, and so that no parser's message can echo
//! the password back.

use cachekit_core::{Error, Result};

/// What a URL says: where, who, which database, whether TLS.
///
/// No `Debug`: it holds the password.
#[derive(Clone)]
pub(crate) struct ParsedUrl {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

const DEFAULT_PORT: u16 = 6379;

/// Parses `url`, naming the `url` field (and never the password) on error.
pub(crate) fn parse_url(text: &str) -> Result<ParsedUrl> {
    let shown = redact_url(text);
    let bad = |problem: &str| {
        Error::config(
            "url",
            format!(
                "{problem} in {shown}; expected redis://[user][:password@]host[:port][/db] or rediss://... for TLS"
            ),
        )
    };
    let url =
        ::url::Url::parse(text).map_err(|err| bad(&format!("the URL does not parse ({err})")))?;
    let tls = match url.scheme() {
        "redis" | "valkey" => false,
        "rediss" | "valkeys" => true,
        other => return Err(bad(&format!("unsupported scheme `{other}`"))),
    };
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
        path => match path.parse::<i64>() {
            Ok(db) if db >= 0 => db,
            _ => {
                return Err(Error::config(
                    "db",
                    format!(
                        "the path of {shown} must be a database index (0, 1, 2, ...), got `/{path}`"
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
    let decode = |part: &str, what: &str| -> Result<String> {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| {
                Error::config(
                    "url",
                    format!("the {what} in {shown} is not valid UTF-8 after percent-decoding"),
                )
            })
    };
    let username = match url.username() {
        "" => None,
        name => Some(decode(name, "user name")?),
    };
    let password = match url.password() {
        None => None,
        Some(pw) => Some(decode(pw, "password")?),
    };
    Ok(ParsedUrl {
        tls,
        host,
        port,
        db,
        username,
        password,
    })
}

/// `text` with the password (if any) replaced by `***`.
///
/// A URL that does not parse is shown only by its scheme, since where its
/// password starts cannot be known.
pub(crate) fn redact_url(text: &str) -> String {
    match ::url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Cannot fail for URLs that already carry a password.
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => match text.split_once("://") {
            Some((_, rest)) if !rest.contains('@') => text.to_owned(),
            Some((scheme, _)) => format!("{scheme}://<hidden: unparsable URL with credentials>"),
            None => "<hidden: unparsable URL>".to_owned(),
        },
    }
}
