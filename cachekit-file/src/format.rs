//! The on-disk format shared with the cachekit family's file backends:
//! file names from key hashes, and the 14-byte entry header.
//!
//! ```text
//! offset 0  'C' 'K'          magic
//!        2  0x01             format version
//!        3  0x00             reserved
//!        4  u16 big-endian   flags (0; anything else is a miss)
//!        6  u64 big-endian   absolute expiry, Unix seconds (0 = never)
//!       14  value bytes
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use cachekit_core::Ttl;

/// Length of the header in front of every value.
pub(crate) const HEADER_LEN: usize = 14;

const MAGIC: [u8; 2] = *b"CK";
const VERSION: u8 = 1;

/// Byte offset of the expiry field, rewritten in place by `expire`.
pub(crate) const EXPIRY_OFFSET: u64 = 6;

/// Length of an entry file name: 32 lowercase hex digits.
pub(crate) const NAME_LEN: usize = 32;

/// The Blake2b-128 digest of a key, which names its file.
pub(crate) type KeyHash = [u8; 16];

/// Hashes a key; equal keys give equal hashes in every process and language.
pub(crate) fn key_hash(key: &str) -> KeyHash {
    Blake2b::<U16>::digest(key.as_bytes()).into()
}

/// An entry file name (lowercase hex of the key hash), built without allocating.
#[derive(Clone, Copy)]
pub(crate) struct FileName([u8; NAME_LEN]);

impl FileName {
    pub(crate) fn of(hash: &KeyHash) -> Self {
        let mut out = [0u8; NAME_LEN];
        // Cannot fail: the output is exactly twice the input length.
        let _ = hex::encode_to_slice(hash, &mut out);
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Hex digits are ASCII, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The hash named by a directory entry, `None` for anything that is not
    /// exactly 32 lowercase hex digits (temp files, foreign files).
    pub(crate) fn parse(name: &[u8]) -> Option<KeyHash> {
        if name.len() != NAME_LEN || !name.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut hash = [0u8; 16];
        hex::decode_to_slice(name, &mut hash).ok()?;
        Some(hash)
    }
}

/// What the first bytes of an entry file say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A version-1 entry expiring at `expiry` (Unix seconds, 0 = never).
    Entry { expiry: u64 },
    /// A `CK` file of another version, or with flags this version does not
    /// know: a miss that readers of this version must leave alone.
    Foreign,
    /// Not a cachekit entry at all (too short, wrong magic): a miss that may
    /// be removed.
    Corrupt,
}

impl Header {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Self::Corrupt;
        };
        if head[..2] != MAGIC {
            return Self::Corrupt;
        }
        if head[2] != VERSION || head[4..6] != [0, 0] {
            return Self::Foreign;
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&head[6..14]);
        Self::Entry {
            expiry: u64::from_be_bytes(expiry),
        }
    }
}

/// The header of a version-1 entry.
pub(crate) fn encode_header(expiry: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..2].copy_from_slice(&MAGIC);
    out[2] = VERSION;
    out[6..].copy_from_slice(&expiry.to_be_bytes());
    out
}

/// Time since the Unix epoch; a clock before 1970 reads as the epoch.
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// The on-disk expiry for a TTL starting `now`: whole seconds, rounded up,
/// so an entry never expires before its TTL has passed.
pub(crate) fn expiry_for(ttl: Option<Duration>, now: Duration) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    match now.checked_add(ttl) {
        Some(at) => {
            let secs = at.as_secs();
            let rounded = if at.subsec_nanos() > 0 {
                secs.saturating_add(1)
            } else {
                secs
            };
            // 0 means "never"; an expiry in 1970 is already in the past anyway.
            rounded.max(1)
        }
        None => u64::MAX,
    }
}

/// Whether an entry with this expiry is still readable at `now`.
pub(crate) fn is_live(expiry: u64, now: Duration) -> bool {
    expiry == 0 || now < Duration::from_secs(expiry)
}

/// The remaining lifetime at `now` as the [`Backend`](cachekit_core::Backend) reports it.
pub(crate) fn ttl_at(expiry: u64, now: Duration) -> Ttl {
    if expiry == 0 {
        return Ttl::Persistent;
    }
    match Duration::from_secs(expiry).checked_sub(now) {
        Some(left) if !left.is_zero() => Ttl::Remaining(left),
        _ => Ttl::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_byte_exact() {
        let h = encode_header(0x0102_0304_0506_0708);
        assert_eq!(h, *b"CK\x01\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(
            Header::parse(&h),
            Header::Entry {
                expiry: 0x0102_0304_0506_0708
            }
        );
    }

    #[test]
    fn unknown_version_or_flags_is_foreign_and_garbage_is_corrupt() {
        let mut h = encode_header(0);
        h[2] = 2;
        assert_eq!(Header::parse(&h), Header::Foreign);
        let mut h = encode_header(0);
        h[5] = 1;
        assert_eq!(Header::parse(&h), Header::Foreign);
        assert_eq!(Header::parse(b""), Header::Corrupt);
        assert_eq!(Header::parse(b"CK\x01\x00\x00\x00\x00"), Header::Corrupt);
        assert_eq!(
            Header::parse(b"XK\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
            Header::Corrupt
        );
    }

    #[test]
    fn file_names_are_lowercase_hex_of_blake2b_128() {
        // Blake2b with a 16-byte digest of the empty string (RFC 7693 parameters).
        let name = FileName::of(&key_hash(""));
        assert_eq!(name.as_str(), "cae66941d9efbd404e4d88758ea67670");
        assert_eq!(
            FileName::parse(name.as_str().as_bytes()),
            Some(key_hash(""))
        );
        assert_eq!(FileName::parse(b"CAE66941D9EFBD404E4D88758EA67670"), None);
        assert_eq!(FileName::parse(b".tmp-1-2"), None);
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        let now = Duration::new(1_000, 500_000_000);
        assert_eq!(expiry_for(None, now), 0);
        assert_eq!(expiry_for(Some(Duration::from_millis(200)), now), 1_001);
        assert_eq!(expiry_for(Some(Duration::from_millis(500)), now), 1_001);
        assert_eq!(expiry_for(Some(Duration::from_millis(501)), now), 1_002);
        assert_eq!(expiry_for(Some(Duration::MAX), now), u64::MAX);
        assert!(is_live(1_001, now));
        assert!(!is_live(1_000, now));
        assert_eq!(
            ttl_at(1_001, now),
            Ttl::Remaining(Duration::from_millis(500))
        );
        assert_eq!(ttl_at(1_000, now), Ttl::Missing);
        assert_eq!(ttl_at(0, now), Ttl::Persistent);
    }
}
