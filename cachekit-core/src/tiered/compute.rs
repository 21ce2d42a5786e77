//! Read-through: return the cached value or compute, store and return it.

use std::future::Future;
use std::sync::Arc;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::changes::Ticket;
use super::flight::{self, FlightState, LeaderGuard, Role, Shared};
use super::l2::Budget;
use super::stampede::Stampede;
use super::tiers::{Found, L2Read};
use super::{Cacheable, Policy, TieredCache};
use crate::error::Error;
use crate::keys::KeyBuilder;

/// Fail-closed callers pass how to turn a cache error into theirs; fail-open
/// callers pass `None`, and then no cache error ever surfaces.
pub(super) type Strict<E> = Option<fn(Error) -> E>;

impl TieredCache {
    /// L1, then the miss path. `policy` is already resolved against the
    /// defaults; `shared`, a copy of `key` the caller holds, if any; `keys`,
    /// the function's key builder, if the call has one (for its span).
    pub(crate) async fn read_through<T, E, F, Fut>(
        &self,
        key: &str,
        shared: Option<&Arc<str>>,
        keys: Option<&KeyBuilder>,
        policy: &Policy,
        strict: Strict<E>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let stale = match self.l1_get::<T>(key, policy) {
            Found::Fresh(v, _) => return Ok(v),
            Found::Stale(v) if policy.max_stale.is_some() && self.failed_lately(key) => {
                self.inner.counters.stale_served();
                if let Some(span) = call_span(&self.inner.name, keys) {
                    Answer::Stale.record_on(&span, None);
                }
                return Ok(v);
            }
            Found::Stale(v) => policy.max_stale.is_some().then_some(v),
            Found::Miss => None,
        };
        // Boxed so that the hit path's future stays small; the span starts
        // here, so that an L1 hit never makes one.
        match call_span(&self.inner.name, keys) {
            None => Box::pin(self.fill(key, shared, policy, stale, strict, compute)).await,
            Some(span) => {
                let fill = self.fill(key, shared, policy, stale, strict, compute);
                Box::pin(fill.instrument(span)).await
            }
        }
    }

    /// The miss path: single-flight, L2, stampede lock, compute, store.
    pub(super) async fn fill<T, E, F, Fut>(
        &self,
        key: &str,
        shared: Option<&Arc<str>>,
        policy: &Policy,
        stale: Option<T>,
        strict: Strict<E>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Taken before L2 is read: a change of the key from here on (in
        // this process or reported by another) voids what this call stores.
        let ticket = self.inner.changes.ticket(key);
        let mut stale = stale;
        let joined = self
            .join_flight(key, shared, policy, &mut stale, strict.is_some())
            .await;
        let leader = match joined {
            Joined::Answered(v) => return Ok(v),
            Joined::GoOn(leader) => leader,
        };
        let mut fallback = stale;
        // `read_through` looked for a recent failure before this call
        // joined the flight: a refresh that failed in between left its
        // failure behind and its flight gone.
        if fallback.is_some() && leader.is_some() && self.failed_lately(key) {
            if let Some(v) = fallback.take() {
                self.inner.counters.stale_served();
                Answer::Stale.record(None);
                finish_with(leader, &v, None);
                return Ok(v);
            }
        }
        // One L2 deadline for all of this call's L2 operations.
        let budget = self.inner.l2.as_ref().map(|l2| l2.budget());
        let budget = budget.as_ref();
        let mut l2_failed = false;
        let mut keep_l2 = false;
        if leader.is_some() {
            // The previous flight may have filled the cache after our L1 check.
            if let Found::Fresh(v, _) = self.l1_peek::<T>(key, policy) {
                self.inner.counters.coalesced();
                Answer::L1.record(None);
                finish_with(leader, &v, None);
                return Ok(v);
            }
            match self.l2_read::<T>(key, policy, budget).await {
                Ok(L2Read::Hit(hit)) if hit.fresh => {
                    Answer::L2.record(budget);
                    finish_with(leader, &hit.value, hit.shared);
                    return Ok(hit.value);
                }
                Ok(L2Read::Hit(hit)) => fallback = Some(hit.value),
                Ok(L2Read::Miss) => {}
                Ok(L2Read::Kept) => keep_l2 = true,
                Err(err) => {
                    if let Some(convert) = strict {
                        Answer::Miss.record(budget);
                        finish(leader, FlightState::Failed);
                        return Err(convert(err));
                    }
                    l2_failed = true;
                }
            }
        }
        // Boxed apart: an L2 hit then allocates only the (smaller) future
        // above, which stays within the allocator's per-thread cache.
        let leading = Leading {
            guard: leader,
            ticket,
            l2_failed,
            keep_l2,
        };
        Box::pin(self.compute_and_store(key, policy, budget, leading, fallback, strict, compute))
            .await
    }

    /// Joins the key's single flight: returns another caller's answer (or
    /// the stale value when that caller failed), or goes on as the
    /// flight's leader, or alone (`None`: the flight's value was of
    /// another type, or it failed and there is no stale value).
    async fn join_flight<T: Cacheable>(
        &self,
        key: &str,
        shared: Option<&Arc<str>>,
        policy: &Policy,
        stale: &mut Option<T>,
        strict: bool,
    ) -> Joined<'_, T> {
        loop {
            let rx = match self.inner.flights.join(key, shared) {
                Role::Leader(guard) => return Joined::GoOn(Some(guard)),
                Role::Follower(rx) => rx,
            };
            match flight::wait(rx).await {
                FlightState::Done(shared) => {
                    let Some(v) = shared.downcast_ref::<T>() else {
                        return Joined::GoOn(None);
                    };
                    self.inner.counters.coalesced();
                    Answer::Coalesced.record(None);
                    return Joined::Answered(v.clone());
                }
                FlightState::Failed => match stale.take() {
                    Some(v) => {
                        self.inner.counters.stale_served();
                        Answer::Stale.record(None);
                        return Joined::Answered(v);
                    }
                    // Fail-closed callers retry as leaders, so that they
                    // check L2 themselves before computing.
                    None if strict => {}
                    None => return Joined::GoOn(None),
                },
                FlightState::Abandoned | FlightState::Running => {
                    if let Found::Fresh(v, _) = self.l1_peek(key, policy) {
                        self.inner.counters.coalesced();
                        Answer::Coalesced.record(None);
                        return Joined::Answered(v);
                    }
                }
            }
        }
    }

