//! Zoho CRM v8 (wave2-facts.md §2):
//!
//! - `GET {api}/crm/v8/{Contacts|Leads}`
//!   (https://www.zoho.com/crm/developer/docs/api/v8/get-records.html): `fields` mandatory (≤ 50,
//!   else `REQUIRED_PARAM_MISSING`); `per_page` ≤ 200; `page` may not reach beyond record 2,000
//!   (`DISCRETE_PAGINATION_LIMIT_EXCEEDED`), `page_token` (from `info.next_page_token`) continues
//!   beyond; never both; `sort_by=id|Created_Time|Modified_Time`, `sort_order=asc|desc`;
//!   `If-Modified-Since` keeps records modified after it. Answer `{"data": [...], "info":
//!   {"per_page", "next_page_token", "count", "sort_by", "page", "previous_page_token",
//!   "page_token_expiry", "sort_order", "more_records"}}`; nothing to list is `204 No Content`.
//! - `GET {api}/crm/v8/{module}/deleted?type=all|recycle|permanent&page&per_page` with
//!   `If-Modified-Since` (…/get-deleted-records.html).
//! - `GET {api}/crm/v8/{module}/search?phone=|email=|word=|criteria=(Field:equals:value)`
//!   (…/search-records.html).
//! - `POST {api}/crm/v8/Calls` `{"data": [...]}`, ≤ 100 records (Kaizen #38): `Subject`,
//!   `Call_Type` (Inbound|Outbound|Missed), `Call_Start_Time` (ISO 8601 with offset) mandatory,
//!   `Call_Duration` (mm:ss) for completed calls; `Who_Id` a contact, `What_Id` with
//!   `$se_module`. Success `201` with per-record `{"code": "SUCCESS", "details": {"id", …},
//!   "message": "record added", "status": "success"}`; refusals `400` with per-record
//!   `{"code": "MANDATORY_NOT_FOUND"|"INVALID_DATA", "details": {"api_name", "json_path"},
//!   "message", "status": "error"}`.
//! - Unknown, expired or other-DC tokens: `401 {"code": "INVALID_TOKEN", "details": {},
//!   "message": "invalid oauth token", "status": "error"}`.

// Handlers return the error answer itself as `Err`; its size does not matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{Shared, State as FakeState, authorized, crm_error, json_response, parse_time, record};

const MAX_PER_PAGE: usize = 200;
const PAGE_REACH: usize = 2_000;
const TOKEN_REACH: usize = 100_000;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/{dc}/crm/v8/{module}", get(list).post(insert))
        .route("/api/{dc}/crm/v8/{module}/deleted", get(deleted))
        .route("/api/{dc}/crm/v8/{module}/search", get(search))
}

fn invalid_token() -> Response {
    crm_error(401, "INVALID_TOKEN", "invalid oauth token", json!({}))
}

pub(super) fn module_map<'a>(
    s: &'a FakeState,
    module: &str,
) -> Option<&'a BTreeMap<String, Map<String, Value>>> {
    match module {
        "Contacts" => Some(&s.contacts),
        "Leads" => Some(&s.leads),
        _ => None,
    }
}

pub(super) fn module_map_mut<'a>(
    s: &'a mut FakeState,
    module: &str,
) -> Option<&'a mut BTreeMap<String, Map<String, Value>>> {
    match module {
        "Contacts" => Some(&mut s.contacts),
        "Leads" => Some(&mut s.leads),
        _ => None,
    }
}

pub(super) fn time_of(r: &Map<String, Value>, field: &str) -> i64 {
    r.get(field)
        .and_then(Value::as_str)
        .and_then(parse_time)
        .unwrap_or(0)
}

