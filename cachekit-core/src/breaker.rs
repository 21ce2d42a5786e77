//! The circuit breaker in front of L2: stop calling a backend that keeps
//! failing, probe it now and then, resume when it answers again.
//!
//! ```text
//!            failure_threshold failures within `window`
//!   Closed ------------------------------------------------> Open
//!     ^                                                        |
//!     | success_threshold probe successes      recovery_timeout elapsed
//!     |                                                        v
//!     +------------------------ HalfOpen <---------------------+
//!                                   |  any probe failure -> Open
//! ```
//! While half-open at most `half_open_max_probes` calls are let through at
//! once; the rest are skipped as if the breaker were open.

use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::CacheMetrics;

/// Settings of the circuit breaker; every field is honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Failures within [`window`](Self::window) that open the breaker (default 5).
    pub failure_threshold: u32,
    /// The sliding window failures are counted in (default 10 s).
    pub window: Duration,
    /// How long the breaker stays open before probing (default 5 s).
    pub recovery_timeout: Duration,
    /// Concurrent probe calls allowed while half-open (default 1).
    pub half_open_max_probes: u32,
    /// Successful probes that close the breaker again (default 2).
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(10),
            recovery_timeout: Duration::from_secs(5),
            half_open_max_probes: 1,
            success_threshold: 2,
        }
    }
}

impl BreakerConfig {
    /// Sets [`failure_threshold`](Self::failure_threshold).
    #[must_use]
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n;
        self
    }
    /// Sets [`window`](Self::window).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
    /// Sets [`recovery_timeout`](Self::recovery_timeout).
    #[must_use]
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }
    /// Sets [`half_open_max_probes`](Self::half_open_max_probes).
    #[must_use]
    pub fn half_open_max_probes(mut self, n: u32) -> Self {
        self.half_open_max_probes = n;
        self
    }
    /// Sets [`success_threshold`](Self::success_threshold).
    #[must_use]
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = [
            ("breaker.failure_threshold", self.failure_threshold),
            ("breaker.half_open_max_probes", self.half_open_max_probes),
            ("breaker.success_threshold", self.success_threshold),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.window.is_zero() {
            return Err(Error::config("breaker.window", "must be greater than zero"));
        }
        Ok(())
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls are skipped.
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
    /// Whether `state` is `Closed`, readable without the lock: a call
    /// through a closed breaker (nearly every call) takes no lock and
    /// reads no clock. Written under the lock after every change.
    closed: AtomicBool,
    opened: AtomicU64,
    clock: Clock,
    /// Transitions, published (see [`crate::metrics`]).
    published: CacheMetrics,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Closed { .. } => "Closed",
            State::Open { .. } => "Open",
            State::HalfOpen { .. } => "HalfOpen",
        })
    }
}

/// Permission for one call; report its outcome, or drop it to report nothing.
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(config: BreakerConfig, clock: Clock) -> Self {
        Self {
            config,
            clock,
            state: Mutex::new(State::Closed {
                failures: VecDeque::new(),
            }),
            closed: AtomicBool::new(true),
            opened: AtomicU64::new(0),
            published: CacheMetrics::default(),
        }
    }

    /// Publishes its transitions through `metrics`.
    pub(crate) fn published(mut self, metrics: CacheMetrics) -> Self {
        self.published = metrics;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How often the breaker has opened.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Relaxed)
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state_at(self.clock.now())
    }

    pub(crate) fn state_at(&self, now: Instant) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make one call.
    ///
    /// # Errors
    /// [`ErrorKind::CircuitOpen`] when the call must be skipped.
    pub(crate) fn try_acquire(&self) -> Result<Permit<'_>> {
        if self.closed.load(Acquire) {
            return Ok(Permit {
                breaker: self,
                probe: false,
                settled: false,
            });
        }
        self.try_acquire_at(self.clock.now())
    }

    /// Mirrors `state` into `closed`; call before releasing the lock.
    fn publish(&self, state: &State) {
        self.closed
            .store(matches!(state, State::Closed { .. }), Release);
    }

    pub(crate) fn try_acquire_at(&self, now: Instant) -> Result<Permit<'_>> {
        let mut state = self.lock();
        if let State::Open { until } = *state {
            if now < until {
                return Err(open_error(until - now));
            }
            tracing::info!(target: "cachekit", "circuit breaker half-open: probing L2");
            self.published.breaker(BreakerState::HalfOpen);
            *state = State::HalfOpen {
                in_flight: 0,
                successes: 0,
            };
            self.publish(&state);
        }
        match &mut *state {
            State::Closed { .. } => Ok(Permit {
                breaker: self,
                probe: false,
                settled: false,
            }),
            State::HalfOpen { in_flight, .. } if *in_flight < self.config.half_open_max_probes => {
                *in_flight += 1;
                Ok(Permit {
                    breaker: self,
                    probe: true,
                    settled: false,
                })
            }
            _ => Err(open_error(Duration::ZERO)),
        }
    }

    fn open(&self, state: &mut State, now: Instant) {
        *state = State::Open {
            // `Duration::MAX` keeps it open for a century.
            until: crate::deadline::later(now, self.config.recovery_timeout),
        };
        self.publish(state);
        self.opened.fetch_add(1, Relaxed);
        self.published.breaker(BreakerState::Open);
        tracing::warn!(
            target: "cachekit",
            recovery_timeout = ?self.config.recovery_timeout,
            "circuit breaker open: skipping L2"
        );
    }
}

impl Permit<'_> {
    /// The call succeeded.
    pub(crate) fn success(mut self) {
        self.settled = true;
        if !self.probe {
            return;
        }
        let breaker = self.breaker;
        let mut state = breaker.lock();
        if let State::HalfOpen {
            in_flight,
            successes,
        } = &mut *state
        {
            *in_flight = in_flight.saturating_sub(1);
            *successes += 1;
            if *successes >= breaker.config.success_threshold {
                *state = State::Closed {
                    failures: VecDeque::new(),
                };
                breaker.publish(&state);
                tracing::info!(target: "cachekit", "circuit breaker closed: L2 is back");
                breaker.published.breaker(BreakerState::Closed);
            }
        }
    }

    /// The call failed in a way that says the backend is unhealthy.
    pub(crate) fn failure(self) {
        let now = self.breaker.clock.now();
        self.failure_at(now);
    }

    pub(crate) fn failure_at(mut self, now: Instant) {
        self.settled = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        match &mut *state {
            State::Closed { failures } => {
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= breaker.config.window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() >= breaker.config.failure_threshold as usize {
                    breaker.open(&mut state, now);
                }
            }
            State::HalfOpen { .. } => breaker.open(&mut state, now),
            State::Open { .. } => {}
        }
    }
}

impl Drop for Permit<'_> {
    /// An abandoned probe (cancelled call) frees its slot without a verdict.
    fn drop(&mut self) {
        if self.probe && !self.settled {
            if let State::HalfOpen { in_flight, .. } = &mut *self.breaker.lock() {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }
}

fn open_error(retry_in: Duration) -> Error {
    Error::new(
        ErrorKind::CircuitOpen,
        format!("L2 skipped: circuit breaker open (next probe in {retry_in:?})"),
    )
}

/// Whether an error says the backend is unhealthy (as opposed to a problem
/// with one value or request): see [`Error::is_backend_failure`].
pub(crate) fn counts_as_failure(err: &Error) -> bool {
    err.is_backend_failure()
}

#[cfg(test)]
mod tests;
