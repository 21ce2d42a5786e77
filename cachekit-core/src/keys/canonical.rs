//! The canonical MessagePack encoder behind interop/v1 keys.
//!
//! A `serde::Serializer` that writes into one growable buffer. Maps, structs
//! and sets are written in place and then reordered, so the only extra
//! memory is a shared list of entry offsets and one scratch copy of the
//! region being reordered; both are reused across calls.

/// Writes `Serializer` methods that refuse their input, for the
/// serializers that accept only a few shapes (map keys, the argument root).
macro_rules! reject_methods {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $what:literal;)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<$ret, CanonError> {
                let _ = ($($arg,)*);
                Err(self.reject($what))
            }
        )*
    };
}

mod compound;
mod map_key;
mod seq_only;
mod value;

use std::fmt;

use serde::ser::Serialize;

use crate::error::{Error, ErrorKind};

pub(crate) use seq_only::{SeqMode, SeqOnly};

/// The newtype-struct name by which [`super::Set`] asks this encoder for
/// set semantics. Other serializers treat it as a plain transparent newtype.
pub(crate) const SET_MARKER: &str = "$cachekit::keys::Set";

/// Buffers larger than this are dropped after use instead of kept for the
/// next call, so one huge argument does not pin memory in a thread forever.
const RETAINED_BYTES: usize = 64 * 1024;
const RETAINED_ENTRIES: usize = 4096;

/// Which number rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Key arguments: integral floats collapse to integers so `2.0` and `2`
    /// hash alike, as every interop/v1 implementation does.
    Args,
    /// Values: floats stay float64; otherwise the same canonical form.
    Value,
}

impl Profile {
    fn context(self) -> &'static str {
        match self {
            Self::Args => "cache key arguments",
            Self::Value => "canonical values",
        }
    }
}

/// The serializer's error; converted into [`Error`] at the public boundary.
#[derive(Debug)]
pub(crate) struct CanonError {
    kind: ErrorKind,
    message: String,
}

impl CanonError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// Prefixes the message with the map key or field the error is under.
    pub(crate) fn in_field(mut self, field: &str) -> Self {
        // Long keys are cut so a message stays readable in a log line.
        let shown: String = field.chars().take(64).collect();
        let ellipsis = if shown.len() < field.len() { "..." } else { "" };
        self.message = format!("in `{shown}{ellipsis}`: {}", self.message);
        self
    }

    /// Prefixes the message with the position of the offending argument.
    pub(crate) fn in_argument(mut self, index: usize) -> Self {
        self.message = format!("argument {index}: {}", self.message);
        self
    }
}

impl fmt::Display for CanonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CanonError {}

impl serde::ser::Error for CanonError {
    // A user's `Serialize` impl failed on its own terms: not a bad input we
    // recognised, so it is reported as a serialization failure.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            kind: ErrorKind::Serialization,
            message: msg.to_string(),
        }
    }
}

impl From<CanonError> for Error {
    fn from(err: CanonError) -> Self {
        Error::new(err.kind, err.message)
    }
}

/// Offsets of one map entry or set element inside [`Encoder::out`].
///
/// For maps `key_start..key_end` is the key's UTF-8 payload (without the
/// msgpack header); for set elements it is the whole encoded element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    start: usize,
    key_start: usize,
    key_end: usize,
    end: usize,
}

/// How a buffered region is put in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Map entries by key code points; duplicate keys are an error.
    MapKeys,
    /// Set elements by encoded bytes; duplicates collapse into one.
    SetBytes,
}

/// The canonical encoder; reusable through [`Encoder::reset`].
#[derive(Debug)]
pub(crate) struct Encoder {
    pub(crate) out: Vec<u8>,
    entries: Vec<Entry>,
    scratch: Vec<u8>,
    profile: Profile,
}

impl Encoder {
    pub(crate) const fn new(profile: Profile) -> Self {
        Self {
            out: Vec::new(),
            entries: Vec::new(),
            scratch: Vec::new(),
            profile,
        }
    }

    #[inline]
    pub(crate) fn reset(&mut self, profile: Profile) {
        self.out.clear();
        self.entries.clear();
        self.scratch.clear();
        self.profile = profile;
    }

