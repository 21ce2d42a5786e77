//! `key0` ... `key16`: a call's key arguments, looked up in its function's
//! [`KeyCache`].
//!
//! One function per arity, each argument its own parameter, so that an
//! argument that is not `Serialize` is reported at that argument (16 is the
//! largest tuple serde serializes).

use cachekit_core::keys::{KeyCache, Lookup};
use cachekit_core::{Cacheable, Result, TieredCache};
use serde::Serialize;

/// What a lookup may read: the remembered L1 entry's value as a `T`, from
/// this cache, into the caller's slot; or nothing (the key only).
///
/// The value goes straight to the caller's slot rather than back up through
/// every layer of the lookup: a 100-byte value moved a dozen times was a
/// tenth of an L1 hit.
#[derive(Debug)]
pub struct Read<'a, T> {
    into: Option<(&'a TieredCache, &'a mut Option<T>)>,
}

impl<'a, T: Cacheable> Read<'a, T> {
    /// Reads the remembered entry's value from `cache` into `slot`.
    pub(super) fn value_into(cache: &'a TieredCache, slot: &'a mut Option<T>) -> Self {
        Self {
            into: Some((cache, slot)),
        }
    }

    /// Reads nothing: the lookup gives the key.
    pub(super) fn key_only() -> Self {
        Self { into: None }
    }

    fn lookup<A: Serialize + ?Sized>(self, keys: &KeyCache, args: &A) -> Result<Lookup<()>> {
        match self.into {
            Some((cache, slot)) => keys.lookup(args, |entry| {
                *slot = cache.get_ref::<T>(entry);
                slot.is_some().then_some(())
            }),
            None => keys.call_key(args).map(Lookup::Key),
        }
    }
}

macro_rules! key_fns {
    ($($name:ident: $($arg:ident $ty:ident),+;)+) => {$(
        /// The lookup of a call with this many key arguments.
        ///
        /// # Errors
        /// As [`KeyCache::lookup`].
        #[allow(clippy::too_many_arguments)]
        pub fn $name<T: Cacheable, $($ty: Serialize + ?Sized),+>(
            keys: &KeyCache,
            read: Read<'_, T>,
            $($arg: &$ty),+
        ) -> Result<Lookup<()>> {
            read.lookup(keys, &($($arg,)+))
        }
    )+};
}

/// The lookup of a call without key arguments.
///
/// # Errors
/// As [`KeyCache::lookup`].
pub fn key0<T: Cacheable>(keys: &KeyCache, read: Read<'_, T>) -> Result<Lookup<()>> {
    read.lookup(keys, &())
}

key_fns! {
    key1: a1 A1;
    key2: a1 A1, a2 A2;
    key3: a1 A1, a2 A2, a3 A3;
    key4: a1 A1, a2 A2, a3 A3, a4 A4;
    key5: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5;
    key6: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6;
    key7: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7;
    key8: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8;
    key9: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9;
    key10: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10;
    key11: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11;
    key12: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11,
        a12 A12;
    key13: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11,
        a12 A12, a13 A13;
    key14: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11,
        a12 A12, a13 A13, a14 A14;
    key15: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11,
        a12 A12, a13 A13, a14 A14, a15 A15;
    key16: a1 A1, a2 A2, a3 A3, a4 A4, a5 A5, a6 A6, a7 A7, a8 A8, a9 A9, a10 A10, a11 A11,
        a12 A12, a13 A13, a14 A14, a15 A15, a16 A16;
}
