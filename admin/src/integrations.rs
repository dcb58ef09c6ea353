//! `/v1/integrations/zoho`: the tenant's Zoho connection, its syncs and its write-back queue;
//! connecting through the API (admin role).
//!
//! - `GET /v1/integrations/zoho` (admin or supervisor): `{"zoho": {"status", "dc",
//!   "api_domain", "connected_at", "disconnected_at", "reason", "access_token_expires_at",
//!   "last_sync", "runs", "watermarks", "counts": {"customers", "invoices"}, "outbox":
//!   {"pending", "sent", "failed"}}}`; `status` is `not_connected` before any connection.
//! - `POST /v1/integrations/zoho/connect/start` `{"dc": "eu"}` (admin): `{"authorization_url",
//!   "state", "dc", "expires_at"}`.
//! - `POST /v1/integrations/zoho/connect/exchange` `{"code", "state", "accounts_server"?}`
//!   (admin): `{"status": "connected", "dc", "api_domain"}`.
//!
//! Tokens never appear in any answer: the store keeps them sealed and this module never asks
//! for them. The admin crate knows nothing of Zoho's protocol: the daemon injects a
//! [`ZohoConnector`] (503 `zoho_not_configured` without one).

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use store::Role;

use crate::{ApiError, AppState, Authenticated};

/// A boxed future, as the connector's methods return.
pub type ConnectFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ConnectError>> + Send + 'a>>;

/// Connecting a tenant to Zoho (the daemon implements it over `crm::zoho`).
pub trait ZohoConnector: Send + Sync {
    /// Starts an authorization in data centre `dc` (`us`, `eu`, …).
    fn start<'a>(
        &'a self,
        tenant_id: &'a store::TenantId,
        dc: &'a str,
    ) -> ConnectFuture<'a, ConnectStart>;
    /// Exchanges the code the redirect brought back.
    fn exchange<'a>(
        &'a self,
        tenant_id: &'a store::TenantId,
        code: &'a str,
        state: &'a str,
        accounts_server: Option<&'a str>,
    ) -> ConnectFuture<'a, ConnectDone>;
}

/// A started authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectStart {
    pub authorization_url: String,
    pub state: String,
    pub dc: String,
    pub expires_at: i64,
}

/// A completed connection (no tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectDone {
    pub dc: String,
    pub api_domain: String,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The request is wrong (unknown DC, bad state, code refused): 400 with this message.
    #[error("{message}")]
    Invalid { message: String },
    /// Zoho could not be reached or failed: 502.
    #[error("{message}")]
    Upstream { message: String },
    /// The daemon's Zoho settings are incomplete: 503.
    #[error("{message}")]
    NotConfigured { message: String },
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Invalid { message } => ApiError::bad_request(message),
            ConnectError::Upstream { message } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "zoho_unavailable", message)
            }
            ConnectError::NotConfigured { message } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "zoho_not_configured",
                message,
            ),
        }
    }
}

fn connector(state: &AppState) -> Result<&dyn ZohoConnector, ApiError> {
    state.zoho.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "zoho_not_configured",
            "the Zoho integration is not configured on this daemon (zoho.client_id, security.encryption_key)",
        )
    })
}

/// `GET /v1/integrations/zoho`: `zoho` holds `status` (`not_connected`, `connected`,
/// `disconnected`), `configured`, `last_sync`, `runs`, `watermarks`, `counts`, `outbox`, and
/// once connected `dc`, `api_domain`, `connected_at`, `reason`. Tokens are never returned.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ZohoStatusJson {
    #[schema(value_type = Object)]
    zoho: Value,
}

/// `POST /v1/integrations/zoho/connect/start`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectStartJson {
    authorization_url: String,
    state: String,
    dc: String,
    expires_at: i64,
}

/// `POST /v1/integrations/zoho/connect/exchange`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectDoneJson {
    /// `connected`.
    status: String,
    dc: String,
    api_domain: String,
}

/// The tenant's Zoho integration: connection, syncs, write-back outbox.
#[utoipa::path(get, path = "/v1/integrations/zoho", tag = "integrations",
    responses((status = 200, body = ZohoStatusJson), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn status(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let store = &state.store;
    let tenant = &p.tenant_id;
    let conn = store.zoho_connection(tenant).await?;
    let runs = store.list_zoho_sync_runs(tenant, 10).await?;
    let watermarks: serde_json::Map<String, Value> = store
        .zoho_watermarks(tenant)
        .await?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let outbox = store.outbox_counts(tenant).await?;
    let customers = store.count_customers(tenant).await?;
    let invoices = store.count_invoices(tenant).await?;
    let runs_json: Vec<Value> = runs.iter().map(run_json).collect();
    let mut zoho = json!({
        "status": conn.as_ref().map_or("not_connected", |c| c.status.as_str()),
        "configured": state.zoho.is_some(),
        "last_sync": runs_json.first().cloned(),
        "runs": runs_json,
        "watermarks": watermarks,
        "counts": {"customers": customers, "invoices": invoices},
        "outbox": {"pending": outbox.pending, "sent": outbox.sent, "failed": outbox.failed},
    });
    if let Some(c) = conn {
        zoho["dc"] = json!(c.dc);
        zoho["api_domain"] = json!(c.api_domain);
        zoho["connected_at"] = json!(c.connected_at);
        zoho["disconnected_at"] = json!(c.disconnected_at);
        zoho["reason"] = json!(c.status_reason);
        zoho["access_token_expires_at"] = json!(c.access_expires_at);
        zoho["authorization_pending"] = json!(c.pending_state.is_some());
    }
    Ok(Json(json!({ "zoho": zoho })))
}

fn run_json(r: &store::SyncRun) -> Value {
    json!({
        "id": r.id, "full": r.full, "trigger": r.trigger, "node": r.node, "status": r.status,
        "started_at": r.started_at, "finished_at": r.finished_at, "counts": r.counts,
        "skipped_no_phone": r.skipped_no_phone, "pages": r.pages, "error": r.error,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    dc: String,
}

/// Starts connecting the tenant to Zoho in data centre `dc`: the URL to authorise at.
#[utoipa::path(post, path = "/v1/integrations/zoho/connect/start", tag = "integrations",
    request_body = StartBody,
    responses((status = 200, body = ConnectStartJson), (status = 400), (status = 401),
        (status = 403), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn start(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Admin)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let started = connector(&state)?.start(&p.tenant_id, &body.dc).await?;
    Ok(Json(json!({
        "authorization_url": started.authorization_url,
        "state": started.state,
        "dc": started.dc,
        "expires_at": started.expires_at,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeBody {
    code: String,
    state: String,
    #[serde(default, alias = "accounts-server")]
    accounts_server: Option<String>,
}

/// Exchanges the code Zoho's redirect brought back; tokens are sealed, never returned.
#[utoipa::path(post, path = "/v1/integrations/zoho/connect/exchange", tag = "integrations",
    request_body = ExchangeBody,
    responses((status = 200, body = ConnectDoneJson), (status = 400), (status = 401),
        (status = 403), (status = 502), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn exchange(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<ExchangeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Admin)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.code.trim().is_empty() {
        return Err(ApiError::bad_request("code is empty"));
    }
    let done = connector(&state)?
        .exchange(
            &p.tenant_id,
            &body.code,
            &body.state,
            body.accounts_server.as_deref(),
        )
        .await?;
    Ok(Json(json!({
        "status": "connected",
        "dc": done.dc,
        "api_domain": done.api_domain,
    })))
}
