//! Tenants, their numbers, LiveKit trunk routes, keys and settings.
//!
//! Two kinds of administrator:
//! - a **platform admin** (role `platform`, keys made only with `agent keys create --role
//!   platform`) runs the service: creates tenants and their first keys, and assigns dialled
//!   numbers, LiveKit trunk ids and plans to tenants (`/v1/tenants/…`). Numbers are the
//!   platform's to hand out: a tenant cannot claim one, so a tenant can never learn which
//!   numbers another tenant holds.
//! - a **tenant admin** (role `admin`) manages its own tenant only: the flow behind each of
//!   its numbers and trunk routes, its keys, its settings (time zone, supervisors' e-mail).
//!
//! Every tenant-scoped query filters on the key's tenant; another tenant's row answers 404,
//! exactly like a row that does not exist.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{Role, StoreError};
use utoipa::ToSchema;

use crate::{ApiError, AppState, Authenticated};

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantJson {
    id: String,
    name: String,
    created_at: i64,
}

/// The list of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<TenantJson>,
}

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    name: String,
}

/// A dialled number mapped to a tenant and flow.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NumberJson {
    number: String,
    flow: String,
    created_at: i64,
}

/// A tenant's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NumberList {
    numbers: Vec<NumberJson>,
}

/// `POST /v1/tenants/{id}/numbers` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNumber {
    number: String,
    flow: String,
}

/// `PATCH` body for a number or trunk route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowChange {
    flow: String,
}

/// A LiveKit SIP trunk id mapped to a tenant and flow.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrunkRouteJson {
    trunk_id: String,
    flow: String,
    created_at: i64,
}

/// A tenant's trunk routes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrunkRouteList {
    trunk_routes: Vec<TrunkRouteJson>,
}

/// `POST /v1/tenants/{id}/trunk-routes` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTrunkRoute {
    trunk_id: String,
    flow: String,
}

/// `POST /v1/keys` and `POST /v1/tenants/{id}/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// `admin` or `supervisor`.
    role: String,
}

/// A created key: `secret` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    id: String,
    tenant_id: String,
    role: String,
    prefix: String,
    secret: String,
}

/// A tenant's settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsJson {
    /// IANA zone for "today" and the daily summary.
    timezone: String,
    /// Supervisors who get the daily summary and message/callback notices.
    supervisor_emails: Vec<String>,
}

/// `PUT /v1/tenants/{id}/plan` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanChange {
    plan: String,
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn conflict(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("{what} already exists"),
    )
}

fn map_store(e: StoreError, what: &'static str) -> ApiError {
    match e {
        StoreError::NotFound { .. } => ApiError::not_found(what),
        StoreError::Conflict { .. } => conflict(what),
        other => other.into(),
    }
}

/// The tenant `id`, for a platform admin.
async fn platform_tenant(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> Result<store::Tenant, ApiError> {
    auth.require(Role::Platform)?;
    state
        .store
        .tenant(&store::TenantId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

fn check_flow(state: &AppState, flow: &str) -> Result<(), ApiError> {
    if flow.trim().is_empty() {
        return Err(ApiError::bad_request("flow must not be empty"));
    }
    if let Some(flows) = &state.flows
        && !flows.has_flow(flow)
    {
        return Err(ApiError::bad_request(format!(
            "flow {flow:?} is not loaded (have: {})",
            flows.flow_names().join(", ")
        )));
    }
    Ok(())
}

fn check_number(number: &str) -> Result<(), ApiError> {
    let ok = !number.is_empty()
        && number.len() <= 32
        && number
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "number must be digits, optionally after a leading + (as dialled)",
        ))
    }
}

fn tenant_json(t: store::Tenant) -> TenantJson {
    TenantJson {
        id: t.id.to_string(),
        name: t.name,
        created_at: t.created_at,
    }
}

/// Create a tenant (platform admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = TenantJson), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    auth: Authenticated,
    b: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantJson>), ApiError> {
    auth.require(Role::Platform)?;
    let b = body(b)?;
    let name = b.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    let t = state
        .store
        .create_tenant(name, state.now_ms())
        .await
        .map_err(|e| map_store(e, "tenant"))?;
    Ok((StatusCode::CREATED, Json(tenant_json(t))))
}

/// List tenants (platform admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<TenantList>, ApiError> {
    auth.require(Role::Platform)?;
    let tenants = state.store.list_tenants().await?;
    Ok(Json(TenantList {
        tenants: tenants.into_iter().map(tenant_json).collect(),
    }))
}

