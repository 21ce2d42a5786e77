//! The cachekit family's value encryption: a per-tenant key derived from a
//! master key with HKDF-SHA256, AES-256-GCM over the value bytes, and
//! additional authenticated data (AAD v0x03) that binds the ciphertext to
//! its cache key, its format and its compression flag, so that an entry
//! copied to another key, or read by another tenant, fails to decrypt.
//!
//! Byte for byte what cachekit-py and cachekit-rs do: the shared
//! `aad_vectors` and `encryption_vectors` pin it. [`Encryption`] is the
//! setting a cache or a `#[cached]` function takes; [`TenantKey`] and
//! [`aad`] are its parts.
//!
//! - Key: `HKDF-SHA256(ikm = master key, salt = "cachekit_v1_" ‖ len8 ‖
//!   "encryption" ‖ len16be ‖ tenant id, info = "encryption")`, 32 bytes.
//! - Stored bytes: `nonce (12) ‖ ciphertext ‖ tag (16)`, a random nonce per
//!   value.
//! - AAD: `0x03`, then the tenant id, the cache key, the format name and
//!   `True`/`False` for compression, each behind a big-endian `u32` length.

use std::sync::Arc;

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// The shortest master key accepted, as in the rest of the family; 32
/// bytes are recommended.
pub const MIN_MASTER_KEY_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The longest tenant id: its length is a `u16` in the HKDF salt.
const MAX_TENANT_LEN: usize = 1024;
const DOMAIN: &str = "encryption";
const AAD_VERSION: u8 = 0x03;

/// The tenant id the family uses when none is configured.
pub const DEFAULT_TENANT: &str = "default";
/// The environment variable holding the master key, in hex.
pub const MASTER_KEY_ENV: &str = "CACHEKIT_MASTER_KEY";
/// The environment variable holding the tenant id (cachekit-py's
/// deployment UUID); [`DEFAULT_TENANT`] when unset.
pub const TENANT_ENV: &str = "CACHEKIT_DEPLOYMENT_UUID";

/// Encryption of cached values the way the cachekit family does it: a
/// tenant key derived from a master key, AES-256-GCM with a random nonce
/// per value, and the cache key bound into each value's authentication
/// tag. Cheap to clone. Its `Debug` shows the tenant and the key's
/// fingerprint, never key material; no error message contains the key.
///
/// Every process sharing a cache must use the same master key and tenant:
/// a value that does not verify is a miss, never a wrong value.
///
/// ```
/// use cachekit::Encryption;
///
/// let enc = Encryption::from_hex(&"61".repeat(32), "default")?;
/// assert_eq!(enc.tenant(), "default");
/// assert!(!format!("{enc:?}").contains("6161"));
/// # Ok::<(), cachekit::Error>(())
/// ```
#[derive(Clone)]
pub struct Encryption {
    key: Arc<TenantKey>,
    tenant: Arc<str>,
}

impl Encryption {
    /// Encryption for `tenant` under `master_key` (at least 16 bytes; 32
    /// recommended). cachekit-py's single-tenant mode uses
    /// [`DEFAULT_TENANT`] unless a deployment UUID is configured.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a short master key, or an empty tenant id
    /// or one over 1,024 bytes.
    pub fn new(master_key: impl AsRef<[u8]>, tenant: &str) -> Result<Self> {
        Ok(Self {
            key: Arc::new(TenantKey::derive(master_key.as_ref(), tenant)?),
            tenant: Arc::from(tenant),
        })
    }

    /// As [`new`](Self::new), with the master key in hex, as
    /// `CACHEKIT_MASTER_KEY` holds it.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the text is not hex, and as [`new`](Self::new).
    pub fn from_hex(master_key_hex: &str, tenant: &str) -> Result<Self> {
        let mut key = decode_hex(master_key_hex.trim()).ok_or_else(|| {
            Error::config(
                "master_key",
                "must be hex (an even number of the characters 0-9 and a-f)",
            )
        })?;
        let made = Self::new(&key, tenant);
        key.fill(0);
        made
    }

    /// From `CACHEKIT_MASTER_KEY` (hex) and `CACHEKIT_DEPLOYMENT_UUID` (the
    /// tenant; [`DEFAULT_TENANT`] when unset or empty); `None` without a
    /// master key.
    ///
    /// # Errors
    /// As [`from_hex`](Self::from_hex), naming the variable.
    pub fn from_env() -> Result<Option<Self>> {
        let Some(hex) = std::env::var_os(MASTER_KEY_ENV) else {
            return Ok(None);
        };
        let hex = hex
            .to_str()
            .ok_or_else(|| Error::config(MASTER_KEY_ENV, "must be hex, and is not even UTF-8"))?;
        let tenant = std::env::var(TENANT_ENV).unwrap_or_default();
        let tenant = match tenant.trim() {
            "" => DEFAULT_TENANT,
            set => set,
        };
        Self::from_hex(hex, tenant)
            .map(Some)
            .map_err(|err| Error::config(MASTER_KEY_ENV, err.message()))
    }

    /// The tenant id the key was derived for.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The family's fingerprint of the tenant key, in hex: names the key in
    /// logs without revealing it.
    pub fn fingerprint(&self) -> String {
        hex_of(&self.key.fingerprint())
    }

