//! Cache keys that every cachekit implementation derives identically.
//!
//! A key is `{namespace}:{operation}:{args_hash}` where `args_hash` is the
//! lowercase hex Blake2b-256 of the canonical MessagePack encoding of the
//! flat argument array. This is the cachekit **interop/v1** algorithm: the
//! Python, JavaScript and Rust members of the family produce the same key for
//! the same arguments, so they can share one Redis. The vectors in
//! `interop-mode.json` pin it byte for byte. `std::hash::Hash` is never
//! involved: it differs between processes, platforms and Rust versions.
//!
//! # Segments
//!
//! `namespace` and `operation` must each match `^[a-z0-9][a-z0-9._-]{0,63}$`
//! in full: lowercase ASCII letters, digits, `.`, `_` and `-`, 1 to 64
//! characters, not starting with punctuation. No colon, so a key splits
//! unambiguously.
//!
//! # How arguments are encoded
//!
//! Arguments are anything [`serde::Serialize`], passed as a tuple (or a
//! slice / `Vec`) of the arguments: `&(user_id,)`, `&(user_id, "en")`, or
//! `&()` for none. The encoding is canonical, so equal arguments always give
//! equal bytes:
//!
//! - integers in their shortest MessagePack form, within [-2^63, 2^64-1]
//!   (`i128`/`u128` outside that range are an error);
//! - floats: NaN and ±infinity are errors; a float with an integral value in
//!   the integer range is encoded as that integer (`2.0` and `2` give the
//!   same key, `-0.0` is `0`); any other float is a float64;
//! - strings as MessagePack str, byte strings as bin, `None` and `()` as
//!   nil, `Some(x)` as `x`. serde sees a `Vec<u8>` as a sequence of
//!   integers, so it encodes as an array; wrap it with `serde_bytes` to get
//!   bin, the interop encoding of a byte string;
//! - sequences and tuples as arrays;
//! - maps and structs as maps whose keys are sorted by Unicode code point at
//!   every level of nesting, so a `HashMap`'s random order does not matter.
//!   Map keys must be strings (or `char`s, or unit enum variants, which
//!   encode as their names); other key types are an error, because no other
//!   interop implementation could reproduce their order;
//! - enums: a unit variant as its name, a variant with data as a one-entry
//!   map `{variant: data}`; newtype structs as their content;
//! - types with a human-readable form use it (`uuid::Uuid` becomes its
//!   hyphenated lowercase string, which is the interop encoding of a UUID;
//!   pass other UUID strings lowercased).
//!
//! # Sets and time
//!
//! **A `HashSet` argument makes unstable keys.** serde cannot tell a set
//! from a list, so a `HashSet` is encoded in iteration order, which is
//! random per process: the same set gives a different key in each process
//! and the cache silently never hits. Use a `BTreeSet`, wrap the set in
//! [`Set`] (which gives interop set semantics: elements sorted by their
//! encoding and deduplicated), or give the cached function an explicit key.
//!
//! Datetimes: convert them to a [`Timestamp`], which encodes as epoch
//! seconds like the other implementations do. Time types' own `Serialize`
//! impls (RFC 3339 strings, structs) produce keys only Rust can reproduce.
//!
//! ```
//! use cachekit::keys::{derive_key, KeyBuilder};
//!
//! let key = derive_key("users", "get_user", &(42,))?;
//! assert_eq!(
//!     key,
//!     "users:get_user:61598716255080080f6456eb065c2e51badfaa4320b0efe97469c29cffee8875"
//! );
//!
//! let users = KeyBuilder::new("users", "get_user")?;
//! assert_eq!(users.key(&(42,))?, key);
//! assert!(key.starts_with(users.prefix()));
//! # Ok::<(), cachekit::Error>(())
//! ```

mod canonical;
mod direct;
mod types;

#[cfg(test)]
mod tests;

use std::cell::RefCell;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use canonical::{CanonError, Encoder, Profile};

#[doc(hidden)]
pub use direct::{ArgBytes, DirectArg};
pub use types::{Set, Timestamp};

/// Length of `args_hash`: 32 bytes in hex.
const HASH_HEX_LEN: usize = 64;
const MAX_SEGMENT_LEN: usize = 64;

thread_local! {
    /// One warm encoder per thread, so deriving a key does not allocate for
    /// the canonical bytes.
    static ENCODER: RefCell<Encoder> = const { RefCell::new(Encoder::new(Profile::Args)) };
}

/// Checks that `segment` is a valid key segment (see the module docs).
///
/// `what` names the segment in the error message: `"namespace"` or
/// `"operation"`.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] naming the segment and the rule it breaks.
pub fn validate_segment(what: &str, segment: &str) -> Result<()> {
    let bytes = segment.as_bytes();
    let problem = match bytes.first() {
        None => Some("is empty"),
        Some(_) if bytes.len() > MAX_SEGMENT_LEN => Some("is longer than 64 characters"),
        Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
            Some("must start with a lowercase ASCII letter or a digit")
        }
        Some(_) => bytes
            .iter()
            .any(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            .then_some(
                "may contain only lowercase ASCII letters, digits, '.', '_' and '-' \
                 (no uppercase, spaces, colons or newlines)",
            ),
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            let shown: String = segment.chars().take(MAX_SEGMENT_LEN + 8).collect();
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid {what} {shown:?}: it {problem}; \
                     a key segment must match ^[a-z0-9][a-z0-9._-]{{0,63}}$"
                ),
            ))
        }
    }
}

