//! Secrets at rest: AES-256-GCM with a keyring that supports rotation.
//!
//! A [`Keyring`] holds the current 32-byte key (from `security.encryption_key`) and any
//! previous keys still needed to read old data (`security.previous_encryption_keys`). Every
//! [`Keyring::seal`] uses the current key and a fresh random 96-bit nonce, and binds the
//! ciphertext to its owner through the associated data: the tenant id, the purpose (e.g.
//! `zoho.refresh_token`) and the key id. A ciphertext copied to another tenant's row, or read
//! back for another purpose, fails to open instead of yielding someone else's secret.
//!
//! Each [`Sealed`] value carries the id of the key that sealed it, so [`Keyring::open`] picks
//! the right key and rotation can find what is still under an old one. A key id is derived from
//! the key itself (a truncated SHA-256 with a domain prefix), so operators never manage ids and
//! a wrong key can never masquerade under the right id.
//!
//! Random nonces are safe for up to 2^32 encryptions per key (NIST SP 800-38D §8.3); a secret
//! store that writes a few tokens per tenant per hour is many orders of magnitude below that.
//!
//! What it does **not** do: storage (the `store` crate keeps the [`Sealed`] parts), key
//! management beyond decoding configured keys, or logging. Keys and plaintexts never appear in
//! `Debug` output.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Key length: AES-256.
pub const KEY_BYTES: usize = 32;
/// Nonce length: the 96 bits GCM is specified for.
pub const NONCE_BYTES: usize = 12;
/// GCM authentication tag length.
pub const TAG_BYTES: usize = 16;

/// Why a key could not be loaded or a secret could not be opened. Never carries key material
/// or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The configured key is not standard base64.
    #[error("the encryption key is not valid base64")]
    KeyNotBase64,
    /// The configured key does not decode to 32 bytes.
    #[error("the encryption key must be 32 bytes (base64 of 32 random bytes), got {len} bytes")]
    KeyLength { len: usize },
    /// No key in the keyring has the id the ciphertext was sealed with.
    #[error("no configured encryption key has id {key_id}")]
    UnknownKey { key_id: String },
    /// The ciphertext is not base64 or too short to hold a nonce and a tag.
    #[error("the stored ciphertext is malformed")]
    Malformed,
    /// Authentication failed: a different key under the same id, another tenant's or
    /// purpose's ciphertext, or tampered data.
    #[error(
        "the stored secret does not decrypt with key {key_id} (wrong key, wrong owner, or tampered data)"
    )]
    Decrypt { key_id: String },
}

/// What a secret belongs to; bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub tenant_id: &'a str,
    /// What the secret is, e.g. `zoho.refresh_token`.
    pub purpose: &'a str,
}

impl<'a> Owner<'a> {
    pub fn new(tenant_id: &'a str, purpose: &'a str) -> Owner<'a> {
        Owner { tenant_id, purpose }
    }
}

/// A sealed secret as stored: the id of the key that sealed it and
/// `base64(nonce ‖ ciphertext ‖ tag)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field(
                "ciphertext",
                &format_args!("<{} chars>", self.ciphertext.len()),
            )
            .finish()
    }
}

/// A decrypted secret. Its bytes are wiped when it is dropped; `Debug` prints `<redacted>`.
pub struct Plaintext(Zeroizing<String>);

impl Plaintext {
    /// Wraps a secret that did not come out of the vault (e.g. a token fresh from the network)
    /// so it is wiped on drop and redacted in `Debug` like the rest.
    pub fn new(secret: String) -> Plaintext {
        Plaintext(Zeroizing::new(secret))
    }

