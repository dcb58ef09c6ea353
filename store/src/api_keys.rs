//! API keys for the admin HTTP API. Only a SHA-256 hash of each key is stored; the key is
//! shown once, when created.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Store, StoreError, TenantId, new_id};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The operator of the platform: everything an admin may do in its own tenant, plus
    /// creating tenants, their keys, and assigning numbers, trunks and plans to any tenant.
    /// Created only from the command line (`agent keys create --role platform`).
    Platform,
    /// Everything in its tenant, including configuration and keys.
    Admin,
    /// Read calls, transcripts, live calls and analytics of its tenant.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
        }
    }

    /// True when a key with this role may use an endpoint that requires `needed`.
    pub fn allows(self, needed: Role) -> bool {
        matches!(
            (self, needed),
            (Role::Platform, _)
                | (Role::Admin, Role::Admin | Role::Supervisor)
                | (Role::Supervisor, Role::Supervisor)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "platform" => Ok(Role::Platform),
            "admin" => Ok(Role::Admin),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(format!(
                "unknown role {other:?} (expected platform, admin or supervisor)"
            )),
        }
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: TenantId,
    pub role: Role,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A freshly created key: the only moment the secret exists outside its holder.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Who a request is from, once its key has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub role: Role,
}

const KEY_PREFIX: &str = "agk_";

fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Creates a key for `tenant_id` with `role`; the secret is returned once.
    pub async fn create_api_key(
        &self,
        tenant_id: &TenantId,
        role: Role,
        now_ms: i64,
    ) -> Result<NewApiKey, StoreError> {
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!("{KEY_PREFIX}{}", hex::encode(raw));
        let key = ApiKey {
            id: new_id(),
            tenant_id: tenant_id.clone(),
            role,
            prefix: secret[..KEY_PREFIX.len() + 8].to_owned(),
            created_at: now_ms,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, role, key_hash, prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(key.tenant_id.as_str())
        .bind(role.as_str())
        .bind(hash_key(&secret))
        .bind(&key.prefix)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "api key"))?;
        Ok(NewApiKey { key, secret })
    }

    /// Checks a presented key. `None` when unknown or revoked.
    pub async fn authenticate_api_key(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<Principal>, StoreError> {
        let hash = hash_key(secret);
        let row = sqlx::query(
            "SELECT id, tenant_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.get(2);
        let role = role.parse().map_err(|_| StoreError::Corrupt {
            what: "role",
            value: role,
        })?;
        let principal = Principal {
            key_id: row.get(0),
            tenant_id: TenantId::new(row.get::<String, _>(1)),
            role,
        };
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(&principal.key_id)
            .execute(&self.pool)
            .await?;
        Ok(Some(principal))
    }

    /// Revokes a key by id. Revoking twice keeps the first revocation time.
    pub async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now_ms)
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "api key" });
        }
        Ok(())
    }

    /// Keys of a tenant, newest first.
    pub async fn list_api_keys(&self, tenant_id: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, role, prefix, created_at, revoked_at FROM api_keys \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let role: String = r.get(2);
                Ok(ApiKey {
                    id: r.get(0),
                    tenant_id: TenantId::new(r.get::<String, _>(1)),
                    role: role.parse().map_err(|_| StoreError::Corrupt {
                        what: "role",
                        value: role,
                    })?,
                    prefix: r.get(3),
                    created_at: r.get(4),
                    revoked_at: r.get(5),
                })
            })
            .collect()
    }
}
