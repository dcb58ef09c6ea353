//! Zoho Books v3 contacts and invoices (https://www.zoho.com/books/api/v3/contacts/,
//! …/invoices/, …/pagination/, …/errors/; wave2-facts.md §2).
//!
//! `GET {api}/books/v3/contacts|invoices?organization_id=…&page&per_page&sort_column&sort_order`
//! answers `{"code": 0, "message": "success", "contacts"|"invoices": [...], "page_context":
//! {"page", "per_page", "has_more_page", "report_name", "applied_filter", "sort_column",
//! "sort_order"}}`. Contacts take `filter_by=Status.All|Status.Active|Status.Inactive` (default
//! `Status.All` here). Errors are `{"code": <number>, "message"}`: 401 with code 57 for a bad
//! token, 400 for a wrong `organization_id`. Amounts are JSON numbers, times
//! `2016-06-05T02:30:08-0700`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{
    FakeZoho, Shared, State as FakeState, authorized, books_time, json_response, parse_time, record,
};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/{dc}/books/v3/contacts", get(contacts))
        .route("/api/{dc}/books/v3/invoices", get(invoices))
}

async fn contacts(
    State(shared): State<Arc<Shared>>,
    Path(dc): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &dc, "contacts", &q, &headers)
}

async fn invoices(
    State(shared): State<Arc<Shared>>,
    Path(dc): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &dc, "invoices", &q, &headers)
}

fn list(
    shared: &Shared,
    dc: &str,
    what: &'static str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let mut s = shared.lock();
    let response = answer(&s, dc, what, q, headers);
    let status = response.status().as_u16();
    record(
        &mut s,
        "GET",
        dc,
        &format!("/books/v3/{what}"),
        q,
        headers,
        Value::Null,
        status,
    );
    response
}

fn error(status: u16, code: i64, message: &str) -> Response {
    json_response(status, json!({"code": code, "message": message}))
}

fn answer(
    s: &FakeState,
    dc: &str,
    what: &'static str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if !authorized(s, dc, headers) {
        return error(401, 57, "You are not authorized to perform this operation");
    }
    if q.get("organization_id") != Some(&s.books_org) {
        return error(
            400,
            6041,
            "This user is not associated with the CompanyID/CompanyName:",
        );
    }
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(200);
    if per_page == 0 || per_page > 200 {
        return error(400, 2, "Invalid value passed for per_page");
    }
    let source = match what {
        "contacts" => &s.books_contacts,
        _ => &s.books_invoices,
    };
    let filter = q
        .get("filter_by")
        .map(String::as_str)
        .unwrap_or("Status.All");
    let mut rows: Vec<&Map<String, Value>> = source
        .values()
        .filter(|r| match (what, filter) {
            ("contacts", "Status.Active") => r["status"] == "active",
            ("contacts", "Status.Inactive") => r["status"] == "inactive",
            _ => true,
        })
        .collect();
    let column = q
        .get("sort_column")
        .map(String::as_str)
        .unwrap_or("created_time")
        .to_owned();
    rows.sort_by_key(|r| {
        (
            r.get(&column)
                .and_then(Value::as_str)
                .and_then(parse_time)
                .unwrap_or(0),
            r.get(if what == "contacts" {
                "contact_id"
            } else {
                "invoice_id"
            })
            .and_then(Value::as_str)
            .and_then(|i| i.parse::<u64>().ok())
            .unwrap_or(0),
        )
    });
    let order = q.get("sort_order").map(String::as_str).unwrap_or("A");
    if order == "D" {
        rows.reverse();
    }
    let start = (page - 1) * per_page;
    let end = (start + per_page).min(rows.len());
    let items: Vec<Value> = rows
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|r| Value::Object((*r).clone()))
        .collect();
    json_response(
        200,
        json!({
            "code": 0,
            "message": "success",
            what: items,
            "page_context": {
                "page": page,
                "per_page": per_page,
                "has_more_page": end < rows.len(),
                "report_name": if what == "contacts" { "Contacts" } else { "Invoices" },
                "applied_filter": filter,
                "sort_column": column,
                "sort_order": order,
            },
        }),
    )
}

/// A Books contact to seed.
#[derive(Debug, Clone, Default)]
pub struct BooksContactSeed {
    pub name: String,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// Outstanding receivable, as Zoho writes it (a JSON number such as `142.50`).
    pub outstanding: String,
    pub currency: String,
    /// The linked CRM contact (`zcrm_contact_id`).
    pub crm_contact_id: Option<String>,
}

/// A Books invoice to seed.
#[derive(Debug, Clone, Default)]
pub struct InvoiceSeed {
    pub customer_id: String,
    pub number: String,
    /// `sent`, `overdue`, `paid`, `draft`, …
    pub status: String,
    pub total: String,
    pub balance: String,
    pub currency: String,
    pub date: String,
    pub due_date: String,
}

fn number(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)
}

impl FakeZoho {
    /// Seeds a Books customer contact; returns its `contact_id`.
    pub fn add_books_contact(&self, c: &BooksContactSeed) -> String {
        let mut s = self.shared.lock();
        let id = s.next_id(460_000_000_000_000);
        s.clock += 1;
        let now = books_time(s.clock);
        let r = json!({
            "contact_id": id, "contact_name": c.name, "customer_name": c.name,
            "company_name": "", "contact_type": "customer", "status": "active",
            "email": c.email.clone().unwrap_or_default(), "phone": c.phone.clone().unwrap_or_default(),
            "mobile": c.mobile.clone().unwrap_or_default(), "currency_code": c.currency,
            "outstanding_receivable_amount": number(&c.outstanding),
            "unused_credits_receivable_amount": 0,
            "is_linked_with_zohocrm": c.crm_contact_id.is_some(),
            "zcrm_contact_id": c.crm_contact_id.clone().unwrap_or_default(),
            "created_time": now, "last_modified_time": now,
        });
        if let Value::Object(map) = r {
            s.books_contacts.insert(id.clone(), map);
        }
        id
    }

    /// Seeds a Books invoice; returns its `invoice_id`.
    pub fn add_invoice(&self, i: &InvoiceSeed) -> String {
        let mut s = self.shared.lock();
        let id = s.next_id(700_000_000_000_000);
        s.clock += 1;
        let now = books_time(s.clock);
        let r = json!({
            "invoice_id": id, "customer_id": i.customer_id, "invoice_number": i.number,
            "status": i.status, "date": i.date, "due_date": i.due_date,
            "currency_code": i.currency, "total": number(&i.total), "balance": number(&i.balance),
            "created_time": now, "last_modified_time": now,
        });
        if let Value::Object(map) = r {
            s.books_invoices.insert(id.clone(), map);
        }
        id
    }

    /// Sets a field of a Books contact or invoice (`what`: `contacts`/`invoices`) and bumps its
    /// `last_modified_time`.
    pub fn update_books(&self, what: &str, id: &str, field: &str, value: Value) {
        let mut s = self.shared.lock();
        s.clock += 1;
        let now = books_time(s.clock);
        let map = match what {
            "contacts" => &mut s.books_contacts,
            _ => &mut s.books_invoices,
        };
        if let Some(r) = map.get_mut(id) {
            r.insert(field.to_owned(), value);
            r.insert("last_modified_time".into(), json!(now));
        }
    }

    /// Removes a Books contact or invoice outright (Books has no deleted-records list).
    pub fn remove_books(&self, what: &str, id: &str) {
        let mut s = self.shared.lock();
        match what {
            "contacts" => s.books_contacts.remove(id),
            _ => s.books_invoices.remove(id),
        };
    }
}
