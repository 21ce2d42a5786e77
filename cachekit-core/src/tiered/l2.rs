//! Every L2 call goes through here: admission (circuit breaker, in-flight
//! bound), a deadline, and the bookkeeping of the outcome.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::stats::TierCounters;
use crate::backend::Backend;
use crate::breaker::{counts_as_failure, BreakerState, CircuitBreaker};
use crate::error::{Error, ErrorKind, Result};

pub(crate) struct GuardedL2 {
    pub(crate) backend: Arc<dyn Backend>,
    deadline: Option<Duration>,
    breaker: Option<CircuitBreaker>,
    in_flight: Option<(Semaphore, usize)>,
}

impl std::fmt::Debug for GuardedL2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("backend", &self.backend)
            .field("deadline", &self.deadline)
            .field("breaker", &self.breaker_state())
            .finish()
    }
}

impl GuardedL2 {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        deadline: Option<Duration>,
        breaker: Option<CircuitBreaker>,
        max_in_flight: Option<usize>,
    ) -> Self {
        Self {
            backend,
            deadline,
            breaker,
            in_flight: max_in_flight.map(|n| (Semaphore::new(n), n)),
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.backend.name()
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker
            .as_ref()
            .map_or(BreakerState::Closed, CircuitBreaker::state)
    }

    pub(crate) fn breaker_opened(&self) -> u64 {
        self.breaker
            .as_ref()
            .map_or(0, CircuitBreaker::times_opened)
    }

    /// Runs one L2 operation under the guards. Every failure, including a
    /// skipped call, comes back as an `Err` whose kind says why.
    pub(crate) async fn call<'s, R, F, Fut>(
        &'s self,
        op: &'static str,
        counters: &TierCounters,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce(&'s dyn Backend) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let permit = match &self.breaker {
            Some(breaker) => match breaker.try_acquire() {
                Ok(permit) => Some(permit),
                Err(err) => {
                    counters.skipped();
                    return Err(err);
                }
            },
            None => None,
        };
        let _slot = match &self.in_flight {
            Some((semaphore, max)) => match semaphore.try_acquire() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    counters.skipped();
                    return Err(Error::new(
                        ErrorKind::Overloaded,
                        format!("L2 {op} skipped: {max} L2 operations already in flight (max_l2_in_flight)"),
                    ));
                }
            },
            None => None,
        };
        let fut = f(self.backend.as_ref());
        let result = match self.deadline {
            Some(deadline) => match tokio::time::timeout(deadline, fut).await {
                Ok(result) => result,
                Err(_) => {
                    counters.timeout();
                    Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "L2 {op} on {} exceeded its {deadline:?} deadline",
                            self.backend.name()
                        ),
                    ))
                }
            },
            None => fut.await,
        };
        match &result {
            Err(err) => {
                counters.error();
                if let Some(permit) = permit {
                    if counts_as_failure(err) {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
            }
            Ok(_) => {
                if let Some(permit) = permit {
                    permit.success();
                }
            }
        }
        result
    }
}
