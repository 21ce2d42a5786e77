//! Every L2 call goes through here: admission (circuit breaker, in-flight
//! bound), a deadline, and the bookkeeping of the outcome.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{Instrument, Span};

use super::outage::{L2Log, SUMMARY_INTERVAL};
use super::stats::TierCounters;
use crate::backend::Backend;
use crate::breaker::{counts_as_failure, BreakerState, CircuitBreaker};
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};

mod admission;

/// The name of the span of one L2 operation.
pub(crate) const L2_SPAN: &str = "cachekit.l2";

use admission::{InFlight, Refused, Slot};

/// How long one user call may still wait on L2, shared by all the L2
/// operations it makes (read, lock, write): a call never waits on a hung
/// backend for longer than one deadline in total.
#[derive(Debug)]
pub(crate) struct Budget {
    left_nanos: AtomicU64,
    /// What the call spent on L2 so far, for its span's `l2_ms`.
    spent_nanos: AtomicU64,
}

impl Budget {
    fn left(&self) -> Duration {
        Duration::from_nanos(self.left_nanos.load(Relaxed))
    }

    fn spend(&self, spent: Duration) {
        let spent = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .left_nanos
            .fetch_update(Relaxed, Relaxed, |left| Some(left.saturating_sub(spent)));
        self.spent_nanos.fetch_add(spent, Relaxed);
    }

    /// The time the call spent on L2 (running or waiting for a place), in
    /// milliseconds; `None` while no operation reached L2.
    pub(crate) fn spent_ms(&self) -> Option<f64> {
        let nanos = self.spent_nanos.load(Relaxed);
        (nanos > 0).then(|| Duration::from_nanos(nanos).as_secs_f64() * 1e3)
    }
}

