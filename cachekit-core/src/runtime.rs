//! The small tokio runtime cachekit starts for callers that have none (sync
//! code on a plain thread), shared by everything that needs one.

use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

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
