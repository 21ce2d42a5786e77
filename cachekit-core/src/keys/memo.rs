//! Keys remembered by their arguments, so that a repeated call skips
//! Blake2b, and, while its value stays in L1, moka as well.
//!
//! Deriving an interop key costs a canonical encoding, a Blake2b-256 and a
//! hex encoding; on an L1 hit the Blake2b alone was about a third of the
//! whole call. A [`KeyCache`] keeps the keys of recent argument lists in a
//! small direct-mapped table indexed by an xxh3 of the canonical bytes. A
//! slot is a hit only if its stored canonical bytes equal the call's
//! exactly, so a hash collision (accidental or crafted) costs a Blake2b,
//! never a wrong key.
//!
//! A slot can also remember where the key's value sits in L1 (an
//! [`L1Ref`]), so that a repeated call reads its value without looking the
//! key up in moka at all (see [`TieredCache::get_ref`](crate::TieredCache::get_ref)).
//!
//! Each thread has its own table. A shared one needs a lock per lookup,
//! and that lock, plus the reference counts a shared slot needs to hand
//! out its entry, cost as much as the rest of an L1 hit together.

use std::cell::RefMut;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};

use serde::Serialize;
use twox_hash::XxHash3_64;

use super::{blake2b, with_canonical_args, KeyBuilder};
use crate::error::Result;
use crate::memory::PinBudget;
use crate::tiered::L1Ref;
use crate::TieredCache;

mod table;

#[cfg(test)]
use table::HELD_BYTES;
use table::{Held, Slot, Table, Tables};

/// Slots per thread; a power of two.
const SLOTS: usize = 128;
const _: () = assert!(SLOTS.is_power_of_two() && SLOTS <= 1 << 16);
/// Argument lists longer than this are not remembered: their Blake2b is
/// no longer small next to a copy, and they would make the table large.
const MAX_REMEMBERED_ARGS: usize = 256;
/// What the threads of a [`KeyCache::new`] (one not tied to a cache's L1
/// budget) may keep alive together.
const UNTIED_PINS: usize = 1024 * 1024;

/// A [`KeyBuilder`] that remembers the keys of recently seen arguments,
/// and where their values are in L1.
///
/// It gives exactly the keys its builder gives; it only avoids recomputing
/// them. Each thread that uses it keeps up to 128 keys (about 12 KiB with
/// short arguments) and up to 64 KiB of remembered L1 values, which stay in
/// memory after L1 evicts them until the thread next looks at that slot or
/// exits. All threads together keep at most a sixteenth of the L1 budget
/// alive so (for every `KeyCache` made with [`for_cache`](Self::for_cache)
/// on that cache; 1 MiB for one made with [`new`](Self::new)); values
/// beyond that are remembered without keeping them alive. Arguments whose
/// canonical encoding exceeds 256 bytes are derived every time.
///
/// ```
/// use cachekit_core::keys::{KeyBuilder, KeyCache};
///
/// let builder = KeyBuilder::new("users", "get_user")?;
/// let keys = KeyCache::new(builder.clone());
/// assert_eq!(&*keys.key(&(42,))?, builder.key(&(42,))?);
/// assert_eq!(&*keys.key(&(42,))?, builder.key(&(42,))?); // remembered
/// # Ok::<(), cachekit_core::Error>(())
/// ```
pub struct KeyCache {
    builder: KeyBuilder,
    tables: Arc<Tables>,
}

/// What [`KeyCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup<T> {
    /// The remembered L1 entry answered: the value `read` returned.
    Hit(T),
    /// No remembered entry answered: the key, for the normal lookup.
    Key(CallKey),
}

/// What [`KeyCache::recall`] found.
#[derive(Debug)]
pub enum Recall<'a> {
    /// The L1 entry remembered for these arguments, to read in place.
    Entry(Recalled<'a>),
    /// No remembered entry: the key, for the normal lookup.
    Key(CallKey),
}

