//! Lifetimes: ttl, expire, get_with_ttl, and keys actually expiring.

use super::{Ctx, LONG_TTL, SHORT_TTL};
use bytes::Bytes;
use cachekit_core::Ttl;

pub(super) async fn run(ctx: &Ctx<'_>) {
    persistent_and_remaining(ctx).await;
    set_without_ttl_clears_expiry(ctx).await;
    expire_changes_lifetime(ctx).await;
    get_with_ttl_reports_both(ctx).await;
}

async fn persistent_and_remaining(ctx: &Ctx<'_>) {
    let persistent = ctx.key("persistent");
    ctx.set(&persistent, &b"p"[..], None).await;
    let ttl = ctx.ttl(&persistent).await;
    ensure!(
        ctx,
        ttl == Ttl::Persistent,
        "ttl({persistent:?}) after set(ttl: None) is {ttl:?}, expected Persistent"
    );

    let expiring = ctx.key("expiring");
    ctx.set(&expiring, &b"e"[..], Some(LONG_TTL)).await;
    let ttl = ctx.ttl(&expiring).await;
    ctx.expect_remaining(
        ttl,
        LONG_TTL,
        &format!("ttl({expiring:?}) after set with {LONG_TTL:?}"),
    );
    ctx.expect_value(&expiring, Some(b"e"), "set with a TTL")
        .await;
}

async fn set_without_ttl_clears_expiry(ctx: &Ctx<'_>) {
    let key = ctx.key("overwritten-ttl");
    ctx.set(&key, &b"with ttl"[..], Some(LONG_TTL)).await;
    ctx.set(&key, &b"without"[..], None).await;
    let ttl = ctx.ttl(&key).await;
    ensure!(
        ctx,
        ttl == Ttl::Persistent,
        "ttl({key:?}) is {ttl:?} after overwriting a key that had a TTL with set(ttl: None); \
         a plain set replaces the old expiry, expected Persistent"
    );
    ctx.set(&key, &b"with ttl again"[..], Some(LONG_TTL)).await;
    let ttl = ctx.ttl(&key).await;
    ctx.expect_remaining(
        ttl,
        LONG_TTL,
        &format!("ttl({key:?}) after overwriting a persistent key with a TTL"),
    );
}

async fn expire_changes_lifetime(ctx: &Ctx<'_>) {
    let missing = ctx.key("expire-missing");
    ensure!(
        ctx,
        !ctx.expire(&missing, Some(LONG_TTL)).await,
        "expire({missing:?}, Some) on a missing key returned true"
    );
    ensure!(
        ctx,
        !ctx.expire(&missing, None).await,
        "expire({missing:?}, None) on a missing key returned true"
    );
    ensure!(
        ctx,
        !ctx.exists(&missing).await,
        "expire on a missing key created {missing:?}"
    );

    let key = ctx.key("expire");
    ctx.set(&key, &b"v"[..], None).await;
    ensure!(
        ctx,
        ctx.expire(&key, Some(LONG_TTL)).await,
        "expire({key:?}, Some) on a stored key returned false"
    );
    let ttl = ctx.ttl(&key).await;
    ctx.expect_remaining(
        ttl,
        LONG_TTL,
        &format!("ttl({key:?}) after expire(Some({LONG_TTL:?}))"),
    );
    ctx.expect_value(&key, Some(b"v"), "expire(Some)").await;

    ensure!(
        ctx,
        ctx.expire(&key, None).await,
        "expire({key:?}, None) on a stored key returned false"
    );
    let ttl = ctx.ttl(&key).await;
    ensure!(
        ctx,
        ttl == Ttl::Persistent,
        "ttl({key:?}) after expire(None) is {ttl:?}, expected Persistent"
    );
    ctx.expect_value(&key, Some(b"v"), "expire(None)").await;
}