pub(super) fn id_num(r: &Map<String, Value>) -> u64 {
    r.get("id")
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

fn project(r: &Map<String, Value>, fields: &[&str]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), r.get("id").cloned().unwrap_or(Value::Null));
    for f in fields {
        out.insert((*f).to_owned(), r.get(*f).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// Where a listing starts: `page` (within the first 2,000 records) or a `page_token` we
/// issued. `Err` is the error answer.
fn start_of(
    s: &FakeState,
    q: &BTreeMap<String, String>,
    per_page: usize,
) -> Result<usize, Response> {
    if q.contains_key("page") && q.contains_key("page_token") {
        return Err(crm_error(
            400,
            "INVALID_REQUEST",
            "page and page_token cannot be given together",
            json!({}),
        ));
    }
    if let Some(token) = q.get("page_token") {
        return s.page_tokens.get(token).copied().ok_or_else(|| {
            crm_error(
                400,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "page_token"}),
            )
        });
    }
    let page: usize = match q.get("page") {
        None => 1,
        Some(p) => p.parse().unwrap_or(0),
    };
    if page == 0 {
        return Err(crm_error(
            400,
            "INVALID_DATA",
            "invalid data",
            json!({"param_name": "page"}),
        ));
    }
    if page * per_page > PAGE_REACH {
        return Err(crm_error(
            400,
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            "cannot fetch more than 2000 records. Please use the page_token parameter.",
            json!({}),
        ));
    }
    Ok((page - 1) * per_page)
}

fn per_page_of(q: &BTreeMap<String, String>) -> Result<usize, Response> {
    let per_page: usize = match q.get("per_page") {
        None => MAX_PER_PAGE,
        Some(p) => p.parse().unwrap_or(0),
    };
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(crm_error(
            400,
            "INVALID_DATA",
            "invalid data",
            json!({"param_name": "per_page"}),
        ));
    }
    Ok(per_page)
}

fn since_of(headers: &HeaderMap) -> Result<Option<i64>, Response> {
    match headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(None),
        Some(text) => parse_time(text).map(Some).ok_or_else(|| {
            crm_error(
                400,
                "INVALID_DATA",
                "invalid data",
                json!({"header_name": "If-Modified-Since"}),
            )
        }),
    }
}

/// One page of `rows` from `start`, with `info`; 204 when empty.
fn page_answer(
    s: &mut FakeState,
    rows: Vec<Value>,
    start: usize,
    per_page: usize,
    sort: Option<(&str, &str)>,
) -> Response {
    let total = rows.len();
    let end = (start + per_page).min(total);
    let page = rows
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    page_of(s, page, start, total, per_page, sort)
}

