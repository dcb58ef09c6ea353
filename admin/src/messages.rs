//! `/v1/messages` and `/v1/callbacks`: what callers left for the business, newest first, and
//! marking them dealt with.
//!
//! Times are unix milliseconds. Field names are part of the API contract.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{Callback, CallbackStatus, CreatedCursor, ListFilter, Message, MessageStatus, Role};

use crate::{ApiError, AppState, Authenticated};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(("status" = Option<String>, Query, description = "new or handled"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::openapi::MessageList), (status = 400, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/messages?status=new|handled&limit=&cursor=` (supervisor)
pub(crate) async fn list_messages(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let (status, limit, after) = list_params(
        params,
        |s| match s {
            "new" => Some(MessageStatus::New),
            "handled" => Some(MessageStatus::Handled),
            _ => None,
        },
        "new, handled",
    )?;
    let page = state
        .store
        .list_messages(
            &p.tenant_id,
            &ListFilter {
                status,
                limit,
                after,
            },
        )
        .await?;
    Ok(Json(json!({
        "messages": page.items.iter().map(message_json).collect::<Vec<_>>(),
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

#[utoipa::path(post, path = "/v1/messages/{id}/handled", tag = "messages", params(("id" = String, Path)), responses((status = 200, body = crate::openapi::MessageJson), (status = 404, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `POST /v1/messages/{id}/handled` (supervisor or admin): the message, now handled. Marking
/// it again keeps the first time and key.
pub(crate) async fn mark_handled(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    match state
        .store
        .mark_message_handled(&p.tenant_id, &id, &p.key_id, state.now_ms())
        .await
    {
        Ok(m) => Ok(Json(message_json(&m))),
        Err(store::StoreError::NotFound { .. }) => Err(ApiError::not_found("message")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/v1/callbacks", tag = "messages", params(("status" = Option<String>, Query, description = "pending, done or cancelled"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::openapi::CallbackList), (status = 400, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/callbacks?status=pending|done|cancelled&limit=&cursor=` (supervisor)
pub(crate) async fn list_callbacks(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    let (status, limit, after) = list_params(
        params,
        |s| match s {
            "pending" => Some(CallbackStatus::Pending),
            "done" => Some(CallbackStatus::Done),
            "cancelled" => Some(CallbackStatus::Cancelled),
            _ => None,
        },
        "pending, done, cancelled",
    )?;
    let page = state
        .store
        .list_callbacks(
            &p.tenant_id,
            &ListFilter {
                status,
                limit,
                after,
            },
        )
        .await?;
    Ok(Json(json!({
        "callbacks": page.items.iter().map(callback_json).collect::<Vec<_>>(),
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

#[utoipa::path(post, path = "/v1/callbacks/{id}/done", tag = "messages", params(("id" = String, Path)), responses((status = 200, body = crate::openapi::CallbackJson), (status = 404, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `POST /v1/callbacks/{id}/done` (supervisor or admin): the callback, now done. A callback
/// already closed keeps its first status.
pub(crate) async fn mark_callback_done(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Supervisor)?;
    match state
        .store
        .close_callback(&p.tenant_id, &id, CallbackStatus::Done, state.now_ms())
        .await
    {
        Ok(c) => Ok(Json(callback_json(&c))),
        Err(store::StoreError::NotFound { .. }) => Err(ApiError::not_found("callback")),
        Err(e) => Err(e.into()),
    }
}

/// Status, page size and cursor, each checked like `/v1/calls` does.
fn list_params<S>(
    params: Result<Query<ListParams>, QueryRejection>,
    status_of: impl Fn(&str) -> Option<S>,
    statuses: &str,
) -> Result<(Option<S>, u32, Option<CreatedCursor>), ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            status_of(s).ok_or_else(|| {
                ApiError::bad_request(format!("status {s:?} is not one of {statuses}"))
            })
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
    Ok((status, limit, after))
}

fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id,
        "call_id": m.call_id,
        "customer_id": m.customer_id,
        "caller_number": m.caller_number,
        "caller_name": m.caller_name,
        "text": m.text,
        "status": m.status.as_str(),
        "created_at": m.created_at,
        "handled_at": m.handled_at,
        "handled_by": m.handled_by,
    })
}

fn callback_json(c: &Callback) -> Value {
    json!({
        "id": c.id,
        "call_id": c.call_id,
        "customer_id": c.customer_id,
        "number": c.number,
        "preferred_time": c.preferred_time,
        "due_at": c.due_at,
        "reason": c.reason,
        "status": c.status.as_str(),
        "created_at": c.created_at,
        "closed_at": c.closed_at,
    })
}
