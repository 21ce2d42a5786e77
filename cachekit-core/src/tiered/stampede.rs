//! Distributed stampede protection on the miss path: one process computes
//! a cold key while the others wait for its value (see
//! [`TieredCacheBuilder::stampede_lock`](super::TieredCacheBuilder::stampede_lock)).

use std::time::Instant;

use super::flight::Shared;
use super::l2::Budget;
use super::tiers::L2Read;
use super::{Cacheable, Policy, TieredCache};

/// What the stampede lock step decided.
pub(super) enum Stampede<T> {
    /// Another process stored the value while we waited.
    Hit(T, Option<Shared>),
    /// Compute; release the lock with this token afterwards, if any.
    Compute(Option<String>),
}

impl TieredCache {
    /// With a distributed lock configured: take it, or wait for its holder's
    /// value, re-reading L2, until `max_wait`; then compute anyway. Taking the
    /// lock is an L2 operation like any other: guarded, and within `budget`.
    pub(super) async fn stampede<T: Cacheable>(
        &self,
        key: &str,
        policy: &Policy,
        budget: Option<&Budget>,
    ) -> Stampede<T> {
        let (Some((lock, config)), Some(l2)) = (&self.inner.stampede, &self.inner.l2) else {
            return Stampede::Compute(None);
        };
        let counters = &self.inner.counters.l2;
        let give_up = crate::deadline::later(Instant::now(), config.max_wait);
        let mut waited = false;
        loop {
            match l2
                .call_other("lock", counters, budget, || {
                    lock.try_lock(key, config.lease)
                })
                .await
            {
                Ok(Some(token)) => {
                    // The holder we waited for may have stored its value
                    // and let go between our last read and this take.
                    if waited {
                        if let Ok(L2Read::Hit(hit)) = self.l2_read::<T>(key, policy, None).await {
                            if hit.fresh {
                                self.release(key, Some(token)).await;
                                return Stampede::Hit(hit.value, hit.shared);
                            }
                        }
                    }
                    return Stampede::Compute(Some(token));
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(target: "cachekit", key, error = %err, "stampede lock unavailable; computing without it");
                    return Stampede::Compute(None);
                }
            }
            let now = Instant::now();
            if now >= give_up {
                tracing::warn!(target: "cachekit", key, max_wait = ?config.max_wait, "gave up waiting for another process's computation");
                return Stampede::Compute(None);
            }
            self.inner.counters.lock_wait();
            waited = true;
            // A poll interval longer than what is left of max_wait must
            // not hold the wait past it.
            tokio::time::sleep(config.poll_interval.min(give_up - now)).await;
            // Waiting here is deliberate (bounded by max_wait), so these
            // reads get a deadline each rather than the call's budget.
            if let Ok(L2Read::Hit(hit)) = self.l2_read::<T>(key, policy, None).await {
                if hit.fresh {
                    return Stampede::Hit(hit.value, hit.shared);
                }
            }
        }
    }

    pub(super) async fn release(&self, key: &str, token: Option<String>) {
        let (Some(token), Some((lock, _)), Some(l2)) =
            (token, &self.inner.stampede, &self.inner.l2)
        else {
            return;
        };
        let counters = &self.inner.counters.l2;
        if let Err(err) = l2
            .call_other("unlock", counters, None, || lock.unlock(key, &token))
            .await
        {
            tracing::debug!(target: "cachekit", key, error = %err, "could not release the stampede lock; it expires with its lease");
        }
    }
}