    /// The secret, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One AES-256 key and its id.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

impl EncryptionKey {
    /// Decodes a base64 key (standard alphabet, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<EncryptionKey, VaultError> {
        let trimmed = text.trim();
        let mut bytes = BASE64
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| VaultError::KeyNotBase64)?;
        let key = EncryptionKey::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    /// A key from raw bytes (32 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<EncryptionKey, VaultError> {
        if bytes.len() != KEY_BYTES {
            return Err(VaultError::KeyLength { len: bytes.len() });
        }
        let cipher = Aes256Gcm::new_from_slice(bytes)
            .map_err(|_| VaultError::KeyLength { len: bytes.len() })?;
        Ok(EncryptionKey {
            id: key_id(bytes),
            cipher,
        })
    }

    /// A fresh random key, as base64 (what `security.encryption_key` expects).
    pub fn generate_base64() -> String {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        BASE64.encode(key.as_slice())
    }

    /// The key's id: 16 hex digits derived from the key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The current key and the previous ones still accepted for reading.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring that seals with `current` and also opens what `previous` sealed.
    pub fn new(current: EncryptionKey, previous: Vec<EncryptionKey>) -> Keyring {
        Keyring { current, previous }
    }

    /// The id new secrets are sealed under.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Whether a key with this id is configured (current or previous).
    pub fn has_key(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    /// Encrypts `plaintext` for `owner` under the current key with a fresh nonce.
    pub fn seal(&self, plaintext: &str, owner: Owner<'_>) -> Sealed {
        let key = &self.current;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(owner, key.id());
        // Encryption with a valid key and in-memory buffers cannot fail (aes-gcm only errors
        // on plaintexts beyond 2^36 bytes); an empty output would fail to open, never leak.
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(NONCE_BYTES + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Sealed {
            key_id: key.id().to_owned(),
            ciphertext: BASE64.encode(blob),
        }
    }

    /// Decrypts what [`Keyring::seal`] produced for the same `owner`.
    pub fn open(&self, sealed: &Sealed, owner: Owner<'_>) -> Result<Plaintext, VaultError> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        let blob = BASE64
            .decode(sealed.ciphertext.as_bytes())
            .map_err(|_| VaultError::Malformed)?;
        if blob.len() < NONCE_BYTES + TAG_BYTES {
            return Err(VaultError::Malformed);
        }
        let (nonce, body) = blob.split_at(NONCE_BYTES);
        let aad = associated_data(owner, key.id());
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Decrypt {
                key_id: sealed.key_id.clone(),
            })?;
        let text = String::from_utf8(plain).map_err(|e| {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            VaultError::Decrypt {
                key_id: sealed.key_id.clone(),
            }
        })?;
        Ok(Plaintext(Zeroizing::new(text)))
    }

    /// Opens `sealed` and seals it again under the current key (rotation). `None` when it is
    /// already under the current key.
    pub fn reseal(&self, sealed: &Sealed, owner: Owner<'_>) -> Result<Option<Sealed>, VaultError> {
        if sealed.key_id == self.current.id() {
            return Ok(None);
        }
        let plain = self.open(sealed, owner)?;
        Ok(Some(self.seal(plain.expose(), owner)))
    }

    fn key(&self, key_id: &str) -> Option<&EncryptionKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == key_id)
    }
}

