//! get / set / delete / exists on persistent keys, odd values, and health.

use super::{Ctx, Shown};
use cachekit_core::Ttl;

pub(super) async fn a_missing_key_reads_as_missing(ctx: &Ctx<'_>) {
    let key = ctx.key("never-set");
    ctx.expect_value(&key, None, "nothing was stored").await;
    ensure!(
        ctx,
        !ctx.exists(&key).await,
        "exists({key:?}) is true for a key never set"
    );
    let ttl = ctx.ttl(&key).await;
    ensure!(
        ctx,
        ttl == Ttl::Missing,
        "ttl({key:?}) of a key never set is {ttl:?}, expected Missing"
    );
    let got = ctx.get_with_ttl(&key).await;
    ensure!(
        ctx,
        got.is_none(),
        "get_with_ttl({key:?}) of a key never set returned {got:?}"
    );
}

pub(super) async fn set_round_trips_and_overwrites(ctx: &Ctx<'_>) {
    let key = ctx.key("roundtrip");
    ctx.set(&key, &b"first"[..], None).await;
    ctx.expect_value(&key, Some(b"first"), "set").await;
    ensure!(
        ctx,
        ctx.exists(&key).await,
        "exists({key:?}) is false right after set"
    );
    ctx.set(&key, &b"second, longer value"[..], None).await;
    ctx.expect_value(&key, Some(b"second, longer value"), "an overwriting set")
        .await;
    ctx.set(&key, &b"3"[..], None).await;
    ctx.expect_value(&key, Some(b"3"), "an overwrite with a shorter value")
        .await;
}

pub(super) async fn an_empty_value_is_not_missing(ctx: &Ctx<'_>) {
    let key = ctx.key("empty");
    ctx.set(&key, &b""[..], None).await;
    ctx.expect_value(&key, Some(b""), "setting an empty value")
        .await;
    ensure!(
        ctx,
        ctx.exists(&key).await,
        "exists({key:?}) is false for an empty value"
    );
}

pub(super) async fn binary_values_round_trip(ctx: &Ctx<'_>) {
    let key = ctx.key("binary");
    let mut value: Vec<u8> = vec![0x00, 0xff, 0x00, b'\r', b'\n', 0xff];
    value.extend(0..=255u8);
    value.extend([0xc3, 0x28, 0x00]);
    ctx.set(&key, value.clone(), None).await;
    ctx.expect_value(
        &key,
        Some(&value),
        "setting bytes 0x00..=0xff and invalid UTF-8",
    )
    .await;
}

/// A deterministic, incompressible-looking megabyte.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

pub(super) async fn a_one_mib_value_round_trips(ctx: &Ctx<'_>) {
    let key = ctx.key("one-mib");
    let value = pseudo_random(1 << 20);
    ctx.set(&key, value.clone(), None).await;
    let got = ctx.get(&key).await;
    if got.as_deref() != Some(&value[..]) {
        let first_difference = got
            .as_deref()
            .and_then(|g| g.iter().zip(&value).position(|(a, b)| a != b));
        ctx.fail(format_args!(
            "a 1 MiB value did not round-trip: got {}, first differing byte at {first_difference:?}",
            Shown(got.as_deref())
        ));
    }
}

pub(super) async fn delete_reports_whether_the_key_existed(ctx: &Ctx<'_>) {
    let key = ctx.key("deleted");
    let other = ctx.key("deleted-sibling");
    ctx.set(&key, &b"v"[..], None).await;
    ctx.set(&other, &b"stays"[..], None).await;
    ensure!(
        ctx,
        ctx.delete(&key).await,
        "delete({key:?}) of a stored key returned false"
    );
    ctx.expect_value(&key, None, "delete").await;
    ensure!(
        ctx,
        !ctx.exists(&key).await,
        "exists({key:?}) is true after delete"
    );
    ensure!(
        ctx,
        !ctx.delete(&key).await,
        "a second delete({key:?}) returned true"
    );
    ctx.expect_value(&other, Some(b"stays"), "deleting a different key")
        .await;
}

pub(super) async fn health_reports_healthy_under_its_name(ctx: &Ctx<'_>) {
    let health = ctx.backend.health().await;
    ensure!(
        ctx,
        health.healthy,
        "health() reports unhealthy: {health:?}"
    );
    ensure!(
        ctx,
        health.backend == ctx.backend.name(),
        "health().backend is {:?} but name() is {:?}",
        health.backend,
        ctx.backend.name()
    );
}