/// The L1 entry remembered for one call's arguments, borrowed from this
/// thread's table until dropped.
///
/// Read it with [`TieredCache::value_ref`](crate::TieredCache::value_ref);
/// then [`hit`](Self::hit) if it served, or [`forget`](Self::forget) to get
/// the key for the normal lookup. While it lives, a lookup on the same
/// `KeyCache` and thread derives its key afresh.
pub struct Recalled<'a> {
    table: RefMut<'a, Table>,
    /// A whole word, like [`CallKey`]'s `from`: the two share the bytes
    /// after the table in [`Recall`]. With a `u16` here, the compiler
    /// stored the index as two bytes and copied the `Recall` a word at a
    /// time: a load the CPU cannot forward from the narrower store, a
    /// stall of a dozen cycles on every remembered hit.
    index: usize,
    /// The entry of a weakly held slot, upgraded for this read.
    upgraded: Option<L1Ref>,
}

impl Recalled<'_> {
    /// The remembered entry.
    #[inline]
    pub fn entry(&self) -> Option<&L1Ref> {
        if let Some(entry) = &self.upgraded {
            return Some(entry);
        }
        match &self.table.slots.get(self.index)?.as_ref()?.entry {
            Held::Strong(entry, _) => Some(entry),
            Held::Nothing | Held::Weak(_) => None,
        }
    }

    /// Counts the call as answered from the remembered entry
    /// ([`KeyCache::hits`]).
    #[inline]
    pub fn hit(&self) {
        let hits = &self.table.hits;
        hits.store(hits.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Forgets the entry (it is gone from L1, or stale: it will not serve
    /// again) and gives the key, for the normal lookup. (`None` would mean
    /// the slot emptied under this borrow, which nothing can do.)
    pub fn forget(mut self) -> Option<CallKey> {
        let Table {
            slots, held, pins, ..
        } = &mut *self.table;
        let slot = slots.get_mut(self.index)?.as_mut()?;
        Table::release(held, pins, &mut slot.entry);
        Some(CallKey {
            key: slot.key.clone(),
            from: Origin::table(self.index, true),
        })
    }
}

impl fmt::Debug for Recalled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recalled")
            .field("slot", &self.index)
            .finish_non_exhaustive()
    }
}

/// The key of one call, and where the [`KeyCache`] keeps it.
///
/// ```
/// use std::time::Duration;
/// use cachekit_core::keys::{KeyBuilder, KeyCache, Lookup};
/// use cachekit_core::TieredCache;
///
/// # fn main() -> cachekit_core::Result<()> {
/// let cache = TieredCache::builder().build()?;
/// let keys = KeyCache::new(KeyBuilder::new("users", "get_user")?);
/// let get_user = |id: u64| -> cachekit_core::Result<String> {
///     // Fast path: the entry this key had last time, if it is still in L1.
///     let call = match keys.lookup(&(id,), |entry| cache.get_ref::<String>(entry))? {
///         Lookup::Hit(name) => return Ok(name),
///         Lookup::Key(call) => call,
///     };
///     let ttl = Some(Duration::from_secs(60));
///     let name = cache.get_or_compute_blocking(call.key(), ttl, || format!("user {id}"));
///     if call.is_repeat() {
///         if let Some(entry) = cache.l1_ref(call.key()) {
///             keys.remember(&call, &entry);
///         }
///     }
///     Ok(name)
/// };
/// for _ in 0..3 {
///     assert_eq!(get_user(42)?, "user 42"); // computed, read from L1, from the entry
/// }
/// assert_eq!(cache.stats().computes, 1);
/// assert_eq!(keys.hits(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CallKey {
    key: Arc<str>,
    from: Origin,
}

/// Where a [`CallKey`] came from, in one word: the slot that keeps it, if
/// any, and whether it was found there (these arguments were seen
/// recently) rather than just put there. One field, not an `Option<u16>`
/// and a `bool`, so that the key is small (it is moved through every call)
/// and moves as whole words (see [`Recalled`]'s `index`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Origin(usize);

