//! delete_prefix, and keys that look like globs, escapes or protocol framing.

use super::Ctx;
use cachekit_core::{ErrorKind, Ttl};

/// `delete_prefix("")` would match every key, cachekit's or not: it must
/// fail with `InvalidInput` and remove nothing.
pub(super) async fn delete_prefix_refuses_an_empty_prefix(ctx: &Ctx<'_>) {
    let names = ["empty:kept", ""];
    store(ctx, &names).await;
    match ctx.backend.delete_prefix("").await {
        Err(err) => ensure!(
            ctx,
            err.kind() == ErrorKind::InvalidInput,
            "delete_prefix(\"\") failed with {:?} ({err}), expected InvalidInput",
            err.kind()
        ),
        Ok(removed) => ctx.fail(format_args!(
            "delete_prefix(\"\") returned Ok({removed}); an empty prefix matches every key \
             and must be refused with InvalidInput"
        )),
    }
    expect_present(ctx, &names, "the refused delete_prefix(\"\")").await;
}

/// Stores every name (value = the name) under `ctx`'s namespace.
async fn store(ctx: &Ctx<'_>, names: &[&str]) {
    for name in names {
        ctx.set(&ctx.key(name), name.as_bytes().to_vec(), None)
            .await;
    }
}

async fn expect_present(ctx: &Ctx<'_>, names: &[&str], after: &str) {
    for name in names {
        ctx.expect_value(&ctx.key(name), Some(name.as_bytes()), after)
            .await;
    }
}

async fn expect_absent(ctx: &Ctx<'_>, names: &[&str], after: &str) {
    for name in names {
        ctx.expect_value(&ctx.key(name), None, after).await;
    }
}

pub(super) async fn delete_prefix_removes_exactly_its_keys(ctx: &Ctx<'_>) {
    let inside = ["p:a:", "p:a:1", "p:a:2", "p:a:deep:er"];
    let outside = ["p:ab", "p:ab:1", "p:a", "p:b:1", "p:", "q:a:1"];
    store(ctx, &inside).await;
    store(ctx, &outside).await;
    ctx.set(&ctx.key("p:a:ttl"), &b"t"[..], Some(super::LONG_TTL))
        .await;

    let prefix = ctx.key("p:a:");
    let removed = ctx.delete_prefix(&prefix).await;
    ensure!(ctx, removed == 5, "delete_prefix({prefix:?}) returned {removed}, expected 5 (4 persistent keys and 1 with a TTL)");
    let after = format!("delete_prefix({prefix:?})");
    expect_absent(ctx, &inside, &after).await;
    expect_absent(ctx, &["p:a:ttl"], &after).await;
    expect_present(ctx, &outside, &after).await;

    let again = ctx.delete_prefix(&prefix).await;
    ensure!(
        ctx,
        again == 0,
        "a second delete_prefix({prefix:?}) returned {again}, expected 0"
    );
    let nothing = ctx.key("no-such-prefix:");
    let removed = ctx.delete_prefix(&nothing).await;
    ensure!(
        ctx,
        removed == 0,
        "delete_prefix({nothing:?}) matching no key returned {removed}"
    );
}

/// Redis `SCAN MATCH` and similar filters treat `* ? [ ] \` as pattern
/// syntax; a prefix is a literal string, so each case below has a decoy
/// that a pattern-based implementation would wrongly match (or miss).
pub(super) async fn delete_prefix_matches_glob_characters_literally(ctx: &Ctx<'_>) {
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("star*:", &["star*:1"], &["starX:1", "star:1", "star**"]),
        ("q?:", &["q?:1"], &["qa:1", "q:1"]),
        ("br[ab]:", &["br[ab]:1"], &["bra:1", "brb:1", "br[a]:1"]),
        ("bs\\x", &["bs\\x1"], &["bsx1", "bs\\\\x1"]),
        ("caret[^a]", &["caret[^a]1"], &["caretb1", "caret[a]1"]),
    ];
    for (_, matching, decoys) in cases {
        store(ctx, matching).await;
        store(ctx, decoys).await;
    }
    for (prefix, matching, decoys) in cases {
        let full = ctx.key(prefix);
        let removed = ctx.delete_prefix(&full).await;
        let after = format!("delete_prefix({full:?}), whose glob characters must match literally");
        ensure!(
            ctx,
            removed == matching.len() as u64,
            "{after} returned {removed}, expected {} (only {matching:?})",
            matching.len()
        );
        expect_absent(ctx, matching, &after).await;
        expect_present(ctx, decoys, &after).await;
    }
}

/// Keys are arbitrary UTF-8; none of these may be mangled, split or
/// confused with another key by any backend.
pub(super) async fn unusual_keys_round_trip(ctx: &Ctx<'_>) {
    let names = [
        "with space",
        " leading and trailing ",
        "ünïcødé-ключ-键-🔑",
        "a:b:c::",
        "star*",
        "question?",
        "[brackets]",
        "back\\slash",
        "new\nline",
        "tab\tkey",
        "crlf\r\n*1\r\n$4\r\nPING\r\n",
        "nul-free\u{1}\u{7f}control",
        "percent%2F/slash/..",
        "\"quoted'\"",
    ];
    for name in names {
        let key = ctx.key(name);
        let value = format!("value of {name}");
        ctx.set(&key, value.clone().into_bytes(), None).await;
        ctx.expect_value(&key, Some(value.as_bytes()), "set with an unusual key")
            .await;
        ensure!(
            ctx,
            ctx.exists(&key).await,
            "exists({key:?}) is false right after set"
        );
        let ttl = ctx.ttl(&key).await;
        ensure!(
            ctx,
            ttl == Ttl::Persistent,
            "ttl({key:?}) is {ttl:?}, expected Persistent"
        );
    }
    let keys: Vec<String> = names.iter().map(|n| ctx.key(n)).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = ctx.get_many(&key_refs).await;
    for (name, value) in names.iter().zip(&values) {
        let expected = format!("value of {name}");
        ensure!(
            ctx,
            value.as_deref() == Some(expected.as_bytes()),
            "get_many returned {value:?} for {:?}, expected {expected:?}",
            ctx.key(name)
        );
    }
    let first = &keys[0];
    ensure!(
        ctx,
        ctx.delete(first).await,
        "delete({first:?}) returned false"
    );
    let group = ctx.key("");
    let removed = ctx.delete_prefix(&group).await;
    let expected = names.len() as u64 - 1;
    ensure!(
        ctx,
        removed == expected,
        "delete_prefix({group:?}) over unusual keys returned {removed}, expected {expected}"
    );
    for key in &keys {
        ctx.expect_value(key, None, "delete_prefix over unusual keys")
            .await;
    }
}
