//! [`FakeZoho`]: a local Zoho (Accounts, CRM v8, Books v3) speaking the documented wire formats,
//! for tests and benchmarks.
//!
//! One server plays every data centre: DC `us` has its accounts server at
//! `http://127.0.0.1:PORT/accounts/us` and its API domain at `http://127.0.0.1:PORT/api/us`.
//! Codes, refresh tokens and access tokens belong to the DC that issued them, as at Zoho: a code
//! from the EU server does not exchange at the US one, and an EU access token is refused by the
//! US API. Sources are cited in each module (all from wave2-facts.md §2):
//!
//! - [`accounts`]: `/oauth/v2/auth` (consent, redirecting with `code`, `location`,
//!   `accounts-server`) and `/oauth/v2/token` (authorization code and refresh grants; errors as
//!   HTTP 200 `{"error": "invalid_code"}`; at most 10 access tokens per 10 minutes per refresh
//!   token, then `{"error": "Access Denied"}`);
//! - [`crm`]: `GET /crm/v8/{module}` (`fields` mandatory, `If-Modified-Since`, `per_page` ≤ 200,
//!   `page` up to record 2,000 then `page_token`), `/deleted`, `/search`, `POST /crm/v8/Calls`;
//!   `401 INVALID_TOKEN` for unknown or expired tokens;
//! - [`books`]: `GET /books/v3/contacts|invoices` with `organization_id`, `page`/`per_page`,
//!   `page_context.has_more_page`, sorting by `last_modified_time`.
//!
//! Tests seed records, inject faults ([`Fault`]: an HTTP status with Zoho's body, 429 with
//! `Retry-After`, a dropped connection) and latency, and read back every request
//! ([`FakeZoho::requests`]).

pub mod accounts;
pub mod books;
pub mod crm;
mod crm_seed;

pub use books::{BooksContactSeed, InvoiceSeed};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The DCs the fake knows (Zoho's data-centre names).
pub const DCS: [&str; 9] = ["us", "eu", "in", "au", "jp", "ca", "sa", "uk", "cn"];

/// Which endpoints a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/oauth/v2/token`.
    Token,
    /// `GET /crm/v8/{module}` and `/deleted`, `/search`.
    CrmRead,
    /// `POST /crm/v8/Calls`.
    CallsInsert,
    /// `/books/v3/*`.
    Books,
    /// Any of them.
    Any,
}

/// A scripted failure, used once by the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and JSON body.
    Status(u16, Value),
    /// `429` with Zoho's body and `Retry-After: secs`.
    TooManyRequests { retry_after_secs: u64 },
    /// `500` with Zoho's internal-error body.
    ServerError,
    /// Cut the connection: the client sees a network error.
    Drop,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path after the DC prefix, e.g. `/crm/v8/Contacts` or `/oauth/v2/token`.
    pub path: String,
    /// `us`, `eu`, …
    pub dc: String,
    pub query: BTreeMap<String, String>,
    pub if_modified_since: Option<String>,
    pub authorization: Option<String>,
    /// JSON body (POST to CRM), or the form fields of a token request as an object.
    pub body: Value,
    /// HTTP status answered.
    pub status: u16,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeZoho {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeZoho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything the fake holds. Never locked across an await.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub addr: Option<SocketAddr>,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: Option<String>,
    pub codes: HashMap<String, String>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub access_ttl: Option<Duration>,
    pub seq: u64,
    /// The fake's clock for Modified_Time and friends: unix seconds, advanced per change.
    pub clock: i64,
    pub contacts: BTreeMap<String, Map<String, Value>>,
    pub leads: BTreeMap<String, Map<String, Value>>,
    /// Per module: `(Modified_Time seconds, id) → id`, so listings by `Modified_Time` stay fast
    /// with 100,000 records (benchmarks).
    pub by_mtime: HashMap<String, BTreeMap<(i64, u64), String>>,
    pub deleted: Vec<(String, Value)>,
    pub calls: Vec<Value>,
    pub page_tokens: HashMap<String, usize>,
    pub books_org: String,
    pub books_contacts: BTreeMap<String, Map<String, Value>>,
    pub books_invoices: BTreeMap<String, Map<String, Value>>,
    pub faults: VecDeque<(Route, Fault)>,
    pub latency: Duration,
    pub requests: Vec<RecordedRequest>,
    pub record_requests: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub dc: String,
    pub revoked: bool,
    pub grants: Vec<Instant>,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub dc: String,
    pub expires: Instant,
}

