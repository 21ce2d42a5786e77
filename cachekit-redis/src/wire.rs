//! Values on their way to and from Redis: `PX` arguments, `PTTL`
//! replies, `SCAN` patterns.

use std::time::Duration;

use cachekit_core::Ttl;

/// The longest TTL sent to Redis, in milliseconds (about 146 million
/// years). Redis refuses a `PX`/`PEXPIRE` whose `now + ttl` overflows a
/// signed 64-bit millisecond count; longer TTLs are clamped to this, so the
/// key keeps an expiry (and `volatile-*` eviction policies still see it).
pub(crate) const MAX_PX: u64 = i64::MAX as u64 / 2;

/// Milliseconds for `PX`: rounded up so that a sub-millisecond lifetime
/// still expires rather than being rejected by the server, and clamped to
/// [`MAX_PX`]. Never 0, which `SET ... PX` refuses: callers handle a zero
/// TTL ("expired at once") before asking.
pub(crate) fn px(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX).clamp(1, MAX_PX)
}

/// `PX` argument for the scripts: '' for no expiry, '0' for a zero TTL
/// (the script deletes the key instead of storing it).
pub(crate) fn px_arg(ttl: Option<Duration>) -> String {
    match ttl {
        None => String::new(),
        Some(ttl) if ttl.is_zero() => "0".to_owned(),
        Some(ttl) => px(ttl).to_string(),
    }
}

pub(crate) fn ttl_of(pttl: i64) -> Ttl {
    match pttl {
        -2 => Ttl::Missing,
        // -1: no expiry; any other negative is not a lifetime either.
        n if n < 0 => Ttl::Persistent,
        n => Ttl::Remaining(Duration::from_millis(n.unsigned_abs())),
    }
}

/// `*`, `?`, `[`, `]` and `\` match literally only when escaped.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
        assert_eq!(escape_glob("plain:"), "plain:");
    }

    #[test]
    fn px_rounds_up_and_is_never_zero() {
        assert_eq!(px(Duration::MAX), MAX_PX);
        assert_eq!(px(Duration::from_millis(MAX_PX + 1)), MAX_PX);
        assert_eq!(px_arg(Some(Duration::ZERO)), "0");
        assert_eq!(px_arg(None), "");
        assert_eq!(px_arg(Some(Duration::MAX)), MAX_PX.to_string());
        assert_eq!(px(Duration::from_micros(1)), 1);
        assert_eq!(px(Duration::ZERO), 1);
        assert_eq!(px(Duration::from_millis(1500)), 1500);
        assert_eq!(px(Duration::from_micros(1500)), 2);
    }

    #[test]
    fn pttl_maps_to_ttl() {
        assert_eq!(ttl_of(-2), Ttl::Missing);
        assert_eq!(ttl_of(-1), Ttl::Persistent);
        assert_eq!(ttl_of(250), Ttl::Remaining(Duration::from_millis(250)));
    }
}