    /// Drops buffers that grew unusually large, keeping ordinary ones warm.
    #[inline]
    pub(crate) fn release_excess(&mut self) {
        if self.out.capacity() > RETAINED_BYTES {
            self.out = Vec::new();
        }
        if self.scratch.capacity() > RETAINED_BYTES {
            self.scratch = Vec::new();
        }
        if self.entries.capacity() > RETAINED_ENTRIES {
            self.entries = Vec::new();
        }
    }

    /// Encodes `args` as the root argument array.
    pub(crate) fn encode_args<A: Serialize + ?Sized>(
        &mut self,
        args: &A,
    ) -> Result<(), CanonError> {
        args.serialize(SeqOnly::new(self, SeqMode::Root))
    }

    pub(crate) fn encode_value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), CanonError> {
        value.serialize(self)
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        write_uint(&mut self.out, v);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        write_int(&mut self.out, v);
    }

    fn write_i128(&mut self, v: i128) -> Result<(), CanonError> {
        if let Ok(u) = u64::try_from(v) {
            self.write_u64(u);
            Ok(())
        } else if let Ok(i) = i64::try_from(v) {
            self.write_i64(i);
            Ok(())
        } else if v > 0 {
            Err(CanonError::invalid(format!(
                "integer {v} is above 2^64-1, the largest integer {} can hold",
                self.profile.context()
            )))
        } else {
            Err(CanonError::invalid(format!(
                "integer {v} is below -2^63, the smallest integer {} can hold",
                self.profile.context()
            )))
        }
    }

    fn write_f64(&mut self, v: f64) -> Result<(), CanonError> {
        if v.is_nan() {
            return Err(CanonError::invalid(format!(
                "NaN is not allowed in {}",
                self.profile.context()
            )));
        }
        if v.is_infinite() {
            let sign = if v > 0.0 { "+" } else { "-" };
            return Err(CanonError::invalid(format!(
                "{sign}Infinity is not allowed in {}",
                self.profile.context()
            )));
        }
        if self.profile == Profile::Args && v.fract() == 0.0 {
            // 2^64 itself is the first float past u64::MAX, hence the
            // exclusive upper bound; -2^63 is exactly representable.
            if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                self.write_u64(v as u64);
                return Ok(());
            }
            if (-9_223_372_036_854_775_808.0..0.0).contains(&v) {
                self.write_i64(v as i64);
                return Ok(());
            }
        }
        self.out.push(0xcb);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    #[inline]
    pub(crate) fn write_str(&mut self, s: &str) -> Result<(), CanonError> {
        write_str_header(&mut self.out, s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// Writes a string and returns the range of its UTF-8 payload, which is
    /// what map entries are sorted by.
    pub(crate) fn write_key(&mut self, s: &str) -> Result<(usize, usize), CanonError> {
        write_str_header(&mut self.out, s.len())?;
        let start = self.out.len();
        self.out.extend_from_slice(s.as_bytes());
        Ok((start, self.out.len()))
    }

    /// Inserts a header in front of the already written `out[region..]`.
    ///
    /// The header is appended and rotated into place rather than spliced,
    /// which avoids a temporary allocation.
    pub(crate) fn prepend_header(
        &mut self,
        region: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), CanonError>,
    ) -> Result<(), CanonError> {
        let before = self.out.len();
        write(&mut self.out)?;
        let header_len = self.out.len() - before;
        if let Some(tail) = self.out.get_mut(region..) {
            tail.rotate_right(header_len);
        }
        Ok(())
    }

    fn write_bin(&mut self, b: &[u8]) -> Result<(), CanonError> {
        let len = b.len();
        if len <= 0xff {
            self.out.push(0xc4);
            self.out.push(len as u8);
        } else if len <= 0xffff {
            self.out.push(0xc5);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            let len = u32::try_from(len).map_err(|_| too_long("byte string"))?;
            self.out.push(0xc6);
            self.out.extend_from_slice(&len.to_be_bytes());
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    /// Starts a one-entry map `{variant: ...}`, the encoding of enum
    /// variants that carry data.
    fn write_variant_key(&mut self, variant: &str) -> Result<(), CanonError> {
        self.out.push(0x81);
        self.write_str(variant)
    }

    /// Records one buffered entry for [`Encoder::finish_ordered`].
    fn push_entry(&mut self, start: usize, key_start: usize, key_end: usize) {
        let end = self.out.len();
        self.entries.push(Entry {
            start,
            key_start,
            key_end,
            end,
        });
    }

    /// Puts the entries recorded since `base` (all inside `out[region..]`)
    /// in canonical order and writes the map or array header before them.
    pub(crate) fn finish_ordered(
        &mut self,
        region: usize,
        base: usize,
        order: Order,
    ) -> Result<(), CanonError> {
        let Self {
            out,
            entries,
            scratch,
            profile,
        } = self;
        let list = entries.get_mut(base..).unwrap_or_default();
        let key = |e: &Entry| out.get(e.key_start..e.key_end).unwrap_or_default();
        let already_sorted = list.windows(2).all(|w| key(&w[0]) < key(&w[1]));
        if !already_sorted {
            list.sort_unstable_by(|a, b| key(a).cmp(key(b)));
        }
        let mut count = list.len();
        match order {
            Order::MapKeys => {
                if let Some(w) = list.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
                    let name = String::from_utf8_lossy(key(&w[0]));
                    return Err(CanonError::invalid(format!(
                        "duplicate map key {name:?} in {}",
                        profile.context()
                    )));
                }
            }
            Order::SetBytes => {
                count -= list.windows(2).filter(|w| key(&w[0]) == key(&w[1])).count();
            }
        }
        if already_sorted && count == list.len() {
            entries.truncate(base);
            return self.prepend_header(region, |out| match order {
                Order::MapKeys => write_map_header(out, count),
                Order::SetBytes => write_array_header(out, count),
            });
        }
        scratch.clear();
        scratch.extend_from_slice(out.get(region..).unwrap_or_default());
        out.truncate(region);
        match order {
            Order::MapKeys => write_map_header(out, count)?,
            Order::SetBytes => write_array_header(out, count)?,
        }
        let mut previous: Option<&[u8]> = None;
        for e in list.iter() {
            let bytes = scratch
                .get(e.start - region..e.end - region)
                .unwrap_or_default();
            if order == Order::SetBytes && previous == Some(bytes) {
                continue;
            }
            out.extend_from_slice(bytes);
            previous = Some(bytes);
        }
        entries.truncate(base);
        Ok(())
    }
}

fn too_long(what: &str) -> CanonError {
    CanonError::invalid(format!(
        "{what} is longer than MessagePack allows (4 GiB or 2^32-1 elements)"
    ))
}

/// Where the writers below put bytes: the encoder's buffer, or the fixed
/// one of [`ArgBytes`](super::ArgBytes).
pub(crate) trait Out {
    fn push(&mut self, byte: u8);
    fn extend_from_slice(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    #[inline(always)]
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }

    #[inline(always)]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
}

#[inline]
pub(crate) fn write_uint<O: Out>(out: &mut O, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.push(0xcc);
        out.push(v as u8);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
pub(crate) fn write_int<O: Out>(out: &mut O, v: i64) {
    if v >= 0 {
        write_uint(out, v.unsigned_abs());
    } else if v >= -32 {
        out.push(v as u8);
    } else if v >= i64::from(i8::MIN) {
        out.push(0xd0);
        out.push(v as u8);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
pub(crate) fn write_str_header<O: Out>(out: &mut O, len: usize) -> Result<(), CanonError> {
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.push(0xd9);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        let len = u32::try_from(len).map_err(|_| too_long("string"))?;
        out.push(0xdb);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

#[inline]
pub(crate) fn write_array_header<O: Out>(out: &mut O, len: usize) -> Result<(), CanonError> {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        let len = u32::try_from(len).map_err(|_| too_long("sequence"))?;
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn write_map_header(out: &mut Vec<u8>, len: usize) -> Result<(), CanonError> {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        let len = u32::try_from(len).map_err(|_| too_long("map"))?;
        out.push(0xdf);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}
