//! Waiting for a condition in tests without a fixed sleep.

use std::time::{Duration, Instant};

/// How long [`eventually`] waits before failing the test.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `cond` every few milliseconds until it holds; panics after
/// [`PATIENCE`] naming `what`. Returns how long it took.
///
/// # Panics
/// When `cond` still does not hold after [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if cond() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
