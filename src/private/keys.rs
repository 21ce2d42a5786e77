//! `key0` ... `key16`: the key of a call, from its key arguments.
//!
//! One function per arity, each argument its own parameter, so that an
//! argument that is not `Serialize` is reported at that argument (16 is the
//! largest tuple serde serializes).

use cachekit_core::keys::{CallKey, KeyCache};
use cachekit_core::Result;
use serde::Serialize;

macro_rules! key_fns {
    ($($name:ident: $($arg:ident $ty:ident),+;)+) => {$(
        /// The key of a call with this many key arguments.
        ///
        /// # Errors
        /// As [`KeyCache::lookup`].
        #[allow(clippy::too_many_arguments)]
        pub fn $name<$($ty: Serialize + ?Sized),+>(keys: &KeyCache, $($arg: &$ty),+) -> Result<CallKey> {
            keys.lookup(&($($arg,)+))
        }
    )+};
}

/// The key of a call without key arguments.
///
/// # Errors
/// As [`KeyCache::lookup`].
pub fn key0(keys: &KeyCache) -> Result<CallKey> {
    keys.lookup(&())
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
