//! Tenants: the businesses whose calls this daemon answers.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, TenantId};

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    /// Creates a tenant. A duplicate name is [`StoreError::Conflict`].
    pub async fn create_tenant(&self, name: &str, now_ms: i64) -> Result<Tenant, StoreError> {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: name.to_owned(),
            created_at: now_ms,
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_insert(e, "tenant"))?;
        Ok(tenant)
    }

    /// Finds a tenant by its unique name.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Tenant {
            id: TenantId::new(r.get::<String, _>(0)),
            name: r.get(1),
            created_at: r.get(2),
        }))
    }

    /// Returns the tenant named `name`, creating it first when it does not exist. Safe when
    /// several daemons race: the loser of the insert reads the winner's row.
    pub async fn ensure_tenant(&self, name: &str, now_ms: i64) -> Result<Tenant, StoreError> {
        if let Some(t) = self.tenant_by_name(name).await? {
            return Ok(t);
        }
        match self.create_tenant(name, now_ms).await {
            Ok(t) => Ok(t),
            Err(StoreError::Conflict { .. }) => self
                .tenant_by_name(name)
                .await?
                .ok_or(StoreError::NotFound { what: "tenant" }),
            Err(e) => Err(e),
        }
    }

    /// All tenants, oldest first.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Tenant {
                id: TenantId::new(r.get::<String, _>(0)),
                name: r.get(1),
                created_at: r.get(2),
            })
            .collect())
    }
}
