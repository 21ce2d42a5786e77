//! Values on the wire: MessagePack (rmp-serde) inside a small versioned envelope.
//!
//! ```text
//! offset  size  field
//! 0       2     magic 0xC1 0x4B ("\xC1K"); 0xC1 is never valid MessagePack,
//!               so an envelope cannot be mistaken for a plain MessagePack value
//! 2       1     format version (1)
//! 3       1     flags: bit 0 = payload is LZ4 block-compressed; other bits must be 0
//! 4       4     u32 big-endian length of the uncompressed payload
//! 8       8     u64 big-endian xxh3-64 of the uncompressed payload
//! 16      ...   payload (MessagePack, structs as maps), maybe LZ4-compressed
//! ```
//!
//! Encoding serializes into a buffer the thread reuses and copies the
//! envelope out at its exact size. LZ4 runs on payloads of at least
//! [`CodecConfig::compress_threshold`] bytes, and is kept only if it shrinks
//! them; from 8 KiB on it first runs on a 2 KiB sample taken across the
//! payload, and the payload stays raw unless the sample shrinks by a
//! sixteenth, so random or already-compressed data is not compressed in vain.
//!
//! Decoding checks every field before it allocates: the declared length must
//! be within the configured maximum and within what LZ4 can expand the input
//! to, and the checksum must match. The payload must then nest no deeper than
//! [`CodecConfig::max_depth`], found by a scan without recursion before serde
//! recurses into it; values deeper than that are refused when encoding too.
//! Anything else is an
//! [`ErrorKind::Serialization`] error, which the tiered cache turns into a miss
//! that deletes the entry.

use std::cell::RefCell;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use twox_hash::XxHash3_64;

use crate::error::{Error, ErrorKind, Result};

mod depth;
mod interop;

use self::depth::Depth;

const MAGIC: [u8; 2] = [0xC1, 0x4B];
const VERSION: u8 = 1;
const FLAG_LZ4: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_LZ4;
/// Size of the envelope header in bytes.
pub const HEADER_LEN: usize = 16;
/// LZ4 block format cannot expand data by more than this factor.
const LZ4_MAX_RATIO: usize = 255;

/// Tunables of the value codec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodecConfig {
    /// Payloads of at least this many bytes are LZ4-compressed (kept only if
    /// that makes them smaller; from 8 KiB on, only if a 2 KiB sample taken
    /// across the payload shrinks by a sixteenth). Default 4 KiB;
    /// `usize::MAX` disables compression.
    pub compress_threshold: usize,
    /// The largest uncompressed payload accepted when encoding or decoding.
    /// Default 32 MiB.
    pub max_value_size: usize,
    /// The most arrays and maps a value may nest inside one another (a
    /// struct is a map, and so is an enum variant with data). Deeper values
    /// are refused when encoding and when decoding, before serde recurses
    /// into them. Default 64: a debug build spends up to about 20 KiB of
    /// stack per level, and tokio's worker threads have 2 MiB.
    pub max_depth: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            compress_threshold: 4 * 1024,
            max_value_size: 32 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

impl CodecConfig {
    /// Sets [`compress_threshold`](Self::compress_threshold).
    #[must_use]
    pub fn compress_threshold(mut self, bytes: usize) -> Self {
        self.compress_threshold = bytes;
        self
    }

    /// Sets [`max_depth`](Self::max_depth).
    #[must_use]
    pub fn max_depth(mut self, levels: usize) -> Self {
        self.max_depth = levels;
        self
    }

    /// Sets [`max_value_size`](Self::max_value_size).
    #[must_use]
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }
}

/// How a cache writes values: cachekit's own envelope, or the cachekit
/// family's interop/v1 document that cachekit-py and cachekit-rs read too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueFormat {
    /// MessagePack inside a 16-byte envelope: a checksum, LZ4 for large
    /// values, a version. Read by this library only.
    #[default]
    Envelope,
    /// One canonical MessagePack document (interop/v1: sorted map keys,
    /// floats stay float64, no compression), byte for byte what the family
    /// writes in interop mode. A stored value that does not decode is
    /// left in place: another language may read it fine.
    Interop,
}