impl Origin {
    /// Not kept in any table.
    const NOWHERE: Self = Self(0);
    const KEPT: usize = 1 << 16;
    const REPEAT: usize = 1 << 17;

    /// Kept in the slot `index` (below `SLOTS`), found there if `repeat`.
    fn table(index: usize, repeat: bool) -> Self {
        Self(Self::KEPT | if repeat { Self::REPEAT } else { 0 } | index)
    }

    fn slot(self) -> Option<usize> {
        (self.0 & Self::KEPT != 0).then_some(self.0 & 0xffff)
    }

    fn repeat(self) -> bool {
        self.0 & Self::REPEAT != 0
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("slot", &self.slot())
            .field("repeat", &self.repeat())
            .finish()
    }
}

impl CallKey {
    /// The interop key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key as it is shared: cloning it copies no bytes.
    pub(crate) fn shared(&self) -> &Arc<str> {
        &self.key
    }

    /// Whether the same arguments were looked up recently on this thread
    /// (their key came from the table). Remembering an entry only pays off
    /// for repeated arguments: a function called with many different ones
    /// would spend an extra L1 lookup per call on entries no later call
    /// reads.
    pub fn is_repeat(&self) -> bool {
        self.from.repeat()
    }
}

impl KeyCache {
    /// A cache of `builder`'s keys, whose threads keep at most 1 MiB of
    /// remembered values alive together.
    pub fn new(builder: KeyBuilder) -> Self {
        Self::tied(builder, Arc::new(PinBudget::new(UNTIED_PINS)))
    }

    /// A cache of `builder`'s keys for entries of `cache`: the values its
    /// threads keep alive count against the share of `cache`'s L1 budget
    /// set aside for remembered entries (a sixteenth), shared with every
    /// other `KeyCache` on `cache`.
    ///
    /// ```
    /// use cachekit_core::keys::{KeyBuilder, KeyCache};
    /// use cachekit_core::TieredCache;
    ///
    /// let cache = TieredCache::builder().l1_max_bytes(8 << 20).build()?;
    /// let keys = KeyCache::for_cache(KeyBuilder::new("users", "get_user")?, &cache);
    /// assert_eq!(keys.builder().prefix(), "users:get_user:");
    /// # Ok::<(), cachekit_core::Error>(())
    /// ```
    pub fn for_cache(builder: KeyBuilder, cache: &TieredCache) -> Self {
        match cache.l1() {
            Some(l1) => Self::tied(builder, l1.pins().clone()),
            // Without an L1 there is nothing to remember.
            None => Self::tied(builder, Arc::new(PinBudget::new(0))),
        }
    }

    fn tied(builder: KeyBuilder, pins: Arc<PinBudget>) -> Self {
        Self {
            builder,
            tables: Arc::new(Tables::new(pins)),
        }
    }

    /// The key for `args`, as [`KeyBuilder::key`] derives it.
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<Arc<str>> {
        with_canonical_args(args, |bytes| self.key_of(bytes).key)
    }

    /// The value of the L1 entry remembered for `args` (a tuple of the
    /// arguments), if `read` gets one from it
    /// ([`TieredCache::get_ref`](crate::TieredCache::get_ref) does, while
    /// the entry is in L1 and fresh); else the key.
    ///
    /// `read` runs while this thread's table is in use: if it calls back
    /// into the same `KeyCache`, that inner call derives its key afresh.
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    #[inline]
    pub fn lookup<A, T>(
        &self,
        args: &A,
        read: impl FnOnce(&L1Ref) -> Option<T>,
    ) -> Result<Lookup<T>>
    where
        A: Serialize + ?Sized,
    {
        Ok(match self.recall(args)? {
            Recall::Entry(recalled) => match recalled.entry().and_then(read) {
                Some(value) => {
                    recalled.hit();
                    Lookup::Hit(value)
                }
                None => match recalled.forget() {
                    Some(call) => Lookup::Key(call),
                    None => Lookup::Key(self.call_key(args)?),
                },
            },
            Recall::Key(call) => Lookup::Key(call),
        })
    }

