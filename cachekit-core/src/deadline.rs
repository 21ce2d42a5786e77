//! The deadline an operation runs under, for backends that enforce it
//! themselves.
//!
//! A [`TieredCache`](crate::TieredCache) bounds every L2 operation by its
//! `l2_timeout`. Around a backend that keeps a deadline of its own anyway
//! (the Redis backend has a response timeout per command), a second timer
//! per operation is pure cost: two timer registrations and removals per
//! call, on locks the runtime's workers share. Such a backend says so with
//! [`Backend::enforces_deadline`](crate::Backend::enforces_deadline); the
//! cache then runs the operation [`within`] its deadline instead of under a
//! timer, and the backend bounds its own waits by [`current`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cachekit_core::deadline;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! assert_eq!(deadline::current(), None);
//! let by = Instant::now() + Duration::from_millis(250);
//! let seen = deadline::within(by, async { deadline::current() }).await;
//! assert_eq!(seen, Some(by));
//! # }
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The instant by which the operation being polled must be done, if it runs
/// [`within`] one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `fut` with `deadline` as its [`current`] deadline.
///
/// Sets no timer: it is up to whatever `fut` waits on to honour the
/// deadline. Nested calls see the innermost deadline.
pub fn within<F: Future>(deadline: Instant, fut: F) -> impl Future<Output = F::Output> {
    // Not an `async fn`: that would hold `fut` twice, as its argument and
    // inside the scope.
    DEADLINE.scope(deadline, fut)
}

/// How long a wait bounded by `own` (a configured timeout) may take under
/// the current deadline, and whether that deadline is what bounds it.
///
/// Reads the clock only when a deadline is set.
pub fn bound(own: Duration) -> (Duration, bool) {
    if current().is_none() {
        return (own, false);
    }
    let now = Instant::now();
    let (by, binding) = bound_at(now, own);
    (by.saturating_duration_since(now), binding)
}

/// [`bound`] as an instant: when a wait that starts at `now` and is
/// bounded by `own` must end under the current deadline, and whether that
/// deadline is what bounds it. An `own` too long to add to the clock ends
/// a century from `now`.
pub fn bound_at(now: Instant, own: Duration) -> (Instant, bool) {
    let own = later(now, own);
    match current() {
        Some(deadline) if deadline < own => (deadline, true),
        _ => (own, false),
    }
}

/// The instant `after` past `now`, or a century from `now` if that is
/// sooner: `Duration::MAX` (beyond what an `Instant` can hold) means "as good
/// as never" instead of an overflow.
///
/// ```
/// use std::time::{Duration, Instant};
/// use cachekit_core::deadline;
///
/// let now = Instant::now();
/// assert_eq!(deadline::later(now, Duration::from_secs(1)), now + Duration::from_secs(1));
/// assert!(deadline::later(now, Duration::MAX) > now + Duration::from_secs(3_000_000_000));
/// ```
pub fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(FAR))
        .unwrap_or_else(|| far_from(now))
}

/// A century from `now`, or the farthest the clock can go from there.
#[cold]
fn far_from(now: Instant) -> Instant {
    // Halving converges on what the platform's `Instant` can hold.
    let mut step = FAR;
    let mut at = now;
    while !step.is_zero() {
        if let Some(next) = at.checked_add(step) {
            at = next;
        }
        step /= 2;
    }
    at
}

/// As good as no bound at all.
pub(crate) const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bound_is_the_own_timeout_without_a_deadline() {
        assert_eq!(
            bound(Duration::from_secs(1)),
            (Duration::from_secs(1), false)
        );
    }

    #[tokio::test]
    async fn bound_is_what_is_left_of_a_nearer_deadline() {
        let by = Instant::now() + Duration::from_millis(100);
        let (limit, binding) = within(by, async { bound(Duration::from_secs(1)) }).await;
        assert!(binding);
        assert!(limit <= Duration::from_millis(100), "{limit:?}");
        assert!(limit > Duration::from_millis(50), "{limit:?}");
    }

    #[tokio::test]
    async fn a_farther_deadline_leaves_the_own_timeout() {
        let by = Instant::now() + Duration::from_secs(10);
        let got = within(by, async { bound(Duration::from_secs(1)) }).await;
        assert_eq!(got, (Duration::from_secs(1), false));
    }

    #[tokio::test]
    async fn bound_at_is_the_nearer_instant() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(bound_at(now, second), (now + second, false));
        let near = now + Duration::from_millis(100);
        assert_eq!(
            within(near, async { bound_at(now, second) }).await,
            (near, true)
        );
        let far = now + Duration::from_secs(10);
        assert_eq!(
            within(far, async { bound_at(now, second) }).await,
            (now + second, false)
        );
        assert_eq!(bound_at(now, Duration::MAX), (now + FAR, false));
    }

    #[test]
    fn later_saturates_at_a_century() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(later(now, Duration::MAX), now + FAR);
        assert_eq!(later(now, FAR * 2), now + FAR);
        assert!(far_from(now) > now);
    }

    #[tokio::test]
    async fn a_passed_deadline_leaves_nothing() {
        let by = Instant::now();
        let got = within(by, async { bound(Duration::from_secs(1)) }).await;
        assert_eq!(got, (Duration::ZERO, true));
    }

    #[tokio::test]
    async fn the_innermost_deadline_wins_and_ends_with_its_scope() {
        let outer = Instant::now() + Duration::from_secs(10);
        let inner = Instant::now() + Duration::from_secs(1);
        within(outer, async {
            assert_eq!(within(inner, async { current() }).await, Some(inner));
            assert_eq!(current(), Some(outer));
        })
        .await;
        assert_eq!(current(), None);
    }
}
