//! The handles, registered with whatever recorder is installed.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};

use super::publisher::{Publish, Published, Total};
use super::{Event, Fault};
use crate::backend::Backend;
use crate::breaker::BreakerState;

/// One tier's handles. Hits are published in batches from the tier's own
/// count (see [`Total`]).
#[derive(Debug)]
pub(crate) struct TierMetrics {
    /// Kept for what it does while alive: it publishes the hits.
    _hits: Option<Total>,
    misses: Counter,
    sets: Counter,
    faults: [Counter; 7],
    latency: OpLatency,
}

impl Default for TierMetrics {
    fn default() -> Self {
        Self {
            _hits: None,
            misses: Counter::noop(),
            sets: Counter::noop(),
            faults: std::array::from_fn(|_| Counter::noop()),
            latency: OpLatency::default(),
        }
    }
}

impl TierMetrics {
    /// `hits` reads the tier's running count of hits.
    pub(crate) fn new(
        cache: &str,
        tier: &'static str,
        hits: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        let labels = |result: &'static str| {
            [
                Label::new("cache", cache.to_owned()),
                Label::new("tier", tier),
                Label::new("result", result),
            ]
        };
        Self {
            _hits: Some(Total::new(
                vec![counter!("cachekit_requests_total", labels("hit").to_vec())],
                hits,
            )),
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
/// answered from L1. Hits are published in batches from the function's own
/// count (see the `publisher` module).
#[derive(Debug)]
pub struct FnMetrics {
    /// Kept for what it does while alive: it publishes the hits.
    _hits: Option<Total>,
    miss: Counter,
    uncached: Counter,
    py_miss: Counter,
    seconds: Histogram,
    py_seconds: Histogram,
}

impl Default for FnMetrics {
    fn default() -> Self {
        Self {
            _hits: None,
            miss: Counter::noop(),
            uncached: Counter::noop(),
            py_miss: Counter::noop(),
            seconds: Histogram::noop(),
            py_seconds: Histogram::noop(),
        }
    }
}

impl FnMetrics {
    /// Handles for the function `function` of `namespace`, whose values
    /// are in `serializer` (cachekit-py's label: `default` for interop
    /// values, which are its default serializer's, `envelope` otherwise);
    /// `hits` reads the function's running count of hits.
    pub fn new(
        namespace: &str,
        function: &str,
        serializer: &'static str,
        hits: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        let ours = |result: &'static str| counter!("cachekit_function_calls_total", "namespace" => namespace.to_owned(), "function" => function.to_owned(), "result" => result);
        let py = |status: &'static str| counter!("redis_cache_operations_total", "operation" => "get", "status" => status, "serializer" => serializer, "namespace" => namespace.to_owned());
        Self {
            _hits: Some(Total::new(vec![ours("hit"), py("hit")], hits)),
            miss: ours("miss"),
            uncached: ours("uncached"),
            py_miss: py("miss"),
            seconds: histogram!("cachekit_function_duration_seconds", "namespace" => namespace.to_owned(), "function" => function.to_owned()),
            py_seconds: histogram!("redis_cache_operation_duration_seconds", "operation" => "get", "namespace" => namespace.to_owned(), "serializer" => serializer),
        }
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

/// Gauges of an L2's connection pool, sampled once a second for as long
/// as this lives (or a clone: caches made by `with_l1` share it); nothing
/// for a backend without a pool.
#[derive(Clone)]
pub(crate) struct PoolMetrics(#[allow(dead_code)] Option<std::sync::Arc<Published<PoolGauges>>>);

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMetrics")
            .field("sampled", &self.0.is_some())
            .finish()
    }
}

pub(crate) struct PoolGauges {
    backend: std::sync::Arc<dyn Backend>,
    in_use: Gauge,
    idle: Gauge,
    max_connections: Gauge,
    in_flight: Gauge,
    max_in_flight: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new(cache: &str, backend: Option<&std::sync::Arc<dyn Backend>>) -> Self {
        let Some(backend) = backend.filter(|b| b.pool().is_some()) else {
            return Self(None);
        };
        let name = || cache.to_owned();
        let gauges = PoolGauges {
            backend: backend.clone(),
            in_use: gauge!("cachekit_l2_connections", "cache" => name(), "state" => "in_use"),
            idle: gauge!("cachekit_l2_connections", "cache" => name(), "state" => "idle"),
            max_connections: gauge!("cachekit_l2_connections_max", "cache" => name()),
            in_flight: gauge!("cachekit_l2_in_flight", "cache" => name()),
            max_in_flight: gauge!("cachekit_l2_in_flight_max", "cache" => name()),
        };
        gauges.publish();
        Self(Some(std::sync::Arc::new(Published::new(gauges))))
    }
}

impl Publish for PoolGauges {
    fn publish(&self) {
        let Some(pool) = self.backend.pool() else {
            return;
        };
        self.in_use.set(f64::from(pool.in_use()));
        self.idle.set(f64::from(pool.idle));
        self.max_connections.set(f64::from(pool.max_size));
        self.in_flight.set(f64::from(pool.in_flight));
        self.max_in_flight.set(f64::from(pool.max_in_flight));
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