    /// `plain` encrypted for `cache_key`: `nonce ‖ ciphertext ‖ tag`.
    pub(crate) fn seal(&self, cache_key: &str, format: &str, plain: &[u8]) -> Result<Vec<u8>> {
        self.key
            .encrypt(plain, &aad(&self.tenant, cache_key, format, false))
    }

    /// The plain bytes of a value [`seal`](Self::seal)ed for `cache_key`.
    pub(crate) fn open(&self, cache_key: &str, format: &str, stored: &[u8]) -> Result<Vec<u8>> {
        self.key
            .decrypt(stored, &aad(&self.tenant, cache_key, format, false))
    }
}

impl PartialEq for Encryption {
    fn eq(&self, other: &Self) -> bool {
        self.key.fingerprint == other.key.fingerprint && self.tenant == other.tenant
    }
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("tenant", &self.tenant)
            .field("key_fingerprint", &self.fingerprint())
            .finish()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// One tenant's AES-256-GCM key, derived from a master key. Its `Debug`
/// shows the key's fingerprint only, never key material.
pub struct TenantKey {
    cipher: LessSafeKey,
    fingerprint: [u8; 16],
}

impl TenantKey {
    /// Derives `tenant_id`'s key from `master_key`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a master key shorter than 16 bytes, or an
    /// empty tenant id or one longer than 1,024 bytes. The message never
    /// contains the key.
    pub fn derive(master_key: &[u8], tenant_id: &str) -> Result<Self> {
        if master_key.len() < MIN_MASTER_KEY_LEN {
            return Err(Error::config(
                "master_key",
                format!(
                    "must be at least {MIN_MASTER_KEY_LEN} bytes (32 recommended); got {}",
                    master_key.len()
                ),
            ));
        }
        let tenant = tenant_id.as_bytes();
        let Ok(tenant_len) = u16::try_from(tenant.len()) else {
            return Err(too_long_tenant());
        };
        if tenant.is_empty() {
            return Err(Error::config("tenant_id", "must not be empty"));
        }
        if tenant.len() > MAX_TENANT_LEN {
            return Err(too_long_tenant());
        }
        let mut salt = Vec::with_capacity(12 + 1 + DOMAIN.len() + 2 + tenant.len());
        salt.extend_from_slice(b"cachekit_v1_");
        salt.push(DOMAIN.len() as u8);
        salt.extend_from_slice(DOMAIN.as_bytes());
        salt.extend_from_slice(&tenant_len.to_be_bytes());
        salt.extend_from_slice(tenant);
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&salt), master_key)
            .expand(DOMAIN.as_bytes(), &mut key)
            .map_err(|_| Error::config("master_key", "key derivation failed"))?;
        let fingerprint = fingerprint(&key);
        let cipher = UnboundKey::new(&AES_256_GCM, &key).map(LessSafeKey::new);
        key.fill(0);
        let cipher = cipher.map_err(|_| Error::config("master_key", "key derivation failed"))?;
        Ok(Self {
            cipher,
            fingerprint,
        })
    }

    /// The family's fingerprint of the derived key: the first 16 bytes of
    /// `SHA-256("key_fingerprint_v1" ‖ key)`. Names a key without revealing it.
    pub fn fingerprint(&self) -> [u8; 16] {
        self.fingerprint
    }

    /// Encrypts `plaintext` under `aad` with a fresh random nonce; returns
    /// `nonce ‖ ciphertext ‖ tag`.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] if the system's random source fails.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|err| {
            Error::new(
                ErrorKind::Io,
                format!("no random nonce for encryption: {err}"),
            )
        })?;
        self.encrypt_with_nonce(plaintext, aad, nonce)
    }

    fn encrypt_with_nonce(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| Error::new(ErrorKind::Serialization, "value too large to encrypt"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `nonce ‖ ciphertext ‖ tag` stored under `aad`.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when the bytes are too short, or the
    /// tag does not verify: another key or tenant, another cache key, or
    /// damaged bytes. Nothing is returned that did not verify.
    pub fn decrypt(&self, stored: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if stored.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::new(
                ErrorKind::Serialization,
                format!(
                    "encrypted value of {} bytes is shorter than a nonce and a tag",
                    stored.len()
                ),
            ));
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let refused = || {
            Error::new(
                ErrorKind::Serialization,
                "encrypted value did not verify (another key, tenant or cache key, or damaged)",
            )
        };
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut plain = sealed.to_vec();
        let len = self
            .cipher
            .open_in_place(nonce, Aad::from(aad), &mut plain)
            .map_err(|_| refused())?
            .len();
        plain.truncate(len);
        Ok(plain)
    }
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("fingerprint", &hex_of(&self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// The AAD v0x03 of a value stored under `cache_key` by `tenant_id`, in
/// `format` (`"msgpack"` in interop mode), compressed or not.
pub fn aad(tenant_id: &str, cache_key: &str, format: &str, compressed: bool) -> Vec<u8> {
    let flag = if compressed { "True" } else { "False" };
    let parts = [tenant_id, cache_key, format, flag];
    let mut out = Vec::with_capacity(1 + parts.iter().map(|p| 4 + p.len()).sum::<usize>());
    out.push(AAD_VERSION);
    for part in parts {
        // Keys and ids are far below 4 GiB; saturating keeps this total.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn fingerprint(key: &[u8; 32]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"key_fingerprint_v1")
        .chain_update(key)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn too_long_tenant() -> Error {
    Error::config(
        "tenant_id",
        format!("must be at most {MAX_TENANT_LEN} bytes"),
    )
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
