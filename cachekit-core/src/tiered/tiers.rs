//! The plumbing between the typed cache and its two tiers: typed L1 lookups,
//! guarded L2 reads, and writes to both.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tracing::Instrument;

use super::changes::{Changes, Ticket};
use super::compute::{call_span, Answer, Computed};
use super::flight::Shared;
use super::l2::Budget;
use super::values::Unreadable;
use super::{Cacheable, Policy, TieredCache};
use crate::backend::Ttl;
use crate::error::Result;
use crate::memory::{expiry_at, Stored};

/// What an L1 lookup found.
pub(crate) enum Found<T> {
    /// A fresh value; `true` when refresh-ahead says it is due for a refresh.
    Fresh(T, bool),
    /// A value past its freshness but kept for serve-stale (or past the L1
    /// age cap, so L2 should be asked first).
    Stale(T),
    Miss,
}

/// Where a value put in L1 comes from, with the ticket its read or
/// computation took.
enum FillOrigin<'t> {
    /// Read from L2.
    Read(&'t Ticket),
    /// Written to L2 by this cache: set, or computed (with a ticket).
    Written(Option<&'t Ticket>),
}

/// What an L2 read found.
pub(crate) enum L2Read<T> {
    Hit(L2Hit<T>),
    /// Nothing, or nothing usable that a store may replace.
    Miss,
    /// A value this cache cannot read and must not replace: another
    /// language's document of another shape, or one encrypted under
    /// another key. Its writer may read it fine.
    Kept,
}

/// A value read from L2.
pub(crate) struct L2Hit<T> {
    pub(crate) value: T,
    /// The copy L1 keeps, if there is an L1; waiters can share it.
    pub(crate) shared: Option<Shared>,
    pub(crate) fresh: bool,
}

impl TieredCache {
    /// L1 lookup that counts a hit or a miss.
    pub(crate) fn l1_get<T: Cacheable>(&self, key: &str, policy: &Policy) -> Found<T> {
        if self.inner.l1.is_none() {
            return Found::Miss;
        }
        let found = self.l1_peek(key, policy);
        match &found {
            Found::Fresh(..) => self.inner.counters.l1.hit(),
            Found::Stale(_) | Found::Miss => self.inner.counters.l1.miss(),
        }
        found
    }

    /// L1 lookup without counting. Decodes (and remembers) a value that was
    /// stored as bytes only or under another type; drops one that does not decode.
    pub(crate) fn l1_peek<T: Cacheable>(&self, key: &str, policy: &Policy) -> Found<T> {
        let Some(l1) = &self.inner.l1 else {
            return Found::Miss;
        };
        let Some(stored) = l1.get_stored(key) else {
            return Found::Miss;
        };
        let value = match stored.decoded.as_ref().and_then(|d| d.downcast_ref::<T>()) {
            Some(v) => v.clone(),
            None => match self.decode_value::<T>(key, &stored.bytes, policy) {
                Ok(v) => {
                    let mut typed = Stored::clone(&stored);
                    typed.set_decoded(Arc::new(v.clone()));
                    l1.insert_stored(key, typed);
                    v
                }
                Err(
                    Unreadable::Damaged(err)
                    | Unreadable::Foreign(err)
                    | Unreadable::Shared(err)
                    | Unreadable::Undecryptable(err),
                ) => {
                    // Its bytes came from L2 or from this cache, read or
                    // written as another request of the key asked.
                    self.inner.counters.l1.corrupt();
                    tracing::warn!(target: "cachekit", key, error = %err, "dropping undecodable L1 entry");
                    l1.remove(key);
                    return Found::Miss;
                }
            },
        };
        // Stored before L1 was last flushed (its invalidation channel
        // broke or came back): it may have changed unseen.
        if stored.generation != self.inner.generation() {
            return Found::Stale(value);
        }
        // Most hits need no clock: no serve-stale window and no refresh-ahead.
        let wants_refresh = policy.refresh_ahead.is_some() && stored.logical_until.is_some();
        if stored.fresh_until.is_none() && !wants_refresh {
            return Found::Fresh(value, false);
        }
        let now = self.inner.clock.now();
        if stored.fresh_until.is_some_and(|until| now >= until) {
            return Found::Stale(value);
        }
        let refresh = match (policy.refresh_ahead, policy.ttl, stored.logical_until) {
            (Some(fraction), Some(ttl), Some(until)) => {
                // A per-request fraction is not validated: NaN or a
                // negative one (which `mul_f64` would panic on) never refreshes.
                Duration::try_from_secs_f64(ttl.as_secs_f64() * fraction)
                    .is_ok_and(|window| until.saturating_duration_since(now) < window)
            }
            _ => false,
        };
        Found::Fresh(value, refresh)
    }

    /// [`get`](TieredCache::get) past an L1 miss: a fresh L2 value, in the
    /// call's span (see [`call_span`]).
    pub(crate) async fn l2_get<T: Cacheable>(&self, key: &str) -> Option<T> {
        let defaults = &self.inner.defaults;
        let budget = self.inner.l2.as_ref().map(|l2| l2.budget());
        let budget = budget.as_ref();
        let read = match call_span(&self.inner.name, None) {
            None => self.l2_read::<T>(key, defaults, budget).await,
            Some(span) => {
                let mut read = Box::pin(self.l2_read::<T>(key, defaults, budget).instrument(span));
                let result = (&mut read).await;
                let answer = match &result {
                    Ok(L2Read::Hit(hit)) if hit.fresh => Answer::L2,
                    _ => Answer::Miss,
                };
                answer.record_on(read.span(), budget);
                result
            }
        };
        match read {
            Ok(L2Read::Hit(hit)) if hit.fresh => Some(hit.value),
            _ => None,
        }
    }

    /// Reads L2 through its guards and fills L1 on a hit.
    ///
    /// A value that is not a cachekit envelope (in interop mode: any value
    /// that does not decode), and an encrypted value that does not verify,
    /// is a counted miss left in place; a damaged envelope (or one of
    /// another type) is deleted, counted and read as a miss. With
    /// serve-stale, an entry in its last `max_stale` of life is a stale hit.
    ///
    /// # Errors
    /// The L2 failure (timeout, circuit open, connection ...), already counted.
    pub(crate) async fn l2_read<T: Cacheable>(
        &self,
        key: &str,
        policy: &Policy,
        budget: Option<&Budget>,
    ) -> Result<L2Read<T>> {
        let Some(l2) = &self.inner.l2 else {
            return Ok(L2Read::Miss);
        };
        let ticket = self.inner.changes.ticket(key);
        let counters = &self.inner.counters.l2;
        // The remaining TTL is only needed to fill L1 or to spot a stale
        // entry; without either, a plain GET saves Redis a PTTL per read.
        let needs_ttl = self.inner.l1.is_some() || policy.max_stale.is_some();
        let read = l2.call("get", counters, budget, |b| async move {
            if needs_ttl {
                b.get_with_ttl(key).await
            } else {
                Ok(b.get(key).await?.map(|bytes| (bytes, Ttl::Persistent)))
            }
        });
        let (bytes, ttl) = match read.await {
            Ok(Some(found)) => found,
            Ok(None) => {
                counters.miss();
                return Ok(L2Read::Miss);
            }
            Err(err) => {
                // The L2 guard logs failures (rate-limited); per call, debug only.
                tracing::debug!(target: "cachekit", key, error = %err, "L2 read failed or skipped; treating as a miss");
                return Err(err);
            }
        };
        let value = match self.decode_value::<T>(key, &bytes, policy) {
            Ok(v) => v,
            Err(unreadable) => {
                counters.miss();
                return Ok(self.unreadable_l2(key, unreadable, budget).await);
            }
        };
        counters.hit();
        // The entry's life in L2 is its TTL plus the stale window, so what
        // is left of its freshness is the remaining TTL minus that window.
        let (logical, fresh) = match (ttl, policy.max_stale) {
            (Ttl::Remaining(left), Some(window)) if left <= window => (Some(Duration::ZERO), false),
            (Ttl::Remaining(left), Some(window)) => (Some(left - window), true),
            (Ttl::Remaining(left), None) => (Some(left), true),
            (Ttl::Persistent, _) => (None, true),
            // Expired between the read and the TTL probe: serve it once, don't keep it.
            (Ttl::Missing, _) => {
                return Ok(L2Read::Hit(L2Hit {
                    value,
                    shared: None,
                    fresh: true,
                }))
            }
        };
        let remaining_life = match ttl {
            Ttl::Remaining(left) => Some(left),
            _ => None,
        };
        let shared = self.l1_put(
            key,
            bytes,
            &value,
            logical,
            remaining_life,
            FillOrigin::Read(&ticket),
        );
        Ok(L2Read::Hit(L2Hit {
            value,
            shared,
            fresh,
        }))
    }

    /// Counts (and logs, rate-limited) L2 bytes that gave no value, and
    /// deletes them when they are a damaged cachekit envelope; says whether
    /// a store may replace them.
    async fn unreadable_l2<T>(
        &self,
        key: &str,
        unreadable: Unreadable,
        budget: Option<&Budget>,
    ) -> L2Read<T> {
        let Some(l2) = &self.inner.l2 else {
            return L2Read::Miss;
        };
        let counters = &self.inner.counters.l2;
        let backend = l2.name();
        match unreadable {
            Unreadable::Foreign(err) => {
                if counters.foreign() {
                    tracing::warn!(target: "cachekit", key, backend, error = %err, "L2 value is not a cachekit envelope: read as a miss and left in place (a cached call's store replaces it; give cachekit its own key prefix if another program writes these keys). Logged at most once a minute per tier");
                }
                L2Read::Miss
            }
            Unreadable::Shared(err) => {
                if counters.foreign() {
                    tracing::warn!(target: "cachekit", key, backend, error = %err, "interop L2 value does not decode into this type: read as a miss, left in place and not replaced (its writer may read it fine; do all languages agree on the value's shape?). Logged at most once a minute per tier");
                }
                L2Read::Kept
            }
            Unreadable::Undecryptable(err) => {
                if counters.undecryptable() {
                    tracing::warn!(target: "cachekit", key, backend, error = %err, "encrypted L2 value did not verify: read as a miss, left in place and not replaced (do all writers use the same master key and tenant?). Logged at most once a minute per tier");
                }
                L2Read::Kept
            }
            Unreadable::Damaged(err) => {
                counters.corrupt();
                tracing::warn!(target: "cachekit", key, backend, error = %err, "deleting undecodable L2 entry");
                if let Err(err) = l2.call("delete", counters, budget, |b| b.delete(key)).await {
                    tracing::debug!(target: "cachekit", key, error = %err, "could not delete undecodable L2 entry");
                }
                L2Read::Miss
            }
        }
    }

    /// Encodes and writes a value to L2 (through its guards), then L1.
    ///
    /// L1 is written even when L2 fails: the value is correct, and L1 keeps
    /// serving while L2 is unhealthy. A computed value comes with the
    /// `ticket` taken before its computation began: if its key changed
    /// since, it is not stored at all (a change that lands during the L2
    /// write removes it from L1 again).
    ///
    /// # Errors
    /// Encoding errors (nothing is written) and L2 errors (L1 is written).
    /// Returns the copy L1 keeps (if any), for waiters to share.
    pub(crate) async fn store<T>(
        &self,
        key: &str,
        value: &T,
        policy: &Policy,
        budget: Option<&Budget>,
        computed: Option<&Computed>,
    ) -> (Result<()>, Option<Shared>)
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        let logical = policy.write_ttl();
        let life = match (logical, policy.max_stale) {
            (Some(ttl), Some(window)) => Some(ttl.saturating_add(window)),
            (ttl, _) => ttl,
        };
        let bytes = match self.encode_value(key, value, policy) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(target: "cachekit", key, error = %err, "value not cached: cannot encode it");
                return (Err(err), None);
            }
        };
        let ticket = computed.map(|c| &c.ticket);
        if ticket.is_some_and(|t| !self.inner.changes.unchanged(t)) {
            self.inner.counters.superseded();
            return (Ok(()), None);
        }
        let mark = computed.and_then(|c| c.mark.as_deref());
        let mut result = Ok(());
        let l2 = self.inner.l2.as_ref();
        if let Some(l2) = l2.filter(|_| computed.is_none_or(|c| c.write_l2)) {
            let counters = &self.inner.counters.l2;
            let sent = bytes.clone();
            let write = l2.call("set", counters, budget, |b| async move {
                match mark {
                    Some(mark) => b.set_unless_deleted(key, sent, life, mark).await,
                    None => b.set(key, sent, life).await.map(|()| true),
                }
            });
            match write.await {
                Ok(true) => counters.set(),
                Ok(false) => {
                    // Deleted by someone since the computation began.
                    self.inner.counters.superseded();
                    return (Ok(()), None);
                }
                Err(err) => {
                    tracing::debug!(target: "cachekit", key, error = %err, "L2 write failed or skipped; value kept in L1 only");
                    result = Err(err);
                }
            }
        }
        let shared = self.l1_put(
            key,
            bytes,
            value,
            logical,
            life,
            FillOrigin::Written(ticket),
        );
        (result, shared)
    }

    /// Inserts a copy of `value` into L1 and returns it (`None` without an
    /// L1). `logical` is how long the value stays fresh, `life` how long it
    /// may be kept at all (longer with serve-stale); L1 freshness is further
    /// capped by `l1_max_ttl` when an L2 exists (and by `l1_ttl_unsynced`
    /// while the invalidation channel is down). With a `ticket`, an entry
    /// whose key changed since the ticket was taken is removed again.
    fn l1_put<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        bytes: Bytes,
        value: &T,
        logical: Option<Duration>,
        life: Option<Duration>,
        origin: FillOrigin<'_>,
    ) -> Option<Shared> {
        let l1 = self.inner.l1.as_ref()?;
        let value = Arc::new(value.clone());
        let now = self.inner.clock.now();
        let at = |d: Option<Duration>| d.and_then(|d| expiry_at(now, d));
        let l1_fresh = match (logical, self.inner.l1_cap()) {
            (Some(t), Some(cap)) => Some(t.min(cap)),
            (t, cap) => t.or(cap),
        };
        let stale_window = life != logical;
        let stored = if stale_window {
            Stored {
                fresh_until: at(l1_fresh).or(Some(now)),
                logical_until: at(logical),
                ..Stored::typed(bytes, value.clone(), at(life))
            }
        } else {
            Stored {
                logical_until: at(logical),
                ..Stored::typed(bytes, value.clone(), at(l1_fresh))
            }
        };
        // A value read from L2 belongs to the generation its read began
        // in: if L1 was flushed since, it is stale from the start.
        let (generation, ticket) = match origin {
            FillOrigin::Read(ticket) => (Changes::generation_of(ticket), Some(ticket)),
            FillOrigin::Written(ticket) => (self.inner.generation(), ticket),
        };
        l1.insert_stored(
            key,
            Stored {
                generation,
                ..stored
            },
        );
        if ticket.is_some_and(|t| !self.inner.changes.unchanged(t)) {
            // The key changed while its value was on the way here.
            l1.remove(key);
            return None;
        }
        self.inner.counters.l1.set();
        self.inner
            .counters
            .published
            .l1_size(l1.entry_count(), l1.weighted_size());
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Backend, TieredCache};

    const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

    #[tokio::test]
    async fn a_compressible_value_is_charged_at_its_decoded_size() {
        let cache = TieredCache::builder().build().unwrap();
        let l1 = cache.l1().unwrap();
        let text = "the quick brown fox ".repeat(410);
        cache.set("stored", &text, MINUTE).await.unwrap();
        l1.run_pending_tasks();
        let bytes = l1.get("stored").await.unwrap().unwrap();
        assert!(
            bytes.len() < 1024,
            "LZ4 shrinks it to {} bytes",
            bytes.len()
        );
        let charged = l1.weighted_size();
        assert!(
            charged >= (text.len() + bytes.len()) as u64,
            "an entry holding {} bytes decoded is charged {charged}",
            text.len()
        );

        // Stored as bytes, decoded by a typed read: charged the same way.
        l1.delete("stored").await.unwrap();
        l1.set("raw", bytes.clone(), MINUTE).await.unwrap();
        assert_eq!(cache.get::<String>("raw").await, Some(text.clone()));
        l1.run_pending_tasks();
        let charged = l1.weighted_size();
        assert!(
            charged >= (text.len() + bytes.len()) as u64,
            "decoded on read: charged {charged}"
        );
    }
}
