//! Key segments checked at compile time.
//!
//! The rule is cachekit-core's (`keys::validate_segment`): repeated here so
//! that a bad literal fails the build, pointing at the literal, instead of
//! disabling the cache at run time. The run-time check stays authoritative.

use proc_macro2::Span;
use syn::LitStr;

const MAX_LEN: usize = 64;
const RULE: &str = "a key segment must match ^[a-z0-9][a-z0-9._-]{0,63}$: lowercase ASCII \
                    letters, digits, '.', '_' and '-', starting with a letter or digit, \
                    at most 64 characters";

/// The problem with `segment`, if any.
fn problem(segment: &str) -> Option<&'static str> {
    let bytes = segment.as_bytes();
    match bytes.first() {
        None => Some("is empty"),
        Some(_) if bytes.len() > MAX_LEN => Some("is longer than 64 characters"),
        Some(_) if bytes.iter().any(u8::is_ascii_uppercase) => Some("contains uppercase letters"),
        Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
            Some("does not start with a lowercase letter or a digit")
        }
        Some(_) => bytes
            .iter()
            .any(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            .then_some("contains a character other than a-z, 0-9, '.', '_' and '-'"),
    }
}

/// Checks a `namespace` or `name` literal; with `version`, the operation
/// segment is `{name}.v{version}` and must fit too.
pub(crate) fn check(lit: &LitStr, option: &str, version: Option<u32>) -> syn::Result<String> {
    let value = lit.value();
    if let Some(why) = problem(&value) {
        let lower = value.to_ascii_lowercase();
        let hint = if problem(&lower).is_none() {
            format!(" (try {lower:?})")
        } else {
            String::new()
        };
        return Err(syn::Error::new_spanned(
            lit,
            format!("invalid `{option}` {value:?}: it {why}{hint}; {RULE}"),
        ));
    }
    if let Some(v) = version {
        let full = format!("{value}.v{v}");
        if full.len() > MAX_LEN {
            return Err(syn::Error::new_spanned(
                lit,
                format!(
                    "with `version = {v}` the operation segment is {full:?}, longer than \
                     64 characters; shorten `{option}`"
                ),
            ));
        }
    }
    Ok(value)
}

/// The default namespace: the package name (`CARGO_PKG_NAME`), lowercased.
pub(crate) fn crate_namespace(span: Span) -> syn::Result<String> {
    let name = std::env::var("CARGO_PKG_NAME").map_err(|_| {
        syn::Error::new(
            span,
            "no crate name to use as the namespace (CARGO_PKG_NAME is not set: the crate \
             is not built by cargo); give one with `namespace = \"...\"`",
        )
    })?;
    let normalised = normalise_package(&name);
    match problem(&normalised) {
        None => Ok(normalised),
        Some(problem) => Err(syn::Error::new(
            span,
            format!(
                "the package name {name:?} does not make a valid namespace (it {problem}); \
                 give one with `namespace = \"...\"`"
            ),
        )),
    }
}

/// Package names are `[A-Za-z0-9_-]`, at most 64 characters; the segment
/// alphabet only lacks the uppercase letters.
fn normalise_package(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_core() {
        for ok in ["users", "get_user", "a", "0", "v1.2-x_y", &"a".repeat(64)] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in ["", "Users", "_x", ".x", "a:b", "a b", &"a".repeat(65), "é"] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn package_names_lowercase() {
        assert_eq!(normalise_package("My-Crate_2"), "my-crate_2");
    }
}