/// One tenant (platform admin).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path)),
    responses((status = 200, body = TenantJson), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<TenantJson>, ApiError> {
    Ok(Json(tenant_json(
        platform_tenant(&state, &auth, &id).await?,
    )))
}

async fn create_key_for(
    state: &AppState,
    tenant_id: &store::TenantId,
    b: NewKey,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let role: Role = b
        .role
        .parse()
        .map_err(|_| ApiError::bad_request("role must be admin or supervisor"))?;
    if role == Role::Platform {
        return Err(ApiError::bad_request(
            "platform keys are made on the command line only",
        ));
    }
    let new = state
        .store
        .create_api_key(tenant_id, role, state.now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: new.key.id,
            tenant_id: new.key.tenant_id.to_string(),
            role: role.as_str().to_owned(),
            prefix: new.key.prefix,
            secret: new.secret,
        }),
    ))
}

/// Create a key for a tenant (platform admin).
#[utoipa::path(post, path = "/v1/tenants/{id}/keys", tag = "tenants", request_body = NewKey,
    params(("id" = String, Path)),
    responses((status = 201, body = CreatedKey), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn create_tenant_key(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    b: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    create_key_for(&state, &t.id, body(b)?).await
}

/// Create a key for the key's own tenant (admin).
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    auth: Authenticated,
    b: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let p = auth.require(Role::Admin)?.clone();
    create_key_for(&state, &p.tenant_id, body(b)?).await
}

