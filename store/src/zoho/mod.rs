//! The Zoho integration's tables: one connection per tenant (tokens are in `secrets`),
//! sync runs and watermarks ([`runs`]), the write-back outbox ([`outbox`]) and the customer
//! cache operations a sync needs beyond plain upserts ([`customers`]).

pub mod customers;
pub mod outbox;
pub mod runs;

use std::fmt;
use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::secrets::{NewSecret, UPSERT_SECRET};
use crate::{CallId, Store, StoreError, TenantId};

/// Where a tenant's Zoho connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZohoStatus {
    /// An authorization was started and never completed.
    Pending,
    /// Tokens are stored and work (as far as we know).
    Connected,
    /// The refresh token stopped working (revoked, expired) or the operator disconnected.
    Disconnected,
}

impl ZohoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ZohoStatus::Pending => "pending",
            ZohoStatus::Connected => "connected",
            ZohoStatus::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for ZohoStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ZohoStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(ZohoStatus::Pending),
            "connected" => Ok(ZohoStatus::Connected),
            "disconnected" => Ok(ZohoStatus::Disconnected),
            _ => Err(StoreError::Corrupt {
                what: "zoho connection status",
                value: s.to_owned(),
            }),
        }
    }
}

/// A tenant's connection row (no tokens: those are secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoConnection {
    pub tenant_id: TenantId,
    pub status: ZohoStatus,
    pub dc: String,
    pub accounts_server: String,
    pub api_domain: Option<String>,
    pub pending_state: Option<String>,
    pub pending_expires_at: Option<i64>,
    pub access_expires_at: Option<i64>,
    /// Unix ms of recently minted access tokens, oldest first.
    pub token_grants: Vec<i64>,
    pub status_reason: Option<String>,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub sync_lease_owner: Option<String>,
    pub sync_lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A completed authorization: where the tenant's Zoho account lives and its sealed tokens.
#[derive(Debug, Clone)]
pub struct ZohoConnect {
    pub dc: String,
    pub accounts_server: String,
    pub api_domain: String,
    pub access_expires_at: i64,
    /// When the access token that came with the grant was minted (counts toward the limit).
    pub granted_at: i64,
    /// The refresh and access tokens, sealed.
    pub secrets: Vec<NewSecret>,
}

const COLUMNS: &str = "tenant_id, status, dc, accounts_server, api_domain, pending_state, \
     pending_expires_at, access_expires_at, token_grants, status_reason, connected_at, \
     disconnected_at, sync_lease_owner, sync_lease_until, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<ZohoConnection, StoreError> {
    let status: String = r.get(1);
    let grants: String = r.get(8);
    let token_grants = serde_json::from_str(&grants).map_err(|_| StoreError::Corrupt {
        what: "zoho token grants",
        value: grants.clone(),
    })?;
    Ok(ZohoConnection {
        tenant_id: TenantId::new(r.get::<String, _>(0)),
        status: status.parse()?,
        dc: r.get(2),
        accounts_server: r.get(3),
        api_domain: r.get(4),
        pending_state: r.get(5),
        pending_expires_at: r.get(6),
        access_expires_at: r.get(7),
        token_grants,
        status_reason: r.get(9),
        connected_at: r.get(10),
        disconnected_at: r.get(11),
        sync_lease_owner: r.get(12),
        sync_lease_until: r.get(13),
        created_at: r.get(14),
        updated_at: r.get(15),
    })
}

