//! `unix:///path/to/redis.sock[?db=N]` and `redis+unix://...`, the forms
//! redis-rs accepts (`user` and `pass` may also be query parameters).

use std::path::PathBuf;

use cachekit_core::{Error, Result};

use super::{bad_url, database, decode, ParsedUrl, Topology};

pub(super) fn parse(text: &str, shown: &str) -> Result<ParsedUrl> {
    let bad = |problem: &str| bad_url(shown, problem);
    let url =
        ::url::Url::parse(text).map_err(|err| bad(&format!("the URL does not parse ({err})")))?;
    if url.host_str().is_some_and(|host| !host.is_empty()) {
        return Err(bad(
            "a Unix socket URL names no host: write the absolute path after three slashes, unix:///path/to/redis.sock",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("a `#fragment` is not read"));
    }
    let path = decode(url.path(), "socket path", shown)?;
    if path.is_empty() || path == "/" {
        return Err(bad("no socket path"));
    }
    let mut db = 0;
    let mut username = match url.username() {
        "" => None,
        name => Some(decode(name, "user name", shown)?),
    };
    let mut password = url
        .password()
        .map(|pw| decode(pw, "password", shown))
        .transpose()?;
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "db" => {
                db = database(&value).ok_or_else(|| {
                    Error::config(
                        "db",
                        format!("`db` in {shown} must be a database index (0, 1, 2, ...)"),
                    )
                })?;
            }
            "user" => username = Some(value.into_owned()),
            "pass" | "password" => password = Some(value.into_owned()),
            _ => return Err(bad(
                "an unknown query parameter (a Unix socket URL reads only `db`, `user` and `pass`)",
            )),
        }
    }
    Ok(ParsedUrl {
        topology: Topology::Unix(PathBuf::from(path)),
        tls: false,
        hosts: Vec::new(),
        db,
        username,
        password,
    })
}

/// What [`redact_url`](super::redact_url) shows of a socket URL: the path
/// (the socket's address, not a secret) unless it could hold credentials.
pub(super) fn redact(text: &str) -> Option<String> {
    let url = ::url::Url::parse(text).ok()?;
    if url.host_str().is_some_and(|host| !host.is_empty()) || url.path().contains('@') {
        return None;
    }
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str("***@");
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?<hidden>");
    }
    if url.fragment().is_some() {
        shown.push_str("#<hidden>");
    }
    Some(shown)
}
