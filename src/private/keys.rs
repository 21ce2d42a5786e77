//! `key0` ... `key16`: a call's key arguments, looked up in its function's
//! [`KeyCache`].
//!
//! One function per arity, each argument its own parameter, so that an
//! argument that is not `Serialize` is reported at that argument (16 is the
//! largest tuple serde serializes).

use cachekit_core::keys::{ArgBytes, DirectArg, KeyCache, Recall};
use serde::Serialize;

use super::handle::Found;
use super::LOG;

/// What a lookup is for: the remembered L1 entry (a call), or only the
/// key (`_refresh`, `_invalidate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The remembered entry, else the key.
    Entry,
    /// The key only.
    Key,
}

impl Want {
    /// The serde way; `Key(None)` (logged) when the arguments give no key.
    ///
    /// Out of line: inlined next to the path without serde, its `Result`
    /// shared a stack slot with that path's lookup, and the compiler then
    /// moved the entry's last word in pieces (a byte, then the rest) and
    /// read it back whole, a load the CPU cannot forward from the stores.
    /// With the tag `Found` once had (see [`Found::Key`]), such stalls cost
    /// an L1 hit of a small value about a tenth of its time.
    #[inline(never)]
    fn lookup<'k, A: Serialize + ?Sized>(self, keys: &'k KeyCache, args: &A) -> Found<'k> {
        let found = match self {
            Want::Entry => keys.recall(args),
            Want::Key => keys.call_key(args).map(Recall::Key),
        };
        match found {
            Ok(recall) => recall.into(),
            Err(err) => {
                no_key(keys, &err);
                Found::Key(None)
            }
        }
    }
}

/// Logs a call whose arguments give no key (it then runs uncached).
#[cold]
fn no_key(keys: &KeyCache, err: &cachekit_core::Error) {
    tracing::warn!(target: LOG, prefix = keys.builder().prefix(), error = %err, "no cache key for these arguments; calling uncached");
}

impl Want {
    /// The lookup of arguments encoded without serde; `None` if they did
    /// not fit [`ArgBytes`] (the caller then takes the serde path).
    #[inline(always)]
    pub fn lookup_encoded<'k>(self, keys: &'k KeyCache, args: &ArgBytes) -> Option<Found<'k>> {
        let bytes = args.bytes()?;
        Some(match self {
            Want::Entry => keys.recall_encoded(bytes).into(),
            Want::Key => Found::Key(Some(keys.call_key_encoded(bytes))),
        })
    }
}

/// One key argument, wrapped so that the generated code can ask, by method
/// resolution, whether its type encodes without serde: `(&Arg(&x)).push_to(..)`
/// finds [`ViaDirect`] when the type is a [`DirectArg`] (the receiver
/// matches as is), and otherwise [`ViaSerde`] (which needs one more `&`).
/// (A generic function keys by its `key = ...` expression, the serde way.)
#[derive(Debug)]
pub struct Arg<'a, T: ?Sized>(pub &'a T);

/// See [`Arg`]: appends the argument's encoding; `true`.
pub trait ViaDirect {
    /// Appends the argument.
    fn push_to(&self, out: &mut ArgBytes) -> bool;
}

impl<T: DirectArg + ?Sized> ViaDirect for Arg<'_, T> {
    #[inline(always)]
    fn push_to(&self, out: &mut ArgBytes) -> bool {
        out.push(self.0);
        true
    }
}

/// See [`Arg`]: the argument needs serde; `false`.
pub trait ViaSerde {
    /// Does nothing: the argument list takes the serde path.
    #[inline(always)]
    fn push_to(&self, _out: &mut ArgBytes) -> bool {
        false
    }
}

impl<T: ?Sized> ViaSerde for &Arg<'_, T> {}

macro_rules! key_fns {
    ($($name:ident: $($arg:ident $ty:ident),+;)+) => {$(
        /// The lookup of a call with this many key arguments; `Key(None)`
        /// (logged) when they give no key (see [`KeyCache::recall`]).
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        pub fn $name<'k, $($ty: Serialize + ?Sized),+>(
            keys: &'k KeyCache,
            want: Want,
            $($arg: &$ty),+
        ) -> Found<'k> {
            want.lookup(keys, &($($arg,)+))
        }
    )+};
}

/// The lookup of a call without key arguments.
#[inline(always)]
pub fn key0(keys: &KeyCache, want: Want) -> Found<'_> {
    want.lookup(keys, &())
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
