//! `/v1/calls`: the tenant's calls, newest first, and one call with its turns and events.
//!
//! Times are unix milliseconds. Field names are part of the API contract.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Call, CallEvent, CallFilter, CallId, CallQuality, CallStatus, Role, Turn};

use crate::{ApiError, AppState, Authenticated};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(("status" = Option<String>, Query, description = "ringing, active or ended"), ("limit" = Option<u32>, Query, description = "1-200, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, body = crate::openapi::CallList), (status = 400, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/calls?status=&limit=&cursor=`
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = params
        .status
        .as_deref()
        .map(|s| match s {
            "ringing" => Ok(CallStatus::Ringing),
            "active" => Ok(CallStatus::Active),
            "ended" => Ok(CallStatus::Ended),
            other => Err(ApiError::bad_request(format!(
                "status {other:?} is not one of ringing, active, ended"
            ))),
        })
        .transpose()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse()
                .map_err(|_| ApiError::bad_request("cursor is not one this API issued"))
        })
        .transpose()?;
    let page = state
        .store
        .list_calls(
            &p.tenant_id,
            &CallFilter {
                status,
                limit,
                after,
            },
        )
        .await?;
    Ok(Json(json!({
        "calls": page.calls.iter().map(call_json).collect::<Vec<_>>(),
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)), responses((status = 200, body = crate::openapi::CallDetail), (status = 404, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/calls/{id}`: the call plus `turns`, `events` and `quality` (null until the call's
/// media quality was recorded, at its end).
pub(crate) async fn get_one(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let call = supervised_call(&state, &auth, id).await?;
    let turns = state.store.list_turns(&call.id).await?;
    let events = state.store.list_call_events(&call.id).await?;
    let quality = state.store.get_call_quality(&call.id).await?;
    let mut body = call_json(&call);
    body["turns"] = turns.iter().map(turn_json).collect();
    body["events"] = events.iter().map(event_json).collect();
    body["quality"] = quality.as_ref().map_or(Value::Null, quality_json);
    body["cost"] = cost_json(&state, &call).await?;
    Ok(Json(body))
}

/// The call `id` of the key's tenant, for a supervisor (another tenant's call: 404).
async fn supervised_call(
    state: &AppState,
    auth: &Authenticated,
    id: String,
) -> Result<Call, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    state
        .store
        .get_call(&p.tenant_id, &CallId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("call"))
}

#[utoipa::path(get, path = "/v1/calls/{id}/recordings", tag = "calls", params(("id" = String, Path)), responses((status = 200, body = crate::openapi::RecordingList), (status = 404, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/calls/{id}/recordings`: the call's recorded channels (empty when its flow does not
/// record, or after the retention period).
pub(crate) async fn recordings(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let call = supervised_call(&state, &auth, id).await?;
    let list = state
        .store
        .list_recordings(&call.tenant_id, &call.id)
        .await?;
    let recordings: Vec<Value> = list
        .iter()
        .map(|r| {
            json!({
                "channel": r.channel,
                "format": r.format,
                "sample_rate": r.sample_rate,
                "duration_ms": r.duration_ms,
                "bytes": r.bytes,
                "created_at": r.created_at,
                "url": format!("/v1/calls/{}/recordings/{}", call.id.as_str(), r.channel),
            })
        })
        .collect();
    Ok(Json(json!({ "recordings": recordings })))
}

#[utoipa::path(get, path = "/v1/calls/{id}/recordings/{channel}", tag = "calls", params(("id" = String, Path), ("channel" = String, Path, description = "caller or agent")), responses((status = 200, content_type = "audio/wav", body = Vec<u8>), (status = 404, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/calls/{id}/recordings/{channel}`: one channel's file (`audio/wav`).
pub(crate) async fn recording_file(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, channel)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let call_id = CallId::new(id);
    let recording = state
        .store
        .list_recordings(&p.tenant_id, &call_id)
        .await?
        .into_iter()
        .find(|r| r.channel == channel)
        .ok_or_else(|| ApiError::not_found("recording"))?;
    let bytes = match tokio::fs::read(&recording.path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("recording file"));
        }
        Err(e) => {
            tracing::error!(path = %recording.path, error = %e, "cannot read a recording");
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the recording cannot be read",
            ));
        }
    };
    let disposition = format!(
        "attachment; filename=\"{}-{}.wav\"",
        call_id.as_str(),
        recording.channel
    );
    Ok(axum::response::IntoResponse::into_response((
        [
            (axum::http::header::CONTENT_TYPE, "audio/wav".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )))
}

/// The call's cost: the ledger entry once the call is folded and ended (`final`), else priced
/// now from the usage recorded so far.
async fn cost_json(state: &AppState, call: &Call) -> Result<Value, ApiError> {
    let (mut cost, is_final) = match state.store.call_cost(&call.tenant_id, &call.id).await? {
        Some(entry) if call.status == CallStatus::Ended => (entry.breakdown, true),
        _ => {
            let Some(facts) = state.store.call_facts(&call.id).await? else {
                return Ok(Value::Null);
            };
            let (_, _, breakdown) =
                billing::price_usage(&state.billing.prices, call.direction, &facts.usage);
            (breakdown, false)
        }
    };
    cost["final"] = Value::Bool(is_final);
    Ok(cost)
}

fn call_json(c: &Call) -> Value {
    json!({
        "id": c.id,
        "direction": c.direction.as_str(),
        "transport": c.transport.as_str(),
        "from": c.from_number,
        "to": c.to_number,
        "status": c.status.as_str(),
        "flow": c.flow,
        "flow_version": c.flow_version,
        "sip_call_id": c.sip_call_id,
        "started_at": c.started_at,
        "answered_at": c.answered_at,
        "ended_at": c.ended_at,
        "end_reason": c.end_reason,
        "duration_ms": c.ended_at.zip(c.answered_at).map(|(e, a)| e - a),
    })
}

fn turn_json(t: &Turn) -> Value {
    let l = &t.latency;
    json!({
        "seq": t.seq,
        "started_at": t.started_at,
        "caller_text": t.caller_text,
        "agent_text": t.agent_text,
        "interrupted": t.interrupted,
        "latency": {
            "eot_ms": l.eot_ms, "stt_ms": l.stt_ms, "llm_ms": l.llm_ms,
            "tts_ms": l.tts_ms, "e2e_ms": l.e2e_ms,
        },
    })
}

/// The caller's stream as we received it (`loss_pct` 0–100, `jitter_ms`), the round trip from
/// RTCP (`rtt_ms`, null without a report from the peer), the estimated `mos` (1–4.5), and
/// under `remote` our stream as the peer reported it (null fields without a report).
fn quality_json(q: &CallQuality) -> Value {
    json!({
        "codec": q.codec,
        "packets_expected": q.packets_expected,
        "packets_received": q.packets_received,
        "packets_lost": q.packets_lost,
        "loss_pct": q.loss_pct(),
        "jitter_ms": q.jitter_ms(),
        "rtt_ms": q.rtt_ms(),
        "mos": q.mos(),
        "remote": {
            "packets_lost": q.remote_packets_lost,
            "loss_pct": q.remote_loss_pct(),
            "jitter_ms": q.remote_jitter_ms(),
        },
        "recorded_at": q.recorded_at,
    })
}

fn event_json(e: &CallEvent) -> Value {
    json!({ "at": e.at, "kind": e.kind, "detail": e.detail })
}
