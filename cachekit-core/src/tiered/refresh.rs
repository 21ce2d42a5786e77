//! Refresh-ahead: a hit near the end of its TTL recomputes the value in
//! the background, once however many callers see it.

use std::future::Future;
use std::sync::Arc;

use super::flight::{FlightState, Role};
use super::tiers::Found;
use super::{Cacheable, Policy, TieredCache};

impl TieredCache {
    /// Starts one background recomputation of `key`, unless one is running.
    pub(super) fn spawn_refresh<T, E, F, Fut>(&self, key: &str, policy: &Policy, compute: F)
    where
        T: Cacheable,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.flights.is_running(key) {
            return;
        }
        let cache = self.clone();
        let key: Arc<str> = key.into();
        let policy = policy.clone();
        handle.spawn(async move {
            let Role::Leader(guard) = cache.inner.flights.join(&key, Some(&key)) else {
                return;
            };
            // A refresh that finished while this task was queued leaves
            // nothing to do.
            if let Found::Fresh(v, false) = cache.l1_peek::<T>(&key, &policy) {
                guard.finish_with(|| Arc::new(v));
                return;
            }
            let ticket = cache.inner.changes.ticket(&key);
            let computed = cache.begin_compute(&key, ticket, None).await;
            cache.inner.counters.refresh();
            match compute().await {
                Ok(value) => {
                    let (_, shared) = cache
                        .store(&key, &value, &policy, None, Some(&computed))
                        .await;
                    guard.finish_with(|| shared.unwrap_or_else(|| Arc::new(value)));
                }
                Err(_) => {
                    tracing::warn!(target: "cachekit", key = &*key, "background refresh failed; the current value stays until it expires");
                    guard.finish(FlightState::Failed);
                }
            }
        });
    }
}