/// The answer for `page` (the records from `start`) out of `total`.
fn page_of(
    s: &mut FakeState,
    page: Vec<Value>,
    start: usize,
    total: usize,
    per_page: usize,
    sort: Option<(&str, &str)>,
) -> Response {
    if start >= TOKEN_REACH {
        return crm_error(
            400,
            "LIMIT_REACHED",
            "maximum number of records reached",
            json!({"limit": TOKEN_REACH}),
        );
    }
    if page.is_empty() {
        return axum::http::StatusCode::NO_CONTENT.into_response();
    }
    let end = start + page.len();
    let more = end < total && end < TOKEN_REACH;
    let next = more.then(|| {
        let token = format!("tk{}", s.next_id(0));
        s.page_tokens.insert(token.clone(), end);
        token
    });
    let mut info = json!({
        "per_page": per_page,
        "next_page_token": next,
        "count": page.len(),
        "page": start / per_page + 1,
        "previous_page_token": null,
        "page_token_expiry": next.as_ref().map(|_| super::crm_time(s.clock + 86_400)),
        "more_records": more,
    });
    if let Some((by, order)) = sort {
        info["sort_by"] = json!(by);
        info["sort_order"] = json!(order);
    }
    json_response(200, json!({"data": page, "info": info}))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path((dc, module)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    let response = list_answer(&mut s, &dc, &module, &q, &headers).unwrap_or_else(|error| error);
    let status = response.status().as_u16();
    record(
        &mut s,
        "GET",
        &dc,
        &format!("/crm/v8/{module}"),
        &q,
        &headers,
        Value::Null,
        status,
    );
    response
}

fn list_answer(
    s: &mut FakeState,
    dc: &str,
    module: &str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    if !authorized(s, dc, headers) {
        return Err(invalid_token());
    }
    let Some(fields) = q.get("fields").filter(|f| !f.is_empty()) else {
        return Err(crm_error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "fields"}),
        ));
    };
    let fields: Vec<&str> = fields.split(',').map(str::trim).collect();
    if fields.len() > 50 {
        return Err(crm_error(
            400,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            json!({"param_name": "fields", "limit": 50}),
        ));
    }
    let per_page = per_page_of(q)?;
    let since = since_of(headers)?;
    let start = start_of(s, q, per_page)?;
    let sort_by = q
        .get("sort_by")
        .map(String::as_str)
        .unwrap_or("id")
        .to_owned();
    let order = q
        .get("sort_order")
        .map(String::as_str)
        .unwrap_or("desc")
        .to_owned();
    let Some(records) = module_map(s, module) else {
        return Err(crm_error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({}),
        ));
    };
    if sort_by == "Modified_Time" {
        // Through the index: only the page's records are projected.
        let empty = BTreeMap::new();
        let index = s.by_mtime.get(module).unwrap_or(&empty);
        let from = (since.map_or(i64::MIN, |t| t.saturating_add(1)), 0);
        let total = index.range(from..).count();
        let ids: Vec<&String> = if order == "desc" {
            index
                .range(from..)
                .rev()
                .skip(start)
                .take(per_page)
                .map(|(_, id)| id)
                .collect()
        } else {
            index
                .range(from..)
                .skip(start)
                .take(per_page)
                .map(|(_, id)| id)
                .collect()
        };
        let page: Vec<Value> = ids
            .into_iter()
            .filter_map(|id| records.get(id))
            .map(|r| project(r, &fields))
            .collect();
        return Ok(page_of(
            s,
            page,
            start,
            total,
            per_page,
            Some((&sort_by, &order)),
        ));
    }
    let mut rows: Vec<&Map<String, Value>> = records
        .values()
        .filter(|r| since.is_none_or(|t| time_of(r, "Modified_Time") > t))
        .collect();
    match sort_by.as_str() {
        "Modified_Time" => rows.sort_by_key(|r| (time_of(r, "Modified_Time"), id_num(r))),
        "Created_Time" => rows.sort_by_key(|r| (time_of(r, "Created_Time"), id_num(r))),
        _ => rows.sort_by_key(|r| id_num(r)),
    }
    if order == "desc" {
        rows.reverse();
    }
    let rows: Vec<Value> = rows.into_iter().map(|r| project(r, &fields)).collect();
    Ok(page_answer(
        s,
        rows,
        start,
        per_page,
        Some((&sort_by, &order)),
    ))
}

