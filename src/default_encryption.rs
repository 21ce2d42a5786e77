//! The encryption `#[cached(encrypted)]` functions use: the one given to
//! [`set_default_encryption`], else `CACHEKIT_MASTER_KEY` (hex) with the
//! tenant in `CACHEKIT_DEPLOYMENT_UUID` (`"default"` when unset), read once.

use std::sync::OnceLock;

use cachekit_core::{Encryption, Error, Result};

/// The setting, or why the environment's is unusable (never the key).
static DEFAULT: OnceLock<std::result::Result<Option<Encryption>, String>> = OnceLock::new();

/// Sets the encryption of every `#[cached(encrypted)]` function, before
/// the first call of one.
///
/// ```
/// use cachekit::{cached, Encryption};
///
/// # fn main() -> cachekit::Result<()> {
/// cachekit::set_default_encryption(Encryption::from_hex(&"6b".repeat(32), "default")?)?;
///
/// #[cached(encrypted, ttl = 60)]
/// fn secret(id: u64) -> String { format!("payload {id}") }
///
/// assert_eq!(secret(7), "payload 7");
/// assert_eq!(secret(7), "payload 7");
/// assert_eq!(secret_cache().stats().computes, 1);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) if it was already set,
/// or already read from the environment by a function's first call.
pub fn set_default_encryption(encryption: Encryption) -> Result<()> {
    DEFAULT.set(Ok(Some(encryption))).map_err(|_| {
        Error::config(
            "default encryption",
            "it is already set, or a #[cached(encrypted)] function already read it; call \
             cachekit::set_default_encryption once, before the first encrypted call",
        )
    })
}

/// The encryption `#[cached(encrypted)]` functions use (see the module
/// docs); `None` when there is none. Reads the environment on first use.
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) when
/// `CACHEKIT_MASTER_KEY` is set but unusable (not hex, too short); the
/// message never contains the key.
pub fn default_encryption() -> Result<Option<Encryption>> {
    DEFAULT
        .get_or_init(|| Encryption::from_env().map_err(|err| err.to_string()))
        .clone()
        .map_err(|reason| Error::new(cachekit_core::ErrorKind::Config, reason))
}
