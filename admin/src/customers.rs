//! `/v1/customers?phone=…`: who the cache says a number belongs to (supervisor).
//!
//! The number must be E.164 (`+` and 8–15 digits; spaces, dashes, dots and parentheses are
//! ignored). National formats need the default region, which is `crm`'s business; the admin
//! API depends on `store` only, so it asks for the country code instead of guessing.
//! The postal code (a verification secret for callers) is never returned.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Customer, CustomerPhone, Invoice, Role};

use crate::{ApiError, AppState, Authenticated};

/// Customers sharing one number that a lookup lists.
const MAX_MATCHES: u32 = 20;
/// Invoices listed per customer, latest due date first.
const MAX_INVOICES: u32 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupParams {
    phone: Option<String>,
}

#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(("phone" = String, Query, description = "E.164 number")), responses((status = 200, body = crate::openapi::CustomerLookup), (status = 400, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/customers?phone=+15551234567`: the tenant's customers with that number, with
/// their phones and invoices.
pub(crate) async fn by_phone(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(raw) = params.phone else {
        return Err(ApiError::bad_request("the phone parameter is required"));
    };
    let e164 = e164(&raw).ok_or_else(|| {
        ApiError::bad_request("phone must be an E.164 number such as +15551234567")
    })?;
    let customers = state
        .store
        .customers_by_phone(&p.tenant_id, &e164, MAX_MATCHES)
        .await?;
    let mut out = Vec::with_capacity(customers.len());
    for c in &customers {
        let phones = state.store.customer_phones(&p.tenant_id, &c.id).await?;
        let invoices = state
            .store
            .invoices_for_customer(&p.tenant_id, &c.id, MAX_INVOICES)
            .await?;
        out.push(customer_json(c, &phones, &invoices));
    }
    Ok(Json(json!({ "phone": e164, "customers": out })))
}

/// `+` then 8–15 digits, the first not 0, after dropping visual separators.
fn e164(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(compact)
}

fn customer_json(c: &Customer, phones: &[CustomerPhone], invoices: &[Invoice]) -> Value {
    json!({
        "id": c.id,
        "external_id": c.external_id,
        "zoho_contact_id": c.zoho_contact_id,
        "zoho_books_id": c.zoho_books_id,
        "name": c.name,
        "company": c.company,
        "email": c.email,
        "balance_minor": c.balance_minor,
        "currency": c.currency,
        "phones": phones.iter().map(|p| json!({ "e164": p.e164, "kind": p.kind.as_str() })).collect::<Vec<_>>(),
        "invoices": invoices.iter().map(|i| json!({
            "number": i.number,
            "status": i.status,
            "total_minor": i.total_minor,
            "balance_minor": i.balance_minor,
            "currency": i.currency,
            "issue_date": i.issue_date,
            "due_date": i.due_date,
        })).collect::<Vec<_>>(),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn only_e164_is_accepted() {
        assert_eq!(e164("+1 (555) 123-4567").as_deref(), Some("+15551234567"));
        for bad in [
            "5551234567",
            "+0123456789",
            "+1555",
            "+1234567890123456",
            "+1555abc4567",
            "",
        ] {
            assert_eq!(e164(bad), None, "{bad:?}");
        }
    }
}
