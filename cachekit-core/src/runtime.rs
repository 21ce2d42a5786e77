//! The small tokio runtime cachekit starts for callers that have none (sync
//! code on a plain thread), shared by everything that needs one; and
//! blocking in place where Tokio allows it.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// cachekit's own one-worker runtime, started on first use; `None` if the
/// system refused (out of threads), which callers treat as "no cache".
pub(crate) fn background() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("cachekit-runtime")
                .enable_all()
                .build()
                .inspect_err(|err| {
                    tracing::error!(target: "cachekit", error = %err, "cannot start cachekit's background runtime");
                })
                .ok()
        })
        .as_ref()
}

/// Runs `f` inside a tokio runtime context: the caller's if there is one,
/// else cachekit's own. For constructors that spawn tasks (connection pools).
#[doc(hidden)]
pub fn in_runtime<R>(f: impl FnOnce() -> R) -> R {
    if Handle::try_current().is_ok() {
        return f();
    }
    match background() {
        Some(runtime) => {
            let _entered = runtime.enter();
            f()
        }
        None => f(),
    }
}

/// The runtime a backend's own tasks belong on (connection drivers, pool
/// upkeep, connects): the caller's if it keeps running while one of its
/// threads blocks, else cachekit's.
///
/// The blocking API ([`TieredCache::get_blocking`](crate::TieredCache::get_blocking),
/// sync `#[cached]` functions) blocks the caller's thread where
/// [`block_in_place_if_proven`] cannot be used. A task living on a current-thread
/// runtime, or on a multi-thread runtime with one worker, would then stall
/// every call waiting on it until its deadline. A multi-thread runtime with
/// two or more workers runs its tasks on the others. `None` only when that
/// is not the caller's and cachekit's runtime could not be started.
#[doc(hidden)]
pub fn task_runtime() -> Option<Handle> {
    match Handle::try_current() {
        Ok(handle) if survives_a_blocked_thread(&handle) => Some(handle),
        _ => background().map(|runtime| runtime.handle().clone()),
    }
}

fn survives_a_blocked_thread(handle: &Handle) -> bool {
    handle.runtime_flavor() == RuntimeFlavor::MultiThread && handle.metrics().num_workers() >= 2
}

/// Runs `fut` where the tasks it spawns, and the sockets it opens, live on
/// [`task_runtime`]: in place when that is the caller's runtime, else
/// spawned on cachekit's and awaited (for rare work such as opening a
/// connection: it costs a task and a hop). Dropping the returned future
/// cancels `fut` either way.
///
/// # Errors
/// When the spawned task panicked or its runtime is shutting down.
#[doc(hidden)]
pub async fn on_task_runtime<F>(fut: F) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let in_place = Handle::try_current().is_ok_and(|h| survives_a_blocked_thread(&h));
    match background() {
        Some(runtime) if !in_place => {
            // Dropping the caller's future (its deadline passed) cancels the
            // work, as it would in place: an orphaned connect would hold the
            // pool's opening lock past the call that wanted it.
            let mut task = AbortOnDrop(runtime.spawn(fut));
            (&mut task.0).await
        }
        _ => Ok(fut.await),
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `f(input)` on this thread in [`tokio::task::block_in_place`] where
/// Tokio provably allows it, and hands `input` back everywhere else,
/// without ever letting Tokio refuse (it refuses with a panic, which prints
/// and, under `panic = "abort"`, aborts).
///
/// Tokio allows it on a multi-thread runtime's worker threads (their other
/// tasks move to another thread meanwhile). It also allows it in a
/// multi-thread runtime's `block_on` unless a `LocalSet` is being polled,
/// which no public API tells; so only a worker is asked, found by
/// [`tokio::runtime::worker_index`] being `Some` with a multi-thread
/// handle. Worker 0 is left out: a current-thread runtime's thread also
/// reports index 0, and with a multi-thread handle entered there Tokio
/// refuses. Everywhere else (worker 0, a `block_on` thread, a `LocalSet`, a
/// current-thread runtime, outside any runtime) the caller takes its own
/// way, which must not need this thread's runtime to make progress: hence
/// [`task_runtime`]. The blocking API and the file backend's
/// `caller_writes` use this.
#[doc(hidden)]
pub fn block_in_place_if_proven<T, R>(input: T, f: impl FnOnce(T) -> R) -> Result<R, T> {
    if block_in_place_allowed() {
        Ok(tokio::task::block_in_place(|| f(input)))
    } else {
        Err(input)
    }
}

fn block_in_place_allowed() -> bool {
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    multi_thread && tokio::runtime::worker_index().is_some_and(|index| index > 0)
}