/// The canonical MessagePack encoding of an argument list.
///
/// `args` must serialize as a sequence: a tuple such as `(a, b)` or `(a,)`,
/// a slice or `Vec`, or `()` for no arguments.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] if `args` is not a sequence, or contains NaN,
/// an infinity, an integer outside [-2^63, 2^64-1] or a map with non-string
/// keys; the message names the argument. [`ErrorKind::Serialization`] if a
/// `Serialize` impl fails by itself.
pub fn canonical_args<A: Serialize + ?Sized>(args: &A) -> Result<Vec<u8>> {
    let mut enc = Encoder::new(Profile::Args);
    enc.encode_args(args)?;
    Ok(enc.out)
}

/// The canonical MessagePack encoding of a value (the interop/v1 VALUE
/// profile).
///
/// The same rules as [`canonical_args`], except that floats always stay
/// float64 (`2.0` is not turned into `2`) and the root may be any value.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] for NaN, infinities, out-of-range integers and
/// non-string map keys; [`ErrorKind::Serialization`] if a `Serialize` impl
/// fails by itself.
pub fn canonical_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut enc = Encoder::new(Profile::Value);
    enc.encode_value(value)?;
    Ok(enc.out)
}

/// The `args_hash` part of a key: 64 lowercase hex characters.
///
/// # Errors
///
/// As [`canonical_args`].
pub fn args_hash<A: Serialize + ?Sized>(args: &A) -> Result<String> {
    let digest = hash_args(args)?;
    let mut out = String::with_capacity(HASH_HEX_LEN);
    push_hex(&mut out, &digest);
    Ok(out)
}

/// Derives the key `{namespace}:{operation}:{args_hash}`.
///
/// When the segments are fixed, a [`KeyBuilder`] validates them once.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] for an invalid segment, and as
/// [`canonical_args`].
pub fn derive_key<A: Serialize + ?Sized>(
    namespace: &str,
    operation: &str,
    args: &A,
) -> Result<String> {
    validate_segment("namespace", namespace)?;
    validate_segment("operation", operation)?;
    let digest = hash_args(args)?;
    let mut key = String::with_capacity(namespace.len() + operation.len() + 2 + HASH_HEX_LEN);
    key.push_str(namespace);
    key.push(':');
    key.push_str(operation);
    key.push(':');
    push_hex(&mut key, &digest);
    Ok(key)
}

/// Derives keys for one namespace and operation, validated once.
///
/// ```
/// use cachekit::keys::KeyBuilder;
///
/// let keys = KeyBuilder::new("users", "get_user")?;
/// let key = keys.key(&(42_u64, "en"))?;
/// assert!(key.starts_with("users:get_user:"));
/// assert_eq!(keys.prefix(), "users:get_user:");
/// # Ok::<(), cachekit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyBuilder {
    /// `namespace:operation:`, the part every key starts with.
    prefix: String,
    namespace_len: usize,
}

impl KeyBuilder {
    /// Validates both segments and returns a builder for their keys.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the invalid segment.
    pub fn new(namespace: &str, operation: &str) -> Result<Self> {
        validate_segment("namespace", namespace)?;
        validate_segment("operation", operation)?;
        Ok(Self {
            prefix: format!("{namespace}:{operation}:"),
            namespace_len: namespace.len(),
        })
    }

    /// The key for `args` (a tuple of the arguments; see [`canonical_args`]).
    ///
    /// # Errors
    ///
    /// As [`canonical_args`].
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> Result<String> {
        Ok(self.compose(&hash_args(args)?))
    }

    /// `prefix` + the hex digest.
    pub(crate) fn compose(&self, digest: &[u8; 32]) -> String {
        let mut key = String::with_capacity(self.prefix.len() + HASH_HEX_LEN);
        key.push_str(&self.prefix);
        push_hex(&mut key, digest);
        key
    }

    /// `namespace:operation:`, the prefix of every key this builder makes
    /// (for `delete_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace segment.
    pub fn namespace(&self) -> &str {
        self.prefix.get(..self.namespace_len).unwrap_or_default()
    }

    /// The operation segment.
    pub fn operation(&self) -> &str {
        let end = self.prefix.len().saturating_sub(1);
        self.prefix
            .get(self.namespace_len + 1..end)
            .unwrap_or_default()
    }
}

/// Blake2b-256 of the canonical argument bytes.
fn hash_args<A: Serialize + ?Sized>(args: &A) -> Result<[u8; 32]> {
    with_canonical_args(args, blake2b)
}

pub(crate) fn blake2b(bytes: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(bytes).into()
}

/// Runs `f` on the canonical bytes of `args`, encoded in the thread's
/// reusable buffer (a fresh one if that is in use).
#[inline(always)]
pub(crate) fn with_canonical_args<A, R>(args: &A, f: impl FnOnce(&[u8]) -> R) -> Result<R>
where
    A: Serialize + ?Sized,
{
    let mut f = Some(f);
    let mut run = |enc: &mut Encoder| -> Result<Option<R>, CanonError> {
        enc.encode_args(args)?;
        Ok(f.take().map(|f| f(&enc.out)))
    };
    let reused = ENCODER.try_with(|cell| {
        // Already borrowed: a `Serialize` impl is deriving a key while its
        // own key is being derived. It gets a fresh encoder below.
        let mut enc = cell.try_borrow_mut().ok()?;
        enc.reset(Profile::Args);
        let result = run(&mut enc);
        enc.release_excess();
        Some(result)
    });
    let result = match reused {
        Ok(Some(result)) => result,
        // The thread is shutting down or the encoder is in use.
        _ => run(&mut Encoder::new(Profile::Args)),
    };
    // `f` runs exactly once: either above or, if the encoder was busy, here.
    result?.ok_or_else(|| Error::new(ErrorKind::Serialization, "key derivation ran twice"))
}

fn push_hex(out: &mut String, bytes: &[u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0_u8; HASH_HEX_LEN];
    for (pair, &b) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    // Always ASCII, so this never takes the fallback.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}
