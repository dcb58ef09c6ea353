//! Phone numbers: which tenant and flow answer a dialled number.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, TenantId};

/// A number → tenant + flow mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneNumber {
    pub number: String,
    pub tenant_id: TenantId,
    pub flow: String,
    pub created_at: i64,
}

impl Store {
    /// Maps `number` to a tenant and flow. A number already mapped is a conflict.
    pub async fn add_phone_number(
        &self,
        number: &str,
        tenant_id: &TenantId,
        flow: &str,
        now_ms: i64,
    ) -> Result<PhoneNumber, StoreError> {
        sqlx::query(
            "INSERT INTO phone_numbers (number, tenant_id, flow, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(number)
        .bind(tenant_id.as_str())
        .bind(flow)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "phone number"))?;
        Ok(PhoneNumber {
            number: number.to_owned(),
            tenant_id: tenant_id.clone(),
            flow: flow.to_owned(),
            created_at: now_ms,
        })
    }

    /// Looks up who answers `number`.
    pub async fn phone_number(&self, number: &str) -> Result<Option<PhoneNumber>, StoreError> {
        let row = sqlx::query(
            "SELECT number, tenant_id, flow, created_at FROM phone_numbers WHERE number = $1",
        )
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| PhoneNumber {
            number: r.get(0),
            tenant_id: TenantId::new(r.get::<String, _>(1)),
            flow: r.get(2),
            created_at: r.get(3),
        }))
    }
}