impl State {
    pub(crate) fn next_id(&mut self, base: u64) -> String {
        self.seq += 1;
        (base + self.seq).to_string()
    }

    /// The fake's "now" in Zoho's CRM form, advanced by a second per call.
    pub(crate) fn tick(&mut self) -> String {
        self.clock += 1;
        crm_time(self.clock)
    }

    pub(crate) fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|(r, _)| *r == route || *r == Route::Any)?;
        self.faults.remove(i).map(|(_, f)| f)
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr.expect("address set at start"))
    }
}

/// Unix seconds as CRM writes times: `2026-01-01T00:00:01+00:00`.
pub fn crm_time(unix_secs: i64) -> String {
    jiff::Timestamp::from_second(unix_secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Unix seconds as Books writes times: `2026-01-01T00:00:01+0000`.
pub fn books_time(unix_secs: i64) -> String {
    jiff::Timestamp::from_second(unix_secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%z")
        .to_string()
}

/// Parses either form (and `If-Modified-Since`) to unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_second());
    }
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", text)
        .ok()?
        .to_timestamp()
        .ok()
        .map(|t| t.as_second())
}

/// A CRM Contact or Lead to seed.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    /// Contacts: the account's name; Leads: `Company`.
    pub company: Option<String>,
    pub zip: Option<String>,
}

impl Person {
    pub fn new(first: &str, last: &str, phone: &str) -> Person {
        Person {
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            phone: (!phone.is_empty()).then(|| phone.to_owned()),
            ..Person::default()
        }
    }
}