impl ValueFormat {
    /// The format's name in the family's AAD (encrypted values bind it).
    pub(crate) fn aad_name(self) -> &'static str {
        match self {
            Self::Envelope => "cachekit-rs-envelope",
            Self::Interop => "msgpack",
        }
    }
}

/// What a stored value is, judged by its first bytes alone: it decides what
/// a read does with a value it cannot decode. The one place the codec tells
/// its own values from others; a reader of other formats extends it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Starts with the envelope magic and a version this build reads: a
    /// cachekit value. If it does not decode, it is damaged (bad checksum,
    /// cut short) or holds another type, and is deleted.
    Envelope,
    /// Anything else: another library's value, a Python cachekit frame,
    /// plain text, fewer than two bytes, or an envelope of a version this
    /// build does not read (a newer writer's). Left in place.
    Foreign,
}

impl Origin {
    /// The origin of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        match bytes {
            [m0, m1, version, ..] if [*m0, *m1] == MAGIC && *version == VERSION => Self::Envelope,
            // Magic, then nothing: an envelope cut short.
            [m0, m1] if [*m0, *m1] == MAGIC => Self::Envelope,
            _ => Self::Foreign,
        }
    }
}

/// Encodes values into envelopes and back.
///
/// ```
/// use cachekit::{Codec, CodecConfig};
///
/// let codec = Codec::new(CodecConfig::default());
/// let bytes = codec.encode(&("alice", 30u8))?;
/// let back: (String, u8) = codec.decode(&bytes)?;
/// assert_eq!(back, ("alice".to_string(), 30));
/// # Ok::<(), cachekit::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Codec {
    config: CodecConfig,
}

impl Codec {
    /// A codec with the given limits.
    pub fn new(config: CodecConfig) -> Self {
        Self { config }
    }

