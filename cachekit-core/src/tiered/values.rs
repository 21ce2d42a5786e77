//! A value's bytes in the tiers: the request's format, then its encryption.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Policy, TieredCache};
use crate::codec::{Origin, ValueFormat};
use crate::error::{Error, Result};

/// Why stored bytes gave no value, which decides what a read does with them.
pub(crate) enum Unreadable {
    /// A cachekit envelope that is damaged or holds another type: deleted.
    Damaged(Error),
    /// Not a cachekit envelope: another program's value. Left in place;
    /// a read-through's store replaces it.
    Foreign(Error),
    /// An interop document that does not decode into the requested type:
    /// left in place and not replaced, since its writer (another language,
    /// another version) may read it fine.
    Shared(Error),
    /// Encrypted, and the tag did not verify (another key or tenant,
    /// damaged): never returned, left in place and not replaced.
    Undecryptable(Error),
}

impl TieredCache {
    /// `value`'s bytes under `key` as `policy` writes them.
    pub(crate) fn encode_value<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        policy: &Policy,
    ) -> Result<Bytes> {
        let format = policy.format.unwrap_or_default();
        let plain = self.inner.codec.encode_as(format, value)?;
        match &policy.encryption {
            None => Ok(plain),
            Some(encryption) => encryption
                .seal(key, format.aad_name(), &plain)
                .map(Bytes::from),
        }
    }

    /// The value in `bytes`, stored under `key` as `policy` reads them.
    pub(crate) fn decode_value<T: DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
        policy: &Policy,
    ) -> std::result::Result<T, Unreadable> {
        let format = policy.format.unwrap_or_default();
        let opened;
        let plain = match &policy.encryption {
            None => bytes,
            Some(encryption) => {
                opened = encryption
                    .open(key, format.aad_name(), bytes)
                    .map_err(Unreadable::Undecryptable)?;
                &opened[..]
            }
        };
        self.inner
            .codec
            .decode_as(format, plain)
            .map_err(|err| match format {
                ValueFormat::Interop => Unreadable::Shared(err),
                // It verified under this cache's key, so this cache wrote it.
                ValueFormat::Envelope if policy.encryption.is_some() => Unreadable::Damaged(err),
                ValueFormat::Envelope => match Origin::of(plain) {
                    Origin::Envelope => Unreadable::Damaged(err),
                    Origin::Foreign => Unreadable::Foreign(err),
                },
            })
    }
}