async fn deleted(
    State(shared): State<Arc<Shared>>,
    Path((dc, module)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    let response = deleted_answer(&mut s, &dc, &module, &q, &headers).unwrap_or_else(|e| e);
    let status = response.status().as_u16();
    record(
        &mut s,
        "GET",
        &dc,
        &format!("/crm/v8/{module}/deleted"),
        &q,
        &headers,
        Value::Null,
        status,
    );
    response
}

fn deleted_answer(
    s: &mut FakeState,
    dc: &str,
    module: &str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    if !authorized(s, dc, headers) {
        return Err(invalid_token());
    }
    let per_page = per_page_of(q)?;
    let since = since_of(headers)?;
    let start = start_of(s, q, per_page)?;
    let kind = q
        .get("type")
        .map(String::as_str)
        .unwrap_or("all")
        .to_owned();
    if !["all", "recycle", "permanent"].contains(&kind.as_str()) {
        return Err(crm_error(
            400,
            "INVALID_DATA",
            "invalid data",
            json!({"param_name": "type"}),
        ));
    }
    let mut rows: Vec<Value> = s
        .deleted
        .iter()
        .filter(|(m, _)| m == module)
        .map(|(_, v)| v.clone())
        .filter(|v| kind == "all" || v["type"] == kind.as_str())
        .filter(|v| {
            since.is_none_or(|t| v["deleted_time"].as_str().and_then(parse_time).unwrap_or(0) > t)
        })
        .collect();
    rows.reverse();
    Ok(page_answer(s, rows, start, per_page, None))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Path((dc, module)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.lock();
    let response = search_answer(&mut s, &dc, &module, &q, &headers).unwrap_or_else(|e| e);
    let status = response.status().as_u16();
    record(
        &mut s,
        "GET",
        &dc,
        &format!("/crm/v8/{module}/search"),
        &q,
        &headers,
        Value::Null,
        status,
    );
    response
}

/// `criteria=(Field:equals:value)or(…)`, `phone=`, `email=`, `word=`.
fn search_answer(
    s: &mut FakeState,
    dc: &str,
    module: &str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    if !authorized(s, dc, headers) {
        return Err(invalid_token());
    }
    let per_page = per_page_of(q)?;
    let start = start_of(s, q, per_page)?;
    let phone_fields = ["Phone", "Mobile", "Home_Phone", "Other_Phone", "Asst_Phone"];
    let mut tests: Vec<(Vec<String>, String, bool)> = Vec::new();
    if let Some(phone) = q.get("phone") {
        tests.push((
            phone_fields.iter().map(|f| (*f).to_owned()).collect(),
            digits(phone),
            true,
        ));
    }
    if let Some(email) = q.get("email") {
        tests.push((vec!["Email".into()], email.to_lowercase(), false));
    }
    if let Some(word) = q.get("word") {
        tests.push((
            vec!["Full_Name".into(), "Email".into()],
            word.to_lowercase(),
            false,
        ));
    }
    if let Some(criteria) = q.get("criteria") {
        for part in criteria.split(")or(") {
            let part = part.trim_matches(|c| c == '(' || c == ')');
            let mut it = part.splitn(3, ':');
            let (Some(field), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
                return Err(crm_error(
                    400,
                    "INVALID_QUERY",
                    "invalid query formed",
                    json!({"param_name": "criteria"}),
                ));
            };
            if op != "equals" && op != "starts_with" {
                return Err(crm_error(
                    400,
                    "INVALID_QUERY",
                    "invalid query formed",
                    json!({"operator": op}),
                ));
            }
            let is_phone = phone_fields.contains(&field);
            let value = if is_phone {
                digits(value)
            } else {
                value.to_lowercase()
            };
            tests.push((vec![field.to_owned()], value, is_phone));
        }
    }
    if tests.is_empty() {
        return Err(crm_error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "criteria"}),
        ));
    }
    let Some(records) = module_map(s, module) else {
        return Err(crm_error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({}),
        ));
    };
    let rows: Vec<Value> = records
        .values()
        .filter(|r| {
            tests.iter().any(|(fields, value, is_phone)| {
                fields.iter().any(|f| {
                    let Some(have) = r.get(f).and_then(Value::as_str) else {
                        return false;
                    };
                    if *is_phone {
                        !value.is_empty() && digits(have).ends_with(value.as_str())
                    } else {
                        have.to_lowercase().contains(value.as_str())
                    }
                })
            })
        })
        .map(|r| Value::Object(r.clone()))
        .collect();
    Ok(page_answer(s, rows, start, per_page, None))
}