pub(crate) struct GuardedL2 {
    pub(crate) backend: Arc<dyn Backend>,
    /// What the backend says of itself; asked once.
    enforces_deadline: bool,
    deadline: Option<Duration>,
    breaker: Option<CircuitBreaker>,
    in_flight: Option<InFlight>,
    log: L2Log,
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
        max_queued: usize,
    ) -> Self {
        Self {
            enforces_deadline: backend.enforces_deadline(),
            backend,
            deadline,
            breaker,
            in_flight: max_in_flight.map(|max| InFlight::new(max, max_queued)),
            log: L2Log::new(SUMMARY_INTERVAL),
        }
    }

    /// A budget of one deadline for the L2 operations of one call
    /// (unlimited when there is no deadline), which also sums their time.
    pub(crate) fn budget(&self) -> Budget {
        let left = self.deadline.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        Budget {
            left_nanos: AtomicU64::new(left),
            spent_nanos: AtomicU64::new(0),
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

    /// The deadline of one call's L2 operations, if any.
    pub(crate) fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    pub(crate) fn breaker_opened(&self) -> u64 {
        self.breaker
            .as_ref()
            .map_or(0, CircuitBreaker::times_opened)
    }

    /// Runs one operation of the backend under the guards, within `budget`
    /// when given (else within one deadline). Every failure, including a
    /// skipped call, comes back as an `Err` whose kind says why.
    pub(crate) async fn call<'s, R, F, Fut>(
        &'s self,
        op: &'static str,
        counters: &TierCounters,
        budget: Option<&Budget>,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce(&'s dyn Backend) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let enforced = self.enforces_deadline;
        // Built in each arm: a future held across both would stay in this
        // one's state even when tracing is off.
        match self.span(op) {
            None => {
                self.guarded(op, counters, budget, enforced, || f(self.backend.as_ref()))
                    .await
            }
            Some(span) => {
                let call =
                    self.guarded(op, counters, budget, enforced, || f(self.backend.as_ref()));
                traced(span, call).await
            }
        }
    }

    /// [`call`](Self::call) for an operation on something other than the
    /// backend (the stampede lock): it always runs under a timer.
    pub(crate) async fn call_other<R, F, Fut>(
        &self,
        op: &'static str,
        counters: &TierCounters,
        budget: Option<&Budget>,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        match self.span(op) {
            None => self.guarded(op, counters, budget, false, f).await,
            Some(span) => traced(span, self.guarded(op, counters, budget, false, f)).await,
        }
    }

    /// The TRACE span of one L2 operation (see `docs/observability.md`, "Tracing spans");
    /// `None` when nobody listens, which costs one callsite check.
    fn span(&self, op: &'static str) -> Option<Span> {
        let span = tracing::trace_span!(
            target: "cachekit",
            L2_SPAN,
            op,
            backend = self.name(),
            outcome = tracing::field::Empty,
            ms = tracing::field::Empty,
        );
        (!span.is_disabled()).then_some(span)
    }

    /// `enforced`: the operation ends by [`deadline::current`] itself, so it
    /// runs [`deadline::within`] the deadline, with no timer here.
    async fn guarded<R, F, Fut>(
        &self,
        op: &'static str,
        counters: &TierCounters,
        budget: Option<&Budget>,
        enforced: bool,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let deadline = self.call_deadline(op, counters, budget)?;
        let permit = self.permit(op, counters)?;
        let mut slot = None;
        let mut deadline = deadline;
        let mut queued = false;
        if let Some(in_flight) = &self.in_flight {
            slot = in_flight.try_enter();
            if slot.is_none() {
                queued = true;
                // Boxed: the wait is the rare path, and its timer would
                // grow every L2 call's future.
                match Box::pin(self.wait_for_place(in_flight, op, budget, deadline)).await {
                    Ok((admitted, left)) => {
                        slot = Some(admitted);
                        deadline = left;
                    }
                    Err(err) => {
                        counters.skipped();
                        return Err(err);
                    }
                }
            }
        }
        let _slot = slot;
        let started = Instant::now();
        let result = self
            .timed(op, counters, deadline, enforced, started, f())
            .await;
        let took = started.elapsed();
        counters.latency(op, took);
        if let Some(budget) = budget {
            budget.spend(took);
        }
        self.report(op, counters, &result, queued, permit);
        result
    }

    /// This operation's deadline: the configured one, or what the call's
    /// budget has left of it; a spent budget skips the operation.
    fn call_deadline(
        &self,
        op: &str,
        counters: &TierCounters,
        budget: Option<&Budget>,
    ) -> Result<Option<Duration>> {
        let (Some(deadline), Some(budget)) = (self.deadline, budget) else {
            return Ok(self.deadline);
        };
        let left = budget.left();
        if left.is_zero() {
            counters.skipped();
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("L2 {op} skipped: this call already spent its {deadline:?} L2 deadline"),
            ));
        }
        Ok(Some(deadline.min(left)))
    }

    /// The breaker's permission, if there is a breaker; an open one skips
    /// the operation.
    fn permit(
        &self,
        op: &'static str,
        counters: &TierCounters,
    ) -> Result<Option<crate::breaker::Permit<'_>>> {
        let Some(breaker) = &self.breaker else {
            return Ok(None);
        };
        breaker.try_acquire().map(Some).inspect_err(|err| {
            counters.skipped();
            self.log.unavailable(self.name(), op, err, Instant::now());
        })
    }

    /// Runs `fut` within `deadline`, if any.
    async fn timed<R>(
        &self,
        op: &'static str,
        counters: &TierCounters,
        deadline: Option<Duration>,
        enforced: bool,
        started: Instant,
        fut: impl Future<Output = Result<R>>,
    ) -> Result<R> {
        match deadline {
            Some(limit) if enforced => {
                match deadline::within(deadline::later(started, limit), fut).await {
                    // The backend's own, shorter, timeout is its error to report.
                    Err(err) if err.kind() == ErrorKind::Timeout && started.elapsed() >= limit => {
                        Err(self.timed_out(op, limit, counters))
                    }
                    result => result,
                }
            }
            // Boxed: inline, the timer would add a quarter to the future of
            // every L2 call, and the backends that need it are not the ones
            // a hot path calls.
            Some(limit) => match Box::pin(tokio::time::timeout(limit, fut)).await {
                Ok(result) => result,
                Err(_) => Err(self.timed_out(op, limit, counters)),
            },
            None => fut.await,
        }
    }

    /// Tells the breaker and the outage log how the operation went.
    fn report<R>(
        &self,
        op: &str,
        counters: &TierCounters,
        result: &Result<R>,
        queued: bool,
        permit: Option<crate::breaker::Permit<'_>>,
    ) {
        match result {
            // A call that waited in line and then ran out of time says this
            // process sends more than the backend answers in a deadline,
            // not that the backend is down: no verdict for the breaker.
            Err(err) if queued && err.kind() == ErrorKind::Timeout => {
                counters.error();
                drop(permit);
            }
            Err(err) => self.failed(op, err, counters, permit),
            Ok(_) => {
                if let Some(permit) = permit {
                    permit.success();
                }
                self.log.answered(self.name(), Instant::now);
            }
        }
    }

    /// Counts and logs a failed call: only failures of the backend count
    /// towards the breaker and make an outage; a full backend and an error
    /// caused by the request mean the backend answered.
    fn failed(
        &self,
        op: &str,
        err: &Error,
        counters: &TierCounters,
        permit: Option<crate::breaker::Permit<'_>>,
    ) {
        counters.error();
        let now = Instant::now();
        if counts_as_failure(err) {
            if let Some(permit) = permit {
                permit.failure();
            }
            self.log.unavailable(self.name(), op, err, now);
            return;
        }
        if let Some(permit) = permit {
            permit.success();
        }
        self.log.answered(self.name(), || now);
        if err.kind() == ErrorKind::StorageFull {
            counters.full();
            self.log.full(self.name(), op, now);
        } else {
            self.log.refused(self.name(), op, err, now);
        }
    }

    /// Waits in line for a place under `max_l2_in_flight`, within
    /// `deadline`; returns the place and what is left of the deadline.
    #[cold]
    async fn wait_for_place<'a>(
        &self,
        in_flight: &'a InFlight,
        op: &'static str,
        budget: Option<&Budget>,
        deadline: Option<Duration>,
    ) -> Result<(Slot<'a>, Option<Duration>)> {
        let from = Instant::now();
        let admitted = in_flight.enter(deadline).await;
        let waited = from.elapsed();
        if let Some(budget) = budget {
            budget.spend(waited);
        }
        let max = in_flight.max();
        let late = |limit: Duration| {
            Error::new(
                ErrorKind::Overloaded,
                format!(
                    "L2 {op} skipped: none of the {max} places for L2 operations in flight (max_l2_in_flight) came free within its {limit:?} deadline; raise max_l2_in_flight if the backend keeps up, else it is overloaded"
                ),
            )
        };
        match (admitted, deadline) {
            (Ok(slot), None) => Ok((slot, None)),
            (Ok(slot), Some(limit)) => match limit.checked_sub(waited) {
                Some(left) if !left.is_zero() => Ok((slot, Some(left))),
                // The place goes to the next in line.
                _ => Err(late(limit)),
            },
            (Err(Refused::Deadline), limit) => Err(late(limit.unwrap_or(waited))),
            (Err(Refused::QueueFull), _) => Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "L2 {op} skipped: {max} L2 operations in flight (max_l2_in_flight) and {} calls already waiting for a place (max_l2_queued); raise them if the backend keeps up, else it is overloaded",
                    in_flight.max_queued()
                ),
            )),
        }
    }

    fn timed_out(&self, op: &str, limit: Duration, counters: &TierCounters) -> Error {
        counters.timeout();
        Error::new(
            ErrorKind::Timeout,
            format!(
                "L2 {op} on {} exceeded its {limit:?} deadline",
                self.backend.name()
            ),
        )
    }
}

/// Runs one L2 operation inside `span` (so that the breaker's and the
/// outage log's events land in it) and records how it went. Boxed: only
/// traced calls pay for the larger future.
async fn traced<R>(span: Span, call: impl Future<Output = Result<R>>) -> Result<R> {
    let started = Instant::now();
    let mut call = Box::pin(call.instrument(span));
    let result = (&mut call).await;
    let span = call.span();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => err.kind().as_str(),
    };
    span.record("outcome", outcome);
    span.record("ms", started.elapsed().as_secs_f64() * 1e3);
    result
}
