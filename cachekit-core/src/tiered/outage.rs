//! What L2 failures log, so that an outage is a handful of lines rather
//! than one per call: a WARN when L2 becomes unavailable, a summary at most
//! once per interval while it stays so (skipped reads and writes alike), a
//! WARN when it answers again. Writes a full backend refuses, and errors
//! caused by one request, are rate-limited the same way.
//!
//! Every method takes the time as an argument (the callers pass
//! `Instant::now()`), so tests advance time instead of sleeping; the path
//! of a healthy call reads one atomic and no clock.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

/// How often a continuing outage (or a run of refused writes) is summarized.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// The first line of an outage quotes the error up to this many characters.
const MAX_QUOTED: usize = 200;

/// The L2 log's state: whether an outage is on, and the rate limits.
#[derive(Debug)]
pub(crate) struct L2Log {
    interval: Duration,
    /// Whether an outage is on, readable without the lock.
    down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    outage: Option<Outage>,
    full: Limited,
    refused: Limited,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    last_report: Instant,
    /// Since the last report.
    reads: u64,
    writes: u64,
    /// Since the outage began.
    total_reads: u64,
    total_writes: u64,
}

/// A rate limit: the first event logs, then at most one line per interval
/// with the count of the events in between.
#[derive(Debug, Default)]
struct Limited {
    last: Option<Instant>,
    unreported: u64,
}

impl Limited {
    /// Counts one event; `Some(n)` (events since the last line, this one
    /// included) when a line is due.
    fn event(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        self.unreported = self.unreported.saturating_add(1);
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= interval);
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

/// Whether an L2 operation reads (for the summary's counts).
pub(crate) fn is_read(op: &str) -> bool {
    matches!(op, "get" | "get_many" | "exists" | "ttl")
}

impl L2Log {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            down: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An operation failed because L2 is unhealthy, or was skipped because
    /// the circuit breaker is open.
    pub(crate) fn unavailable(&self, backend: &str, op: &str, err: &Error, now: Instant) {
        let read = is_read(op);
        let mut state = self.lock();
        let Some(outage) = &mut state.outage else {
            state.outage = Some(Outage {
                since: now,
                last_report: now,
                reads: 0,
                writes: 0,
                total_reads: u64::from(read),
                total_writes: u64::from(!read),
            });
            self.down.store(true, Relaxed);
            tracing::warn!(
                target: "cachekit",
                backend,
                op,
                kind = err.kind().as_str(),
                "L2 unavailable ({backend} {op}: {}); skipping it, a summary follows every {}s",
                quoted(err),
                self.interval.as_secs()
            );
            return;
        };
        if read {
            outage.reads += 1;
            outage.total_reads += 1;
        } else {
            outage.writes += 1;
            outage.total_writes += 1;
        }
        if now.saturating_duration_since(outage.last_report) < self.interval {
            return;
        }
        let (reads, writes) = (outage.reads, outage.writes);
        let over = now.saturating_duration_since(outage.last_report);
        outage.reads = 0;
        outage.writes = 0;
        outage.last_report = now;
        tracing::warn!(
            target: "cachekit",
            backend,
            reads,
            writes,
            "L2 unavailable: {reads} reads and {writes} writes skipped in the last {}s",
            over.as_secs()
        );
    }

    /// L2 answered (a success, or an error about the request only).
    #[inline]
    pub(crate) fn answered(&self, backend: &str, now: impl FnOnce() -> Instant) {
        if !self.down.load(Relaxed) {
            return;
        }
        self.recovered(backend, now());
    }

    #[cold]
    fn recovered(&self, backend: &str, now: Instant) {
        let mut state = self.lock();
        let Some(outage) = state.outage.take() else {
            return;
        };
        self.down.store(false, Relaxed);
        let (reads, writes) = (outage.total_reads, outage.total_writes);
        tracing::warn!(
            target: "cachekit",
            backend,
            reads,
            writes,
            "L2 available again after {:.1}s: {reads} reads and {writes} writes were skipped",
            now.saturating_duration_since(outage.since).as_secs_f64()
        );
    }

    /// The backend refused a write for lack of memory or space.
    pub(crate) fn full(&self, backend: &str, op: &str, now: Instant) {
        let Some(refused) = self.lock().full.event(now, self.interval) else {
            return;
        };
        tracing::warn!(
            target: "cachekit",
            backend,
            op,
            refused,
            "L2 full: {backend} refused {refused} write(s) for lack of memory (reads keep working); \
             raise `maxmemory` or set `maxmemory-policy` to an evicting policy such as allkeys-lru"
        );
    }

    /// The backend refused one request (a key of another type, a key an ACL
    /// denies, an argument it does not accept): not an outage.
    pub(crate) fn refused(&self, backend: &str, op: &str, err: &Error, now: Instant) {
        let Some(refused) = self.lock().refused.event(now, self.interval) else {
            return;
        };
        tracing::warn!(
            target: "cachekit",
            backend,
            op,
            refused,
            kind = err.kind().as_str(),
            "L2 request refused ({refused} since the last report; backend healthy): {}",
            quoted(err)
        );
    }
}

/// The error, cut at a character boundary near [`MAX_QUOTED`].
fn quoted(err: &Error) -> String {
    let text = err.to_string();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
