//! The OpenAPI 3 document of the whole admin API (`GET /openapi.json`), built with utoipa from
//! the handlers' `#[utoipa::path]` annotations. The schemas below describe the JSON that the
//! older handlers build by hand; `tests/openapi.rs` checks the document against the live
//! router (every route documented and every documented route served) and sample responses
//! against their schemas, so the two cannot drift apart unnoticed.

#![allow(dead_code)]

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorJson {
    error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    code: String,
    message: String,
}

/// `GET /v1/whoami`.
#[derive(Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    key_id: String,
    tenant_id: String,
    /// `platform`, `admin` or `supervisor`.
    role: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KeyJson {
    id: String,
    role: String,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// `GET /v1/keys`.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyJson>,
}

/// A call row.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallJson {
    id: String,
    direction: String,
    /// `sip` (the daemon's own SIP/RTP) or `livekit` (a LiveKit room bridged to SIP).
    transport: String,
    from: String,
    to: String,
    status: String,
    flow: Option<String>,
    flow_version: Option<String>,
    sip_call_id: Option<String>,
    started_at: i64,
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    duration_ms: Option<i64>,
}

/// `GET /v1/calls`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallList {
    calls: Vec<CallJson>,
    next_cursor: Option<String>,
}

/// One recorded channel of a call.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordingJson {
    /// `caller` or `agent`.
    channel: String,
    /// `wav` (16-bit PCM, mono).
    format: String,
    sample_rate: i64,
    duration_ms: i64,
    bytes: i64,
    created_at: i64,
    /// Where to download it (`GET`, same key).
    url: String,
}

/// `GET /v1/calls/{id}/recordings`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordingList {
    recordings: Vec<RecordingJson>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LatencyJson {
    eot_ms: Option<i64>,
    stt_ms: Option<i64>,
    llm_ms: Option<i64>,
    tts_ms: Option<i64>,
    e2e_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TurnJson {
    seq: i64,
    started_at: i64,
    caller_text: Option<String>,
    agent_text: Option<String>,
    interrupted: bool,
    latency: LatencyJson,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventJson {
    at: i64,
    kind: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RemoteQualityJson {
    packets_lost: Option<i64>,
    loss_pct: Option<f64>,
    jitter_ms: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct QualityJson {
    codec: String,
    packets_expected: i64,
    packets_received: i64,
    packets_lost: i64,
    loss_pct: f64,
    jitter_ms: f64,
    rtt_ms: Option<f64>,
    mos: f64,
    remote: RemoteQualityJson,
    recorded_at: i64,
}

/// One priced component of a call.
#[derive(Serialize, ToSchema)]
pub(crate) struct CostItemJson {
    /// `transport`, `stt`, `llm_prompt`, `llm_completion`, `tts`.
    component: String,
    usage: String,
    quantity: i64,
    unit: String,
    rate_micros: i64,
    per: String,
    micros: i64,
}

/// A call's cost, like Vapi's `costBreakdown` / Retell's `call_cost`; micro-units (1e-6 of
/// `currency`). `final` once the call ended and was priced into the ledger.
#[derive(Serialize, ToSchema)]
pub(crate) struct CostJson {
    currency: String,
    total_micros: i64,
    items: Vec<CostItemJson>,
    llm_cut_off_tokens: i64,
    #[serde(rename = "final")]
    is_final: bool,
}

/// `GET /v1/calls/{id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallDetail {
    #[serde(flatten)]
    call: CallJson,
    turns: Vec<TurnJson>,
    events: Vec<EventJson>,
    quality: Option<QualityJson>,
    cost: Option<CostJson>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageJson {
    id: String,
    call_id: Option<String>,
    customer_id: Option<String>,
    caller_number: Option<String>,
    caller_name: Option<String>,
    text: String,
    status: String,
    created_at: i64,
    handled_at: Option<i64>,
    handled_by: Option<String>,
}

/// `GET /v1/messages`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageList {
    messages: Vec<MessageJson>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CallbackJson {
    id: String,
    call_id: Option<String>,
    customer_id: Option<String>,
    number: String,
    preferred_time: Option<String>,
    due_at: Option<i64>,
    reason: Option<String>,
    status: String,
    created_at: i64,
    closed_at: Option<i64>,
}

/// `GET /v1/callbacks`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallbackList {
    callbacks: Vec<CallbackJson>,
    next_cursor: Option<String>,
}

/// `GET /v1/customers?phone=`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerLookup {
    phone: String,
    #[schema(value_type = Vec<Object>)]
    customers: Vec<serde_json::Value>,
}

/// `GET /v1/trunks`.
#[derive(Serialize, ToSchema)]
pub(crate) struct TrunkList {
    #[schema(value_type = Vec<Object>)]
    trunks: Vec<serde_json::Value>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "agent admin API", description = "Supervisors' and administrators' API of the agent daemon. Times are unix milliseconds; money is integers (micro-units or minor units, named in the field)."),
    modifiers(&Security),
    paths(
        crate::health::health, crate::health::ready, crate::health::metrics, openapi_json,
        crate::dashboard::page,
        crate::auth::whoami, crate::auth::list_keys,
        crate::calls::list, crate::calls::get_one, crate::calls::recordings,
        crate::calls::recording_file,
        crate::messages::list_messages, crate::messages::mark_handled,
        crate::messages::list_callbacks, crate::messages::mark_callback_done,
        crate::customers::by_phone, crate::trunks::list,
        crate::tenants::create_tenant, crate::tenants::list_tenants, crate::tenants::get_tenant,
        crate::tenants::create_tenant_key, crate::tenants::add_number,
        crate::tenants::remove_number, crate::tenants::add_trunk_route,
        crate::tenants::remove_trunk_route, crate::tenants::set_plan,
        crate::tenants::create_key, crate::tenants::revoke_key,
        crate::tenants::list_numbers, crate::tenants::set_number_flow,
        crate::tenants::list_trunk_routes, crate::tenants::set_trunk_route_flow,
        crate::tenants::get_settings, crate::tenants::put_settings,
        crate::analytics::summary, crate::analytics::timeseries, crate::analytics::export_calls,
        crate::billing::get_status, crate::billing::checkout, crate::billing::dodo_webhook,
        crate::integrations::status, crate::integrations::start, crate::integrations::exchange,
        crate::campaigns::create, crate::campaigns::list, crate::campaigns::get_one,
        crate::campaigns::start, crate::campaigns::pause, crate::campaigns::contacts,
        crate::campaigns::dnc_add, crate::campaigns::dnc_list, crate::campaigns::dnc_remove,
    ),
    components(schemas(ErrorJson, ErrorBody))
)]
pub(crate) struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document (no authentication).
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