async fn get_with_ttl_reports_both(ctx: &Ctx<'_>) {
    let persistent = ctx.key("gwt-persistent");
    ctx.set(&persistent, &b"p"[..], None).await;
    let got = ctx.get_with_ttl(&persistent).await;
    ensure!(
        ctx,
        got == Some((Bytes::from_static(b"p"), Ttl::Persistent)),
        "get_with_ttl({persistent:?}) of a persistent key returned {got:?}"
    );

    let expiring = ctx.key("gwt-expiring");
    ctx.set(&expiring, &b"e"[..], Some(LONG_TTL)).await;
    match ctx.get_with_ttl(&expiring).await {
        Some((value, ttl)) => {
            ensure!(
                ctx,
                value == b"e"[..],
                "get_with_ttl({expiring:?}) returned value {value:?}, expected \"e\""
            );
            ctx.expect_remaining(
                ttl,
                LONG_TTL,
                &format!("the TTL from get_with_ttl({expiring:?})"),
            );
        }
        None => ctx.fail(format_args!(
            "get_with_ttl({expiring:?}) of a stored key returned None"
        )),
    }
}

/// Every way of giving a key a short lifetime must end with the key gone
/// from every read path, while a persistent neighbour survives.
pub(super) async fn run_expiry(ctx: &Ctx<'_>) {
    let survivor = ctx.key("survivor");
    ctx.set(&survivor, &b"stays"[..], None).await;

    let by_set = ctx.key("by-set");
    ctx.set(&by_set, &b"1"[..], Some(SHORT_TTL)).await;
    let by_set_if_absent = ctx.key("by-set-if-absent");
    ensure!(
        ctx,
        ctx.set_if_absent(&by_set_if_absent, &b"2"[..], Some(SHORT_TTL))
            .await,
        "set_if_absent({by_set_if_absent:?}) on a fresh key returned false"
    );
    let by_expire = ctx.key("by-expire");
    ctx.set(&by_expire, &b"3"[..], None).await;
    ensure!(
        ctx,
        ctx.expire(&by_expire, Some(SHORT_TTL)).await,
        "expire({by_expire:?}) on a stored key returned false"
    );
    let by_set_many = ctx.key("by-set-many");
    ctx.set_many(&[(&by_set_many, Bytes::from_static(b"4"))], Some(SHORT_TTL))
        .await;

    let cases = [
        (&by_set, "set with a TTL"),
        (&by_set_if_absent, "set_if_absent with a TTL"),
        (&by_expire, "expire(Some) on a persistent key"),
        (&by_set_many, "set_many with a TTL"),
    ];
    for (key, how) in cases {
        ctx.await_expiry(key, SHORT_TTL, how).await;
    }
    for (key, how) in cases {
        let ttl = ctx.ttl(key).await;
        ensure!(
            ctx,
            ttl == Ttl::Missing,
            "ttl({key:?}) after it expired ({how}) is {ttl:?}, expected Missing"
        );
        ensure!(
            ctx,
            !ctx.exists(key).await,
            "exists({key:?}) is true after it expired ({how})"
        );
        let got = ctx.get_with_ttl(key).await;
        ensure!(
            ctx,
            got.is_none(),
            "get_with_ttl({key:?}) after it expired ({how}) returned {got:?}"
        );
        let many = ctx.get_many(&[key.as_str()]).await;
        ensure!(
            ctx,
            many == [None],
            "get_many([{key:?}]) after it expired ({how}) returned {many:?}"
        );
        ensure!(
            ctx,
            !ctx.expire(key, None).await,
            "expire({key:?}, None) after it expired ({how}) returned true"
        );
    }
    ensure!(
        ctx,
        ctx.set_if_absent(&by_set, &b"again"[..], None).await,
        "set_if_absent({by_set:?}) on an expired key returned false; an expired key is absent"
    );
    ctx.expect_value(&by_set, Some(b"again"), "set_if_absent on an expired key")
        .await;
    ctx.expect_value(&survivor, Some(b"stays"), "its neighbours expired")
        .await;
}
