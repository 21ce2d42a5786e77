//! The in-process tier: a moka cache bounded by bytes, with per-entry TTLs.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use moka::Expiry;

/// moka's key hasher. SipHash (std's default) was a seventh of an L1 hit on
/// an 80-byte interop key; foldhash is several times cheaper and is seeded
/// at random per cache, which keeps a fixed list of colliding keys from
/// working against every process. Keys derived by `KeyBuilder` end in a
/// Blake2b digest, which a caller cannot steer into collisions anyway.
type KeyHasher = foldhash::fast::RandomState;

use crate::backend::{Backend, Health, Ttl};
use crate::clock::Clock;
use crate::codec;
use crate::error::{Error, Result};

/// Bookkeeping bytes charged per entry on top of key and value: moka's
/// entry, its copy of the key, its table slot and queue nodes, and the
/// `Stored` around the value. Measured: 100,000 entries of a `u64` under
/// 83-byte keys grew the process 694 bytes each, 120 of them key and value.
const ENTRY_OVERHEAD: usize = 448;

/// A value held in memory: its encoded bytes and, when a typed caller stored
/// or read it, the decoded value, so that typed hits need not decode again.
pub(crate) struct Stored {
    pub(crate) bytes: Bytes,
    pub(crate) decoded: Option<Arc<dyn Any + Send + Sync>>,
    /// What `decoded` holds in memory, estimated when it was attached.
    pub(crate) decoded_weight: usize,
    /// When the entry leaves the cache.
    pub(crate) expires_at: Option<Instant>,
    /// When a typed reader should stop treating it as fresh (serve-stale and
    /// the L1 age cap keep entries past this); `None`: fresh until it expires.
    pub(crate) fresh_until: Option<Instant>,
    /// When the value itself (not this L1 copy) stops being fresh, for
    /// refresh-ahead; `None`: never, or unknown.
    pub(crate) logical_until: Option<Instant>,
    /// The [`TieredCache`](crate::TieredCache) L1 generation it was stored
    /// in; a flush moves the cache to the next one.
    pub(crate) generation: u64,
    /// Set once the entry has left the cache (replaced, removed, evicted or
    /// expired), so that an [`L1Ref`](crate::remembered::L1Ref) held elsewhere stops serving it.
    pub(crate) retired: AtomicBool,
}

/// A copy is a new entry, not yet in any cache.
impl Clone for Stored {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            decoded: self.decoded.clone(),
            decoded_weight: self.decoded_weight,
            expires_at: self.expires_at,
            fresh_until: self.fresh_until,
            logical_until: self.logical_until,
            generation: self.generation,
            retired: AtomicBool::new(false),
        }
    }
}

impl Stored {
    /// An entry holding `bytes` that leaves the cache at `expires_at`.
    pub(crate) fn new(bytes: Bytes, expires_at: Option<Instant>) -> Self {
        Self {
            bytes,
            decoded: None,
            decoded_weight: 0,
            expires_at,
            fresh_until: None,
            logical_until: None,
            generation: 0,
            retired: AtomicBool::new(false),
        }
    }

    /// An entry holding `decoded`, the value `bytes` encode, that leaves
    /// the cache at `expires_at`, fresh until then.
    pub(crate) fn typed<T: Any + Send + Sync>(
        bytes: Bytes,
        decoded: Arc<T>,
        expires_at: Option<Instant>,
    ) -> Self {
        let mut stored = Self::new(bytes, expires_at);
        stored.set_decoded(decoded);
        stored
    }

    /// Keeps `value`, the value the bytes encode, beside them, and charges
    /// the entry for it.
    pub(crate) fn set_decoded<T: Any + Send + Sync>(&mut self, value: Arc<T>) {
        self.decoded_weight = decoded_weight::<T>(&self.bytes);
        self.decoded = Some(value);
    }

    /// Whether the entry has left the cache it was stored in.
    #[inline]
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The bytes the entry is charged for, without its key: the encoded
    /// value, the decoded copy (see [`decoded_weight`]) and the
    /// bookkeeping around them.
    pub(crate) fn weight(&self) -> usize {
        self.bytes
            .len()
            .saturating_add(self.decoded_weight)
            .saturating_add(ENTRY_OVERHEAD)
    }

    pub(crate) fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn ttl(&self, now: Instant) -> Ttl {
        match self.expires_at {
            None => Ttl::Persistent,
            Some(at) if at > now => Ttl::Remaining(at - now),
            Some(_) => Ttl::Missing,
        }
    }
}

