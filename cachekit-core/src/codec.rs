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
//! Decoding checks every field before it allocates: the declared length must
//! be within the configured maximum and within what LZ4 can expand the input
//! to, and the checksum must match. Anything else is an
//! [`ErrorKind::Serialization`] error, which the tiered cache turns into a miss
//! that deletes the entry.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, ErrorKind, Result};

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
    /// that makes them smaller). Default 4 KiB; `usize::MAX` disables compression.
    pub compress_threshold: usize,
    /// The largest uncompressed payload accepted when encoding or decoding.
    /// Default 32 MiB.
    pub max_value_size: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            compress_threshold: 4 * 1024,
            max_value_size: 32 * 1024 * 1024,
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

    /// Sets [`max_value_size`](Self::max_value_size).
    #[must_use]
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }
}

/// Encodes values into envelopes and back.
///
/// ```
/// use cachekit_core::{Codec, CodecConfig};
///
/// let codec = Codec::new(CodecConfig::default());
/// let bytes = codec.encode(&("alice", 30u8))?;
/// let back: (String, u8) = codec.decode(&bytes)?;
/// assert_eq!(back, ("alice".to_string(), 30));
/// # Ok::<(), cachekit_core::Error>(())
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
        let mut buf = Vec::with_capacity(HEADER_LEN + 128);
        buf.resize(HEADER_LEN, 0);
        rmp_serde::encode::write_named(&mut buf, value).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("cannot encode value as MessagePack: {e}"),
            )
        })?;
        let payload_len = buf.len() - HEADER_LEN;
        self.check_size(payload_len)?;
        let checksum = xxh3_64(&buf[HEADER_LEN..]);
        if payload_len >= self.config.compress_threshold {
            let compressed = lz4_flex::block::compress(&buf[HEADER_LEN..]);
            if compressed.len() < payload_len {
                let mut out = Vec::with_capacity(HEADER_LEN + compressed.len());
                out.extend_from_slice(&header(FLAG_LZ4, payload_len, checksum));
                out.extend_from_slice(&compressed);
                return Ok(Bytes::from(out));
            }
        }
        buf[..HEADER_LEN].copy_from_slice(&header(0, payload_len, checksum));
        Ok(Bytes::from(buf))
    }

    /// Checks and unwraps an envelope, then deserializes its payload.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] for anything that is not a valid envelope
    /// holding a `T`; [`ErrorKind::TooLarge`] if the declared size exceeds the
    /// configured maximum.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let payload = self.open(bytes)?;
        rmp_serde::from_slice(&payload).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!(
                    "cached value does not decode as {}: {e}",
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// Checks an envelope and returns its uncompressed MessagePack payload.
    ///
    /// # Errors
    /// As for [`decode`](Self::decode).
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
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
        let payload = if flags & FLAG_LZ4 != 0 {
            if declared > body.len().saturating_mul(LZ4_MAX_RATIO) {
                return Err(corrupt(format!(
                    "declared size {declared} is impossible for {} compressed bytes",
                    body.len()
                )));
            }
            let out = lz4_flex::block::decompress(body, declared)
                .map_err(|e| corrupt(format!("LZ4 payload does not decompress: {e}")))?;
            if out.len() != declared {
                return Err(corrupt(format!(
                    "payload decompressed to {} bytes, header says {declared}",
                    out.len()
                )));
            }
            std::borrow::Cow::Owned(out)
        } else {
            if body.len() != declared {
                return Err(corrupt(format!(
                    "payload is {} bytes, header says {declared}",
                    body.len()
                )));
            }
            std::borrow::Cow::Borrowed(body)
        };
        if xxh3_64(&payload) != checksum {
            return Err(corrupt("checksum mismatch".to_string()));
        }
        Ok(payload)
    }

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

fn corrupt(reason: String) -> Error {
    Error::new(
        ErrorKind::Serialization,
        format!("corrupt cached value: {reason}"),
    )
}

#[cfg(test)]
mod tests;