    /// The rest of the miss path: stampede lock, compute, store, publish.
    #[allow(clippy::too_many_arguments)]
    async fn compute_and_store<T, E, F, Fut>(
        &self,
        key: &str,
        policy: &Policy,
        budget: Option<&Budget>,
        leading: Leading<'_>,
        mut fallback: Option<T>,
        strict: Strict<E>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Leading {
            guard: leader,
            ticket,
            l2_failed,
            keep_l2,
        } = leading;
        let mut lock_token = None;
        if leader.is_some() {
            match self.stampede::<T>(key, policy, budget).await {
                Stampede::Hit(v, shared) => {
                    Answer::L2.record(budget);
                    finish_with(leader, &v, shared);
                    return Ok(v);
                }
                Stampede::Compute(token) => lock_token = token,
            }
        }
        // After a failed read the mark would fail too (and count again).
        let mut computed = match l2_failed {
            false => self.begin_compute(key, ticket, budget).await,
            true => Computed {
                ticket,
                mark: None,
                write_l2: true,
            },
        };
        computed.write_l2 = !keep_l2;
        self.inner.counters.compute();
        let started = std::time::Instant::now();
        let result = match (policy.compute_timeout, fallback.take()) {
            (Some(limit), Some(stale_value)) => {
                match tokio::time::timeout(limit, compute()).await {
                    Ok(result) => {
                        fallback = Some(stale_value);
                        result
                    }
                    Err(_) => {
                        self.release(key, lock_token).await;
                        tracing::warn!(target: "cachekit", key, ?limit, "recomputation too slow; serving the stale value");
                        Answer::Stale.record(budget);
                        return Ok(self.serve_stale(key, leader, stale_value));
                    }
                }
            }
            (_, other) => {
                fallback = other;
                compute().await
            }
        };
        self.inner
            .counters
            .published
            .compute_latency(started.elapsed());
        match result {
            Ok(value) => {
                let (stored, shared) = self
                    .store(key, &value, policy, budget, Some(&computed))
                    .await;
                self.release(key, lock_token).await;
                Answer::Compute.record(budget);
                if let (Err(err), Some(convert)) = (stored, strict) {
                    self.invalidate_local(key);
                    finish(leader, FlightState::Failed);
                    return Err(convert(err));
                }
                finish_with(leader, &value, shared);
                Ok(value)
            }
            Err(err) => {
                self.release(key, lock_token).await;
                if let Some(stale_value) = fallback {
                    tracing::warn!(target: "cachekit", key, "recomputation failed; serving the stale value");
                    Answer::Stale.record(budget);
                    return Ok(self.serve_stale(key, leader, stale_value));
                }
                Answer::Compute.record(budget);
                finish(leader, FlightState::Failed);
                Err(err)
            }
        }
    }

    /// What a computation of `key` must know to not store over a change
    /// that happens while it runs: the local `ticket` (taken before L2 was
    /// read) and the L2's deletion mark, read now, before the computation
    /// reads its sources. Without a mark (none kept, or L2 failing) the
    /// value is stored plainly.
    pub(crate) async fn begin_compute(
        &self,
        key: &str,
        ticket: Ticket,
        budget: Option<&Budget>,
    ) -> Computed {
        let mark = match &self.inner.l2 {
            Some(l2) if l2.backend.keeps_deletion_marks() => l2
                .call("mark", &self.inner.counters.l2, budget, |b| b.deletion_mark(key))
                .await
                .unwrap_or_else(|err| {
                    tracing::debug!(target: "cachekit", key, error = %err, "no deletion mark; the value will be stored unchecked");
                    None
                }),
            _ => None,
        };
        Computed {
            ticket,
            mark,
            write_l2: true,
        }
    }

