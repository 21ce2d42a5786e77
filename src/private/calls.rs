//! The calls generated code makes, one per return kind (`value`,
//! `result`, `option`, and their blocking forms). Each serves both the
//! function and its `_refresh` companion, so that a return type which
//! cannot be cached is reported once, not once per companion. Free
//! functions rather than methods: their paths print the same in every
//! compiler diagnostic.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use cachekit_core::remembered::{CallKey, Probe};
use cachekit_core::Cacheable;

use super::handle::{CachedFn, Call};

/// A call's remembered hit: returns the value, cloned straight into the
/// caller's return value (moving a just-written struct through a few frames
/// cost more than the clone of a small one); else gives the key (`None`:
/// the call runs uncached).
macro_rules! remembered_or_key {
    ($handle:expr, $probe:expr, $wrap:expr) => {{
        // Read in place: a hit moves nothing out of `probe`, so there is no
        // copy of it to make (see `docs/performance.md` for what copies cost).
        let probe = $probe;
        if let Probe::Remembered(entry) = &probe {
            if let Some(value) = $handle.remembered(entry) {
                return $wrap(Clone::clone(value));
            }
        }
        match probe {
            Probe::Remembered(entry) => entry.forget(),
            Probe::Key(key) => key,
        }
    }};
}

/// The value of a call's remembered entry, cloned; else the call's key
/// (`None`: it runs uncached). An async call settles this before its first
/// `.await`, so that its future does not hold the thread's table.
#[doc(hidden)]
#[inline]
pub fn settle<T: Cacheable>(handle: &CachedFn, probe: Probe<'_>) -> Result<T, Option<CallKey>> {
    Err(remembered_or_key!(handle, probe, Ok))
}

// The async calls take what [`settle`] left: the call's key, or `None`.

/// A call of a function whose every value is cached.
#[doc(hidden)]
pub async fn value<T, F, Fut>(handle: &CachedFn, call: Call, key: Option<CallKey>, compute: F) -> T
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let always = || {
        let fut = compute();
        async move { Ok::<T, Infallible>(fut.await) }
    };
    result(handle, call, key, always)
        .await
        .unwrap_or_else(|never| match never {})
}

/// A call of a function whose `Ok` values are cached.
#[doc(hidden)]
pub async fn result<T, E, F, Fut>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: F,
) -> Result<T, E>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // The refresh and the uncached call are boxed: inline, their futures
    // (the body's, and the store's of some 800 bytes) would be part of every
    // call's future, which is moved whole (memcpy) on its way to the caller.
    if call == Call::Refresh {
        return Box::pin(refresh(handle, key, compute)).await;
    }
    let Some((active, key)) = handle.target(key) else {
        return Box::pin(compute()).await;
    };
    let ran = AtomicBool::new(false);
    let started = Instant::now();
    let result = active
        .cache
        .entry_shared(active.builder(), key.shared())
        .policy(handle.policy.clone())
        .or_try_compute(|| {
            ran.store(true, Relaxed);
            compute()
        })
        .await;
    handle.counters.call(ran.into_inner(), started.elapsed());
    active.remember(&key);
    result
}

/// A `_refresh` call: runs the body and stores what it returns.
async fn refresh<T, E, F, Fut>(handle: &CachedFn, key: Option<CallKey>, compute: F) -> Result<T, E>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let result = compute().await;
    handle.store(key, result.as_ref().ok()).await;
    result
}

/// A call of a function whose `Some` values are cached.
#[doc(hidden)]
pub async fn option<T, F, Fut>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: F,
) -> Option<T>
where
    T: Cacheable,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let some = || {
        let fut = compute();
        async move { fut.await.ok_or(NotCached) }
    };
    result(handle, call, key, some).await.ok()
}

/// Blocking [`value`].
#[doc(hidden)]
#[inline]
pub fn value_blocking<T: Cacheable>(
    handle: &CachedFn,
    call: Call,
    probe: Probe<'_>,
    compute: impl FnOnce() -> T + Send,
) -> T {
    let key = remembered_or_key!(handle, probe, std::convert::identity);
    lookup_blocking(handle, call, key, || Ok::<T, Infallible>(compute()))
        .unwrap_or_else(|never| match never {})
}

/// Blocking [`result`].
#[doc(hidden)]
#[inline]
pub fn result_blocking<T: Cacheable, E: Send>(
    handle: &CachedFn,
    call: Call,
    probe: Probe<'_>,
    compute: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    let key = remembered_or_key!(handle, probe, Ok);
    lookup_blocking(handle, call, key, compute)
}

/// Blocking [`option`].
#[doc(hidden)]
#[inline]
pub fn option_blocking<T: Cacheable>(
    handle: &CachedFn,
    call: Call,
    probe: Probe<'_>,
    compute: impl FnOnce() -> Option<T> + Send,
) -> Option<T> {
    let key = remembered_or_key!(handle, probe, Some);
    lookup_blocking(handle, call, key, || compute().ok_or(NotCached)).ok()
}

/// The blocking calls past the remembered entry: `_refresh`, or the
/// cache's normal lookup.
#[inline(never)]
fn lookup_blocking<T: Cacheable, E: Send>(
    handle: &CachedFn,
    call: Call,
    key: Option<CallKey>,
    compute: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    if call == Call::Refresh {
        let result = compute();
        handle.store_blocking(key, result.as_ref().ok());
        return result;
    }
    let Some((active, key)) = handle.target(key) else {
        return compute();
    };
    let mut ran = false;
    let started = Instant::now();
    let result = active
        .cache
        .entry_shared(active.builder(), key.shared())
        .policy(handle.policy.clone())
        .blocking()
        .or_try_compute(|| {
            ran = true;
            compute()
        });
    handle.counters.call(ran, started.elapsed());
    active.remember(&key);
    result
}

/// The "error" that keeps a `None` out of the cache.
struct NotCached;