/// The longest lifetime an entry gets, as on Redis (about 146 million
/// years): a longer TTL, up to `Duration::MAX`, is clamped to it rather
/// than refused or turned into "no expiry".
const MAX_TTL: Duration = Duration::from_millis(i64::MAX as u64 / 2);

/// Where the clock cannot reach `MAX_TTL` ahead (`Instant` is 64-bit
/// nanoseconds on some platforms), a century is the clamp.
const FALLBACK_MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When an entry written at `now` with `ttl` expires, the TTL clamped to
/// what the clock can represent. `None` only if not even a century fits.
pub(crate) fn expiry_at(now: Instant, ttl: Duration) -> Option<Instant> {
    now.checked_add(ttl.min(MAX_TTL))
        .or_else(|| now.checked_add(ttl.min(FALLBACK_MAX_TTL)))
}

/// What a decoded `T` holds in memory, estimated from `bytes`, its
/// envelope: its `Arc` allocation, and for what it owns on the heap, the
/// length of its MessagePack encoding before LZ4. That is about right for
/// strings and byte vectors; numbers encode smaller than they are held, so
/// a value made of many small numbers is undercharged (by up to eight
/// times). The compressed length is no estimate at all: a repetitive 8 KiB
/// string compresses to a few hundred bytes but is held whole.
fn decoded_weight<T>(bytes: &[u8]) -> usize {
    let heap = codec::declared_len(bytes).unwrap_or(bytes.len());
    heap.saturating_add(std::mem::size_of::<T>() + 2 * std::mem::size_of::<usize>())
}

/// The share of an L1's budget that references held outside it may keep
/// in memory by themselves: the remembered entries of `#[cached]` functions
/// (see [`RecentCalls`](crate::remembered::RecentCalls)) hold theirs strongly, and an
/// entry held so stays allocated after L1 evicts it. Past the limit they
/// hold entries weakly. The bytes are counted when an entry is taken, in
/// L1 or not, so the limit is an upper bound on what they keep alive.
pub(crate) struct PinBudget {
    held: AtomicUsize,
    limit: usize,
}

impl PinBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// Counts `weight` more bytes held, unless that passes the limit.
    pub(crate) fn take(&self, weight: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(weight).filter(|&n| n <= self.limit)
            })
            .is_ok()
    }

    /// Counts `weight` bytes (from [`take`](Self::take)) no longer held.
    pub(crate) fn give_back(&self, weight: usize) {
        if weight > 0 {
            // Never below zero, even if a caller gave back more than it took.
            let _ = self
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    Some(held.saturating_sub(weight))
                });
        }
    }

    /// The bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// The share of the L1 budget remembered entries may keep alive by
/// themselves, as a divisor: a sixteenth (4 MiB of the default 64 MiB, the
/// 64 KiB a thread may hold for 64 threads).
const PINNED_SHARE: u64 = 16;

struct PerEntryExpiry;

impl Expiry<String, Arc<Stored>> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        created_at: Instant,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(updated_at))
    }
}

/// Builds a [`MemoryBackend`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryBackendBuilder {
    max_bytes: u64,
    clock: Clock,
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            clock: Clock::system(),
        }
    }
}

