//! The small tokio runtime cachekit starts for callers that have none (sync
//! code on a plain thread), shared by everything that needs one; and
//! blocking in place where Tokio allows it.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

thread_local! {
    /// Set once Tokio refused `block_in_place` on this thread.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

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

/// Runs `f(input)` on this thread in [`tokio::task::block_in_place`] where
/// Tokio allows it, and hands `input` back where it does not.
///
/// Inside a multi-thread runtime Tokio allows it on the workers (their
/// other tasks move to another thread meanwhile), in the thread of the
/// runtime's `block_on`, and on the blocking pool. It refuses, with a panic
/// before running anything, in places where `Handle::runtime_flavor` says
/// multi-thread all the same: inside a `LocalSet`, and with a multi-thread
/// runtime's handle entered inside a current-thread runtime's `block_on`.
/// No public API tells these apart, so that panic is caught, and the thread
/// is not asked again. A current-thread runtime, whose one thread runs
/// every task, is never asked; outside any runtime there is nothing to ask
/// (`Err(input)` in both cases). A panic in `f` itself goes on unwinding.
#[doc(hidden)]
pub fn try_block_in_place<T, R>(input: T, f: impl FnOnce(T) -> R) -> Result<R, T> {
    // A thread tearing down its thread-locals counts as refused.
    let refused = REFUSED.try_with(Cell::get).unwrap_or(true);
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if refused || !multi_thread {
        return Err(input);
    }
    let mut input = Some(input);
    let ran = catch_unwind(AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| input.take().map(f))
    }));
    match (ran, input) {
        (Ok(Some(out)), _) => Ok(out),
        // Tokio refused before running anything: the input is still here.
        (Err(_), Some(input)) => {
            let _ = REFUSED.try_with(|refused| refused.set(true));
            tracing::debug!(
                target: "cachekit",
                "Tokio does not allow blocking on this thread (a LocalSet?); it is not asked again"
            );
            Err(input)
        }
        (Err(panic), None) => resume_unwind(panic),
        // `block_in_place` ran the closure, which took the input.
        (Ok(None), _) => unreachable!("block_in_place ran its closure without its input"),
    }
}
