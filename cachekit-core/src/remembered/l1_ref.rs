//! Holding on to an L1 entry between calls.
//!
//! A caller that reads the same keys over and over (a `#[cached]` function
//! and its recent arguments) can keep a reference to each key's L1 entry and
//! read the value straight from it, skipping moka's lookup: no key hashing,
//! no map probe, no access bookkeeping. The reference is only a shortcut.
//! L1 marks an entry when it leaves the cache (replaced, deleted, evicted or
//! expired, see [`MemoryBackend`](crate::MemoryBackend)), and from then on
//! the reference reads as nothing, so the caller goes back to the normal
//! lookup and can take a reference to the new entry.

use std::sync::{Arc, Weak};

use crate::memory::Stored;
use crate::{Cacheable, TieredCache};

/// A reference to one L1 entry, valid while the entry stays in L1.
///
/// Taken with [`TieredCache::l1_ref`], read with [`TieredCache::get_ref`].
/// Holding one keeps the entry's value in memory after it has left L1 (its
/// bytes are then no longer counted against L1's budget), so hold few, or
/// keep them as [`WeakL1Ref`]s, as `#[cached]` functions do.
#[derive(Clone)]
pub struct L1Ref(Arc<Stored>);

/// An [`L1Ref`] that does not keep the value in memory: once L1 drops the
/// entry, [`upgrade`](Self::upgrade) gives `None`.
#[derive(Clone, Default)]
pub struct WeakL1Ref(Weak<Stored>);

impl L1Ref {
    /// A reference that lets the value go with the entry.
    pub fn downgrade(&self) -> WeakL1Ref {
        WeakL1Ref(Arc::downgrade(&self.0))
    }

    /// Whether this is a reference to the same entry as `other`.
    pub fn same_entry(&self, other: &L1Ref) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl WeakL1Ref {
    /// The entry, if its value is still in memory.
    pub fn upgrade(&self) -> Option<L1Ref> {
        self.0.upgrade().map(L1Ref)
    }
}

impl std::fmt::Debug for L1Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Ref")
            .field("retired", &self.0.is_retired())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WeakL1Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakL1Ref").finish_non_exhaustive()
    }
}

impl TieredCache {
    /// A reference to the L1 entry under `key`, if there is one, for later
    /// reads with [`get_ref`](Self::get_ref).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachekit::TieredCache;
    ///
    /// # fn main() -> cachekit::Result<()> {
    /// let cache = TieredCache::builder().build()?;
    /// cache.set_blocking("demo:k", &7_u32, Some(Duration::from_secs(60)))?;
    /// let entry = cache.l1_ref("demo:k").expect("in L1");
    /// assert_eq!(cache.get_ref::<u32>(&entry), Some(7));
    ///
    /// cache.set_blocking("demo:k", &8_u32, Some(Duration::from_secs(60)))?;
    /// assert_eq!(cache.get_ref::<u32>(&entry), None); // replaced: look up again
    /// # Ok(()) }
    /// ```
    #[doc(hidden)]
    pub fn l1_ref(&self, key: &str) -> Option<L1Ref> {
        self.l1_stored(key).map(L1Ref)
    }

    /// The value of a referenced L1 entry, counted as an L1 hit, if the
    /// entry is still in L1, still fresh and holds a decoded `T`; else
    /// `None` (not counted), and the caller should use the normal lookup,
    /// which also decodes entries held as bytes only and serves stale ones.
    ///
    /// `entry` must come from this cache's [`l1_ref`](Self::l1_ref). Unlike
    /// the normal lookup this never triggers a refresh-ahead.
    #[doc(hidden)]
    pub fn get_ref<T: Cacheable>(&self, entry: &L1Ref) -> Option<T> {
        self.value_ref(entry).cloned()
    }

