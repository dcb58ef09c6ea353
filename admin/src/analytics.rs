//! `/v1/analytics/summary`, `/v1/analytics/timeseries` and the CSV export of calls.
//!
//! Times are unix milliseconds; `from`/`to` fall on quarter hours (the rollups' grain) and
//! default to "today" in `tz` (default: the tenant's zone). Figures come from the rollups,
//! which the daemon folds within a couple of seconds of each call's writes.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use billing::analytics::{self, Bucket, Point, Summary};
use serde::{Deserialize, Serialize};
use store::{CallDirection, CallStatus, ExportFilter, Role};
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState, Authenticated};

/// Range parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeParams {
    /// Start (unix ms, on a quarter hour); default: start of today in `tz`.
    from: Option<i64>,
    /// End, exclusive (unix ms, on a quarter hour); default: the next quarter hour.
    to: Option<i64>,
    /// IANA zone; default: the tenant's.
    tz: Option<String>,
    /// `hour` or `day` (time series only; default `hour`).
    bucket: Option<String>,
}

struct Range {
    from: i64,
    to: i64,
    tz: jiff::tz::TimeZone,
    tz_name: String,
}

fn bad(e: analytics::RangeError) -> ApiError {
    ApiError::bad_request(format!("{}: {}", e.parameter, e.reason))
}

async fn range(
    state: &AppState,
    tenant_id: &store::TenantId,
    p: &RangeParams,
) -> Result<Range, ApiError> {
    let tz_name = match &p.tz {
        Some(tz) => tz.clone(),
        None => state.store.tenant_settings(tenant_id).await?.timezone,
    };
    let tz = analytics::zone(&tz_name).map_err(bad)?;
    let (today_from, today_to) = analytics::today(state.now_ms(), &tz);
    Ok(Range {
        from: p.from.unwrap_or(today_from),
        to: p.to.unwrap_or(today_to),
        tz,
        tz_name,
    })
}

/// A summary response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SummaryJson {
    tz: String,
    currency: String,
    #[schema(value_type = Object)]
    summary: Summary,
}

/// A time-series response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TimeseriesJson {
    tz: String,
    bucket: String,
    currency: String,
    #[schema(value_type = Vec<Object>)]
    points: Vec<Point>,
}

/// Totals over a range: volume by direction, answered, handle time, outcomes by end reason and
/// last node, containment, transfers, refusals, latency p50/p95, MOS, cost (supervisor).
#[utoipa::path(get, path = "/v1/analytics/summary", tag = "analytics", params(RangeParams),
    responses((status = 200, body = SummaryJson), (status = 400)), security(("bearer" = [])))]
pub(crate) async fn summary(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<SummaryJson>, ApiError> {
    let p = auth.require(Role::Supervisor)?.clone();
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if params.bucket.is_some() {
        return Err(ApiError::bad_request(
            "bucket: only for /v1/analytics/timeseries",
        ));
    }
    let r = range(&state, &p.tenant_id, &params).await?;
    analytics::check_range(r.from, r.to, analytics::MAX_DAYS).map_err(bad)?;
    let summary = analytics::summary(&state.store, &p.tenant_id, r.from, r.to).await?;
    Ok(Json(SummaryJson {
        tz: r.tz_name,
        currency: state.billing.prices.currency.clone(),
        summary,
    }))
}

/// The same figures per local hour or day (supervisor).
#[utoipa::path(get, path = "/v1/analytics/timeseries", tag = "analytics", params(RangeParams),
    responses((status = 200, body = TimeseriesJson), (status = 400)), security(("bearer" = [])))]
