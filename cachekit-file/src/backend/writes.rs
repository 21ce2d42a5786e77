//! Where a write runs: on Tokio's blocking pool, or, with
//! [`caller_writes`](crate::FileConfigBuilder::caller_writes), on the
//! calling thread when the runtime is multi-thread.
//!
//! On the calling thread a write runs in [`tokio::task::block_in_place`]
//! where Tokio provably allows it
//! ([`cachekit_core::runtime::block_in_place_if_proven`]: a worker other
//! than the first), else directly (a `block_on` thread, the blocking pool,
//! worker 0, a `LocalSet`): a file write takes microseconds, and asking
//! Tokio where it cannot answer would panic. A current-thread runtime,
//! whose one thread runs every task, sends its writes to the pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cachekit_core::runtime::block_in_place_if_proven;
use cachekit_core::Result;

use super::FileBackend;
use crate::disk::Replaced;
use crate::store::{Evict, Store};

/// How a write ran on the calling thread.
enum Ran<R> {
    /// It ran (or panicked, made an error).
    Done(Result<R>),
    /// Not allowed here; the job is left for the pool.
    NotHere,
}

impl FileBackend {
    /// Runs a write that replaces no file (`delete`, `expire`,
    /// `set_if_absent`) on the calling thread if allowed, else on the
    /// blocking pool; `f` is told who evicts if the write crosses the high
    /// watermark.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store, Evict) -> Result<T> + Send + 'static,
    {
        if self.store.config.caller_writes {
            // A write on this thread never yields; see `FileBackend::read`.
            tokio::task::coop::consume_budget().await;
        }
        let mut job = Some(f);
        if let Ran::Done(out) = self.on_caller(&mut job, |f| f(&self.store, Evict::Later)) {
            self.after_caller_write(false);
            return out;
        }
        let Some(f) = job else {
            return Err(crate::error::no_answer());
        };
        self.store.count_write(false);
        self.blocking(move |s| f(s, Evict::Here)).await
    }

    /// Runs a write and returns as soon as the new values are in place; the
    /// files they replaced are removed after the caller has been answered,
    /// by the same blocking thread, or, when the write ran on the calling
    /// thread, by a blocking task.
    pub(super) async fn writing<F>(&self, f: F) -> Result<()>
    where
        F: for<'s> FnOnce(&'s Store, Evict) -> Result<Vec<Replaced<'s>>> + Send + 'static,
    {
        if self.store.config.caller_writes {
            tokio::task::coop::consume_budget().await;
        }
        let mut job = Some(f);
        let mut drain = false;
        let ran = self.on_caller(&mut job, |f| {
            drain = self.store.remove_later(f(&self.store, Evict::Later)?);
            Ok(())
        });
        if let Ran::Done(out) = ran {
            self.after_caller_write(drain);
            return out;
        }
        let Some(f) = job else {
            return Err(crate::error::no_answer());
        };
        self.store.count_write(false);
        let store = Arc::clone(&self.store);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let task = tokio::task::spawn_blocking(move || {
            let (out, replaced) = match f(&store, Evict::Here) {
                Ok(replaced) => (Ok(()), replaced),
                Err(err) => (Err(err), Vec::new()),
            };
            // The caller may have gone (a timeout); the write stands anyway.
            let _ = reply.send(out);
            drop(replaced);
        });
        let out = match answer.await {
            Ok(out) => out,
            // No answer: `f` panicked, which the task's result reports.
            Err(_) => match task.await {
                Err(err) => Err(crate::error::join_error(err)),
                Ok(()) => Err(crate::error::no_answer()),
            },
        };
        self.after_io();
        out
    }

    /// After a write on the calling thread: starts the blocking tasks for
    /// what it left to them (removing replaced files if `drain`, a due
    /// eviction, the periodic sweep).
    fn after_caller_write(&self, drain: bool) {
        if drain {
            let drain = RemovalDrain(Arc::clone(&self.store));
            tokio::task::spawn_blocking(move || drop(drain));
        }
        if self.store.claim_eviction() {
            let claim = EvictionClaim(Arc::clone(&self.store));
            tokio::task::spawn_blocking(move || {
                let store = &claim.0;
                store.enforce_limits();
                while store.eviction_due_again() {
                    store.enforce_limits();
                }
            });
        }
        self.after_io();
    }

    /// Runs `run(job)` on this thread (in `block_in_place` where that is
    /// proven allowed) if caller writes are on and the runtime is
    /// multi-thread; otherwise leaves `job` in place for the pool. A panic
    /// in `run` becomes an error, as a panic on the pool does.
    fn on_caller<F, R>(&self, job: &mut Option<F>, run: impl FnOnce(F) -> Result<R>) -> Ran<R> {
        if !self.store.config.caller_writes {
            return Ran::NotHere;
        }
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !multi_thread {
            return Ran::NotHere;
        }
        let Some(f) = job.take() else {
            return Ran::NotHere;
        };
        let out = block_in_place_if_proven((f, run), run_caught).unwrap_or_else(run_caught);
        self.store.count_write(true);
        Ran::Done(out.unwrap_or_else(|panic| Err(crate::error::caller_panic(&*panic))))
    }
}

/// Runs a job, turning a panic into the `Err` of `catch_unwind`.
fn run_caught<F, R>((f, run): (F, impl FnOnce(F) -> R)) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(|| run(f)))
}

/// Releases a deferred eviction when dropped, also if a shutting-down
/// runtime drops the task without running it (the next write that
/// crosses the watermark, or the next sweep, evicts then).
struct EvictionClaim(Arc<Store>);

impl Drop for EvictionClaim {
    fn drop(&mut self) {
        self.0.eviction_done();
    }
}

/// Removes the queued replaced files when dropped: when its blocking task
/// has run, or when a shutting-down runtime drops the task unrun.
struct RemovalDrain(Arc<Store>);

impl Drop for RemovalDrain {
    fn drop(&mut self) {
        self.0.drain_removals();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is the failure report

    use cachekit_core::{ErrorKind, Result};

    use crate::{FileBackend, FileConfig};

    /// A write whose store code panics, on the calling thread (a worker of
    /// a multi-thread runtime) and on the pool (a current-thread runtime).
    #[test]
    fn a_panicking_write_is_an_error_on_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileConfig::builder()
            .dir(dir.path())
            .caller_writes(true)
            .build()
            .unwrap();
        let cache = FileBackend::open(config).unwrap();
        let panics = |cache: FileBackend| async move {
            let out: Result<()> = cache.write(|_, _| panic!("boom in the store")).await;
            let err = out.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io);
            assert!(err.message().contains("boom in the store"), "{err}");
            // Nothing was left broken: the next write works.
            cache.write(|s, _| s.delete("k")).await.unwrap();
        };
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        multi.block_on(multi.spawn(panics(cache.clone()))).unwrap();
        assert_eq!(cache.store.write_stats().caller, 2);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        current.block_on(panics(cache.clone()));
        assert_eq!(cache.store.write_stats().blocking, 2);
    }
}
