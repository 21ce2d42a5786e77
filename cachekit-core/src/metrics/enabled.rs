//! The handles, registered with whatever recorder is installed.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};

use super::{Event, Fault};
use crate::breaker::BreakerState;

/// One tier's handles.
#[derive(Debug, Clone)]
pub(crate) struct TierMetrics {
    hits: Counter,
    misses: Counter,
    sets: Counter,
    faults: [Counter; 7],
    latency: OpLatency,
}

impl Default for TierMetrics {
    fn default() -> Self {
        Self {
            hits: Counter::noop(),
            misses: Counter::noop(),
            sets: Counter::noop(),
            faults: std::array::from_fn(|_| Counter::noop()),
            latency: OpLatency::default(),
        }
    }
}

impl TierMetrics {
    pub(crate) fn new(cache: &str, tier: &'static str) -> Self {
        let labels = |result: &'static str| {
            [
                Label::new("cache", cache.to_owned()),
                Label::new("tier", tier),
                Label::new("result", result),
            ]
        };
        Self {
            hits: counter!("cachekit_requests_total", labels("hit").to_vec()),
            misses: counter!("cachekit_requests_total", labels("miss").to_vec()),
            sets: counter!("cachekit_sets_total", "cache" => cache.to_owned(), "tier" => tier),
            faults: Fault::ALL.map(|fault| {
                counter!("cachekit_errors_total", "cache" => cache.to_owned(), "tier" => tier, "kind" => fault.label())
            }),
            latency: OpLatency::new(cache, tier),
        }
    }

    /// Records how long one operation `op` of this tier took
    /// (`cachekit_l2_duration_seconds`; only L2 operations are timed).
    pub(crate) fn latency(&self, op: &'static str, took: Duration) {
        let by_op = &self.latency.by_op;
        let found = by_op.read().ok().and_then(|ops| {
            ops.iter()
                .find(|(name, _)| *name == op)
                .map(|(_, h)| h.clone())
        });
        let histogram = found.unwrap_or_else(|| {
            let made = OpLatency::register(&self.latency.cache, op);
            if let Ok(mut ops) = by_op.write() {
                ops.push((op, made.clone()));
            }
            made
        });
        histogram.record(took.as_secs_f64());
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.increment(1);
    }
    #[inline]
    pub(crate) fn miss(&self) {
        self.misses.increment(1);
    }
    pub(crate) fn set(&self) {
        self.sets.increment(1);
    }
    pub(crate) fn fault(&self, fault: Fault) {
        self.faults[fault as usize].increment(1);
    }
}

/// A cache's own handles: events, breaker, latencies, the L1's size.
#[derive(Debug, Clone)]
pub(crate) struct CacheMetrics {
    events: [Counter; 7],
    breaker_transitions: [Counter; 3],
    breaker_state: Gauge,
    compute_seconds: Histogram,
    l1_entries: Gauge,
    l1_bytes: Gauge,
}

/// `cachekit_l2_duration_seconds` per operation: the L2's operations are
/// registered with the cache, any other name on first use.
#[derive(Debug, Clone, Default)]
struct OpLatency {
    cache: String,
    by_op: std::sync::Arc<std::sync::RwLock<Vec<(&'static str, Histogram)>>>,
}

/// The operations the tiered cache runs on its L2.
const L2_OPERATIONS: [&str; 7] = [
    "get",
    "set",
    "delete",
    "delete_prefix",
    "mark",
    "lock",
    "unlock",
];

impl OpLatency {
    fn new(cache: &str, tier: &'static str) -> Self {
        let ops = match tier {
            "l2" => L2_OPERATIONS
                .iter()
                .map(|op| (*op, Self::register(cache, op)))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            cache: cache.to_owned(),
            by_op: std::sync::Arc::new(std::sync::RwLock::new(ops)),
        }
    }

    fn register(cache: &str, op: &'static str) -> Histogram {
        histogram!("cachekit_l2_duration_seconds", "cache" => cache.to_owned(), "operation" => op)
    }
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self {
            events: std::array::from_fn(|_| Counter::noop()),
            breaker_transitions: std::array::from_fn(|_| Counter::noop()),
            breaker_state: Gauge::noop(),
            compute_seconds: Histogram::noop(),
            l1_entries: Gauge::noop(),
            l1_bytes: Gauge::noop(),
        }
    }
}

impl CacheMetrics {
    pub(crate) fn new(cache: &str) -> Self {
        let name = || cache.to_owned();
        Self {
            events: Event::ALL.map(|event| counter!(event.name(), "cache" => name())),
            breaker_transitions: [BreakerState::Closed, BreakerState::HalfOpen, BreakerState::Open]
                .map(|to| counter!("cachekit_breaker_transitions_total", "cache" => name(), "to" => state_label(to))),
            breaker_state: gauge!("cachekit_breaker_state", "cache" => name()),
            compute_seconds: histogram!("cachekit_compute_duration_seconds", "cache" => name()),
            l1_entries: gauge!("cachekit_l1_entries", "cache" => name()),
            l1_bytes: gauge!("cachekit_l1_bytes", "cache" => name()),
        }
    }