    /// The L1 entry remembered for `args` (a tuple of the arguments) on
    /// this thread, borrowed in place; else the key. What
    /// [`lookup`](Self::lookup) does, for a caller that reads the entry
    /// itself (see [`Recalled`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cachekit_core::keys::{KeyBuilder, KeyCache, Recall};
    /// use cachekit_core::TieredCache;
    ///
    /// # fn main() -> cachekit_core::Result<()> {
    /// let cache = TieredCache::builder().build()?;
    /// let keys = KeyCache::new(KeyBuilder::new("users", "name")?);
    /// let ttl = Some(Duration::from_secs(60));
    /// let name = |id: u64| -> cachekit_core::Result<String> {
    ///     let call = match keys.recall(&(id,))? {
    ///         Recall::Entry(recalled) => {
    ///             if let Some(name) = recalled.entry().and_then(|e| cache.value_ref::<String>(e)) {
    ///                 recalled.hit();
    ///                 return Ok(name.clone());
    ///             }
    ///             match recalled.forget() {
    ///                 Some(call) => call,
    ///                 None => keys.call_key(&(id,))?,
    ///             }
    ///         }
    ///         Recall::Key(call) => call,
    ///     };
    ///     let name = cache.get_or_compute_blocking(call.key(), ttl, || format!("user {id}"));
    ///     if let (true, Some(entry)) = (call.is_repeat(), cache.l1_ref(call.key())) {
    ///         keys.remember(&call, &entry);
    ///     }
    ///     Ok(name)
    /// };
    /// for _ in 0..3 {
    ///     assert_eq!(name(7)?, "user 7"); // computed, read from L1, from the entry
    /// }
    /// assert_eq!(keys.hits(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    #[inline]
    pub fn recall<A: Serialize + ?Sized>(&self, args: &A) -> Result<Recall<'_>> {
        with_canonical_args(args, |bytes| self.find(bytes, true))
    }

    /// As [`recall`](Self::recall), for arguments already encoded: `args`
    /// must be exactly the canonical encoding of the argument tuple (what
    /// the `#[cached]` attribute writes for plain integer and string
    /// arguments), or the key is not the interop key.
    #[doc(hidden)]
    #[inline]
    pub fn recall_encoded(&self, args: &[u8]) -> Recall<'_> {
        self.find(args, true)
    }

    /// As [`call_key`](Self::call_key), for arguments already encoded (see
    /// [`recall_encoded`](Self::recall_encoded)).
    #[doc(hidden)]
    pub fn call_key_encoded(&self, args: &[u8]) -> CallKey {
        self.key_of(args)
    }

    /// The key of `args`, without reading the remembered entry.
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    pub fn call_key<A: Serialize + ?Sized>(&self, args: &A) -> Result<CallKey> {
        with_canonical_args(args, |bytes| self.key_of(bytes))
    }

    fn key_of(&self, bytes: &[u8]) -> CallKey {
        match self.find(bytes, false) {
            Recall::Key(call) => call,
            // Not asked for; never given.
            Recall::Entry(_) => self.unremembered_key(bytes),
        }
    }

    /// Remembers `entry` as the L1 entry of `call`'s key, for the next
    /// [`lookup`](Self::lookup) of the same arguments on this thread;
    /// `entry` must be the entry under [`CallKey::key`]. Does nothing if
    /// the key is not remembered here (long arguments, another thread's
    /// lookup, or its slot went to other arguments since).
    pub fn remember(&self, call: &CallKey, entry: &L1Ref) {
        let Some(index) = call.from.slot() else {
            return;
        };
        let Ok(mut table) = self.tables.table().try_borrow_mut() else {
            return;
        };
        let Table {
            slots, held, pins, ..
        } = &mut *table;
        let Some(slot) = slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .filter(|s| Arc::ptr_eq(&s.key, &call.key))
        else {
            return;
        };
        Table::release(held, pins, &mut slot.entry);
        slot.entry = Table::hold(held, pins, entry, entry.weight());
    }

    /// Calls answered from a remembered entry by [`lookup`](Self::lookup),
    /// on every thread.
    pub fn hits(&self) -> u64 {
        let tables = self
            .tables
            .hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tables
            .iter()
            .fold(0, |sum, hits| sum.wrapping_add(hits.load(Relaxed)))
    }

    /// The builder whose keys this remembers.
    pub fn builder(&self) -> &KeyBuilder {
        &self.builder
    }

    fn derive(&self, args: &[u8]) -> Arc<str> {
        self.builder.compose(&blake2b(args)).into()
    }

    /// A key not kept in any table.
    fn unremembered_key(&self, args: &[u8]) -> CallKey {
        CallKey {
            key: self.derive(args),
            from: Origin::NOWHERE,
        }
    }

    /// A thread's first lookup: fills its table and counts its hits.
    #[cold]
    fn start(&self, table: &mut Table) {
        table.slots.resize_with(SLOTS, || None);
        self.tables.start(table);
    }

    fn unremembered(&self, args: &[u8]) -> Recall<'_> {
        Recall::Key(self.unremembered_key(args))
    }

    /// The key of `args`, and with `entry`, the entry remembered for them;
    /// a remembered entry that is gone from memory is forgotten.
    #[inline(always)]
    fn find(&self, args: &[u8], entry: bool) -> Recall<'_> {
        if args.len() > MAX_REMEMBERED_ARGS {
            return self.unremembered(args);
        }
        // Busy: a value's `Clone`, or a `Serialize` impl, is calling back
        // into this cache on this thread.
        let Ok(mut table) = self.tables.table().try_borrow_mut() else {
            return self.unremembered(args);
        };
        if table.slots.is_empty() {
            self.start(&mut table);
        }
        // SLOTS is a power of two no larger than 2^16; truncating the hash
        // is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (XxHash3_64::oneshot(args) as usize) & (SLOTS - 1);
        let Table {
            slots, held, pins, ..
        } = &mut *table;
        let Some(slot) = slots.get_mut(index) else {
            return self.unremembered(args);
        };
        if let Some(found) = slot.as_mut().filter(|s| same_bytes(&s.args, args)) {
            if entry {
                // `Some(upgraded)`: an entry to read.
                let readable = match &found.entry {
                    Held::Nothing => None,
                    Held::Strong(..) => Some(None),
                    Held::Weak(weak) => weak.upgrade().map(Some),
                };
                if let Some(upgraded) = readable {
                    return Recall::Entry(Recalled {
                        table,
                        index,
                        upgraded,
                    });
                }
                // Gone from memory: it will not serve again.
                Table::release(held, pins, &mut found.entry);
            }
            return Recall::Key(CallKey {
                key: found.key.clone(),
                from: Origin::table(index, true),
            });
        }
        let key = self.derive(args);
        if let Some(mut old) = slot.replace(Slot {
            args: args.into(),
            key: key.clone(),
            entry: Held::Nothing,
        }) {
            Table::release(held, pins, &mut old.entry);
        }
        Recall::Key(CallKey {
            key,
            from: Origin::table(index, false),
        })
    }
}

/// `a == b`, without a call into `memcmp` for the few bytes most argument
/// lists encode to (a `u64` id is two): the compare is inline, two
/// overlapping loads per side. Longer slices compare as usual.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at + N)?.try_into().ok()
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word(b, 0) && word::<4>(a, n - 4) == word(b, n - 4),
        8..=16 => word::<8>(a, 0) == word(b, 0) && word::<8>(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("prefix", &self.builder.prefix())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "memo/tests.rs"]
mod tests;
