//! Without the `metrics` feature: the same calls, doing nothing.

use std::time::Duration;

use super::{Event, Fault};
use crate::breaker::BreakerState;

#[derive(Debug, Default)]
pub(crate) struct TierMetrics;

impl TierMetrics {
    pub(crate) fn new(
        _cache: &str,
        _tier: &'static str,
        _hits: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        Self
    }
    #[inline]
    pub(crate) fn miss(&self) {}
    pub(crate) fn set(&self) {}
    pub(crate) fn fault(&self, _fault: Fault) {}
    pub(crate) fn latency(&self, _op: &'static str, _took: Duration) {}
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CacheMetrics;

impl CacheMetrics {
    pub(crate) fn new(_cache: &str) -> Self {
        Self
    }
    pub(crate) fn event(&self, _event: Event) {}
    pub(crate) fn breaker(&self, _to: BreakerState) {}
    pub(crate) fn compute_latency(&self, _took: Duration) {}
    pub(crate) fn l1_size(&self, _entries: u64, _bytes: u64) {}
}

/// One `#[cached]` function's handles (none without the feature).
#[derive(Debug, Default)]
pub struct FnMetrics;

impl FnMetrics {
    /// Nothing to register.
    pub fn new(
        _namespace: &str,
        _function: &str,
        _serializer: &'static str,
        _hits: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        Self
    }
    /// Does nothing.
    pub fn miss(&self) {}
    /// Does nothing.
    pub fn uncached(&self) {}
    /// Does nothing.
    pub fn duration(&self, _took: Duration) {}
}

#[derive(Debug, Clone)]
pub(crate) struct PoolMetrics;

impl PoolMetrics {
    pub(crate) fn new(
        _cache: &str,
        _backend: Option<&std::sync::Arc<dyn crate::backend::Backend>>,
    ) -> Self {
        Self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ChannelMetrics;

impl ChannelMetrics {
    pub(crate) fn new(_channel: &str) -> Self {
        Self
    }
    pub(crate) fn key(&self) {}
    pub(crate) fn prefix(&self) {}
    pub(crate) fn flush(&self) {}
    pub(crate) fn lost(&self) {}
    pub(crate) fn up(&self, _up: bool) {}
}

/// Does nothing: nothing is batched without the feature.
pub fn publish() {}
