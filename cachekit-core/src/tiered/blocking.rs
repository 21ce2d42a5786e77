//! The blocking API: for callers without an async runtime, or inside one.
//!
//! L1 hits are served on the calling thread. Everything else runs the async
//! path to completion without nesting runtimes:
//! - on a multi-threaded tokio runtime's worker, with `block_in_place` on
//!   the caller's own runtime (connections owned by that runtime keep
//!   working);
//! - outside any runtime, on a small runtime owned by cachekit, driven by
//!   the calling thread;
//! - everywhere else (a current-thread runtime, which must not be blocked,
//!   a `LocalSet`, a multi-thread runtime's `block_on` thread), on a
//!   short-lived helper thread driving cachekit's runtime (the computation
//!   then runs on that thread, so it must be `Send`). The caller's thread is
//!   blocked meanwhile, so nothing the call waits on may live on a
//!   current-thread runtime: backends put their connections' tasks on
//!   [`task_runtime`](crate::runtime::task_runtime).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::runtime::Handle;

use super::compute::Strict;
use super::tiers::Found;
use super::{Cacheable, Policy, TieredCache};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::KeyBuilder;

impl TieredCache {
    /// Blocking [`get`](Self::get).
    pub fn get_blocking<T: Cacheable>(&self, key: &str) -> Option<T> {
        if let Found::Fresh(v, _) = self.l1_peek::<T>(key, &self.inner.defaults) {
            self.inner.counters.l1.hit();
            return Some(v);
        }
        block_on(self.get(key)).flatten()
    }

    /// Blocking [`set`](Self::set).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn set_blocking<T>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        block_on(self.set(key, value, ttl)).unwrap_or_else(|| Err(no_runtime()))
    }

    /// Blocking [`set_with`](Self::set_with).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    pub fn set_with_blocking<T>(&self, key: &str, value: &T, policy: &Policy) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        block_on(self.set_with(key, value, policy)).unwrap_or_else(|| Err(no_runtime()))
    }

    /// Blocking [`delete`](Self::delete).
    ///
    /// # Errors
    /// As for [`delete`](Self::delete).
    pub fn delete_blocking(&self, key: &str) -> Result<bool> {
        block_on(self.delete(key)).unwrap_or_else(|| Err(no_runtime()))
    }

    /// Blocking [`delete_prefix`](Self::delete_prefix).
    ///
    /// # Errors
    /// As for [`delete_prefix`](Self::delete_prefix).
    pub fn delete_prefix_blocking(&self, prefix: &str) -> Result<u64> {
        block_on(self.delete_prefix(prefix)).unwrap_or_else(|| Err(no_runtime()))
    }

    /// [`read_through`](Self::read_through) from synchronous code.
    pub(super) fn read_through_blocking<T, E, F>(
        &self,
        key: &str,
        shared: Option<&Arc<str>>,
        keys: Option<&KeyBuilder>,
        policy: &Policy,
        strict: Strict<E>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: Send,
        F: FnOnce() -> Result<T, E> + Send,
    {
        if let Found::Fresh(v, _) = self.l1_peek::<T>(key, policy) {
            self.inner.counters.l1.hit();
            return Ok(v);
        }
        // `compute` moves into the future; get it back if no runtime could run it.
        let mut compute = Some(compute);
        let slot = &mut compute;
        let ran = block_on(self.read_through(key, shared, keys, policy, strict, || {
            let compute = slot.take();
            async move {
                match compute {
                    Some(f) => f(),
                    None => unreachable_compute(),
                }
            }
        }));
        match (ran, compute) {
            (Some(result), _) => result,
            (None, Some(f)) => {
                tracing::warn!(target: "cachekit", key, "no runtime for the cache; calling uncached");
                f()
            }
            (None, None) => unreachable_compute(),
        }
    }
}

fn no_runtime() -> Error {
    Error::new(
        ErrorKind::Io,
        "cachekit could not start its background runtime for a blocking call (out of threads?)",
    )
}

/// The computation is taken exactly once, by the one path that runs it.
fn unreachable_compute() -> ! {
    unreachable!("a cached computation was asked for twice")
}

/// Runs `fut` to completion from synchronous code, wherever that code runs.
/// `None` only if cachekit's own runtime could not be started.
fn block_on<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let Ok(handle) = Handle::try_current() else {
        return crate::runtime::background().map(|rt| rt.block_on(fut));
    };
    // A multi-thread runtime's worker.
    let fut = match crate::runtime::block_in_place_if_proven(fut, |fut| handle.block_on(fut)) {
        Ok(output) => return Some(output),
        Err(fut) => fut,
    };
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| crate::runtime::background().map(|rt| rt.block_on(fut)));
        match worker.join() {
            Ok(output) => output,
            // The user's computation panicked: let the panic continue in the caller.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
