//! Remembered calls: the shortcut behind a `#[cached]` function's L1 hit.
//!
//! Deriving an interop key costs a canonical encoding, a Blake2b-256 and a
//! hex encoding, and reading L1 costs moka's hashing and probe. A
//! [`RecentCalls`] keeps, per thread, a small direct-mapped table from the
//! canonical bytes of recent argument lists (indexed by their xxh3) to
//! their key and, for arguments seen more than once, a reference to their
//! L1 entry ([`L1Ref`]). A slot matches only if its stored bytes equal the
//! call's exactly, so a hash collision (accidental or crafted) costs a
//! Blake2b, never a wrong key.
//!
//! There is one entry point, [`RecentCalls::probe`]: the call's argument
//! bytes in, a [`Probe`] out: the remembered entry (read it in place with
//! [`RememberedEntry::value`]) or the key for the normal lookup. After a
//! normal lookup, [`RecentCalls::remember`] records the entry it left in L1.
//!
//! Each thread has its own table: a shared one needs a lock per lookup,
//! and that lock, plus the reference counts a shared slot needs to hand
//! out its entry, cost as much as the rest of an L1 hit together. Why the
//! types are shaped as they are (word-sized fields, two-variant enums) is
//! measured in `docs/performance.md` ("The remembered-entry shortcut").
//!
//! Not a public API: `#[cached]`'s generated code and its runtime (the
//! facade's `__private`) are the only callers.

use std::cell::RefMut;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use serde::Serialize;
use twox_hash::XxHash3_64;

use crate::error::Result;
use crate::keys::{blake2b, with_canonical_args, KeyBuilder};
use crate::memory::PinBudget;
use crate::TieredCache;

mod l1_ref;
mod table;

pub use l1_ref::{L1Ref, WeakL1Ref};

#[cfg(test)]
use table::HELD_BYTES;
use table::{Held, Slot, Table, Tables};

/// Slots per thread; a power of two.
const SLOTS: usize = 128;
const _: () = assert!(SLOTS.is_power_of_two() && SLOTS <= 1 << 16);
/// Argument lists longer than this are not remembered: their Blake2b is
/// no longer small next to a copy, and they would make the table large.
const MAX_REMEMBERED_ARGS: usize = 256;
/// What the threads of a [`RecentCalls::new`] (one not tied to a cache's L1
/// budget) may keep alive together.
const UNTIED_PINS: usize = 1024 * 1024;

/// The recent calls of one function, per thread: their keys and where
/// their values are in L1.
///
/// It gives exactly the keys its builder gives; it only avoids recomputing
/// them. Each thread that uses it keeps up to 128 keys (about 12 KiB with
/// short arguments) and up to 64 KiB of remembered L1 values, which stay in
/// memory after L1 evicts them until the thread next looks at that slot or
/// exits. All threads together keep at most a sixteenth of the L1 budget
/// alive so (for every `RecentCalls` made with
/// [`for_cache`](Self::for_cache) on that cache; 1 MiB for one made with
/// [`new`](Self::new)); values beyond that are remembered without keeping
/// them alive. Arguments whose canonical encoding exceeds 256 bytes are
/// derived every time.
pub struct RecentCalls {
    builder: KeyBuilder,
    tables: Arc<Tables>,
}

/// What a probe wants: the remembered entry (a call), or only the key
/// (`_refresh`, `_invalidate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The remembered entry, else the key.
    Entry,
    /// The key only.
    Key,
}

/// What [`RecentCalls::probe`] found.
#[derive(Debug)]
pub enum Probe<'a> {
    /// The L1 entry remembered for these arguments, to read in place.
    Remembered(RememberedEntry<'a>),
    /// No remembered entry: the key, for the normal lookup. `None` (only
    /// ever made by callers) means no key: the call runs uncached.
    ///
    /// (Two variants, not a third for "uncached": with three, `Probe` no
    /// longer fits the one spare value of the table pointer and gets a tag
    /// of its own, which the compiler moved with partial stores and wide
    /// loads; see `docs/performance.md`.)
    Key(Option<CallKey>),
}

/// The L1 entry remembered for one call's arguments, borrowed from this
/// thread's table until dropped.
///
/// Read it with [`value`](Self::value); if that gives nothing,
/// [`forget`](Self::forget) it to get the key for the normal lookup. While
/// it lives, a probe on the same `RecentCalls` and thread derives its key
/// afresh.
pub struct RememberedEntry<'a> {
    table: RefMut<'a, Table>,
    /// A whole word, like [`CallKey`]'s `from`, which shares these bytes
    /// in [`Probe`] (a narrower field stalled every remembered hit; see
    /// `docs/performance.md`).
    index: usize,
    /// The entry of a weakly held slot, upgraded for this read.
    upgraded: Option<L1Ref>,
}

impl RememberedEntry<'_> {
    /// The remembered entry's value, borrowed from it and counted as a hit
    /// (of `cache`'s L1 and of [`RecentCalls::hits`]), if the entry is
    /// still in L1, fresh, and holds a decoded `T`. `cache` must be the
    /// cache the entry was remembered from.
    #[inline(always)]
    pub fn value<'r, T: crate::Cacheable>(&'r self, cache: &TieredCache) -> Option<&'r T> {
        let value = cache.value_ref::<T>(self.entry()?)?;
        self.hit();
        Some(value)
    }

    #[inline]
    fn entry(&self) -> Option<&L1Ref> {
        if let Some(entry) = &self.upgraded {
            return Some(entry);
        }
        match &self.table.slots.get(self.index)?.as_ref()?.entry {
            Held::Strong(entry, _) => Some(entry),
            Held::Nothing | Held::Weak(_) => None,
        }
    }

    #[inline]
    fn hit(&self) {
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

impl fmt::Debug for RememberedEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberedEntry")
            .field("slot", &self.index)
            .finish_non_exhaustive()
    }
}

