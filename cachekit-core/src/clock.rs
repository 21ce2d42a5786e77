//! The time, as cachekit reads it: [`Clock`], the one source every TTL,
//! stale window, refresh-ahead and breaker decision takes it from, which
//! tests can replace with a [`MockClock`] they advance instead of sleeping.
//!
//! Also a cheap upper bound on the time, for fast-path freshness checks.
//!
//! `Instant::now()` costs about 25 ns on a VM (a TSC read through the
//! vDSO); on the remembered-entry path of an L1 hit that was a sixth of the
//! call. Linux also keeps `CLOCK_MONOTONIC_COARSE`, the monotonic clock as
//! of the last timer tick, which costs a memory read. It lags the true time
//! by at most one tick (1-10 ms), never leads it, and counts from the same
//! origin as `Instant` (both are `CLOCK_MONOTONIC`).
//!
//! `now_at_most` turns a coarse reading into an `Instant` that is never
//! earlier than the true time: the coarse reading plus the most it can lag.
//! A deadline later than that bound has certainly not passed; for one
//! that is not, the caller reads the precise clock. Correctness never
//! depends on the coarse clock, only how often the precise one is read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a cache reads the time: the system's monotonic clock (the
/// default), or a mock that only moves when a test advances it.
///
/// Timers (L2 deadlines, lock waits) stay on tokio's real clock: a mock
/// moves what cachekit decides from timestamps, not how long it waits.
///
/// ```
/// use std::time::Duration;
/// use cachekit_core::clock::Clock;
///
/// let (clock, mock) = Clock::mock();
/// let before = clock.now();
/// mock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - before, Duration::from_secs(60));
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    mock: Option<Arc<MockState>>,
}

/// The handle a test advances a mocked [`Clock`] with.
#[derive(Clone)]
pub struct MockClock(Arc<MockState>);

struct MockState {
    origin: Instant,
    /// Nanoseconds advanced since `origin`.
    offset: AtomicU64,
}

impl MockState {
    fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.offset.load(Ordering::Acquire))
    }
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the current time and moves only when the
    /// returned handle advances it.
    pub fn mock() -> (Self, MockClock) {
        let state = Arc::new(MockState {
            origin: Instant::now(),
            offset: AtomicU64::new(0),
        });
        (
            Self {
                mock: Some(state.clone()),
            },
            MockClock(state),
        )
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.mock {
            None => Instant::now(),
            Some(mock) => mock.now(),
        }
    }

    /// An `Instant` no earlier than now, cheaper than [`now`](Self::now)
    /// on the system clock (see `now_at_most`).
    #[inline]
    pub(crate) fn now_at_most(&self) -> Instant {
        match &self.mock {
            None => now_at_most(),
            Some(mock) => mock.now(),
        }
    }

    /// Whether this is a mock: then entries past their expiry are hidden
    /// by cachekit, since moka's own clock never saw the time move.
    #[inline]
    pub(crate) fn is_mock(&self) -> bool {
        self.mock.is_some()
    }
}

impl MockClock {
    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .offset
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |at| {
                Some(at.saturating_add(nanos))
            });
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_mock() {
            "Clock(mock)"
        } else {
            "Clock(system)"
        })
    }
}

impl std::fmt::Debug for MockClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MockClock").field(&self.0.now()).finish()
    }
}

/// How far the coarse clock may lag beyond its two ticks: the kernel's
/// timekeeping stalls while a virtual CPU is descheduled by its host, and
/// the coarse clock lags by the stall (CI saw it lag past two ticks).
pub(crate) const STALL_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// An `Instant` no earlier than now: exact where the coarse clock is not
/// available, else at most two timer ticks and [`STALL_MARGIN`] later.
/// Should the kernel's timekeeping stall for longer than the margin, it can
/// be earlier than now by the excess: an entry near its expiry may then be
/// served that much past it.
#[inline]
pub(crate) fn now_at_most() -> Instant {
    imp::now_at_most()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

    /// How far the anchor pair may be from simultaneous before it is
    /// measured again (the thread was preempted between the two reads).
    const ANCHOR_TOLERANCE: Duration = Duration::from_micros(50);

    /// Where the coarse clock's zero plus its slack falls on the `Instant`
    /// line: `at_zero + coarse` is an upper bound on the time.
    struct Anchor {
        at_zero: Instant,
    }

    static ANCHOR: OnceLock<Option<Anchor>> = OnceLock::new();

    fn duration(ts: Timespec) -> Option<Duration> {
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u32::try_from(ts.tv_nsec).ok()?;
        (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
    }

    fn anchor() -> Option<Anchor> {
        let resolution = duration(clock_getres(ClockId::MonotonicCoarse))?;
        // Above 100 ms the clock is not the tick clock this relies on.
        if resolution.is_zero() || resolution > Duration::from_millis(100) {
            return None;
        }
        for _ in 0..16 {
            let before = Instant::now();
            let mono = duration(clock_gettime(ClockId::Monotonic))?;
            let spread = before.elapsed();
            if spread <= ANCHOR_TOLERANCE {
                // `mono` was read after `before`, so `before - mono` places
                // the clock's zero at most `spread` early; the slack covers
                // that, twice the coarse clock's lag, and a stalled tick.
                let slack = resolution * 2 + spread + super::STALL_MARGIN;
                let at_zero = before.checked_sub(mono)?.checked_add(slack)?;
                return Some(Anchor { at_zero });
            }
        }
        None
    }

    #[inline]
    pub(super) fn now_at_most() -> Instant {
        match ANCHOR.get_or_init(anchor) {
            Some(anchor) => match duration(clock_gettime(ClockId::MonotonicCoarse)) {
                Some(coarse) => anchor.at_zero + coarse,
                None => Instant::now(),
            },
            None => Instant::now(),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Instant;

    pub(super) fn now_at_most() -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn is_never_earlier_than_the_precise_clock_and_not_far_later() {
        let mut worst = Duration::ZERO;
        for i in 0..200_000 {
            // The true time when the bound is read is at least `before`.
            let before = Instant::now();
            let bound = now_at_most();
            assert!(
                bound >= before,
                "bound earlier than the true time at sample {i}"
            );
            worst = worst.max(bound - before);
            if i % 1000 == 0 {
                std::thread::yield_now();
            }
        }
        // The stall margin, two ticks of at most 10 ms (CONFIG_HZ=100), plus
        // scheduling.
        assert!(
            worst < STALL_MARGIN + Duration::from_millis(100),
            "bound {worst:?} ahead"
        );
    }
}
