//! Argument types whose interop/v1 encoding serde alone cannot express.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::canonical::SET_MARKER;
use crate::error::{Error, ErrorKind, Result};

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// A set argument: encoded as an array of its elements sorted by their
/// canonical bytes, with duplicates removed.
///
/// serde serializes a `HashSet` exactly like a `Vec`, in iteration order,
/// and a `HashSet`'s iteration order changes from process to process. Wrap
/// any collection that serializes as a sequence to give it set semantics:
/// `Set(&my_hash_set)`, `Set(vec![3, 1, 2])`. Elements are compared by
/// encoding, so `2` and `2.0` count as one element, as in every interop/v1
/// implementation.
///
/// With serializers other than cachekit's key encoder a `Set` is a plain
/// sequence of `T`'s elements, in `T`'s own order.
///
/// ```
/// use std::collections::HashSet;
/// use cachekit::keys::{derive_key, Set};
///
/// let tags: HashSet<&str> = ["rust", "cache", "redis"].into_iter().collect();
/// let key = derive_key("posts", "by_tags", &(Set(&tags),))?;
/// assert_eq!(key, derive_key("posts", "by_tags", &(Set(["redis", "rust", "cache"]),))?);
/// # Ok::<(), cachekit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Set<T>(pub T);

impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(SET_MARKER, &self.0)
    }
}

/// A UTC instant, encoded in keys as seconds since the Unix epoch.
///
/// This is the interop/v1 encoding of a timezone-aware datetime: the
/// instant is floored to whole microseconds (the precision every interop
/// implementation shares) and divided by 10^6 as one float64 division, so
/// `2024-01-01T12:30:45.123456Z` becomes the float `1704112245.123456`.
/// A whole second is encoded as an integer. Instants before 1970 are
/// negative. Two instants less than a microsecond apart therefore give the
/// same key.
///
/// Other serializers see the same number (an `i64` for whole seconds, an
/// `f64` otherwise).
///
/// ```
/// use cachekit::keys::{derive_key, Timestamp};
///
/// let at = Timestamp::parse_rfc3339("2024-01-01T18:00:45.123456+05:30")?;
/// let utc = Timestamp::parse_rfc3339("2024-01-01T12:30:45.123456Z")?;
/// assert_eq!(at, utc);
/// assert_eq!(derive_key("events", "at", &(at,))?, derive_key("events", "at", &(utc,))?);
/// # Ok::<(), cachekit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since the epoch, floored (so negative before 1970).
    secs: i64,
    /// Nanoseconds after `secs`, always below 10^9.
    nanos: u32,
}

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// The instant `secs` seconds plus `nanos` nanoseconds after the epoch.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `nanos` is 10^9 or more.
    pub fn from_unix(secs: i64, nanos: u32) -> Result<Self> {
        if nanos >= NANOS_PER_SEC {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("timestamp nanoseconds must be below 10^9, got {nanos}"),
            ));
        }
        Ok(Self { secs, nanos })
    }

    /// Parses an RFC 3339 timestamp such as `2024-01-01T12:30:45.123456+00:00`
    /// or `2024-01-01T12:30:45Z`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the text is not RFC 3339, including a
    /// datetime without a UTC offset: a naive datetime names no instant, and
    /// interop/v1 refuses to guess its timezone.
    pub fn parse_rfc3339(text: &str) -> Result<Self> {
        match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(at) => Ok(at.into()),
            Err(err) => {
                let shown: String = text.chars().take(64).collect();
                Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "invalid RFC 3339 timestamp {shown:?} ({err}); it needs a date, \
                         a time and a UTC offset such as `Z` or `+05:30`"
                    ),
                )
                .with_source(err))
            }
        }
    }

    /// Whole seconds since the epoch, rounded towards negative infinity.
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds after [`Timestamp::unix_seconds`], below 10^9.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Microseconds since the epoch, floored.
    fn unix_micros(self) -> i128 {
        i128::from(self.secs) * 1_000_000 + i128::from(self.nanos / 1_000)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(at: SystemTime) -> Self {
        match at.duration_since(UNIX_EPOCH) {
            Ok(after) => Self {
                secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                let before = before.duration();
                let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
                match before.subsec_nanos() {
                    0 => Self { secs, nanos: 0 },
                    n => Self {
                        secs: secs.saturating_sub(1),
                        nanos: NANOS_PER_SEC - n,
                    },
                }
            }
        }
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        // `unix_timestamp` floors and `nanosecond` counts forward from it,
        // which is exactly this type's representation, also before 1970.
        Self {
            secs: at.unix_timestamp(),
            nanos: at.nanosecond(),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let micros = self.unix_micros();
        if micros % 1_000_000 == 0 {
            serializer.serialize_i64(self.secs)
        } else {
            // One float64 division of the floored microsecond count, as the
            // interop spec states. Python divides the exact integer instead;
            // the results agree while the count fits in 53 bits, i.e. for
            // years 1685 to 2255.
            serializer.serialize_f64(micros as f64 / 1e6)
        }
    }
}