    /// The limits in force.
    pub fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// Serializes `value` with rmp-serde and wraps it in an envelope.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] if serde fails, [`ErrorKind::TooLarge`]
    /// if the payload exceeds [`CodecConfig::max_value_size`].
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        with_scratch(|scratch| self.encode_in(value, scratch))
    }

    fn encode_in<T: Serialize + ?Sized>(&self, value: &T, scratch: &mut Scratch) -> Result<Bytes> {
        let Scratch { payload, packed } = scratch;
        payload.clear();
        payload.resize(HEADER_LEN, 0);
        rmp_serde::encode::write_named(payload, value).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("cannot encode value as MessagePack: {e}"),
            )
        })?;
        let raw = &payload[HEADER_LEN..];
        let len = raw.len();
        self.check_size(len)?;
        if depth::scan(raw, self.config.max_depth) == Depth::Deeper {
            return Err(self.too_deep());
        }
        let checksum = XxHash3_64::oneshot(raw);
        if len >= self.config.compress_threshold && lz4_may_pay(raw, packed) {
            grow(
                packed,
                HEADER_LEN + lz4_flex::block::get_maximum_output_size(len),
            );
            if let Ok(n) = lz4_flex::block::compress_into(raw, &mut packed[HEADER_LEN..]) {
                if n < len {
                    return Ok(seal(packed, header(FLAG_LZ4, len, checksum), n));
                }
            }
        }
        Ok(seal(payload, header(0, len, checksum), len))
    }

    /// Checks and unwraps an envelope, then deserializes its payload.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] for anything that is not a valid envelope
    /// holding a `T`; [`ErrorKind::TooLarge`] if the declared size exceeds the
    /// configured maximum.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let envelope = self.envelope(bytes)?;
        let deserialize = |payload: &[u8]| {
            envelope.verify(payload)?;
            self.check_depth(payload)?;
            rmp_serde::from_slice(payload).map_err(|e| {
                Error::new(
                    ErrorKind::Serialization,
                    format!(
                        "cached value does not decode as {}: {e}",
                        std::any::type_name::<T>()
                    ),
                )
            })
        };
        if !envelope.compressed {
            return deserialize(envelope.body);
        }
        with_scratch(|scratch| deserialize(envelope.decompress_into(&mut scratch.payload)?))
    }

    /// Checks an envelope and returns its uncompressed MessagePack payload.
    ///
    /// # Errors
    /// As for [`decode`](Self::decode).
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
        let envelope = self.envelope(bytes)?;
        let payload = if envelope.compressed {
            let mut out = Vec::new();
            envelope.decompress_into(&mut out)?;
            std::borrow::Cow::Owned(out)
        } else {
            std::borrow::Cow::Borrowed(envelope.body)
        };
        envelope.verify(&payload)?;
        self.check_depth(&payload)?;
        Ok(payload)
    }

    /// Checks the header of `bytes` against the body after it and the limits.
    fn envelope<'a>(&self, bytes: &'a [u8]) -> Result<Envelope<'a>> {
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte envelope header",
                bytes.len()
            )));
        }
        let (head, body) = bytes.split_at(HEADER_LEN);
        if head[..2] != MAGIC {
            return Err(corrupt("not a cachekit envelope (bad magic)".to_string()));
        }
        if head[2] != VERSION {
            return Err(corrupt(format!(
                "unknown envelope version {} (this build reads {VERSION})",
                head[2]
            )));
        }
        let flags = head[3];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(corrupt(format!("unknown envelope flags {flags:#04x}")));
        }
        let declared = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let checksum = u64::from_be_bytes([
            head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
        ]);
        self.check_size(declared)?;
        let compressed = flags & FLAG_LZ4 != 0;
        if compressed && declared > body.len().saturating_mul(LZ4_MAX_RATIO) {
            return Err(corrupt(format!(
                "declared size {declared} is impossible for {} compressed bytes",
                body.len()
            )));
        }
        if !compressed && body.len() != declared {
            return Err(corrupt(format!(
                "payload is {} bytes, header says {declared}",
                body.len()
            )));
        }
        Ok(Envelope {
            compressed,
            declared,
            checksum,
            body,
        })
    }

    /// Refuses a payload that nests deeper than `max_depth` or is not one
    /// whole MessagePack value, before serde recurses into it.
    fn check_depth(&self, payload: &[u8]) -> Result<()> {
        match depth::scan(payload, self.config.max_depth) {
            Depth::Within => Ok(()),
            Depth::Deeper => Err(Error::new(
                ErrorKind::Serialization,
                format!(
                    "cached value nests arrays/maps more than max_depth ({}) deep; \
                     raise it with CodecConfig::max_depth if such values are expected",
                    self.config.max_depth
                ),
            )),
            Depth::Malformed => Err(corrupt(
                "payload is not a whole MessagePack value".to_string(),
            )),
        }
    }

    fn too_deep(&self) -> Error {
        Error::new(
            ErrorKind::Serialization,
            format!(
                "value nests arrays/maps more than max_depth ({}) deep, so it could not be read back; \
                 raise it with CodecConfig::max_depth (on every reader too) or store a flatter value",
                self.config.max_depth
            ),
        )
    }

    /// Serializes `value` in `format`: [`encode`](Self::encode) for the
    /// envelope, one canonical MessagePack document for interop.
    ///
    /// # Errors
    /// As for [`encode`](Self::encode); in interop mode also
    /// [`ErrorKind::Serialization`] for what the interop/v1 data model
    /// refuses (NaN, infinities, maps with keys that are not strings).
    pub fn encode_as<T: Serialize + ?Sized>(
        &self,
        format: ValueFormat,
        value: &T,
    ) -> Result<Bytes> {
        match format {
            ValueFormat::Envelope => self.encode(value),
            ValueFormat::Interop => self.encode_interop(value),
        }
    }

    /// Deserializes bytes written in `format`.
    ///
    /// ```
    /// use cachekit::{Codec, ValueFormat};
    ///
    /// let codec = Codec::default();
    /// let doc = codec.encode_as(ValueFormat::Interop, &("alice", 2.0))?;
    /// assert_eq!(&doc[..], b"\x92\xa5alice\xcb\x40\x00\x00\x00\x00\x00\x00\x00");
    /// let back: (String, f64) = codec.decode_as(ValueFormat::Interop, &doc)?;
    /// assert_eq!(back, ("alice".to_string(), 2.0));
    /// # Ok::<(), cachekit::Error>(())
    /// ```
    ///
    /// # Errors
    /// As for [`decode`](Self::decode); in interop mode, anything but exactly
    /// one MessagePack document of `T`'s shape, including a cachekit-py
    /// auto-mode frame (`CK...`).
    pub fn decode_as<T: DeserializeOwned>(&self, format: ValueFormat, bytes: &[u8]) -> Result<T> {
        match format {
            ValueFormat::Envelope => self.decode(bytes),
            ValueFormat::Interop => self.decode_interop(bytes),
        }
    }

    #[inline]
    fn check_size(&self, len: usize) -> Result<()> {
        if len > self.config.max_value_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "value of {len} bytes exceeds max_value_size ({} bytes); raise it with CodecConfig::max_value_size",
                    self.config.max_value_size
                ),
            ));
        }
        Ok(())
    }
}

