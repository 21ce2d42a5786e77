//! The family's interop/v1 value format: one canonical MessagePack
//! document, with no envelope, no compression and no checksum, so that
//! cachekit-py and cachekit-rs in interop mode read and write the same bytes.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::depth::{self, Depth};
use super::{corrupt, Codec};
use crate::error::{Error, ErrorKind, Result};

/// cachekit-py's auto-mode frame starts with these bytes. They are valid
/// MessagePack (the integer 67, then more), so they are named, not guessed.
const PYTHON_FRAME: &[u8] = b"CK";

impl Codec {
    /// The value as one canonical MessagePack document (the interop/v1
    /// value profile: struct fields and map keys sorted, floats kept as
    /// float64, the shortest integer and length forms).
    pub(super) fn encode_interop<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        let bytes = crate::keys::canonical_value(value).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("cannot encode value as an interop/v1 document: {e}"),
            )
        })?;
        self.check_size(bytes.len())?;
        if depth::scan(&bytes, self.config.max_depth) == Depth::Deeper {
            return Err(self.too_deep());
        }
        Ok(Bytes::from(bytes))
    }

    /// Decodes one interop/v1 document. A Python auto-mode frame, trailing
    /// bytes, a value nested past `max_depth` or over `max_value_size`, and
    /// a document of another shape than `T` are errors (read as misses).
    pub(super) fn decode_interop<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        self.check_size(bytes.len())?;
        if bytes.starts_with(PYTHON_FRAME) {
            return Err(corrupt(
                "a cachekit-py auto-mode entry (CK frame), not an interop value: a writer of this key \
                 does not use interop mode"
                    .to_string(),
            ));
        }
        match depth::scan_whole(bytes, self.config.max_depth) {
            Depth::Within => {}
            Depth::Deeper => return Err(self.too_deep()),
            Depth::Malformed => {
                return Err(corrupt(
                    "not exactly one MessagePack document (cut short, trailing bytes or a reserved marker)"
                        .to_string(),
                ))
            }
        }
        // The canonical encoder writes serde's human-readable forms (an IP
        // address as text, as other languages see it): read them back so.
        let mut reader = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
        T::deserialize(&mut reader).map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!(
                    "interop value does not decode as {}: {e}",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}