/// The key of one call, and where its [`RecentCalls`] keeps it.
#[derive(Debug, Clone)]
pub struct CallKey {
    key: Arc<str>,
    from: Origin,
}

/// Where a [`CallKey`] came from, in one word: the slot that keeps it, if
/// any, and whether it was found there (these arguments were seen
/// recently) rather than just put there. One field, not an `Option<u16>`
/// and a `bool`, so that the key is small (it is moved through every call)
/// and moves as whole words (see [`RememberedEntry`]'s `index`).
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
    #[inline]
    pub fn shared(&self) -> &Arc<str> {
        &self.key
    }

    /// Whether the same arguments were probed recently on this thread
    /// (their key came from the table).
    fn is_repeat(&self) -> bool {
        self.from.repeat()
    }
}

impl RecentCalls {
    /// The recent calls of `builder`'s function, whose threads keep at most
    /// 1 MiB of remembered values alive together.
    pub fn new(builder: KeyBuilder) -> Self {
        Self {
            builder,
            tables: Arc::new(Tables::new(Arc::new(PinBudget::new(UNTIED_PINS)))),
        }
    }

    /// The recent calls of `builder`'s function on `cache`: the values its
    /// threads keep alive count against the share of `cache`'s L1 budget
    /// set aside for remembered entries (a sixteenth), shared with every
    /// other `RecentCalls` on `cache`.
    pub fn for_cache(builder: KeyBuilder, cache: &TieredCache) -> Self {
        let pins = match cache.l1() {
            Some(l1) => l1.pins().clone(),
            // Without an L1 there is nothing to remember.
            None => Arc::new(PinBudget::new(0)),
        };
        Self {
            builder,
            tables: Arc::new(Tables::new(pins)),
        }
    }

    /// The one lookup: `args` must be exactly the canonical encoding of
    /// the argument tuple (what [`canonical_args`](crate::keys::canonical_args)
    /// gives, or what `#[cached]` writes for plain integers and strings),
    /// or the key is not the interop key. With [`Want::Entry`], the entry
    /// remembered for these arguments on this thread, if any; else the key.
    #[inline(always)]
    pub fn probe(&self, want: Want, args: &[u8]) -> Probe<'_> {
        match want {
            Want::Entry => self.find(args, true),
            Want::Key => Probe::Key(Some(self.key_of(args))),
        }
    }

    /// [`probe`](Self::probe) of arguments encoded the serde way.
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`]: the arguments give no key.
    #[inline]
    pub fn probe_args<A: Serialize + ?Sized>(&self, want: Want, args: &A) -> Result<Probe<'_>> {
        with_canonical_args(args, |bytes| self.probe(want, bytes))
    }

    fn key_of(&self, bytes: &[u8]) -> CallKey {
        match self.find(bytes, false) {
            Probe::Key(Some(call)) => call,
            // Not asked for; never given.
            _ => self.unremembered_key(bytes),
        }
    }

    /// Remembers the entry `call`'s key now has in `cache`'s L1, for the
    /// next probe of the same arguments on this thread. Only for arguments
    /// seen before, so that a function called with ever new arguments pays
    /// no extra L1 lookup; and nothing if the key is no longer kept here
    /// (long arguments, another thread's probe, or its slot went to other
    /// arguments since).
    pub fn remember(&self, call: &CallKey, cache: &TieredCache) {
        if !call.is_repeat() {
            return;
        }
        if let Some(entry) = cache.l1_ref(call.key()) {
            self.remember_entry(call, &entry);
        }
    }

    /// Remembers `entry` as the L1 entry of `call`'s key; `entry` must be
    /// the entry under [`CallKey::key`].
    fn remember_entry(&self, call: &CallKey, entry: &L1Ref) {
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

    /// Calls answered from a remembered entry, on every thread.
    pub fn hits(&self) -> u64 {
        self.tables.hits()
    }

    /// Reads [`hits`](Self::hits), for as long as it is kept (whether or
    /// not `self` is).
    pub fn hits_reader(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let tables = self.tables.clone();
        move || tables.hits()
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

    fn unremembered(&self, args: &[u8]) -> Probe<'_> {
        Probe::Key(Some(self.unremembered_key(args)))
    }

    /// The key of `args`, and with `entry`, the entry remembered for them;
    /// a remembered entry that is gone from memory is forgotten.
    #[inline(always)]
    fn find(&self, args: &[u8], entry: bool) -> Probe<'_> {
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
                    return Probe::Remembered(RememberedEntry {
                        table,
                        index,
                        upgraded,
                    });
                }
                // Gone from memory: it will not serve again.
                Table::release(held, pins, &mut found.entry);
            }
            return Probe::Key(Some(CallKey {
                key: found.key.clone(),
                from: Origin::table(index, true),
            }));
        }
        let key = self.derive(args);
        if let Some(mut old) = slot.replace(Slot {
            args: args.into(),
            key: key.clone(),
            entry: Held::Nothing,
        }) {
            Table::release(held, pins, &mut old.entry);
        }
        Probe::Key(Some(CallKey {
            key,
            from: Origin::table(index, false),
        }))
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

impl fmt::Debug for RecentCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecentCalls")
            .field("prefix", &self.builder.prefix())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
