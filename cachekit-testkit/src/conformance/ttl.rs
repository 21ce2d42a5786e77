//! Lifetimes: ttl, expire, get_with_ttl, and keys actually expiring.

use std::time::Duration;

use super::{Ctx, LONG_TTL, SHORT_TTL};
use bytes::Bytes;
use cachekit_core::Ttl;

pub(super) async fn ttl_is_reported(ctx: &Ctx<'_>) {
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

pub(super) async fn set_without_ttl_clears_the_expiry(ctx: &Ctx<'_>) {
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

pub(super) async fn expire_changes_the_lifetime(ctx: &Ctx<'_>) {
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

pub(super) async fn get_with_ttl_reports_value_and_ttl(ctx: &Ctx<'_>) {
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

/// A zero TTL means "stored and expired at once" on every backend: the key
/// reads as missing right away and any previous value is gone.
pub(super) async fn a_zero_ttl_expires_at_once(ctx: &Ctx<'_>) {
    let key = ctx.key("zero-set");
    ctx.set(&key, &b"old"[..], None).await;
    ctx.set(&key, &b"new"[..], Some(Duration::ZERO)).await;
    ctx.expect_value(&key, None, "set with a zero TTL over a stored value")
        .await;
    let ttl = ctx.ttl(&key).await;
    ensure!(
        ctx,
        ttl == Ttl::Missing,
        "ttl({key:?}) after set with a zero TTL is {ttl:?}, expected Missing"
    );

    let many = ctx.key("zero-set-many");
    ctx.set(&many, &b"old"[..], None).await;
    ctx.set_many(&[(&many, Bytes::from_static(b"new"))], Some(Duration::ZERO))
        .await;
    ctx.expect_value(&many, None, "set_many with a zero TTL")
        .await;

    let absent = ctx.key("zero-set-if-absent");
    ensure!(
        ctx,
        ctx.set_if_absent(&absent, &b"v"[..], Some(Duration::ZERO))
            .await,
        "set_if_absent({absent:?}, zero TTL) on a missing key returned false; \
         it stores the value, which expires at once"
    );
    ctx.expect_value(&absent, None, "set_if_absent with a zero TTL")
        .await;
    ctx.set(&absent, &b"kept"[..], None).await;
    ensure!(
        ctx,
        !ctx.set_if_absent(&absent, &b"v"[..], Some(Duration::ZERO))
            .await,
        "set_if_absent({absent:?}, zero TTL) on a stored key returned true"
    );
    ctx.expect_value(
        &absent,
        Some(b"kept"),
        "a refused set_if_absent with a zero TTL",
    )
    .await;

    let expired = ctx.key("zero-expire");
    ctx.set(&expired, &b"v"[..], None).await;
    ensure!(
        ctx,
        ctx.expire(&expired, Some(Duration::ZERO)).await,
        "expire({expired:?}, zero) on a stored key returned false"
    );
    ctx.expect_value(&expired, None, "expire with a zero TTL")
        .await;
    ensure!(
        ctx,
        !ctx.expire(&expired, Some(Duration::ZERO)).await,
        "expire({expired:?}, zero) on a missing key returned true"
    );
}

/// A TTL beyond what the backend can store (here `Duration::MAX`) is
/// clamped to the backend's maximum: accepted, readable, and still an
/// expiry rather than "persistent".
pub(super) async fn a_huge_ttl_is_clamped(ctx: &Ctx<'_>) {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let expect_far = |ttl: Ttl, what: &str| match ttl {
        Ttl::Remaining(left) if left >= CENTURY => {}
        other => ctx.fail(format_args!(
            "{what}: ttl is {other:?}, expected a remaining lifetime of at least a century \
             (a TTL of Duration::MAX is clamped to the backend's maximum, never dropped)"
        )),
    };
    let key = ctx.key("max-set");
    ctx.set(&key, &b"v"[..], Some(Duration::MAX)).await;
    ctx.expect_value(&key, Some(b"v"), "set with Duration::MAX")
        .await;
    expect_far(
        ctx.ttl(&key).await,
        &format!("{key:?} after set(Duration::MAX)"),
    );

    let expired = ctx.key("max-expire");
    ctx.set(&expired, &b"v"[..], Some(LONG_TTL)).await;
    ensure!(
        ctx,
        ctx.expire(&expired, Some(Duration::MAX)).await,
        "expire({expired:?}, Duration::MAX) on a stored key returned false"
    );
    expect_far(
        ctx.ttl(&expired).await,
        &format!("{expired:?} after expire(Duration::MAX)"),
    );

    let absent = ctx.key("max-set-if-absent");
    ensure!(
        ctx,
        ctx.set_if_absent(&absent, &b"v"[..], Some(Duration::MAX))
            .await,
        "set_if_absent({absent:?}, Duration::MAX) on a missing key returned false"
    );
    expect_far(
        ctx.ttl(&absent).await,
        &format!("{absent:?} after set_if_absent(Duration::MAX)"),
    );

    let many = ctx.key("max-set-many");
    ctx.set_many(&[(&many, Bytes::from_static(b"v"))], Some(Duration::MAX))
        .await;
    expect_far(
        ctx.ttl(&many).await,
        &format!("{many:?} after set_many(Duration::MAX)"),
    );

    // Just above zero: stored, then gone within a millisecond or so.
    let tiny = ctx.key("tiny");
    ctx.set(&tiny, &b"v"[..], Some(Duration::from_nanos(1)))
        .await;
    ctx.await_expiry(&tiny, Duration::from_nanos(1), "set with a 1 ns TTL")
        .await;
}

/// Every way of giving a key a short lifetime must end with the key gone
/// from every read path, while a persistent neighbour survives.
pub(super) async fn expired_keys_are_gone_from_every_read_path(ctx: &Ctx<'_>) {
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
