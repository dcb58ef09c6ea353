//! `/v1/campaigns` and `/v1/dnc`: outbound campaigns (create, start, pause, progress, contacts)
//! and the tenant's do-not-call list. Supervisor role; everything is scoped to the key's
//! tenant. Times are unix milliseconds; field names are part of the API contract.
//!
//! `POST /v1/campaigns` body:
//!
//! ```json
//! { "name": "May reminders", "flow": "payment_reminder", "trunk": "carrier",
//!   "settings": { "windows": [{"days": ["mon","tue"], "start": "09:00", "end": "20:00"}],
//!                 "max_concurrent": 5, "calls_per_second": 1.0,
//!                 "retry": {"busy": {"max_attempts": 3, "spacing_secs": 600}} },
//!   "contacts_csv": "phone,name\n+15551234567,Ann\n",
//!   "start": true }
//! ```
//!
//! Instead of `contacts_csv`: `"customers": {"min_balance_minor": 1000, "currency": "USD"}`,
//! or `"kind": "callbacks"` for the tenant's callbacks campaign. A CSV with bad rows is refused
//! with 400 `invalid_contacts` and every bad row in `error.rows` (`line`, `problem`); nothing
//! is created.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crm::campaign::{
    CampaignRequest, Checks, ContactSource, CreateError, CsvError, CustomerFilter, create_campaign,
    parse_dnc_csv,
};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{
    Campaign, CampaignContact, CampaignId, CampaignProgress, CampaignSettings, CampaignStatus,
    ContactId, DncEntry, DncSource, NewDnc, Role, StoreError,
};

use crate::{ApiError, AppState, Authenticated};

/// What the daemon lets the API check when a campaign is created: the region for national
/// numbers, and which flows and trunks exist.
#[derive(Clone)]
pub struct CampaignSupport {
    pub phones: crm::PhoneNormalizer,
    pub flow_exists: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    pub trunk_exists: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    flow: String,
    trunk: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    settings: Option<CampaignSettings>,
    #[serde(default)]
    contacts_csv: Option<String>,
    #[serde(default)]
    customers: Option<CustomerFilter>,
    #[serde(default)]
    start: bool,
}

/// `POST /v1/campaigns` (supervisor): 201 with the campaign.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns",
    request_body(content = Object, description = "name, flow, trunk, settings, and contacts_csv, customers or kind"),
    responses((status = 201, body = CampaignJsonDoc), (status = 400, description = "invalid input; `invalid_contacts` lists the bad rows"),
        (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let contacts = match (body.kind.as_deref(), body.contacts_csv, body.customers) {
        (Some("callbacks"), None, None) => ContactSource::Callbacks,
        (Some("callbacks"), _, _) => {
            return Err(ApiError::bad_request(
                "a callbacks campaign takes no contacts_csv or customers",
            ));
        }
        (None | Some("list"), Some(csv), None) => ContactSource::Csv(csv),
        (None | Some("list"), None, Some(filter)) => ContactSource::Customers(filter),
        (None | Some("list"), _, _) => {
            return Err(ApiError::bad_request(
                "give exactly one of contacts_csv and customers",
            ));
        }
        (Some(other), _, _) => {
            return Err(ApiError::bad_request(format!(
                "kind {other:?} is not one of list, callbacks"
            )));
        }
    };
    let request = CampaignRequest {
        tenant_id: p.tenant_id.clone(),
        name: body.name,
        flow: body.flow,
        trunk: body.trunk,
        settings: body.settings.unwrap_or_default(),
        contacts,
        start: body.start,
        now: state.now_ms(),
    };
    let default_phones = crm::PhoneNormalizer::default();
    let support = state.campaigns.as_ref();
    let flow_exists = support.map(|s| s.flow_exists.clone());
    let trunk_exists = support.map(|s| s.trunk_exists.clone());
    let checks = Checks {
        phones: support.map_or(&default_phones, |s| &s.phones),
        flow_exists: flow_exists
            .as_deref()
            .map(|f| f as &(dyn Fn(&str) -> bool + Sync)),
        trunk_exists: trunk_exists
            .as_deref()
            .map(|f| f as &(dyn Fn(&str) -> bool + Sync)),
    };
    match create_campaign(&state.store, request, &checks).await {
        Ok(c) => {
            let progress = state.store.campaign_progress(&c.id).await?;
            Ok((StatusCode::CREATED, Json(campaign_json(&c, &progress))).into_response())
        }
        Err(e) => Err(create_error(e)),
    }
}

/// `GET /v1/campaigns` (supervisor): the tenant's campaigns, newest first, with progress.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    responses((status = 200, body = CampaignListDoc), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let mut out = Vec::new();
    for c in state.store.list_campaigns(&p.tenant_id).await? {
        let progress = state.store.campaign_progress(&c.id).await?;
        out.push(campaign_json(&c, &progress));
    }
    Ok(Json(json!({ "campaigns": out })))
}

