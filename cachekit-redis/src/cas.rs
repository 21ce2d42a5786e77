//! Compare-and-set: a read that returns a [`Version`] and a write that
//! succeeds only if the value is still the one that was read.
//!
//! The check and the write run in one Lua script, so they are atomic on the
//! server. WATCH/MULTI would not be: on a multiplexed connection every task
//! sharing it shares the WATCH.
//!
//! The version token is the value itself: the script compares the stored
//! bytes with the bytes that were read. This needs no companion key and so
//! also notices writes made by plain `set` or by other clients. The cost is
//! that the expected value travels to the server again, and that a value
//! changed and then changed back (A, B, A) counts as unchanged.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use cachekit_core::{Backend, Error, ErrorKind, Result};

use crate::backend::RedisBackend;
use crate::errors::Op;
use crate::wire::px_arg;

/// What [`RedisBackend::set_if_version`] compares against: the value as it
/// was read, or "no value".
///
/// `Debug` shows only the length, not the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Version(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Absent,
    Value(Bytes),
}

impl Version {
    /// "The key must not exist": for creating a value with
    /// [`RedisBackend::set_if_version`].
    pub fn absent() -> Self {
        Version(Repr::Absent)
    }

    /// Whether this is [`Version::absent`].
    pub fn is_absent(&self) -> bool {
        matches!(self.0, Repr::Absent)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Absent => f.write_str("Version(absent)"),
            Repr::Value(value) => write!(f, "Version({} bytes)", value.len()),
        }
    }
}

impl RedisBackend {
    /// Reads a value together with the [`Version`] to pass to
    /// [`set_if_version`](Self::set_if_version); `None` when the key is
    /// missing (then use [`Version::absent`]).
    ///
    /// # Errors
    ///
    /// As [`Backend::get`].
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>> {
        Ok(self
            .get(key)
            .await?
            .map(|value| (value.clone(), Version(Repr::Value(value)))))
    }

    /// Stores `value` only if the key still holds what `version` was read
    /// from (or, for [`Version::absent`], holds nothing).
    ///
    /// ```no_run
    /// # use cachekit::redis::{RedisBackend, Version};
    /// # use cachekit::ErrorKind;
    /// # async fn demo(redis: RedisBackend) -> cachekit::Result<()> {
    /// loop {
    ///     let (count, version) = match redis.get_versioned("visits").await? {
    ///         Some((bytes, version)) => (String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0), version),
    ///         None => (0, Version::absent()),
    ///     };
    ///     let next = (count + 1).to_string();
    ///     match redis.set_if_version("visits", next.into(), &version, None).await {
    ///         Ok(()) => break,
    ///         Err(e) if e.kind() == ErrorKind::Conflict => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when the value changed since it was read
    /// (read again and retry); otherwise as [`Backend::set`].
    pub async fn set_if_version(
        &self,
        key: &str,
        value: Bytes,
        version: &Version,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let full = self.inner.prefixed(key);
        let (mode, expected): (&str, &[u8]) = match &version.0 {
            Repr::Absent => ("absent", b""),
            Repr::Value(bytes) => ("value", bytes.as_ref()),
        };
        let px_arg = px_arg(ttl);
        let op = Op::new("compare-and-set", Some(key));
        let stored: i64 = self
            .inner
            .scripts
            .compare_and_set
            .run(&self.inner.pool, op, 1, |cmd| {
                cmd.arg(full)
                    .arg(mode)
                    .arg(expected)
                    .arg(value.as_ref())
                    .arg(&px_arg);
            })
            .await?;
        if stored == 1 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "{op} on {}: the value changed since it was read; read it again with get_versioned and retry",
                self.inner.pool.target()
            ),
        ))
    }
}