    /// Whether a recomputation of `key` failed within the stale retry
    /// interval. Out of line: only a caller holding a stale value asks.
    #[cold]
    #[inline(never)]
    pub(super) fn failed_lately(&self, key: &str) -> bool {
        self.inner.recent_failures.contains_key(key)
    }

    /// Returns a stale value, shares it with waiters, and holds off
    /// recomputation of the key for a while so the source is not hammered.
    fn serve_stale<T: Cacheable>(&self, key: &str, leader: Option<LeaderGuard<'_>>, value: T) -> T {
        self.inner.recent_failures.insert(key.to_owned(), ());
        self.inner.counters.stale_served();
        finish_with(leader, &value, None);
        value
    }
}

/// How a call joined its key's single flight.
enum Joined<'a, T> {
    /// Another caller's flight answered (or, as it failed, the stale value).
    Answered(T),
    /// This call goes on: leading the flight, or on its own (`None`).
    GoOn(Option<LeaderGuard<'a>>),
}

/// What a computation saw before it began, checked when its value is stored.
pub(crate) struct Computed {
    pub(crate) ticket: Ticket,
    /// The L2's [`deletion_mark`](crate::Backend::deletion_mark).
    pub(crate) mark: Option<bytes::Bytes>,
    /// `false` when L2 holds a value this cache cannot read but must not
    /// replace (another language's, or encrypted under another key): the
    /// value then goes to L1 only.
    pub(crate) write_l2: bool,
}

/// The flight this call leads (if any) and what it saw when it began.
struct Leading<'a> {
    guard: Option<LeaderGuard<'a>>,
    ticket: Ticket,
    /// The L2 read failed (deadline, breaker, connection).
    l2_failed: bool,
    /// L2 holds a value to leave in place (see [`Computed::write_l2`]).
    keep_l2: bool,
}

fn finish(leader: Option<LeaderGuard<'_>>, state: FlightState) {
    if let Some(guard) = leader {
        guard.finish(state);
    }
}

/// Publishes `value` to the waiters, if any: `shared` when L1 already holds
/// a copy, else a copy made only when someone is waiting.
fn finish_with<T: Cacheable>(leader: Option<LeaderGuard<'_>>, value: &T, shared: Option<Shared>) {
    if let Some(guard) = leader {
        guard.finish_with(|| shared.unwrap_or_else(|| Arc::new(value.clone())));
    }
}

/// The name of the span of a cache call that L1 did not answer.
pub(crate) const CALL_SPAN: &str = "cachekit.get";

/// The DEBUG span of a call that L1 did not answer (see
/// `docs/observability.md`, "Tracing spans"); `None` when nobody listens, which costs
/// one callsite check. No key, argument or value goes into it.
pub(super) fn call_span(cache: &str, keys: Option<&KeyBuilder>) -> Option<Span> {
    let span = tracing::debug_span!(
        target: "cachekit",
        CALL_SPAN,
        namespace = keys.map(KeyBuilder::namespace),
        function = keys.map(KeyBuilder::operation),
        cache,
        tier = Empty,
        hit = Empty,
        l2_ms = Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// How a call was answered, for its span.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// L1, filled by another call after this call's own lookup.
    L1,
    L2,
    /// The computation of a concurrent call of the same key.
    Coalesced,
    /// A stale value, as the computation failed, was slow or failed lately.
    Stale,
    /// This call's computation (its value or its error).
    Compute,
    /// No value: a fail-closed call's L2 error, or `get`'s miss.
    Miss,
}

impl Answer {
    /// Records the answer (and the time spent on L2, if any) on the
    /// current span when it is this call's span. For the miss path only: it
    /// asks the subscriber for the current span.
    pub(super) fn record(self, budget: Option<&Budget>) {
        if !tracing::enabled!(target: "cachekit", tracing::Level::DEBUG) {
            return;
        }
        let span = Span::current();
        if span.metadata().is_some_and(|meta| meta.name() == CALL_SPAN) {
            self.record_on(&span, budget);
        }
    }

    /// Records the answer on the call's `span`.
    pub(super) fn record_on(self, span: &Span, budget: Option<&Budget>) {
        let tier = match self {
            Answer::L1 => Some("l1"),
            Answer::L2 => Some("l2"),
            Answer::Coalesced => Some("coalesced"),
            Answer::Stale => Some("stale"),
            Answer::Compute => Some("compute"),
            Answer::Miss => None,
        };
        span.record("tier", tier);
        span.record("hit", !matches!(self, Answer::Compute | Answer::Miss));
        if let Some(ms) = budget.and_then(Budget::spent_ms) {
            span.record("l2_ms", ms);
        }
    }
}
