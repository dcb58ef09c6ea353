//! Encrypted secrets (OAuth tokens and the like), one per tenant and purpose.
//!
//! The store never sees a plaintext: callers seal with the `vault` crate and hand over the key
//! id and the ciphertext. Rotation rewrites a row only if it still holds what was read
//! (compare-and-set), so a token refreshed meanwhile by another daemon is never overwritten
//! with an older one.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, TenantId};

/// A stored ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub tenant_id: TenantId,
    pub purpose: String,
    /// Id of the key that sealed it.
    pub key_id: String,
    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    pub ciphertext: String,
    pub updated_at: i64,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("tenant_id", &self.tenant_id)
            .field("purpose", &self.purpose)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A secret to write: what it is and its sealed form.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub purpose: String,
    pub key_id: String,
    pub ciphertext: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("purpose", &self.purpose)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// How many secrets are sealed under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: String,
    pub secrets: i64,
}

const COLUMNS: &str = "tenant_id, purpose, key_id, ciphertext, updated_at";

fn from_row(r: &AnyRow) -> StoredSecret {
    StoredSecret {
        tenant_id: TenantId::new(r.get::<String, _>(0)),
        purpose: r.get(1),
        key_id: r.get(2),
        ciphertext: r.get(3),
        updated_at: r.get(4),
    }
}

pub(crate) const UPSERT_SECRET: &str = "INSERT INTO secrets (tenant_id, purpose, key_id, \
     ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, purpose) DO \
     UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext, \
     updated_at = excluded.updated_at";

impl Store {
    /// Writes (or replaces) a tenant's secret for `secret.purpose`.
    pub async fn put_secret(
        &self,
        tenant_id: &TenantId,
        secret: &NewSecret,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(UPSERT_SECRET)
            .bind(tenant_id.as_str())
            .bind(&secret.purpose)
            .bind(&secret.key_id)
            .bind(&secret.ciphertext)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A tenant's secret for `purpose`.
    pub async fn secret(
        &self,
        tenant_id: &TenantId,
        purpose: &str,
    ) -> Result<Option<StoredSecret>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE tenant_id = $1 AND purpose = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Removes a tenant's secret; true when one existed.
    pub async fn delete_secret(
        &self,
        tenant_id: &TenantId,
        purpose: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND purpose = $2")
            .bind(tenant_id.as_str())
            .bind(purpose)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every key id in use, with how many secrets each sealed (for the start-up key check).
    pub async fn secret_key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let rows =
            sqlx::query("SELECT key_id, COUNT(*) FROM secrets GROUP BY key_id ORDER BY key_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| KeyUsage {
                key_id: r.get(0),
                secrets: r.get(1),
            })
            .collect())
    }

    /// One secret sealed under `key_id`, to test that the configured key really opens it.
    pub async fn sample_secret(&self, key_id: &str) -> Result<Option<StoredSecret>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE key_id = $1 ORDER BY tenant_id, purpose LIMIT 1"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Up to `limit` secrets sealed under any key other than `current_key_id`, oldest first.
    pub async fn secrets_not_under(
        &self,
        current_key_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredSecret>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE key_id <> $1 \
             ORDER BY updated_at, tenant_id, purpose LIMIT $2"
        ))
        .bind(current_key_id)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Replaces `old` with `new` only if the row still holds exactly `old`; false when someone
    /// changed it meanwhile (then it needs no rotation: it was written under the current key).
    pub async fn replace_secret(
        &self,
        old: &StoredSecret,
        new: &NewSecret,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE secrets SET key_id = $1, ciphertext = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND purpose = $5 AND key_id = $6 AND ciphertext = $7",
        )
        .bind(&new.key_id)
        .bind(&new.ciphertext)
        .bind(now_ms)
        .bind(old.tenant_id.as_str())
        .bind(&old.purpose)
        .bind(&old.key_id)
        .bind(&old.ciphertext)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
