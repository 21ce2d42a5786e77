//! Keys remembered by their arguments, so that a repeated call skips
//! Blake2b.
//!
//! Deriving an interop key costs a canonical encoding, a Blake2b-256 and a
//! hex encoding; on an L1 hit the Blake2b alone was about a third of the
//! whole call. A [`KeyCache`] keeps the keys of recent argument lists in a
//! small direct-mapped table indexed by an xxh3 of the canonical bytes. A
//! slot is a hit only if its stored canonical bytes equal the call's
//! exactly, so a hash collision (accidental or crafted) costs a Blake2b,
//! never a wrong key.
//!
//! A slot can also remember where the key's value sits in L1 (a
//! [`WeakL1Ref`]), so that a repeated call reads its value without looking
//! the key up in moka at all (see [`TieredCache::get_ref`](crate::TieredCache::get_ref)).

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use super::{blake2b, with_canonical_args, KeyBuilder};
use crate::error::Result;
use crate::tiered::{L1Ref, WeakL1Ref};

/// Slots per cache; a power of two.
const SLOTS: usize = 256;
const _: () = assert!(SLOTS.is_power_of_two() && SLOTS <= 1 << 16);
/// Argument lists longer than this are not remembered: their Blake2b is
/// no longer small next to a copy, and they would make the table large.
const MAX_REMEMBERED_ARGS: usize = 256;

/// A [`KeyBuilder`] that remembers the keys of recently seen arguments.
///
/// It gives exactly the keys its builder gives; it only avoids recomputing
/// them. It holds at most 256 keys (about 40 KiB with short arguments);
/// arguments whose canonical encoding exceeds 256 bytes are derived every
/// time.
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
    slots: Box<[RwLock<Option<Slot>>]>,
}

struct Slot {
    args: Box<[u8]>,
    key: Arc<str>,
    /// The key's L1 entry when last seen; weak, so that it never keeps an
    /// evicted value in memory.
    entry: WeakL1Ref,
}

/// The key of one call, with what [`KeyCache`] remembers of its L1 entry.
///
/// ```
/// use std::time::Duration;
/// use cachekit_core::keys::{KeyBuilder, KeyCache};
/// use cachekit_core::TieredCache;
///
/// # fn main() -> cachekit_core::Result<()> {
/// let cache = TieredCache::builder().build()?;
/// let keys = KeyCache::new(KeyBuilder::new("users", "get_user")?);
/// let get_user = |id: u64| -> cachekit_core::Result<String> {
///     let call = keys.lookup(&(id,))?;
///     // Fast path: the entry this key had last time, if it is still in L1.
///     if let Some(name) = call.entry().and_then(|e| cache.get_ref::<String>(e)) {
///         return Ok(name);
///     }
///     let ttl = Some(Duration::from_secs(60));
///     let name = cache.get_or_compute_blocking(call.key(), ttl, || format!("user {id}"));
///     if let Some(entry) = cache.l1_ref(call.key()) {
///         keys.remember(&call, &entry);
///     }
///     Ok(name)
/// };
/// assert_eq!(get_user(42)?, "user 42"); // computed
/// assert_eq!(get_user(42)?, "user 42"); // read from the remembered entry
/// assert_eq!(cache.stats().computes, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CallKey {
    key: Arc<str>,
    entry: Option<L1Ref>,
    /// The slot the key came from; `None` when it is not remembered. (A
    /// `u16` keeps the whole key small: it is moved through every call.)
    slot: Option<u16>,
    /// The key was found in the table: these arguments were seen recently.
    repeat: bool,
}

impl CallKey {
    /// The interop key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The L1 entry remembered for this key, if any and if it is still in
    /// memory; it may have left L1 since (see [`L1Ref`]).
    pub fn entry(&self) -> Option<&L1Ref> {
        self.entry.as_ref()
    }

    /// Whether the same arguments were looked up recently (their key came
    /// from the table). Remembering an entry only pays off for repeated
    /// arguments: a function called with many different ones would spend
    /// an extra L1 lookup per call on entries no later call reads.
    pub fn is_repeat(&self) -> bool {
        self.repeat
    }
}