impl FakeZoho {
    /// Starts a fake on 127.0.0.1 accepting `client_id`/`client_secret`. Its clock starts at
    /// 2026-01-01T00:00:00Z.
    ///
    /// # Panics
    /// If the loopback socket cannot be bound (a broken test environment).
    pub async fn start(client_id: &str, client_secret: &str) -> FakeZoho {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        {
            let mut s = shared.lock();
            s.addr = Some(addr);
            s.client_id = client_id.to_owned();
            s.client_secret = client_secret.to_owned();
            s.clock = 1_767_225_600;
            s.books_org = "10234695".to_owned();
            s.record_requests = true;
        }
        let app = Router::new()
            .merge(accounts::routes())
            .merge(crm::routes())
            .merge(books::routes())
            .layer(axum::middleware::from_fn_with_state(shared.clone(), faults))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeZoho { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accounts server of `dc`.
    pub fn accounts_server(&self, dc: &str) -> String {
        format!("{}/accounts/{dc}", self.base_url())
    }

    /// The API domain the token endpoint of `dc` names.
    pub fn api_domain(&self, dc: &str) -> String {
        format!("{}/api/{dc}", self.base_url())
    }

    /// Requires this `redirect_uri` in code exchanges (unset: any).
    pub fn require_redirect_uri(&self, uri: &str) {
        self.shared.lock().redirect_uri = Some(uri.to_owned());
    }

    /// Issues an authorization code for `dc`, as the consent screen would.
    pub fn issue_code(&self, dc: &str) -> String {
        let mut s = self.shared.lock();
        let code = format!("1000.code{}.{dc}", s.next_id(0));
        s.codes.insert(code.clone(), dc.to_owned());
        code
    }

    /// How long new access tokens live (default 3600 s, also the `expires_in` answered).
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.shared.lock().access_ttl = Some(ttl);
    }

    /// Invalidates every access token issued so far (as if they expired at Zoho).
    pub fn expire_access_tokens(&self) {
        self.shared.lock().access_tokens.clear();
    }

    /// Revokes every refresh token (the user removed the connection in Zoho).
    pub fn revoke_refresh_tokens(&self) {
        for t in self.shared.lock().refresh_tokens.values_mut() {
            t.revoked = true;
        }
    }

    /// Access tokens minted through the refresh grant so far.
    pub fn refresh_grants(&self) -> usize {
        self.shared
            .lock()
            .refresh_tokens
            .values()
            .map(|t| t.grants.len())
            .sum()
    }

    /// Queues a fault for the next request on `route`.
    pub fn fail_next(&self, route: Route, fault: Fault) {
        self.shared.lock().faults.push_back((route, fault));
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Stops (or restarts) recording requests (benchmarks).
    pub fn record_requests(&self, on: bool) {
        self.shared.lock().record_requests = on;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests whose path ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }

    /// The Books organization id the fake serves (`10234695`).
    pub fn books_organization_id(&self) -> String {
        self.shared.lock().books_org.clone()
    }

    /// Moves the fake's clock forward (Modified_Time of later changes).
    pub fn advance_clock(&self, secs: i64) {
        self.shared.lock().clock += secs;
    }

    /// The fake's current time in CRM form.
    pub fn now(&self) -> String {
        crm_time(self.shared.lock().clock)
    }
}

/// Applies latency, scripted faults and recording around every request.
async fn faults(AxState(shared): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let route = if path.contains("/oauth/v2/token") {
        Route::Token
    } else if path.contains("/crm/v8/Calls") && req.method() == axum::http::Method::POST {
        Route::CallsInsert
    } else if path.contains("/crm/v8/") {
        Route::CrmRead
    } else if path.contains("/books/v3/") {
        Route::Books
    } else {
        Route::Any
    };
    let (latency, fault) = {
        let mut s = shared.lock();
        let fault = s.take_fault(route);
        if let Some(f) = &fault {
            // Recorded here: a fault never reaches the handler that records the rest.
            let status = match f {
                Fault::Status(status, _) => *status,
                Fault::TooManyRequests { .. } => 429,
                Fault::ServerError => 500,
                Fault::Drop => 0,
            };
            let (dc, rest) = split_dc(&path);
            let query = query_map(req.uri().query().unwrap_or(""));
            let method = req.method().as_str().to_owned();
            record(
                &mut s,
                &method,
                &dc,
                &rest,
                &query,
                req.headers(),
                Value::Null,
                status,
            );
        }
        (s.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::Status(status, body)) => json_response(status, body),
        Some(Fault::ServerError) => json_response(
            500,
            json!({"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error occurred while processing this request.", "status": "error"}),
        ),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = json_response(
                429,
                json!({"code": "TOO_MANY_REQUESTS", "details": {}, "message": "You have reached the maximum number of concurrent requests.", "status": "error"}),
            );
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Some(Fault::Drop) => {
            // A body that fails at once: hyper aborts the connection mid-response.
            let stream = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("connection cut"))
            });
            Response::builder()
                .status(200)
                .header("content-length", "100")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// `/api/us/crm/v8/Contacts` → (`us`, `/crm/v8/Contacts`); same for `/accounts/{dc}/…`.
fn split_dc(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (_, dc, rest) = (parts.next(), parts.next(), parts.next());
    (
        dc.unwrap_or_default().to_owned(),
        format!("/{}", rest.unwrap_or_default()),
    )
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub(crate) fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// The CRM error body (https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html).
pub(crate) fn crm_error(status: u16, code: &str, message: &str, details: Value) -> Response {
    json_response(
        status,
        json!({"code": code, "details": details, "message": message, "status": "error"}),
    )
}

/// Records a request; `status` is filled in by the handler.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    state: &mut State,
    method: &str,
    dc: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    headers: &axum::http::HeaderMap,
    body: Value,
    status: u16,
) {
    if !state.record_requests {
        return;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.requests.push(RecordedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        dc: dc.to_owned(),
        query: query.clone(),
        if_modified_since: header("if-modified-since"),
        authorization: header("authorization"),
        body,
        status,
    });
}

/// Checks `Authorization: Zoho-oauthtoken <token>` for `dc`: the token must exist, be
/// unexpired and belong to that DC.
pub(crate) fn authorized(state: &State, dc: &str, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Zoho-oauthtoken "))
    else {
        return false;
    };
    state
        .access_tokens
        .get(token.trim())
        .is_some_and(|t| t.dc == dc && t.expires > Instant::now())
}