impl MemoryBackendBuilder {
    /// The byte budget (default 64 MiB): keys, encoded values and a fixed
    /// per-entry overhead are counted, and a typed entry counts its decoded
    /// value too, at the length of its encoding before compression (a
    /// string or a byte vector is held at about that size). Least valuable
    /// entries are evicted first (moka's TinyLFU). Entries that `#[cached]`
    /// functions remember for repeated calls may keep up to a sixteenth
    /// more alive after L1 has evicted them.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The clock TTLs are measured on (tests pass a mock).
    #[doc(hidden)]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the backend.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if `max_bytes` is 0.
    pub fn build(self) -> Result<MemoryBackend> {
        if self.max_bytes == 0 {
            return Err(Error::config("max_bytes", "must be greater than 0"));
        }
        let cache = Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(|key: &String, value: &Arc<Stored>| {
                u32::try_from(key.len() + value.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryExpiry)
            // moka calls this on the writing thread, before `insert` or
            // `remove` returns, when an entry is replaced or removed, and
            // from its housekeeping when one is evicted or expires.
            .eviction_listener(|_key, value: Arc<Stored>, _cause| {
                value.retired.store(true, Ordering::Release);
            })
            .build_with_hasher(KeyHasher::default());
        let pinned = usize::try_from(self.max_bytes / PINNED_SHARE).unwrap_or(usize::MAX);
        Ok(MemoryBackend {
            cache,
            max_bytes: self.max_bytes,
            pins: Arc::new(PinBudget::new(pinned)),
            clock: self.clock,
        })
    }
}

/// An in-process [`Backend`] on moka: bounded by bytes, per-entry TTLs.
///
/// It is the L1 of a [`TieredCache`](crate::TieredCache) and can also serve
/// as a standalone backend (in tests, or for a single process). Cloning is
/// cheap and clones share the same entries.
///
/// ```
/// use cachekit::{Backend, MemoryBackend, Ttl};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cachekit::Result<()> {
/// let l1 = MemoryBackend::builder().max_bytes(16 << 20).build()?;
/// l1.set("k", "v".into(), Some(Duration::from_secs(60))).await?;
/// assert!(matches!(l1.ttl("k").await?, Ttl::Remaining(_)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    cache: Cache<String, Arc<Stored>, KeyHasher>,
    max_bytes: u64,
    /// Shared by the clones, like the entries.
    pins: Arc<PinBudget>,
    clock: Clock,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    /// A builder with the defaults (64 MiB).
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// Approximate number of live entries (moka updates it lazily).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Approximate bytes charged against the budget.
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// The configured byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Runs moka's pending housekeeping (evictions, counters) now.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// What references held outside L1 may keep alive by themselves.
    pub(crate) fn pins(&self) -> &Arc<PinBudget> {
        &self.pins
    }

    /// moka itself hides entries whose per-entry expiry has passed, so the
    /// hot path needs no clock read of its own.
    pub(crate) fn get_stored(&self, key: &str) -> Option<Arc<Stored>> {
        let stored = self.cache.get(key)?;
        // A mocked clock moves without moka noticing.
        if self.clock.is_mock() && !stored.is_live(self.clock.now()) {
            return None;
        }
        Some(stored)
    }

    /// The clock this L1 measures TTLs on.
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn insert_stored(&self, key: &str, stored: Stored) {
        self.cache.insert(key.to_owned(), Arc::new(stored));
    }

    pub(crate) fn remove(&self, key: &str) -> bool {
        self.cache
            .remove(key)
            .is_some_and(|s| s.is_live(self.clock.now()))
    }

    /// Removes every key starting with `prefix`; how many were live.
    pub(crate) fn remove_prefix(&self, prefix: &str) -> u64 {
        let mut removed = 0;
        let now = self.clock.now();
        for (key, _) in self.cache.iter() {
            if key.starts_with(prefix) {
                if let Some(old) = self.cache.remove(key.as_str()) {
                    removed += u64::from(old.is_live(now));
                }
            }
        }
        removed
    }

    /// Drops every entry: lookups stop finding them at once, moka frees
    /// them in its housekeeping.
    pub(crate) fn flush(&self) {
        self.cache.invalidate_all();
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.get_stored(key).map(|s| s.bytes.clone()))
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Ttl)>> {
        let now = self.clock.now();
        Ok(self.get_stored(key).map(|s| (s.bytes.clone(), s.ttl(now))))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let expires_at = ttl.and_then(|t| expiry_at(self.clock.now(), t));
        self.insert_stored(key, Stored::new(value, expires_at));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.remove(key))
    }

    async fn ttl(&self, key: &str) -> Result<Ttl> {
        let now = self.clock.now();
        Ok(self.get_stored(key).map_or(Ttl::Missing, |s| s.ttl(now)))
    }

    async fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        let now = self.clock.now();
        let result = self
            .cache
            .entry(key.to_owned())
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().is_live(now) => {
                    let mut stored = Stored::clone(entry.value());
                    stored.expires_at = ttl.and_then(|t| expiry_at(now, t));
                    Op::Put(Arc::new(stored))
                }
                _ => Op::Nop,
            });
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys
            .iter()
            .map(|k| self.get_stored(k).map(|s| s.bytes.clone()))
            .collect())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let now = self.clock.now();
        let result = self
            .cache
            .entry(key.to_owned())
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().is_live(now) => Op::Nop,
                _ => Op::Put(Arc::new(Stored::new(
                    value,
                    ttl.and_then(|t| expiry_at(now, t)),
                ))),
            });
        Ok(matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        ))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        crate::backend::check_prefix(prefix)?;
        Ok(self.remove_prefix(prefix))
    }

    async fn health(&self) -> Health {
        Health::new("memory", true, Duration::ZERO)
            .detail("entries", self.cache.entry_count())
            .detail("weighted_bytes", self.cache.weighted_size())
            .detail("max_bytes", self.max_bytes)
            .detail("remembered_bytes", self.pins.held())
    }
}