/// Key ids are public (stored beside every ciphertext), so they come from a one-way hash with
/// a domain prefix; 64 bits tell a handful of configured keys apart with certainty.
fn key_id(bytes: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"agent-vault key id v1\0");
    hash.update(bytes);
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Length-prefixed fields, so no tenant/purpose pair can be confused with another.
fn associated_data(owner: Owner<'_>, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(b"agent-vault/v1");
    for part in [owner.tenant_id, owner.purpose, key_id] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; 32]).unwrap()
    }

    const OWNER: Owner<'static> = Owner {
        tenant_id: "tenant-a",
        purpose: "zoho.refresh_token",
    };

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = Keyring::new(key(1), vec![]);
        let a = ring.seal("1000.abc.def", OWNER);
        let b = ring.seal("1000.abc.def", OWNER);
        assert_ne!(a.ciphertext, b.ciphertext, "a fresh nonce per encryption");
        assert_eq!(a.key_id, ring.current_id());
        assert_eq!(ring.open(&a, OWNER).unwrap().expose(), "1000.abc.def");
        assert_eq!(ring.open(&b, OWNER).unwrap().expose(), "1000.abc.def");
        // The ciphertext is nonce + plaintext + tag.
        let blob = BASE64.decode(&a.ciphertext).unwrap();
        assert_eq!(blob.len(), NONCE_BYTES + "1000.abc.def".len() + TAG_BYTES);
    }

    #[test]
    fn tampering_is_rejected() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("secret", OWNER);
        let mut blob = BASE64.decode(&sealed.ciphertext).unwrap();
        for i in [0, NONCE_BYTES, blob.len() - 1] {
            blob[i] ^= 0x01;
            let tampered = Sealed {
                key_id: sealed.key_id.clone(),
                ciphertext: BASE64.encode(&blob),
            };
            assert!(matches!(
                ring.open(&tampered, OWNER),
                Err(VaultError::Decrypt { .. })
            ));
            blob[i] ^= 0x01;
        }
        let short = Sealed {
            key_id: sealed.key_id.clone(),
            ciphertext: BASE64.encode([0u8; 20]),
        };
        assert_eq!(ring.open(&short, OWNER).unwrap_err(), VaultError::Malformed);
        let not_b64 = Sealed {
            key_id: sealed.key_id,
            ciphertext: "%%%".into(),
        };
        assert_eq!(
            ring.open(&not_b64, OWNER).unwrap_err(),
            VaultError::Malformed
        );
    }

    #[test]
    fn wrong_owner_is_rejected() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("secret", OWNER);
        let other_tenant = Owner::new("tenant-b", OWNER.purpose);
        let other_purpose = Owner::new(OWNER.tenant_id, "zoho.access_token");
        // Length prefixes: "ab"+"c" must not equal "a"+"bc".
        let shifted = Owner::new("tenant-az", "oho.refresh_token");
        for owner in [other_tenant, other_purpose, shifted] {
            assert!(matches!(
                ring.open(&sealed, owner),
                Err(VaultError::Decrypt { .. })
            ));
        }
    }

    #[test]
    fn key_ids_and_rotation() {
        let old = key(1);
        let new = key(2);
        assert_ne!(old.id(), new.id());
        assert_eq!(old.id().len(), 16);
        let before = Keyring::new(old.clone(), vec![]);
        let sealed = before.seal("secret", OWNER);

        // Only the new key: the old ciphertext names a key we do not have.
        let only_new = Keyring::new(new.clone(), vec![]);
        assert_eq!(
            only_new.open(&sealed, OWNER).unwrap_err(),
            VaultError::UnknownKey {
                key_id: old.id().to_owned()
            }
        );
        // New key with the old one as previous: reads, and reseals under the new one.
        let rotating = Keyring::new(new.clone(), vec![old]);
        let resealed = rotating.reseal(&sealed, OWNER).unwrap().unwrap();
        assert_eq!(resealed.key_id, new.id());
        assert!(rotating.reseal(&resealed, OWNER).unwrap().is_none());
        assert_eq!(only_new.open(&resealed, OWNER).unwrap().expose(), "secret");

        // A different key claiming the old id (a forged row) fails authentication.
        let forged = Sealed {
            key_id: new.id().to_owned(),
            ciphertext: sealed.ciphertext,
        };
        assert!(matches!(
            only_new.open(&forged, OWNER),
            Err(VaultError::Decrypt { .. })
        ));
    }

    #[test]
    fn key_decoding() {
        let generated = EncryptionKey::generate_base64();
        let k = EncryptionKey::from_base64(&generated).unwrap();
        assert_eq!(k.id().len(), 16);
        assert_eq!(
            EncryptionKey::from_base64("not base64!").unwrap_err(),
            VaultError::KeyNotBase64
        );
        assert_eq!(
            EncryptionKey::from_base64(&BASE64.encode([7u8; 16])).unwrap_err(),
            VaultError::KeyLength { len: 16 }
        );
        // Debug never shows key material or plaintext.
        assert!(!format!("{k:?}").contains(&generated));
        let ring = Keyring::new(k, vec![]);
        let plain = ring.open(&ring.seal("tok", OWNER), OWNER).unwrap();
        assert_eq!(format!("{plain:?}"), "<redacted>");
    }
}