pub(crate) async fn timeseries(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<TimeseriesJson>, ApiError> {
    let p = auth.require(Role::Supervisor)?.clone();
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let bucket = match params.bucket.as_deref().unwrap_or("hour") {
        "hour" => Bucket::Hour,
        "day" => Bucket::Day,
        other => {
            return Err(ApiError::bad_request(format!(
                "bucket: {other:?} is not hour or day"
            )));
        }
    };
    let r = range(&state, &p.tenant_id, &params).await?;
    let boundaries = analytics::boundaries(r.from, r.to, bucket, &r.tz).map_err(bad)?;
    let points = analytics::timeseries(&state.store, &p.tenant_id, &boundaries).await?;
    Ok(Json(TimeseriesJson {
        tz: r.tz_name,
        bucket: match bucket {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
        .to_owned(),
        currency: state.billing.prices.currency.clone(),
        points,
    }))
}

/// Export parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    /// Start (unix ms); default: 30 days before `to`.
    from: Option<i64>,
    /// End, exclusive (unix ms); default: now.
    to: Option<i64>,
    /// `ringing`, `active` or `ended`.
    status: Option<String>,
    /// `inbound` or `outbound`.
    direction: Option<String>,
}

const CSV_HEADER: &str = "id,started_at,answered_at,ended_at,direction,from,to,status,end_reason,flow,duration_ms,currency,cost_micros\n";

/// A CSV field: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so spreadsheets do not run caller-supplied text as a formula.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && !s[1..].chars().all(|c| c.is_ascii_digit()) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The tenant's calls as CSV, oldest first, streamed page by page (supervisor).
#[utoipa::path(get, path = "/v1/exports/calls", tag = "analytics", params(ExportParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400)),
    security(("bearer" = [])))]
pub(crate) async fn export_calls(
    State(state): State<AppState>,
    auth: Authenticated,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = auth.require(Role::Supervisor)?.clone();
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let to = params.to.unwrap_or_else(|| state.now_ms() + 1);
    let from = params.from.unwrap_or(to - 30 * 86_400_000);
    if to <= from {
        return Err(ApiError::bad_request("to: must be after from"));
    }
    if to - from > analytics::MAX_DAYS * 86_400_000 {
        return Err(ApiError::bad_request(format!(
            "to: the range may span at most {} days",
            analytics::MAX_DAYS
        )));
    }
    let status = match params.status.as_deref() {
        None => None,
        Some("ringing") => Some(CallStatus::Ringing),
        Some("active") => Some(CallStatus::Active),
        Some("ended") => Some(CallStatus::Ended),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status: {other:?} is not one of ringing, active, ended"
            )));
        }
    };
    let direction = match params.direction.as_deref() {
        None => None,
        Some("inbound") => Some(CallDirection::Inbound),
        Some("outbound") => Some(CallDirection::Outbound),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "direction: {other:?} is not inbound or outbound"
            )));
        }
    };
    let filter = ExportFilter {
        from,
        to,
        status,
        direction,
    };
    let store = state.store.clone();
    let tenant = p.tenant_id.clone();
    // Pages of 500 through a bounded channel: memory stays flat whatever the range.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    tokio::spawn(async move {
        if tx.send(Ok(CSV_HEADER.to_owned())).await.is_err() {
            return;
        }
        let mut after = None;
        loop {
            let page = match store
                .export_calls(&tenant, &filter, after.clone(), 500)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other("storage failed"))).await;
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some((last.call.started_at, last.call.id.to_string()));
            let mut chunk = String::new();
            for e in &page {
                let c = &e.call;
                let row = [
                    field(c.id.as_str()),
                    c.started_at.to_string(),
                    opt(c.answered_at),
                    opt(c.ended_at),
                    c.direction.as_str().to_owned(),
                    field(&c.from_number),
                    field(&c.to_number),
                    c.status.as_str().to_owned(),
                    field(c.end_reason.as_ref().map_or("", store::EndReason::as_str)),
                    field(c.flow.as_deref().unwrap_or("")),
                    opt(c.ended_at.zip(c.answered_at).map(|(e, a)| e - a)),
                    field(e.currency.as_deref().unwrap_or("")),
                    opt(e.cost_micros),
                ];
                chunk.push_str(&row.join(","));
                chunk.push('\n');
            }
            let full = page.len() == 500;
            if tx.send(Ok(chunk)).await.is_err() || !full {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"calls.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("+15551234567"), "+15551234567");
    }
}