async fn insert(
    State(shared): State<Arc<Shared>>,
    Path((dc, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut s = shared.lock();
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let response = insert_answer(&mut s, &dc, &module, &parsed, &headers).unwrap_or_else(|e| e);
    let status = response.status().as_u16();
    let path = format!("/crm/v8/{module}");
    record(
        &mut s,
        "POST",
        &dc,
        &path,
        &BTreeMap::new(),
        &headers,
        parsed,
        status,
    );
    response
}

fn field_error(code: &str, message: &str, field: &str, index: usize) -> Value {
    json!({"code": code, "details": {"api_name": field, "json_path": format!("$.data[{index}].{field}")},
           "message": message, "status": "error"})
}

fn insert_answer(
    s: &mut FakeState,
    dc: &str,
    module: &str,
    body: &Value,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    if !authorized(s, dc, headers) {
        return Err(invalid_token());
    }
    if module != "Calls" {
        return Err(crm_error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({}),
        ));
    }
    let Some(records) = body
        .get("data")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
    else {
        return Err(crm_error(
            400,
            "INVALID_DATA",
            "invalid data",
            json!({"api_name": "data"}),
        ));
    };
    if records.len() > 100 {
        return Err(crm_error(
            400,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            json!({"limit": 100}),
        ));
    }
    let mut results = Vec::with_capacity(records.len());
    let mut ok = 0;
    for (i, r) in records.iter().enumerate() {
        match check_call(s, r, i) {
            Err(e) => results.push(e),
            Ok(()) => {
                ok += 1;
                let id = s.next_id(4_876_876_000_000_000_000);
                let now = s.tick();
                let mut stored = r.clone();
                stored["id"] = json!(id);
                stored["Created_Time"] = json!(now);
                s.calls.push(stored);
                results.push(json!({"code": "SUCCESS", "details": {"Modified_Time": now, "Created_Time": now, "id": id,
                    "Modified_By": {"name": "Agent", "id": "1"}, "Created_By": {"name": "Agent", "id": "1"}},
                    "message": "record added", "status": "success"}));
            }
        }
    }
    let status = match ok {
        n if n == records.len() => 201,
        0 => 400,
        _ => 207,
    };
    Ok(json_response(status, json!({"data": results})))
}

fn check_call(s: &FakeState, r: &Value, i: usize) -> Result<(), Value> {
    let text = |f: &str| {
        r.get(f)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    let missing = |f: &str| field_error("MANDATORY_NOT_FOUND", "required field not found", f, i);
    let invalid = |f: &str| field_error("INVALID_DATA", "invalid data", f, i);
    text("Subject").ok_or_else(|| missing("Subject"))?;
    let call_type = text("Call_Type").ok_or_else(|| missing("Call_Type"))?;
    if !["Inbound", "Outbound", "Missed"].contains(&call_type) {
        return Err(invalid("Call_Type"));
    }
    let start = text("Call_Start_Time").ok_or_else(|| missing("Call_Start_Time"))?;
    if start.len() < 25 || parse_time(start).is_none() {
        return Err(invalid("Call_Start_Time"));
    }
    if call_type != "Missed" {
        let duration = text("Call_Duration").ok_or_else(|| missing("Call_Duration"))?;
        let valid = duration.split_once(':').is_some_and(|(m, sec)| {
            !m.is_empty()
                && m.bytes().all(|b| b.is_ascii_digit())
                && sec.len() == 2
                && sec.bytes().all(|b| b.is_ascii_digit())
                && sec < "60"
        });
        if !valid {
            return Err(invalid("Call_Duration"));
        }
    }
    let lookup_id = |f: &str| r.get(f).and_then(|v| v.get("id")).and_then(Value::as_str);
    if r.get("Who_Id").is_some() {
        let known = lookup_id("Who_Id").is_some_and(|id| s.contacts.contains_key(id));
        if !known {
            return Err(field_error(
                "INVALID_DATA",
                "the id given seems to be invalid",
                "Who_Id",
                i,
            ));
        }
    }
    if r.get("What_Id").is_some() {
        let module = text("$se_module").ok_or_else(|| missing("$se_module"))?;
        let known = match module {
            "Leads" => lookup_id("What_Id").is_some_and(|id| s.leads.contains_key(id)),
            "Accounts" | "Deals" => lookup_id("What_Id").is_some(),
            _ => return Err(invalid("$se_module")),
        };
        if !known {
            return Err(field_error(
                "INVALID_DATA",
                "the id given seems to be invalid",
                "What_Id",
                i,
            ));
        }
    }
    Ok(())
}