impl KeyCache {
    /// A cache of `builder`'s keys.
    pub fn new(builder: KeyBuilder) -> Self {
        Self {
            builder,
            slots: (0..SLOTS).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// The key for `args`, as [`KeyBuilder::key`] derives it.
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<Arc<str>> {
        with_canonical_args(args, |bytes| self.find(bytes, false).key)
    }

    /// The key for `args`, with the L1 entry remembered for it (see
    /// [`remember`](Self::remember)).
    ///
    /// # Errors
    ///
    /// As [`KeyBuilder::key`].
    pub fn lookup<A: Serialize + ?Sized>(&self, args: &A) -> Result<CallKey> {
        with_canonical_args(args, |bytes| self.find(bytes, true))
    }

    /// Remembers `entry` as the L1 entry of `call`'s key, for the next
    /// [`lookup`](Self::lookup) of the same arguments; `entry` must be the
    /// entry under [`CallKey::key`]. Does nothing if the key is not
    /// remembered (long arguments, or its slot went to other arguments since).
    pub fn remember(&self, call: &CallKey, entry: &L1Ref) {
        if call.entry.as_ref().is_some_and(|e| e.same_entry(entry)) {
            return;
        }
        let Some(slot) = call.slot.and_then(|i| self.slots.get(usize::from(i))) else {
            return;
        };
        let mut slot = slot.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slot.as_mut().filter(|s| Arc::ptr_eq(&s.key, &call.key)) {
            slot.entry = entry.downgrade();
        }
    }

    /// The builder whose keys this remembers.
    pub fn builder(&self) -> &KeyBuilder {
        &self.builder
    }

    fn find(&self, args: &[u8], with_entry: bool) -> CallKey {
        let derive = || -> Arc<str> { self.builder.compose(&blake2b(args)).into() };
        if args.len() > MAX_REMEMBERED_ARGS {
            return CallKey {
                key: derive(),
                entry: None,
                slot: None,
                repeat: false,
            };
        }
        // SLOTS is a power of two no larger than 2^16; truncating the hash
        // is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (xxh3_64(args) as u16) & (SLOTS - 1) as u16;
        let Some(slot) = self.slots.get(usize::from(index)) else {
            return CallKey {
                key: derive(),
                entry: None,
                slot: None,
                repeat: false,
            };
        };
        // Nothing that can panic runs under these locks, so a poisoned one
        // still holds a consistent slot.
        if let Some(found) = slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|s| *s.args == *args)
        {
            return CallKey {
                key: found.key.clone(),
                entry: if with_entry {
                    found.entry.upgrade()
                } else {
                    None
                },
                slot: Some(index),
                repeat: true,
            };
        }
        let key = derive();
        *slot.write().unwrap_or_else(PoisonError::into_inner) = Some(Slot {
            args: args.into(),
            key: key.clone(),
            entry: WeakL1Ref::default(),
        });
        CallKey {
            key,
            entry: None,
            slot: Some(index),
            repeat: false,
        }
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
mod tests {
    use super::*;

    fn builder() -> KeyBuilder {
        KeyBuilder::new("users", "get_user").unwrap()
    }

    #[test]
    fn gives_the_builders_keys_first_time_and_after() {
        let keys = KeyCache::new(builder());
        for round in 0..3 {
            for id in 0..1_000_u64 {
                let want = builder().key(&(id, "en")).unwrap();
                assert_eq!(&*keys.key(&(id, "en")).unwrap(), want, "round {round}");
            }
        }
    }

    #[test]
    fn equal_encodings_share_a_key_and_different_ones_never_do() {
        let keys = KeyCache::new(builder());
        // 2.0 and 2 encode identically (interop rule), so they must agree.
        assert_eq!(keys.key(&(2.0,)).unwrap(), keys.key(&(2,)).unwrap());
        // Fill every slot, then make sure nothing returns another's key.
        let all: Vec<_> = (0..2_000_u64).map(|i| keys.key(&(i,)).unwrap()).collect();
        for (i, key) in all.iter().enumerate().rev() {
            assert_eq!(keys.key(&(i as u64,)).unwrap(), *key);
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn long_arguments_are_derived_not_remembered() {
        let keys = KeyCache::new(builder());
        let long = "x".repeat(MAX_REMEMBERED_ARGS * 2);
        let want = builder().key(&(&long,)).unwrap();
        assert_eq!(&*keys.key(&(&long,)).unwrap(), want);
        assert!(!keys.lookup(&(&long,)).unwrap().is_repeat());
        assert!(keys
            .slots
            .iter()
            .all(|s| s.read().unwrap().as_ref().is_none()));
    }

    #[test]
    fn remembers_an_entry_for_its_own_arguments_only() {
        let cache = crate::TieredCache::builder().build().unwrap();
        let keys = KeyCache::new(builder());
        let call = keys.lookup(&(1,)).unwrap();
        assert!(call.entry().is_none() && !call.is_repeat());
        cache.set_blocking(call.key(), &1_u64, None).unwrap();
        let entry = cache.l1_ref(call.key()).unwrap();
        keys.remember(&call, &entry);
        let again = keys.lookup(&(1,)).unwrap();
        assert!(again.is_repeat());
        assert!(again.entry().is_some_and(|e| e.same_entry(&entry)));
        assert_eq!(cache.get_ref::<u64>(again.entry().unwrap()), Some(1));

        // Other arguments take over the slot: the old call's entry must not
        // be remembered for them.
        let other = (2..100_000_u64)
            .find(|id| keys.lookup(&(*id,)).unwrap().slot == call.slot)
            .expect("some argument shares the slot");
        keys.remember(&call, &entry);
        let taken = keys.lookup(&(other,)).unwrap();
        assert!(taken.entry().is_none());
        assert_ne!(taken.key(), call.key());
    }

    #[test]
    fn errors_are_the_builders() {
        let keys = KeyCache::new(builder());
        let err = keys.key(&(f64::NAN,)).unwrap_err();
        assert_eq!(
            err.to_string(),
            builder().key(&(f64::NAN,)).unwrap_err().to_string()
        );
    }
}
