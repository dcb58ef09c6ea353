//! Managing tenants through the admin API: one tenant, its settings (time zone, supervisors'
//! e-mail addresses), its dialled numbers and LiveKit trunk ids, its keys. Every method that
//! takes a `tenant_id` touches that tenant's rows only: a row of another tenant is
//! "not found", exactly like a row that does not exist.

use sqlx::Row;

use crate::{PhoneNumber, Store, StoreError, Tenant, TenantId};

/// Settings a tenant admin edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub tenant_id: TenantId,
    /// IANA zone for "today" and the daily summary.
    pub timezone: String,
    pub supervisor_emails: Vec<String>,
    pub updated_at: i64,
}

/// A LiveKit SIP trunk id mapped to a tenant and a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRoute {
    pub trunk_id: String,
    pub tenant_id: TenantId,
    pub flow: String,
    pub created_at: i64,
}

impl Store {
    /// A tenant by id.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Tenant {
            id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
        }))
    }

    /// A tenant's settings; defaults (UTC, nobody) until set.
    pub async fn tenant_settings(
        &self,
        tenant_id: &TenantId,
    ) -> Result<TenantSettings, StoreError> {
        let row = sqlx::query(
            "SELECT timezone, supervisor_emails, updated_at FROM tenant_settings WHERE tenant_id = $1",
        )
        .bind(tenant_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => TenantSettings {
                tenant_id: tenant_id.clone(),
                timezone: r.get(0),
                supervisor_emails: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                updated_at: r.get(2),
            },
            None => TenantSettings {
                tenant_id: tenant_id.clone(),
                timezone: "UTC".to_owned(),
                supervisor_emails: Vec::new(),
                updated_at: 0,
            },
        })
    }

    /// Replaces a tenant's settings.
    pub async fn put_tenant_settings(&self, s: &TenantSettings) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_settings (tenant_id, timezone, supervisor_emails, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
             timezone = excluded.timezone, supervisor_emails = excluded.supervisor_emails, \
             updated_at = excluded.updated_at",
        )
        .bind(s.tenant_id.as_str())
        .bind(&s.timezone)
        .bind(serde_json::to_string(&s.supervisor_emails).unwrap_or_default())
        .bind(s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Settings of every tenant that has supervisors to e-mail.
    pub async fn tenants_with_supervisors(&self) -> Result<Vec<TenantSettings>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, timezone, supervisor_emails, updated_at FROM tenant_settings \
             WHERE supervisor_emails <> '[]' ORDER BY tenant_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TenantSettings {
                tenant_id: TenantId::new(r.get::<String, _>(0)),
                timezone: r.get(1),
                supervisor_emails: serde_json::from_str(&r.get::<String, _>(2)).unwrap_or_default(),
                updated_at: r.get(3),
            })
            .collect())
    }

    /// A tenant's dialled numbers.
    pub async fn list_phone_numbers(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, tenant_id, flow, created_at FROM phone_numbers WHERE tenant_id = $1 \
             ORDER BY number",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PhoneNumber {
                number: r.get(0),
                tenant_id: TenantId::new(r.get::<String, _>(1)),
                flow: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    /// Changes the flow of a tenant's number.
    pub async fn set_phone_number_flow(
        &self,
        tenant_id: &TenantId,
        number: &str,
        flow: &str,
    ) -> Result<PhoneNumber, StoreError> {
        let done =
            sqlx::query("UPDATE phone_numbers SET flow = $1 WHERE tenant_id = $2 AND number = $3")
                .bind(flow)
                .bind(tenant_id.as_str())
                .bind(number)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "phone number",
            });
        }
        self.phone_number(number)
            .await?
            .ok_or(StoreError::NotFound {
                what: "phone number",
            })
    }

    /// Removes a tenant's number.
    pub async fn delete_phone_number(
        &self,
        tenant_id: &TenantId,
        number: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM phone_numbers WHERE tenant_id = $1 AND number = $2")
            .bind(tenant_id.as_str())
            .bind(number)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "phone number",
            });
        }
        Ok(())
    }

    /// Maps a LiveKit trunk id to a tenant and flow; a mapped id is a conflict.
    pub async fn add_trunk_route(
        &self,
        trunk_id: &str,
        tenant_id: &TenantId,
        flow: &str,
        now_ms: i64,
    ) -> Result<TrunkRoute, StoreError> {
        sqlx::query(
            "INSERT INTO trunk_routes (trunk_id, tenant_id, flow, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(trunk_id)
        .bind(tenant_id.as_str())
        .bind(flow)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "trunk route"))?;
        Ok(TrunkRoute {
            trunk_id: trunk_id.to_owned(),
            tenant_id: tenant_id.clone(),
            flow: flow.to_owned(),
            created_at: now_ms,
        })
    }

    /// Who answers calls arriving through LiveKit trunk `trunk_id`.
    pub async fn trunk_route(&self, trunk_id: &str) -> Result<Option<TrunkRoute>, StoreError> {
        let row = sqlx::query(
            "SELECT trunk_id, tenant_id, flow, created_at FROM trunk_routes WHERE trunk_id = $1",
        )
        .bind(trunk_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TrunkRoute {
            trunk_id: r.get(0),
            tenant_id: TenantId::new(r.get::<String, _>(1)),
            flow: r.get(2),
            created_at: r.get(3),
        }))
    }

    /// A tenant's trunk routes.
    pub async fn list_trunk_routes(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Vec<TrunkRoute>, StoreError> {
        let rows = sqlx::query(
            "SELECT trunk_id, tenant_id, flow, created_at FROM trunk_routes WHERE tenant_id = $1 \
             ORDER BY trunk_id",
        )
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| TrunkRoute {
                trunk_id: r.get(0),
                tenant_id: TenantId::new(r.get::<String, _>(1)),
                flow: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    /// Changes the flow of a tenant's trunk route.
    pub async fn set_trunk_route_flow(
        &self,
        tenant_id: &TenantId,
        trunk_id: &str,
        flow: &str,
    ) -> Result<TrunkRoute, StoreError> {
        let done =
            sqlx::query("UPDATE trunk_routes SET flow = $1 WHERE tenant_id = $2 AND trunk_id = $3")
                .bind(flow)
                .bind(tenant_id.as_str())
                .bind(trunk_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "trunk route",
            });
        }
        self.trunk_route(trunk_id)
            .await?
            .ok_or(StoreError::NotFound {
                what: "trunk route",
            })
    }

    /// Removes a tenant's trunk route.
    pub async fn delete_trunk_route(
        &self,
        tenant_id: &TenantId,
        trunk_id: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM trunk_routes WHERE tenant_id = $1 AND trunk_id = $2")
            .bind(tenant_id.as_str())
            .bind(trunk_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "trunk route",
            });
        }
        Ok(())
    }

    /// Revokes a key of `tenant_id` (a key of another tenant is not found).
    pub async fn revoke_tenant_api_key(
        &self,
        tenant_id: &TenantId,
        id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND tenant_id = $3",
        )
        .bind(now_ms)
        .bind(id)
        .bind(tenant_id.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "api key" });
        }
        Ok(())
    }
}
