//! get_many, set_many and set_if_absent.

use super::{Ctx, LONG_TTL};
use bytes::Bytes;
use cachekit_core::Ttl;

pub(super) async fn get_many_keeps_order(ctx: &Ctx<'_>) {
    let (a, b, empty, missing) = (
        ctx.key("gm-a"),
        ctx.key("gm-b"),
        ctx.key("gm-empty"),
        ctx.key("gm-missing"),
    );
    ctx.set(&a, &b"A"[..], None).await;
    ctx.set(&b, &b"B"[..], Some(LONG_TTL)).await;
    ctx.set(&empty, &b""[..], None).await;
    let keys = [
        a.as_str(),
        missing.as_str(),
        b.as_str(),
        empty.as_str(),
        a.as_str(),
    ];
    let got = ctx.get_many(&keys).await;
    let expected: Vec<Option<Bytes>> = vec![
        Some(Bytes::from_static(b"A")),
        None,
        Some(Bytes::from_static(b"B")),
        Some(Bytes::new()),
        Some(Bytes::from_static(b"A")),
    ];
    ensure!(
        ctx,
        got == expected,
        "get_many({keys:?}) returned {got:?}, expected {expected:?} (one slot per key, in order)"
    );

    let none = ctx.get_many(&[]).await;
    ensure!(
        ctx,
        none.is_empty(),
        "get_many(&[]) returned {none:?}, expected an empty Vec"
    );
    let only_missing = ctx.get_many(&[missing.as_str(), missing.as_str()]).await;
    ensure!(
        ctx,
        only_missing == [None, None],
        "get_many of two missing keys returned {only_missing:?}"
    );
}

pub(super) async fn set_many_stores_every_entry(ctx: &Ctx<'_>) {
    let keys = [ctx.key("sm-1"), ctx.key("sm-2"), ctx.key("sm-3")];
    ctx.set(&keys[1], &b"old"[..], None).await;
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .zip([&b"one"[..], b"two", b""])
        .map(|(k, v)| (k.as_str(), Bytes::copy_from_slice(v)))
        .collect();
    ctx.set_many(&entries, Some(LONG_TTL)).await;
    for (key, value) in &entries {
        ctx.expect_value(key, Some(value), "set_many with a TTL")
            .await;
        let ttl = ctx.ttl(key).await;
        ctx.expect_remaining(
            ttl,
            LONG_TTL,
            &format!("ttl({key:?}) after set_many with {LONG_TTL:?}"),
        );
    }

    ctx.set_many(&entries[..1], None).await;
    let ttl = ctx.ttl(&keys[0]).await;
    ensure!(
        ctx,
        ttl == Ttl::Persistent,
        "ttl({:?}) after set_many(ttl: None) is {ttl:?}, expected Persistent",
        keys[0]
    );

    ctx.set_many(&[], Some(LONG_TTL)).await;
    ctx.set_many(&[], None).await;
}

pub(super) async fn set_if_absent_stores_only_once(ctx: &Ctx<'_>) {
    let key = ctx.key("sia");
    ensure!(
        ctx,
        ctx.set_if_absent(&key, &b"first"[..], None).await,
        "set_if_absent({key:?}) on a missing key returned false"
    );
    ctx.expect_value(&key, Some(b"first"), "a successful set_if_absent")
        .await;
    ensure!(
        ctx,
        !ctx.set_if_absent(&key, &b"second"[..], Some(LONG_TTL))
            .await,
        "set_if_absent({key:?}) on a stored key returned true"
    );
    ctx.expect_value(&key, Some(b"first"), "a refused set_if_absent")
        .await;
    let ttl = ctx.ttl(&key).await;
    ensure!(
        ctx,
        ttl == Ttl::Persistent,
        "a refused set_if_absent with a TTL changed ttl({key:?}) to {ttl:?}; expected Persistent"
    );

    let with_ttl = ctx.key("sia-ttl");
    ensure!(
        ctx,
        ctx.set_if_absent(&with_ttl, &b"v"[..], Some(LONG_TTL))
            .await,
        "set_if_absent({with_ttl:?}, Some(ttl)) on a missing key returned false"
    );
    let ttl = ctx.ttl(&with_ttl).await;
    ctx.expect_remaining(
        ttl,
        LONG_TTL,
        &format!("ttl({with_ttl:?}) after set_if_absent with {LONG_TTL:?}"),
    );

    let empty = ctx.key("sia-empty");
    ctx.set(&empty, &b""[..], None).await;
    ensure!(
        ctx,
        !ctx.set_if_absent(&empty, &b"x"[..], None).await,
        "set_if_absent({empty:?}) returned true over a stored empty value"
    );
}

/// Locks are built on set_if_absent: concurrent callers must not both win.
pub(super) async fn set_if_absent_race_has_one_winner(ctx: &Ctx<'_>) {
    let key = ctx.key("sia-race");
    let attempt = |n: u8| {
        let key = key.as_str();
        async move { (n, ctx.set_if_absent(key, vec![b'w', n], None).await) }
    };
    let results = tokio::join!(
        attempt(0),
        attempt(1),
        attempt(2),
        attempt(3),
        attempt(4),
        attempt(5),
        attempt(6),
        attempt(7)
    );
    let results = [
        results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
    ];
    let winners: Vec<u8> = results
        .iter()
        .filter(|(_, won)| *won)
        .map(|(n, _)| *n)
        .collect();
    ensure!(
        ctx,
        winners.len() == 1,
        "8 concurrent set_if_absent({key:?}) calls had winners {winners:?}, expected exactly one"
    );
    let winner = [b'w', winners[0]];
    ctx.expect_value(
        &key,
        Some(&winner),
        "a set_if_absent race (the winner's value must be stored)",
    )
    .await;
}