    pub(crate) fn event(&self, event: Event) {
        self.events[event as usize].increment(1);
    }

    pub(crate) fn breaker(&self, to: BreakerState) {
        let index = match to {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.breaker_transitions[index].increment(1);
        self.breaker_state.set(index as f64);
    }

    pub(crate) fn compute_latency(&self, took: Duration) {
        self.compute_seconds.record(took.as_secs_f64());
    }

    pub(crate) fn l1_size(&self, entries: u64, bytes: u64) {
        self.l1_entries.set(entries as f64);
        self.l1_bytes.set(bytes as f64);
    }
}

fn state_label(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half_open",
        BreakerState::Open => "open",
    }
}

/// One `#[cached]` function's handles: its calls by result, in cachekit's
/// names (`cachekit_function_calls_total`) and in cachekit-py's
/// (`redis_cache_operations_total`), and the time of calls that were not
/// answered from L1.
#[derive(Debug, Clone)]
pub struct FnMetrics {
    hit: Counter,
    miss: Counter,
    uncached: Counter,
    py_hit: Counter,
    py_miss: Counter,
    seconds: Histogram,
    py_seconds: Histogram,
}

impl Default for FnMetrics {
    fn default() -> Self {
        Self {
            hit: Counter::noop(),
            miss: Counter::noop(),
            uncached: Counter::noop(),
            py_hit: Counter::noop(),
            py_miss: Counter::noop(),
            seconds: Histogram::noop(),
            py_seconds: Histogram::noop(),
        }
    }
}

impl FnMetrics {
    /// Handles for the function `function` of `namespace`, whose values
    /// are in `serializer` (cachekit-py's label: `default` for interop
    /// values, which are its default serializer's, `envelope` otherwise).
    pub fn new(namespace: &str, function: &str, serializer: &'static str) -> Self {
        let ours = |result: &'static str| counter!("cachekit_function_calls_total", "namespace" => namespace.to_owned(), "function" => function.to_owned(), "result" => result);
        let py = |status: &'static str| counter!("redis_cache_operations_total", "operation" => "get", "status" => status, "serializer" => serializer, "namespace" => namespace.to_owned());
        Self {
            hit: ours("hit"),
            miss: ours("miss"),
            uncached: ours("uncached"),
            py_hit: py("hit"),
            py_miss: py("miss"),
            seconds: histogram!("cachekit_function_duration_seconds", "namespace" => namespace.to_owned(), "function" => function.to_owned()),
            py_seconds: histogram!("redis_cache_operation_duration_seconds", "operation" => "get", "namespace" => namespace.to_owned(), "serializer" => serializer),
        }
    }

    /// A call answered without running the body.
    #[inline]
    pub fn hit(&self) {
        self.hit.increment(1);
        self.py_hit.increment(1);
    }

    /// A call that ran the body to fill the cache.
    pub fn miss(&self) {
        self.miss.increment(1);
        self.py_miss.increment(1);
    }

    /// A call that ran the body without the cache.
    pub fn uncached(&self) {
        self.uncached.increment(1);
    }

    /// How long a call not answered from L1 took, body included.
    pub fn duration(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        self.seconds.record(seconds);
        self.py_seconds.record(seconds);
    }
}

/// An invalidation channel's handles, labelled by the channel's name.
#[derive(Debug, Clone)]
pub(crate) struct ChannelMetrics {
    keys: Counter,
    prefixes: Counter,
    flushes: Counter,
    losses: Counter,
    up: Gauge,
}

impl ChannelMetrics {
    pub(crate) fn new(channel: &str) -> Self {
        let name = || channel.to_owned();
        Self {
            keys: counter!("cachekit_l1_invalidations_total", "channel" => name(), "kind" => "key"),
            prefixes: counter!("cachekit_l1_invalidations_total", "channel" => name(), "kind" => "prefix"),
            flushes: counter!("cachekit_l1_flushes_total", "channel" => name()),
            losses: counter!("cachekit_invalidation_channel_losses_total", "channel" => name()),
            up: gauge!("cachekit_invalidation_channel_up", "channel" => name()),
        }
    }
    pub(crate) fn key(&self) {
        self.keys.increment(1);
    }
    pub(crate) fn prefix(&self) {
        self.prefixes.increment(1);
    }
    pub(crate) fn flush(&self) {
        self.flushes.increment(1);
    }
    pub(crate) fn lost(&self) {
        self.losses.increment(1);
    }
    pub(crate) fn up(&self, up: bool) {
        self.up.set(if up { 1.0 } else { 0.0 });
    }
}
