//! A call's first step: its key arguments probed in its function's
//! [`RecentCalls`] (the remembered-entry shortcut, see
//! `cachekit_core::remembered`).
//!
//! `key0` ... `key16` take the arguments the serde way, one function per
//! arity and each argument its own parameter, so that an argument that is
//! not `Serialize` is reported at that argument (16 is the largest tuple
//! serde serializes). [`probe_encoded`] takes arguments the generated code
//! encoded itself (plain integers and strings, see [`Arg`]).

use cachekit_core::keys::{ArgBytes, DirectArg};
use cachekit_core::remembered::{Probe, RecentCalls, Want};
use serde::Serialize;

use super::LOG;

/// The serde way; `Key(None)` (logged) when the arguments give no key.
///
/// Out of line: inlined next to the path without serde, its `Result`
/// shared a stack slot with that path's probe and stalled the CPU on every
/// remembered hit (see `docs/performance.md`).
#[inline(never)]
fn probe_serde<'k, A: Serialize + ?Sized>(
    keys: &'k RecentCalls,
    want: Want,
    args: &A,
) -> Probe<'k> {
    match keys.probe_args(want, args) {
        Ok(probe) => probe,
        Err(err) => {
            no_key(keys, &err);
            Probe::Key(None)
        }
    }
}

/// Logs a call whose arguments give no key (it then runs uncached).
#[cold]
fn no_key(keys: &RecentCalls, err: &cachekit_core::Error) {
    tracing::warn!(target: LOG, prefix = keys.builder().prefix(), error = %err, "no cache key for these arguments; calling uncached");
}

/// The probe of arguments encoded without serde; `None` if they did not
/// fit [`ArgBytes`] (the caller then takes the serde path).
#[inline(always)]
pub fn probe_encoded<'k>(keys: &'k RecentCalls, want: Want, args: &ArgBytes) -> Option<Probe<'k>> {
    Some(keys.probe(want, args.bytes()?))
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
        /// The probe of a call with this many key arguments; `Key(None)`
        /// (logged) when they give no key.
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        pub fn $name<'k, $($ty: Serialize + ?Sized),+>(
            keys: &'k RecentCalls,
            want: Want,
            $($arg: &$ty),+
        ) -> Probe<'k> {
            probe_serde(keys, want, &($($arg,)+))
        }
    )+};
}

/// The probe of a call without key arguments.
#[inline(always)]
pub fn key0(keys: &RecentCalls, want: Want) -> Probe<'_> {
    probe_serde(keys, want, &())
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
