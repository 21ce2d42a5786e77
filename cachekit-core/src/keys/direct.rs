//! The canonical encoding of plain argument lists, written without serde.
//!
//! Most cached functions take an id or a name. Going through serde to
//! encode one (the thread's reusable encoder, the sequence collector, the
//! value serializer) cost more than the rest of a remembered L1 hit
//! together. Integers, booleans, characters and strings encode here
//! instead, with the canonical encoder's own writers, into a buffer on the
//! stack; the bytes are the same, so the key is the same. Anything else,
//! or a list too long for the buffer, takes the serde path.

use super::canonical::{write_array_header, write_int, write_str_header, write_uint, Out};

/// Room for the encoded list; a longer one takes the serde path.
const CAPACITY: usize = 96;

/// The canonical encoding of an argument list, built one argument at a
/// time on the stack (see [`DirectArg`]).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ArgBytes {
    buf: [u8; CAPACITY],
    len: usize,
    /// Something did not fit (or could not be encoded): unusable.
    spilled: bool,
}

impl ArgBytes {
    /// An empty list of `count` arguments: its array header.
    #[inline]
    pub fn new(count: usize) -> Self {
        let mut bytes = Self {
            buf: [0; CAPACITY],
            len: 0,
            spilled: false,
        };
        if write_array_header(&mut bytes, count).is_err() {
            bytes.spilled = true;
        }
        bytes
    }

    /// Appends one argument.
    #[inline]
    pub fn push<T: DirectArg + ?Sized>(&mut self, arg: &T) {
        arg.encode_direct(self);
    }

    /// The encoded list; `None` if it did not fit.
    #[inline]
    pub fn bytes(&self) -> Option<&[u8]> {
        if self.spilled {
            return None;
        }
        self.buf.get(..self.len)
    }
}

impl Out for ArgBytes {
    #[inline(always)]
    fn push(&mut self, byte: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.spilled = true,
        }
    }

    #[inline(always)]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dest) => {
                dest.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.spilled = true,
        }
    }
}

/// An argument type whose canonical encoding [`ArgBytes`] writes directly,
/// byte for byte what its `Serialize` impl gives the canonical encoder.
#[doc(hidden)]
pub trait DirectArg {
    /// Appends the encoding of `self`.
    fn encode_direct(&self, out: &mut ArgBytes);
}

/// Integers widen losslessly to the `u64` or `i64` the canonical encoder
/// writes them as.
macro_rules! direct_ints {
    ($write:ident as $wide:ty: $($ty:ty),+) => {$(
        impl DirectArg for $ty {
            #[inline(always)]
            fn encode_direct(&self, out: &mut ArgBytes) {
                #[allow(clippy::cast_lossless, trivial_numeric_casts)]
                $write(out, *self as $wide);
            }
        }
    )+};
}

direct_ints!(write_uint as u64: u8, u16, u32, u64, usize);
direct_ints!(write_int as i64: i8, i16, i32, i64, isize);

impl DirectArg for bool {
    #[inline(always)]
    fn encode_direct(&self, out: &mut ArgBytes) {
        Out::push(out, if *self { 0xc3 } else { 0xc2 });
    }
}

impl DirectArg for str {
    #[inline(always)]
    fn encode_direct(&self, out: &mut ArgBytes) {
        if write_str_header(out, self.len()).is_err() {
            out.spilled = true;
            return;
        }
        Out::extend_from_slice(out, self.as_bytes());
    }
}

impl DirectArg for String {
    #[inline(always)]
    fn encode_direct(&self, out: &mut ArgBytes) {
        self.as_str().encode_direct(out);
    }
}

impl DirectArg for char {
    #[inline(always)]
    fn encode_direct(&self, out: &mut ArgBytes) {
        self.encode_utf8(&mut [0; 4]).encode_direct(out);
    }
}

