//! `GET /v1/trunks`: the SIP trunks' registration and health, as the SIP driver sees them.
//!
//! The admin crate knows nothing of SIP: the daemon injects a [`TrunkDirectory`] into
//! [`AppState`](crate::AppState). Times are unix milliseconds; field names are part of the
//! API contract.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use store::Role;

use crate::{ApiError, AppState, Authenticated};

/// Where the trunks' live state comes from (the SIP driver, in the daemon).
pub trait TrunkDirectory: Send + Sync {
    /// Every configured trunk, in configuration order.
    fn trunks(&self) -> Vec<TrunkInfo>;
}

/// One trunk's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkInfo {
    pub name: String,
    /// The resolved proxy address (`ip:port`), when known.
    pub proxy: Option<String>,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Whether the trunk is configured to register.
    pub register: bool,
    /// `disabled`, `unresolved`, `unregistered`, `registering`, `registered` or `failed`.
    pub registration: String,
    pub registered: bool,
    /// When the registration lapses unless refreshed (unix ms).
    pub expires_at: Option<i64>,
    /// The most recent problem, kept after recovery, and when it happened (unix ms).
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// The last OPTIONS keepalive; `None` before the first, or without keepalives.
    pub health: Option<TrunkHealthInfo>,
}

/// The last keepalive result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrunkHealthInfo {
    pub up: bool,
    /// Round trip of the OPTIONS; `None` when nothing answered.
    pub rtt_ms: Option<u64>,
    pub checked_at: i64,
}

#[utoipa::path(get, path = "/v1/trunks", tag = "trunks", responses((status = 200, body = crate::openapi::TrunkList), (status = 403, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/trunks` (admin): `{"trunks": [...]}`; an empty list when the daemon has no SIP
/// side (or no trunks).
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin)?;
    let trunks = state
        .trunks
        .as_ref()
        .map(|d| d.trunks())
        .unwrap_or_default();
    Ok(Json(json!({ "trunks": trunks })))
}