/// The length of the MessagePack payload an envelope declares (before
/// LZ4), if `bytes` starts with an envelope header; unchecked otherwise.
/// The L1 charges a decoded value by it.
pub(crate) fn declared_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [m0, m1, VERSION, _, l0, l1, l2, l3, ..] if [*m0, *m1] == MAGIC => {
            usize::try_from(u32::from_be_bytes([*l0, *l1, *l2, *l3])).ok()
        }
        _ => None,
    }
}

#[inline]
fn header(flags: u8, len: usize, checksum: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[3] = flags;
    // check_size has bounded len by max_value_size; a max above 4 GiB is clamped here.
    h[4..8].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
    h[8..16].copy_from_slice(&checksum.to_be_bytes());
    h
}

/// Buffers a thread reuses, so that serializing a value does not grow a
/// fresh vector step by step, and LZ4 output (compressed on encode,
/// decompressed on decode) needs no allocation of its own. When encoding,
/// each holds an envelope header's room, then a body.
#[derive(Default)]
struct Scratch {
    payload: Vec<u8>,
    packed: Vec<u8>,
}

/// A thread keeps at most this much of each scratch buffer between calls,
/// so at most 128 KiB in all: a program may encode on thousands of
/// threads. Larger envelopes are handed out in the buffer they were
/// written in; a buffer that a larger LZ4 payload was decoded into is
/// freed after the call.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            payload: Vec::new(),
            packed: Vec::new(),
        })
    };
}

impl Scratch {
    fn trim(&mut self) {
        for buf in [&mut self.payload, &mut self.packed] {
            if buf.capacity() > SCRATCH_KEPT {
                *buf = Vec::new();
            }
        }
    }
}

/// Runs `f` with this thread's scratch buffers, then trims them; with
/// fresh ones if they are in use further up the stack or gone with the
/// thread.
fn with_scratch<R>(mut f: impl FnMut(&mut Scratch) -> R) -> R {
    let kept = SCRATCH.try_with(|cell| {
        // Taken: a `Serialize` or `Deserialize` impl that uses a codec itself.
        let mut scratch = cell.try_borrow_mut().ok()?;
        let result = f(&mut scratch);
        scratch.trim();
        Some(result)
    });
    match kept {
        Ok(Some(result)) => result,
        _ => f(&mut Scratch::default()),
    }
}

