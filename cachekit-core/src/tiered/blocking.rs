//! The blocking API: for callers without an async runtime, or inside one.
//!
//! L1 hits are served on the calling thread. Everything else runs the async
//! path and waits for it without nesting `block_on`:
//! - inside a multi-threaded tokio runtime, through `block_in_place` on the
//!   caller's own runtime (so connections owned by that runtime keep working);
//! - elsewhere (no runtime, or a current-thread runtime that must not be
//!   blocked), on a small runtime owned by cachekit.
//!
//! On a current-thread runtime a blocking caller does not wait for another
//! caller's computation of the same key (that caller may need the very thread
//! being blocked); it computes on its own.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::flight::{self, FlightState, Role};
use super::{Cacheable, TieredCache};
use crate::error::{Error, ErrorKind, Result};

impl TieredCache {
    /// Blocking [`get`](Self::get).
    pub fn get_blocking<T: Cacheable>(&self, key: &str) -> Option<T> {
        if let Some(v) = self.l1_get(key) {
            return Some(v);
        }
        self.inner.l2.as_ref()?;
        let cache = self.clone();
        let key = key.to_owned();
        bridge(async move { cache.l2_read::<T>(&key).await.map(|(v, _)| v) }).flatten()
    }

    /// Blocking [`set`](Self::set).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn set_blocking<T>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()>
    where
        T: serde::Serialize + Clone + Send + Sync + 'static,
    {
        let cache = self.clone();
        let key = key.to_owned();
        let value = value.clone();
        bridge(async move { cache.set(&key, &value, ttl).await })
            .unwrap_or_else(|| Err(no_runtime()))
    }

    /// Blocking [`delete`](Self::delete).
    ///
    /// # Errors
    /// As for [`delete`](Self::delete).
    pub fn delete_blocking(&self, key: &str) -> Result<bool> {
        let cache = self.clone();
        let key = key.to_owned();
        bridge(async move { cache.delete(&key).await }).unwrap_or_else(|| Err(no_runtime()))
    }

    /// Blocking [`get_or_compute`](Self::get_or_compute); `compute` runs on the
    /// calling thread.
    pub fn get_or_compute_blocking<T, F>(&self, key: &str, ttl: Option<Duration>, compute: F) -> T
    where
        T: Cacheable,
        F: FnOnce() -> T,
    {
        match self
            .try_get_or_compute_blocking(key, ttl, || Ok::<T, std::convert::Infallible>(compute()))
        {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Blocking [`try_get_or_compute`](Self::try_get_or_compute); `compute`
    /// runs on the calling thread.
    ///
    /// # Errors
    /// Only the computation's own error.
    pub fn try_get_or_compute_blocking<T, E, F>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Result<T, E>,
    {
        if let Some(v) = self.l1_get(key) {
            return Ok(v);
        }
        let may_wait = !on_current_thread_runtime();
        let mut guard = None;
        if may_wait {
            loop {
                match self.inner.flights.join(key) {
                    Role::Leader(g) => {
                        guard = Some(g);
                        break;
                    }
                    Role::Follower(rx) => match bridge(flight::wait(rx)) {
                        Some(FlightState::Done(shared)) => {
                            if let Some(v) = shared.downcast_ref::<T>() {
                                self.inner.counters.coalesced();
                                return Ok(v.clone());
                            }
                            break;
                        }
                        Some(FlightState::Failed) | None => break,
                        Some(FlightState::Abandoned | FlightState::Running) => {
                            if let Some(v) = self.l1_peek(key) {
                                return Ok(v);
                            }
                        }
                    },
                }
            }
        }
        if let Some(v) = self.l1_peek::<T>(key) {
            if let Some(g) = guard {
                g.finish(FlightState::Done(Arc::new(v.clone())));
            }
            return Ok(v);
        }
        if self.inner.l2.is_some() {
            let cache = self.clone();
            let owned_key = key.to_owned();
            if let Some(Some((v, shared))) =
                bridge(async move { cache.l2_read::<T>(&owned_key).await })
            {
                if let Some(g) = guard {
                    g.finish(FlightState::Done(shared));
                }
                return Ok(v);
            }
        }
        self.inner.counters.compute();
        match compute() {
            Ok(value) => {
                let shared = Arc::new(value);
                let cache = self.clone();
                let owned_key = key.to_owned();
                let stored = shared.clone();
                if bridge(async move { cache.store(&owned_key, &stored, ttl).await }).is_none() {
                    tracing::warn!(target: "cachekit", key, "value not cached: no runtime available for the cache write");
                }
                if let Some(g) = guard {
                    g.finish(FlightState::Done(shared.clone()));
                }
                Ok(T::clone(&shared))
            }
            Err(err) => {
                if let Some(g) = guard {
                    g.finish(FlightState::Failed);
                }
                Err(err)
            }
        }
    }
}

fn on_current_thread_runtime() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread)
}

fn no_runtime() -> Error {
    Error::new(
        ErrorKind::Io,
        "cachekit could not start its background runtime for a blocking call (out of threads?)",
    )
}

/// Runs `fut` to completion from synchronous code, wherever that code runs.
/// `None` only if cachekit's own runtime could not be started.
fn bridge<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if let Ok(handle) = Handle::try_current() {
        if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
            return Some(tokio::task::block_in_place(|| handle.block_on(fut)));
        }
    }
    let runtime = background_runtime()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().ok()
}

fn background_runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("cachekit-blocking")
                .enable_all()
                .build()
                .inspect_err(|err| {
                    tracing::error!(target: "cachekit", error = %err, "cannot start cachekit's background runtime");
                })
                .ok()
        })
        .as_ref()
}