/// Revoke one of the tenant's keys (admin).
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let p = auth.require(Role::Admin)?;
    state
        .store
        .revoke_tenant_api_key(&p.tenant_id, &id, state.now_ms())
        .await
        .map_err(|e| map_store(e, "key"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Map a dialled number to a tenant and flow (platform admin).
#[utoipa::path(post, path = "/v1/tenants/{id}/numbers", tag = "tenants",
    request_body = NewNumber, params(("id" = String, Path)),
    responses((status = 201, body = NumberJson), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn add_number(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    b: Result<Json<NewNumber>, JsonRejection>,
) -> Result<(StatusCode, Json<NumberJson>), ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    let b = body(b)?;
    check_number(&b.number)?;
    check_flow(&state, &b.flow)?;
    let n = state
        .store
        .add_phone_number(&b.number, &t.id, &b.flow, state.now_ms())
        .await
        .map_err(|e| map_store(e, "number"))?;
    Ok((
        StatusCode::CREATED,
        Json(NumberJson {
            number: n.number,
            flow: n.flow,
            created_at: n.created_at,
        }),
    ))
}

/// Unmap a tenant's number (platform admin).
#[utoipa::path(delete, path = "/v1/tenants/{id}/numbers/{number}", tag = "tenants",
    params(("id" = String, Path), ("number" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn remove_number(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, number)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    state
        .store
        .delete_phone_number(&t.id, &number)
        .await
        .map_err(|e| map_store(e, "number"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Map a LiveKit trunk id to a tenant and flow (platform admin).
#[utoipa::path(post, path = "/v1/tenants/{id}/trunk-routes", tag = "tenants",
    request_body = NewTrunkRoute, params(("id" = String, Path)),
    responses((status = 201, body = TrunkRouteJson), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn add_trunk_route(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    b: Result<Json<NewTrunkRoute>, JsonRejection>,
) -> Result<(StatusCode, Json<TrunkRouteJson>), ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    let b = body(b)?;
    if b.trunk_id.trim().is_empty() || b.trunk_id.len() > 100 {
        return Err(ApiError::bad_request(
            "trunk_id must be 1 to 100 characters",
        ));
    }
    check_flow(&state, &b.flow)?;
    let r = state
        .store
        .add_trunk_route(&b.trunk_id, &t.id, &b.flow, state.now_ms())
        .await
        .map_err(|e| map_store(e, "trunk route"))?;
    Ok((
        StatusCode::CREATED,
        Json(TrunkRouteJson {
            trunk_id: r.trunk_id,
            flow: r.flow,
            created_at: r.created_at,
        }),
    ))
}

/// Unmap a tenant's trunk route (platform admin).
#[utoipa::path(delete, path = "/v1/tenants/{id}/trunk-routes/{trunk_id}", tag = "tenants",
    params(("id" = String, Path), ("trunk_id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn remove_trunk_route(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, trunk_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    state
        .store
        .delete_trunk_route(&t.id, &trunk_id)
        .await
        .map_err(|e| map_store(e, "trunk route"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a tenant's plan by hand (platform admin), e.g. for an invoiced customer.
#[utoipa::path(put, path = "/v1/tenants/{id}/plan", tag = "tenants", request_body = PlanChange,
    params(("id" = String, Path)),
    responses((status = 200, body = crate::billing::BillingStatus), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn set_plan(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    b: Result<Json<PlanChange>, JsonRejection>,
) -> Result<Json<crate::billing::BillingStatus>, ApiError> {
    let t = platform_tenant(&state, &auth, &id).await?;
    let b = body(b)?;
    if !state.billing.plans.plans.contains_key(&b.plan) {
        return Err(ApiError::bad_request(format!(
            "plan {:?} is not configured",
            b.plan
        )));
    }
    state.store.set_plan(&t.id, &b.plan, state.now_ms()).await?;
    Ok(Json(crate::billing::status_of(&state, &t.id).await?))
}

/// The tenant's numbers (admin).
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers",
    responses((status = 200, body = NumberList), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn list_numbers(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<NumberList>, ApiError> {
    let p = auth.require(Role::Admin)?;
    let numbers = state.store.list_phone_numbers(&p.tenant_id).await?;
    Ok(Json(NumberList {
        numbers: numbers
            .into_iter()
            .map(|n| NumberJson {
                number: n.number,
                flow: n.flow,
                created_at: n.created_at,
            })
            .collect(),
    }))
}

/// Change the flow of one of the tenant's numbers (admin).
#[utoipa::path(patch, path = "/v1/numbers/{number}", tag = "numbers", request_body = FlowChange,
    params(("number" = String, Path)),
    responses((status = 200, body = NumberJson), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn set_number_flow(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(number): Path<String>,
    b: Result<Json<FlowChange>, JsonRejection>,
) -> Result<Json<NumberJson>, ApiError> {
    let p = auth.require(Role::Admin)?.clone();
    let b = body(b)?;
    check_flow(&state, &b.flow)?;
    let n = state
        .store
        .set_phone_number_flow(&p.tenant_id, &number, &b.flow)
        .await
        .map_err(|e| map_store(e, "number"))?;
    Ok(Json(NumberJson {
        number: n.number,
        flow: n.flow,
        created_at: n.created_at,
    }))
}

/// The tenant's LiveKit trunk routes (admin).
#[utoipa::path(get, path = "/v1/trunk-routes", tag = "numbers",
    responses((status = 200, body = TrunkRouteList), (status = 403)), security(("bearer" = [])))]
pub(crate) async fn list_trunk_routes(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<TrunkRouteList>, ApiError> {
    let p = auth.require(Role::Admin)?;
    let routes = state.store.list_trunk_routes(&p.tenant_id).await?;
    Ok(Json(TrunkRouteList {
        trunk_routes: routes
            .into_iter()
            .map(|r| TrunkRouteJson {
                trunk_id: r.trunk_id,
                flow: r.flow,
                created_at: r.created_at,
            })
            .collect(),
    }))
}

/// Change the flow of one of the tenant's trunk routes (admin).
#[utoipa::path(patch, path = "/v1/trunk-routes/{trunk_id}", tag = "numbers",
    request_body = FlowChange, params(("trunk_id" = String, Path)),
    responses((status = 200, body = TrunkRouteJson), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn set_trunk_route_flow(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(trunk_id): Path<String>,
    b: Result<Json<FlowChange>, JsonRejection>,
) -> Result<Json<TrunkRouteJson>, ApiError> {
    let p = auth.require(Role::Admin)?.clone();
    let b = body(b)?;
    check_flow(&state, &b.flow)?;
    let r = state
        .store
        .set_trunk_route_flow(&p.tenant_id, &trunk_id, &b.flow)
        .await
        .map_err(|e| map_store(e, "trunk route"))?;
    Ok(Json(TrunkRouteJson {
        trunk_id: r.trunk_id,
        flow: r.flow,
        created_at: r.created_at,
    }))
}

/// The tenant's settings (supervisor).
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, body = SettingsJson)), security(("bearer" = [])))]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<SettingsJson>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let s = state.store.tenant_settings(&p.tenant_id).await?;
    Ok(Json(SettingsJson {
        timezone: s.timezone,
        supervisor_emails: s.supervisor_emails,
    }))
}

/// Replace the tenant's settings (admin).
#[utoipa::path(put, path = "/v1/settings", tag = "settings", request_body = SettingsJson,
    responses((status = 200, body = SettingsJson), (status = 400), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    auth: Authenticated,
    b: Result<Json<SettingsJson>, JsonRejection>,
) -> Result<Json<SettingsJson>, ApiError> {
    let p = auth.require(Role::Admin)?.clone();
    let b = body(b)?;
    billing::analytics::zone(&b.timezone)
        .map_err(|e| ApiError::bad_request(format!("timezone: {}", e.reason)))?;
    if b.supervisor_emails.len() > 50 {
        return Err(ApiError::bad_request(
            "supervisor_emails: at most 50 addresses",
        ));
    }
    for email in &b.supervisor_emails {
        let ok = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !email.contains(' '));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "supervisor_emails: {email:?} is not an e-mail address"
            )));
        }
    }
    state
        .store
        .put_tenant_settings(&store::TenantSettings {
            tenant_id: p.tenant_id.clone(),
            timezone: b.timezone.clone(),
            supervisor_emails: b.supervisor_emails.clone(),
            updated_at: state.now_ms(),
        })
        .await?;
    Ok(Json(b))
}