/// An envelope whose header passed every check.
struct Envelope<'a> {
    compressed: bool,
    declared: usize,
    checksum: u64,
    body: &'a [u8],
}

impl Envelope<'_> {
    /// Decompresses the body into `out` (growing it to the declared size at
    /// most) and returns the payload.
    fn decompress_into<'b>(&self, out: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        grow(out, self.declared);
        let payload = &mut out[..self.declared];
        let n = lz4_flex::block::decompress_into(self.body, payload)
            .map_err(|e| corrupt(format!("LZ4 payload does not decompress: {e}")))?;
        if n != self.declared {
            return Err(corrupt(format!(
                "payload decompressed to {n} bytes, header says {}",
                self.declared
            )));
        }
        Ok(payload)
    }

    fn verify(&self, payload: &[u8]) -> Result<()> {
        if XxHash3_64::oneshot(payload) != self.checksum {
            return Err(corrupt("checksum mismatch".to_string()));
        }
        Ok(())
    }
}

/// The envelope in `buf`: `head`, then the `body_len` bytes after it. Up to
/// what a thread keeps, a copy of exactly its size (which `Bytes` takes
/// without a second allocation); past that, the buffer itself, cut to size.
#[inline]
fn seal(buf: &mut Vec<u8>, head: [u8; HEADER_LEN], body_len: usize) -> Bytes {
    let end = HEADER_LEN + body_len;
    buf[..HEADER_LEN].copy_from_slice(&head);
    if end <= SCRATCH_KEPT {
        return Bytes::copy_from_slice(&buf[..end]);
    }
    let mut whole = std::mem::take(buf);
    whole.truncate(end);
    // Returns the growth slack (up to half the buffer) in place.
    whole.shrink_to_fit();
    Bytes::from(whole)
}

/// Makes `buf` at least `len` long. Its length is kept between calls, so
/// only what it grows by is zeroed.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// Windows of a payload that LZ4 tries first, [`SAMPLE_WINDOWS`] of them
/// spread from its start to its end.
const SAMPLE_WINDOW: usize = 512;
const SAMPLE_WINDOWS: usize = 4;
const SAMPLE: usize = SAMPLE_WINDOW * SAMPLE_WINDOWS;

/// Whether LZ4 is worth running over all of `payload`. Payloads of at
/// least four samples' size are compressed only if their sample shrinks by
/// a sixteenth or more, so random or already-compressed data costs a 2 KiB
/// attempt instead of a whole one (on 16 KiB of random letters the failed
/// attempt took several times as long as the MessagePack encoding). The
/// sample sees less history than the whole payload, so it understates what
/// LZ4 would save rather than overstating it.
///
/// `scratch` holds the sample and LZ4's output.
fn lz4_may_pay(payload: &[u8], scratch: &mut Vec<u8>) -> bool {
    if payload.len() < 4 * SAMPLE {
        return true;
    }
    grow(
        scratch,
        SAMPLE + lz4_flex::block::get_maximum_output_size(SAMPLE),
    );
    let (sample, out) = scratch.split_at_mut(SAMPLE);
    let step = (payload.len() - SAMPLE_WINDOW) / (SAMPLE_WINDOWS - 1);
    for (i, window) in sample.chunks_exact_mut(SAMPLE_WINDOW).enumerate() {
        let at = i * step;
        window.copy_from_slice(&payload[at..at + SAMPLE_WINDOW]);
    }
    match lz4_flex::block::compress_into(sample, out) {
        Ok(n) => n <= SAMPLE - SAMPLE / 16,
        Err(_) => true,
    }
}

fn corrupt(reason: String) -> Error {
    Error::new(
        ErrorKind::Serialization,
        format!("corrupt cached value: {reason}"),
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_depth;
#[cfg(test)]
mod tests_interop;
