//! `key1` ... `key16`: the key of a call, from its key arguments.
//!
//! One function per arity, each argument its own parameter, so that an
//! argument that is not `Serialize` is reported at that argument (16 is the
//! largest tuple serde serializes).

use cachekit_core::{KeyBuilder, Result};
use serde::Serialize;

/// The key of a call with 1 key argument.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key1<A1: Serialize + ?Sized>(keys: &KeyBuilder, a1: &A1) -> Result<String> {
    keys.key(&(a1,))
}

/// The key of a call with 2 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key2<A1: Serialize + ?Sized, A2: Serialize + ?Sized>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
) -> Result<String> {
    keys.key(&(a1, a2))
}

/// The key of a call with 3 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key3<A1: Serialize + ?Sized, A2: Serialize + ?Sized, A3: Serialize + ?Sized>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
) -> Result<String> {
    keys.key(&(a1, a2, a3))
}

/// The key of a call with 4 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key4<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4))
}

/// The key of a call with 5 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key5<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5))
}

/// The key of a call with 6 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
pub fn key6<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6))
}

/// The key of a call with 7 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key7<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7))
}

/// The key of a call with 8 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key8<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8))
}

/// The key of a call with 9 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key9<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9))
}

/// The key of a call with 10 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key10<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10))
}

/// The key of a call with 11 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key11<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11))
}

/// The key of a call with 12 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key12<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
    A12: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
    a12: &A12,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12))
}

/// The key of a call with 13 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key13<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
    A12: Serialize + ?Sized,
    A13: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
    a12: &A12,
    a13: &A13,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13))
}

/// The key of a call with 14 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key14<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
    A12: Serialize + ?Sized,
    A13: Serialize + ?Sized,
    A14: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
    a12: &A12,
    a13: &A13,
    a14: &A14,
) -> Result<String> {
    keys.key(&(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14))
}

/// The key of a call with 15 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key15<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
    A12: Serialize + ?Sized,
    A13: Serialize + ?Sized,
    A14: Serialize + ?Sized,
    A15: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
    a12: &A12,
    a13: &A13,
    a14: &A14,
    a15: &A15,
) -> Result<String> {
    keys.key(&(
        a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
    ))
}

/// The key of a call with 16 key arguments.
///
/// # Errors
/// As [`KeyBuilder::key`].
#[allow(clippy::too_many_arguments)]
pub fn key16<
    A1: Serialize + ?Sized,
    A2: Serialize + ?Sized,
    A3: Serialize + ?Sized,
    A4: Serialize + ?Sized,
    A5: Serialize + ?Sized,
    A6: Serialize + ?Sized,
    A7: Serialize + ?Sized,
    A8: Serialize + ?Sized,
    A9: Serialize + ?Sized,
    A10: Serialize + ?Sized,
    A11: Serialize + ?Sized,
    A12: Serialize + ?Sized,
    A13: Serialize + ?Sized,
    A14: Serialize + ?Sized,
    A15: Serialize + ?Sized,
    A16: Serialize + ?Sized,
>(
    keys: &KeyBuilder,
    a1: &A1,
    a2: &A2,
    a3: &A3,
    a4: &A4,
    a5: &A5,
    a6: &A6,
    a7: &A7,
    a8: &A8,
    a9: &A9,
    a10: &A10,
    a11: &A11,
    a12: &A12,
    a13: &A13,
    a14: &A14,
    a15: &A15,
    a16: &A16,
) -> Result<String> {
    keys.key(&(
        a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16,
    ))
}