fn grants_json(grants: &[i64]) -> String {
    serde_json::to_string(grants).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Records a started authorization (`state`, valid until `expires_at`) for `dc`. A tenant
    /// without a connection gets a `pending` one; an existing connection keeps its status and
    /// tokens until the new authorization completes.
    pub async fn start_zoho_authorization(
        &self,
        tenant_id: &TenantId,
        dc: &str,
        accounts_server: &str,
        state: &str,
        expires_at: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO zoho_connections (tenant_id, status, dc, accounts_server, pending_state, \
             pending_expires_at, token_grants, created_at, updated_at) \
             VALUES ($1, 'pending', $2, $3, $4, $5, '[]', $6, $6) \
             ON CONFLICT (tenant_id) DO UPDATE SET pending_state = excluded.pending_state, \
             pending_expires_at = excluded.pending_expires_at, updated_at = excluded.updated_at",
        )
        .bind(tenant_id.as_str())
        .bind(dc)
        .bind(accounts_server)
        .bind(state)
        .bind(expires_at)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A tenant's connection, if it ever started one.
    pub async fn zoho_connection(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<ZohoConnection>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM zoho_connections WHERE tenant_id = $1"
        ))
        .bind(tenant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every connection in `connected` state (the periodic sync and the outbox worker).
    pub async fn connected_zoho_tenants(&self) -> Result<Vec<ZohoConnection>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM zoho_connections WHERE status = 'connected' ORDER BY tenant_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Stores a completed authorization and its sealed tokens in one transaction: the tenant is
    /// `connected`, the pending state is cleared, and the grant counts toward the token limit.
    pub async fn save_zoho_connection(
        &self,
        tenant_id: &TenantId,
        connect: &ZohoConnect,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO zoho_connections (tenant_id, status, dc, accounts_server, api_domain, \
             access_expires_at, token_grants, connected_at, created_at, updated_at) \
             VALUES ($1, 'connected', $2, $3, $4, $5, $6, $7, $7, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET status = 'connected', dc = excluded.dc, \
             accounts_server = excluded.accounts_server, api_domain = excluded.api_domain, \
             access_expires_at = excluded.access_expires_at, token_grants = excluded.token_grants, \
             connected_at = excluded.connected_at, updated_at = excluded.updated_at, \
             pending_state = NULL, pending_expires_at = NULL, status_reason = NULL, \
             disconnected_at = NULL",
        )
        .bind(tenant_id.as_str())
        .bind(&connect.dc)
        .bind(&connect.accounts_server)
        .bind(&connect.api_domain)
        .bind(connect.access_expires_at)
        .bind(grants_json(&[connect.granted_at]))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        for secret in &connect.secrets {
            sqlx::query(UPSERT_SECRET)
                .bind(tenant_id.as_str())
                .bind(&secret.purpose)
                .bind(&secret.key_id)
                .bind(&secret.ciphertext)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a freshly minted access token (sealed), its expiry and the updated list of recent
    /// grants, in one transaction. Only for a connected tenant; false otherwise.
    pub async fn save_zoho_access_token(
        &self,
        tenant_id: &TenantId,
        access: &NewSecret,
        expires_at: i64,
        token_grants: &[i64],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE zoho_connections SET access_expires_at = $1, token_grants = $2, \
             updated_at = $3 WHERE tenant_id = $4 AND status = 'connected'",
        )
        .bind(expires_at)
        .bind(grants_json(token_grants))
        .bind(now_ms)
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(UPSERT_SECRET)
            .bind(tenant_id.as_str())
            .bind(&access.purpose)
            .bind(&access.key_id)
            .bind(&access.ciphertext)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records the token grants seen so far without a new token (e.g. after Zoho refused one
    /// for the rate limit, which still counts on Zoho's side).
    pub async fn set_zoho_token_grants(
        &self,
        tenant_id: &TenantId,
        token_grants: &[i64],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE zoho_connections SET token_grants = $1, updated_at = $2 WHERE tenant_id = $3",
        )
        .bind(grants_json(token_grants))
        .bind(now_ms)
        .bind(tenant_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a tenant disconnected with a reason and drops its access token (the refresh token
    /// is kept for the record but no longer used). True only for the call that changed the
    /// state, so the caller logs the event once.
    pub async fn mark_zoho_disconnected(
        &self,
        tenant_id: &TenantId,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE zoho_connections SET status = 'disconnected', status_reason = $1, \
             disconnected_at = $2, updated_at = $2, access_expires_at = NULL \
             WHERE tenant_id = $3 AND status <> 'disconnected'",
        )
        .bind(reason)
        .bind(now_ms)
        .bind(tenant_id.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND purpose = 'zoho.access_token'")
            .bind(tenant_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the tenant's sync lease for `owner` until `until` if it is free or expired (or
    /// already ours). False when another holder's lease is still running.
    pub async fn acquire_zoho_sync_lease(
        &self,
        tenant_id: &TenantId,
        owner: &str,
        now_ms: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE zoho_connections SET sync_lease_owner = $1, sync_lease_until = $2 \
             WHERE tenant_id = $3 AND (sync_lease_until IS NULL OR sync_lease_until < $4 \
             OR sync_lease_owner = $1)",
        )
        .bind(owner)
        .bind(until)
        .bind(tenant_id.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the sync lease back if `owner` still holds it.
    pub async fn release_zoho_sync_lease(
        &self,
        tenant_id: &TenantId,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE zoho_connections SET sync_lease_owner = NULL, sync_lease_until = NULL \
             WHERE tenant_id = $1 AND sync_lease_owner = $2",
        )
        .bind(tenant_id.as_str())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records which customer a call identified (replacing an earlier answer for the call).
    pub async fn set_call_customer(
        &self,
        call_id: &CallId,
        tenant_id: &TenantId,
        customer_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO call_customers (call_id, tenant_id, customer_id, identified_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO UPDATE SET \
             customer_id = excluded.customer_id, identified_at = excluded.identified_at",
        )
        .bind(call_id.as_str())
        .bind(tenant_id.as_str())
        .bind(customer_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The customer a call of `tenant_id` identified, if any.
    pub async fn call_customer(
        &self,
        tenant_id: &TenantId,
        call_id: &CallId,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT customer_id FROM call_customers WHERE call_id = $1 AND tenant_id = $2",
        )
        .bind(call_id.as_str())
        .bind(tenant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }
}
