//! The encryption key versus what the database holds: the start-up check and key rotation.
//!
//! - [`check_encryption_keys`]: every key id found in `secrets` must be configured (current or
//!   previous), and one secret per key id must really open with it. A mismatch is a
//!   configuration error naming `security.encryption_key`; the daemon refuses to start (exit 2)
//!   rather than run with integrations that cannot read their tokens.
//! - [`rotate_secrets`]: re-seals every secret not under the current key (`agent keys
//!   rotate-encryption`), with compare-and-set writes so tokens refreshed meanwhile are kept.

use store::{NewSecret, Store, StoreError, StoredSecret};
use vault::{Keyring, Owner, Sealed, VaultError};

/// Why the configured key does not fit the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyCheckError {
    /// Secrets exist but no key is configured.
    #[error(
        "security.encryption_key is not set, but the database holds {secrets} encrypted secret(s) (key id {key_id}); configure the key they were written with"
    )]
    NoKey { key_id: String, secrets: i64 },
    /// Secrets were sealed with a key that is neither current nor previous.
    #[error(
        "security.encryption_key (key id {current}) cannot decrypt {secrets} secret(s) stored under key id {key_id}; configure that key, or list it in security.previous_encryption_keys"
    )]
    UnknownKey {
        key_id: String,
        current: String,
        secrets: i64,
    },
    /// A configured key with the right id does not open its secrets (corrupt data).
    #[error("security.encryption_key: a secret under key id {key_id} does not decrypt ({source})")]
    Undecryptable {
        key_id: String,
        #[source]
        source: VaultError,
    },
    #[error("cannot read secrets to check security.encryption_key: {0}")]
    Store(#[from] StoreError),
}

impl KeyCheckError {
    /// Whether this is the operator's configuration (exit 2) rather than the database failing.
    pub fn is_config(&self) -> bool {
        !matches!(self, KeyCheckError::Store(_))
    }
}

/// Checks `keyring` (None: no key configured) against every key id in the database.
pub async fn check_encryption_keys(
    store: &Store,
    keyring: Option<&Keyring>,
) -> Result<(), KeyCheckError> {
    for usage in store.secret_key_usage().await? {
        let Some(ring) = keyring else {
            return Err(KeyCheckError::NoKey {
                key_id: usage.key_id,
                secrets: usage.secrets,
            });
        };
        if !ring.has_key(&usage.key_id) {
            return Err(KeyCheckError::UnknownKey {
                key_id: usage.key_id,
                current: ring.current_id().to_owned(),
                secrets: usage.secrets,
            });
        }
        if let Some(sample) = store.sample_secret(&usage.key_id).await? {
            ring.open(&sealed(&sample), owner(&sample))
                .map_err(|source| KeyCheckError::Undecryptable {
                    key_id: usage.key_id.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Secrets re-sealed under the current key.
    pub resealed: u64,
    /// Secrets that changed meanwhile (already under the current key).
    pub skipped: u64,
}

/// Why a rotation stopped. Secrets re-sealed before the failure stay re-sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    #[error("secret {purpose} of tenant {tenant_id} does not decrypt: {source}")]
    Decrypt {
        tenant_id: store::TenantId,
        purpose: String,
        #[source]
        source: VaultError,
    },
    #[error("cannot rotate secrets: {0}")]
    Store(#[from] StoreError),
}

/// Re-seals every secret that is not under the keyring's current key.
pub async fn rotate_secrets(
    store: &Store,
    keyring: &Keyring,
    now_ms: i64,
) -> Result<RotationReport, RotationError> {
    let mut report = RotationReport::default();
    loop {
        let batch = store.secrets_not_under(keyring.current_id(), 100).await?;
        if batch.is_empty() {
            return Ok(report);
        }
        let before = report;
        for old in batch {
            let fresh = keyring
                .reseal(&sealed(&old), owner(&old))
                .map_err(|source| RotationError::Decrypt {
                    tenant_id: old.tenant_id.clone(),
                    purpose: old.purpose.clone(),
                    source,
                })?;
            let Some(fresh) = fresh else { continue };
            let new = NewSecret {
                purpose: old.purpose.clone(),
                key_id: fresh.key_id,
                ciphertext: fresh.ciphertext,
            };
            if store.replace_secret(&old, &new, now_ms).await? {
                report.resealed += 1;
            } else {
                report.skipped += 1;
            }
        }
        // Rows that keep changing under an old key (a daemon still configured with it) would
        // otherwise be picked up forever.
        if report.resealed == before.resealed {
            return Ok(report);
        }
    }
}

fn sealed(s: &StoredSecret) -> Sealed {
    Sealed {
        key_id: s.key_id.clone(),
        ciphertext: s.ciphertext.clone(),
    }
}

fn owner(s: &StoredSecret) -> Owner<'_> {
    Owner::new(s.tenant_id.as_str(), &s.purpose)
}