    /// As [`get_ref`](Self::get_ref), but borrowing the value from the
    /// entry instead of cloning it, so that a caller can clone it straight
    /// into its own return value (a moved copy of a struct just written
    /// costs the CPU more than its size suggests).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachekit::TieredCache;
    ///
    /// # fn main() -> cachekit::Result<()> {
    /// let cache = TieredCache::builder().build()?;
    /// cache.set_blocking("demo:k", &"seven".to_owned(), Some(Duration::from_secs(60)))?;
    /// let entry = cache.l1_ref("demo:k").expect("in L1");
    /// assert_eq!(cache.value_ref::<String>(&entry).map(String::as_str), Some("seven"));
    /// assert_eq!(cache.value_ref::<u32>(&entry), None); // not a u32
    /// assert_eq!(cache.stats().l1.hits, 1);
    /// # Ok(()) }
    /// ```
    #[doc(hidden)]
    #[inline]
    pub fn value_ref<'e, T: Cacheable>(&self, entry: &'e L1Ref) -> Option<&'e T> {
        let stored = &*entry.0;
        // Retired: it left L1. An older generation: L1 was flushed since
        // (moka retires flushed entries only in its housekeeping).
        if stored.is_retired() || stored.generation != self.l1_generation() {
            return None;
        }
        let value = stored.decoded.as_ref()?.downcast_ref::<T>()?;
        // moka hides expired entries from its lookups; here the clock is
        // ours. Serve while both the expiry and the freshness limit are ahead.
        let until = match (stored.expires_at, stored.fresh_until) {
            (Some(expires), Some(fresh)) => Some(expires.min(fresh)),
            (expires, fresh) => expires.or(fresh),
        };
        // A limit beyond the coarse clock's upper bound is certainly ahead;
        // only close to it does the precise clock decide.
        let clock = self.clock();
        if until.is_some_and(|at| at <= clock.now_at_most() && at <= clock.now()) {
            return None;
        }
        self.count_l1_hit();
        Some(value)
    }
}

impl L1Ref {
    /// The bytes L1 charges the entry, without its key.
    pub(crate) fn weight(&self) -> usize {
        self.0.weight()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

    fn cache() -> TieredCache {
        TieredCache::builder().build().unwrap()
    }

    #[test]
    fn reads_the_value_and_counts_a_hit() {
        let cache = cache();
        cache.set_blocking("k", &"v".to_owned(), MINUTE).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        let before = cache.stats().l1.hits;
        assert_eq!(cache.get_ref::<String>(&entry).as_deref(), Some("v"));
        assert_eq!(cache.stats().l1.hits, before + 1);
        // Another type: not this entry's value.
        assert_eq!(cache.get_ref::<u64>(&entry), None);
    }

    #[test]
    fn stops_when_the_entry_leaves_l1() {
        let cache = cache();
        cache.set_blocking("k", &1_u64, MINUTE).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        cache.delete_blocking("k").unwrap();
        assert_eq!(cache.get_ref::<u64>(&entry), None, "deleted");

        cache.set_blocking("k", &2_u64, MINUTE).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        cache.invalidate_local("k");
        assert_eq!(cache.get_ref::<u64>(&entry), None, "invalidated");

        cache.set_blocking("k", &3_u64, MINUTE).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        cache.set_blocking("k", &4_u64, MINUTE).unwrap();
        assert_eq!(cache.get_ref::<u64>(&entry), None, "replaced");
        let entry = cache.l1_ref("k").unwrap();
        assert_eq!(cache.get_ref::<u64>(&entry), Some(4));
    }

    #[tokio::test]
    async fn stops_when_l1_rewrites_the_entry_in_place() {
        use crate::Backend;
        let cache = cache();
        cache.set_blocking("k", &1_u64, MINUTE).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        // A new TTL is a new entry (moka's compute path): the old one must
        // not keep serving with its old expiry.
        let l1 = cache.l1().unwrap();
        assert!(l1.expire("k", Some(Duration::from_secs(1))).await.unwrap());
        assert_eq!(cache.get_ref::<u64>(&entry), None);
    }

    #[test]
    fn stops_when_the_entry_expires() {
        let (clock, mock) = crate::clock::Clock::mock();
        let cache = TieredCache::builder().clock(clock).build().unwrap();
        let ttl = Duration::from_secs(30);
        cache.set_blocking("k", &1_u64, Some(ttl)).unwrap();
        let entry = cache.l1_ref("k").unwrap();
        mock.advance(ttl - Duration::from_millis(1));
        assert_eq!(cache.get_ref::<u64>(&entry), Some(1));
        mock.advance(Duration::from_millis(1));
        assert_eq!(cache.get_ref::<u64>(&entry), None);
    }

    #[test]
    fn a_weak_reference_lets_the_value_go() {
        let cache = TieredCache::builder()
            .l1_max_bytes(64 * 1024)
            .build()
            .unwrap();
        cache.set_blocking("k", &vec![7_u8; 1024], MINUTE).unwrap();
        let weak = cache.l1_ref("k").unwrap().downgrade();
        assert!(weak.upgrade().is_some());
        cache.delete_blocking("k").unwrap();
        // moka frees removed entries lazily (epoch-based); keep it busy
        // until it has.
        let gone = (0..1_000).any(|i| {
            cache
                .set_blocking(&format!("other{i}"), &i, MINUTE)
                .unwrap();
            cache.l1().unwrap().run_pending_tasks();
            weak.upgrade().is_none()
        });
        assert!(
            gone,
            "a deleted entry's value is never freed while weakly held"
        );
    }
}