impl<T: DirectArg + ?Sized> DirectArg for &T {
    #[inline(always)]
    fn encode_direct(&self, out: &mut ArgBytes) {
        (**self).encode_direct(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::with_canonical_args;
    use serde::Serialize;

    fn canonical<A: Serialize>(args: &A) -> Vec<u8> {
        with_canonical_args(args, <[u8]>::to_vec).expect("canonical")
    }

    fn direct1<T: DirectArg + ?Sized>(arg: &T) -> Option<Vec<u8>> {
        let mut bytes = ArgBytes::new(1);
        bytes.push(arg);
        bytes.bytes().map(<[u8]>::to_vec)
    }

    /// `v` in each of these types it fits, encoded both ways.
    macro_rules! same_in_every_width {
        ($v:expr, $($ty:ty),+) => {$(
            if let Ok(v) = <$ty>::try_from($v) {
                assert_eq!(direct1(&v), Some(canonical(&(v,))), "{} {v}", stringify!($ty));
            }
        )+};
    }

    /// Every boundary of every integer width, and a spread between.
    #[test]
    #[allow(irrefutable_let_patterns)] // `u64::try_from(u64)`
    fn integers_encode_as_the_canonical_encoder_does() {
        let mut unsigned: Vec<u64> = vec![0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000];
        unsigned.extend([0xffff_ffff, 0x1_0000_0000, u64::MAX, u64::MAX - 1]);
        unsigned.extend((0..64).map(|shift| 0x9e37_79b9_7f4a_7c15_u64 >> shift));
        for v in unsigned {
            same_in_every_width!(v, u64, u32, u16, u8, usize);
        }
        let mut signed: Vec<i64> = vec![0, -1, -32, -33, -128, -129, -32768, -32769];
        signed.extend([
            i64::from(i32::MIN),
            i64::from(i32::MIN) - 1,
            i64::MIN,
            i64::MAX,
            127,
        ]);
        signed.extend((0..64).map(|shift| -(0x1234_5678_9abc_def0_i64 >> shift)));
        for v in signed {
            same_in_every_width!(v, i64, i32, i16, i8, isize);
        }
    }

    #[test]
    fn strings_chars_and_bools_encode_as_the_canonical_encoder_does() {
        let (x31, y32) = ("x".repeat(31), "y".repeat(32));
        for s in ["", "a", "user:42", "ünïcödé ✓", x31.as_str(), y32.as_str()] {
            assert_eq!(direct1(s), Some(canonical(&(s,))), "str {s:?}");
            let owned = s.to_owned();
            assert_eq!(direct1(&owned), Some(canonical(&(&owned,))), "String {s:?}");
        }
        for c in ['a', 'é', '✓', '🦀'] {
            assert_eq!(direct1(&c), Some(canonical(&(c,))), "char {c:?}");
        }
        for b in [true, false] {
            assert_eq!(direct1(&b), Some(canonical(&(b,))), "bool {b}");
        }
    }

    #[test]
    fn argument_lists_encode_as_tuples_do() {
        let mut bytes = ArgBytes::new(3);
        bytes.push(&7_u64);
        bytes.push("eu-west");
        bytes.push(&-3_i32);
        assert_eq!(
            bytes.bytes(),
            Some(&canonical(&(7_u64, "eu-west", -3_i32))[..])
        );

        let mut sixteen = ArgBytes::new(16);
        (0..16_u8).for_each(|i| sixteen.push(&i));
        let tuple = (
            0_u8, 1_u8, 2_u8, 3_u8, 4_u8, 5_u8, 6_u8, 7_u8, 8_u8, 9_u8, 10_u8, 11_u8,
        );
        let rest = (12_u8, 13_u8, 14_u8, 15_u8);
        let expected = canonical(&(
            tuple.0, tuple.1, tuple.2, tuple.3, tuple.4, tuple.5, tuple.6, tuple.7, tuple.8,
            tuple.9, tuple.10, tuple.11, rest.0, rest.1, rest.2, rest.3,
        ));
        assert_eq!(sixteen.bytes(), Some(&expected[..]));
    }

    #[test]
    fn a_list_that_does_not_fit_is_refused_not_cut() {
        let mut bytes = ArgBytes::new(2);
        bytes.push("short");
        bytes.push(&*"z".repeat(CAPACITY));
        assert_eq!(bytes.bytes(), None);
        assert_eq!(
            direct1(&*"z".repeat(CAPACITY - 3)).map(|b| b.len()),
            Some(CAPACITY)
        );
    }
}