/// `GET /v1/campaigns/{id}` (supervisor): the campaign, its progress (contacts by state and
/// disposition, attempts) and, when paused, why.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignJsonDoc), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let id = CampaignId::new(id);
    let c = state
        .store
        .campaign(&p.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    let progress = state.store.campaign_progress(&c.id).await?;
    Ok(Json(campaign_json(&c, &progress)))
}

/// `POST /v1/campaigns/{id}/start` (supervisor): draft or paused → running.
#[utoipa::path(post, path = "/v1/campaigns/{id}/start", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignJsonDoc), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn start(
    state: State<AppState>,
    auth: Authenticated,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, auth, id, CampaignStatus::Running).await
}

/// `POST /v1/campaigns/{id}/pause` (supervisor): running → paused; calls in progress finish.
#[utoipa::path(post, path = "/v1/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignJsonDoc), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    state: State<AppState>,
    auth: Authenticated,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, auth, id, CampaignStatus::Paused).await
}

async fn set_status(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    to: CampaignStatus,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let id = CampaignId::new(id);
    let reason = (to == CampaignStatus::Paused).then(|| format!("paused by key {}", p.key_id));
    match state
        .store
        .set_campaign_status(&p.tenant_id, &id, to, reason.as_deref(), state.now_ms())
        .await
    {
        Ok(c) => {
            let progress = state.store.campaign_progress(&c.id).await?;
            Ok(Json(campaign_json(&c, &progress)))
        }
        Err(StoreError::NotFound { .. }) => Err(ApiError::not_found("campaign")),
        Err(StoreError::Conflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a campaign in this status cannot become {to}"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

fn page(
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<(u32, Option<String>), ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok((limit, params.cursor))
}

/// `GET /v1/campaigns/{id}/contacts?limit=&cursor=` (supervisor): contacts in id order with
/// their state, disposition, outcome and attempts.
#[utoipa::path(get, path = "/v1/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id"),
        ("limit" = Option<u32>, Query, description = "page size"),
        ("cursor" = Option<String>, Query, description = "from a previous page")),
    responses((status = 200, body = ContactPageDoc), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn contacts(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let (limit, cursor) = page(params)?;
    let id = CampaignId::new(id);
    if state.store.campaign(&p.tenant_id, &id).await?.is_none() {
        return Err(ApiError::not_found("campaign"));
    }
    let after = cursor.map(ContactId::new);
    let list = state
        .store
        .list_contacts(&p.tenant_id, &id, limit + 1, after.as_ref())
        .await?;
    let more = list.len() > limit as usize;
    let list = &list[..list.len().min(limit as usize)];
    Ok(Json(json!({
        "contacts": list.iter().map(contact_json).collect::<Vec<_>>(),
        "next_cursor": if more { list.last().map(|c| c.id.to_string()) } else { None },
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DncBody {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// A do-not-call CSV (`phone`, optional `reason`).
    #[serde(default)]
    csv: Option<String>,
}

/// `POST /v1/dnc` (supervisor): `{"phone", "reason"}` or `{"csv"}`; `{"added": n}` (numbers
/// already listed are not counted). A CSV with bad rows adds nothing (400 `invalid_contacts`).
#[utoipa::path(post, path = "/v1/dnc", tag = "campaigns",
    request_body(content = Object, description = "`{phone, reason}` or `{csv}`"),
    responses((status = 200, body = DncAddedDoc), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn dnc_add(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<DncBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let default_phones = crm::PhoneNormalizer::default();
    let phones = state
        .campaigns
        .as_ref()
        .map_or(&default_phones, |s| &s.phones);
    let entries = match (body.phone, body.csv) {
        (Some(phone), None) => {
            let phone = phones
                .normalize(&phone)
                .map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
            vec![NewDnc {
                phone: phone.into_string(),
                source: DncSource::Api,
                reason: body.reason,
                call_id: None,
            }]
        }
        (None, Some(csv)) => parse_dnc_csv(csv.as_bytes(), phones).map_err(csv_error)?,
        _ => return Err(ApiError::bad_request("give exactly one of phone and csv")),
    };
    let added = state
        .store
        .add_dnc(&p.tenant_id, &entries, state.now_ms())
        .await?;
    Ok(Json(json!({ "added": added, "given": entries.len() })))
}

/// `GET /v1/dnc?limit=&cursor=` (supervisor): the list in number order.
#[utoipa::path(get, path = "/v1/dnc", tag = "campaigns",
    params(("limit" = Option<u32>, Query, description = "page size"),
        ("cursor" = Option<String>, Query, description = "from a previous page")),
    responses((status = 200, body = DncPageDoc), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(crate) async fn dnc_list(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let (limit, cursor) = page(params)?;
    let list = state
        .store
        .list_dnc(&p.tenant_id, limit + 1, cursor.as_deref())
        .await?;
    let more = list.len() > limit as usize;
    let list = &list[..list.len().min(limit as usize)];
    Ok(Json(json!({
        "numbers": list.iter().map(dnc_json).collect::<Vec<_>>(),
        "next_cursor": if more { list.last().map(|d| d.phone.clone()) } else { None },
    })))
}

/// `DELETE /v1/dnc/{phone}` (supervisor): 204, or 404 when the number was not listed.
#[utoipa::path(delete, path = "/v1/dnc/{phone}", tag = "campaigns",
    params(("phone" = String, Path, description = "the listed number")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn dnc_remove(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(phone): Path<String>,
) -> Result<StatusCode, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let default_phones = crm::PhoneNormalizer::default();
    let phones = state
        .campaigns
        .as_ref()
        .map_or(&default_phones, |s| &s.phones);
    let phone = phones
        .normalize(&phone)
        .map_err(|e| ApiError::bad_request(format!("phone: {e}")))?;
    if state.store.remove_dnc(&p.tenant_id, phone.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("number on the do-not-call list"))
    }
}

fn create_error(e: CreateError) -> ApiError {
    match e {
        CreateError::Contacts(csv) => csv_error(csv),
        CreateError::Settings(s) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_settings",
            format!("settings.{s}"),
        ),
        CreateError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        CreateError::Store(s) => s.into(),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn csv_error(e: CsvError) -> ApiError {
    match e {
        CsvError::BadRows(rows) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_contacts",
            format!("{} invalid rows; nothing was created", rows.len()),
        )
        .with_details(json!({ "rows": rows })),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_contacts",
            other.to_string(),
        ),
    }
}

fn campaign_json(c: &Campaign, p: &CampaignProgress) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "kind": c.kind.as_str(),
        "flow": c.flow,
        "trunk": c.trunk,
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "settings": c.settings,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "progress": p,
    })
}

fn contact_json(c: &CampaignContact) -> Value {
    json!({
        "id": c.id,
        "line": c.line,
        "phone": c.phone,
        "name": c.name,
        "time_zone": c.time_zone,
        "variables": c.variables,
        "state": c.state.as_str(),
        "disposition": c.disposition.map(|d| d.as_str()),
        "outcome": c.outcome,
        "attempts": c.attempts,
        "next_attempt_at": c.next_attempt_at,
        "last_call_id": c.last_call_id,
        "updated_at": c.updated_at,
    })
}

fn dnc_json(d: &DncEntry) -> Value {
    json!({
        "phone": d.phone,
        "source": d.source.as_str(),
        "reason": d.reason,
        "call_id": d.call_id,
        "created_at": d.created_at,
    })
}

/// The OpenAPI shapes of this module's answers (the handlers build the JSON by hand).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CampaignJsonDoc {
    id: String,
    name: String,
    /// `draft`, `running`, `paused`, `completed`.
    status: String,
    #[schema(value_type = Object)]
    progress: Value,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CampaignListDoc {
    campaigns: Vec<CampaignJsonDoc>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ContactPageDoc {
    #[schema(value_type = Vec<Object>)]
    contacts: Vec<Value>,
    next_cursor: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct DncAddedDoc {
    added: u64,
    given: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct DncPageDoc {
    #[schema(value_type = Vec<Object>)]
    numbers: Vec<Value>,
    next_cursor: Option<String>,
}
