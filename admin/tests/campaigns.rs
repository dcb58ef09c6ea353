//! `/v1/campaigns` and `/v1/dnc` through `tower::ServiceExt::oneshot`, on a SQLite store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use store::{Role, Store, StoreOptions};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
    key: String,
    other_key: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tenant = store.create_tenant("acme", 1).await.unwrap().id;
    let other = store.create_tenant("globex", 1).await.unwrap().id;
    let key = store
        .create_api_key(&tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    let other_key = store
        .create_api_key(&other, Role::Admin, 2)
        .await
        .unwrap()
        .secret;
    let support = admin::CampaignSupport {
        phones: crm::PhoneNormalizer::default(),
        flow_exists: Arc::new(|f| f == "payment_reminder" || f == "receptionist"),
        trunk_exists: Arc::new(|t| t == "kam"),
    };
    let app = admin::router(
        admin::AppState::new(store.clone(), admin::metrics::install()).with_campaigns(support),
    );
    Fixture {
        _dir: dir,
        store,
        app,
        key,
        other_key,
    }
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
    };
    (status, value)
}

const GOOD_CSV: &str = "phone,name,amount\n+12125550100,Ann,12.50\n+12125550101,Bob,3.00\n";

fn create_body(csv: &str) -> Value {
    json!({
        "name": "May reminders",
        "flow": "payment_reminder",
        "trunk": "kam",
        "settings": { "max_concurrent": 2, "calls_per_second": 0.5,
                      "retry": { "busy": { "max_attempts": 2, "spacing_secs": 300 } } },
        "contacts_csv": csv,
    })
}

#[tokio::test]
async fn a_csv_with_bad_rows_creates_nothing_and_reports_each_row() {
    let f = fixture().await;
    let csv = "phone,name\n+12125550100,Ann\nnot-a-number,Bob\n+12125550100,Again\n";
    let (status, body) = call(
        &f.app,
        "POST",
        "/v1/campaigns",
        &f.key,
        Some(create_body(csv)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_contacts");
    let rows = body["error"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["line"], 3);
    assert_eq!(rows[1]["line"], 4);
    assert!(rows[1]["problem"].as_str().unwrap().contains("line 2"));
    let (_, list) = call(&f.app, "GET", "/v1/campaigns", &f.key, None).await;
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_requests_are_json_400s_naming_the_problem() {
    let f = fixture().await;
    let mut body = create_body(GOOD_CSV);
    body["settings"]["windows"] = json!([{ "days": ["mon"], "start": "18:00", "end": "09:00" }]);
    let (status, res) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["error"]["code"], "invalid_settings");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("settings.windows[0].end"),
        "{res}"
    );
    let mut body = create_body(GOOD_CSV);
    body["flow"] = json!("nope");
    let (status, res) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(res["error"]["message"].as_str().unwrap().contains("nope"));
    let mut body = create_body(GOOD_CSV);
    body["trunk"] = json!("other");
    let (status, _) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut body = create_body(GOOD_CSV);
    body["customers"] = json!({});
    let (status, res) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "both sources: {res}");
    let (status, res) = call(
        &f.app,
        "POST",
        "/v1/campaigns",
        &f.key,
        Some(json!({ "name": "x", "flow": "receptionist", "trunk": "kam", "colour": "red" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["error"]["code"], "bad_request");
    // No key: 401.
    let (status, _) = call(&f.app, "GET", "/v1/campaigns", "nope", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn create_start_pause_and_read_progress_within_the_tenant() {
    let f = fixture().await;
    let (status, c) = call(
        &f.app,
        "POST",
        "/v1/campaigns",
        &f.key,
        Some(create_body(GOOD_CSV)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["progress"]["total"], 2);
    assert_eq!(c["progress"]["pending"], 2);
    assert_eq!(c["settings"]["retry"]["busy"]["max_attempts"], 2);
    assert_eq!(
        c["settings"]["retry"]["no_answer"]["max_attempts"], 3,
        "default kept"
    );
    let id = c["id"].as_str().unwrap().to_owned();
    let (status, again) = call(
        &f.app,
        "POST",
        "/v1/campaigns",
        &f.key,
        Some(create_body(GOOD_CSV)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    let (status, started) = call(
        &f.app,
        "POST",
        &format!("/v1/campaigns/{id}/start"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(started["status"], "running");
    let (_, paused) = call(
        &f.app,
        "POST",
        &format!("/v1/campaigns/{id}/pause"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(paused["status"], "paused");
    assert!(
        paused["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("paused by key")
    );

    let (status, contacts) = call(
        &f.app,
        "GET",
        &format!("/v1/campaigns/{id}/contacts?limit=1"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contacts["contacts"][0]["phone"], "+12125550100");
    assert_eq!(contacts["contacts"][0]["variables"]["amount"], "12.50");
    assert_eq!(contacts["contacts"][0]["line"], 2);
    let cursor = contacts["next_cursor"].as_str().unwrap();
    let (_, rest) = call(
        &f.app,
        "GET",
        &format!("/v1/campaigns/{id}/contacts?cursor={cursor}"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(rest["contacts"][0]["name"], "Bob");
    assert!(rest["next_cursor"].is_null());

    // Another tenant sees nothing of it.
    let (status, _) = call(
        &f.app,
        "GET",
        &format!("/v1/campaigns/{id}"),
        &f.other_key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &f.app,
        "POST",
        &format!("/v1/campaigns/{id}/start"),
        &f.other_key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = call(&f.app, "GET", "/v1/campaigns", &f.other_key, None).await;
    assert_eq!(theirs["campaigns"].as_array().unwrap().len(), 0);

    // A completed campaign cannot be started again: 409.
    let tenant = f.store.tenant_by_name("acme").await.unwrap().unwrap().id;
    f.store
        .set_campaign_status(
            &tenant,
            &store::CampaignId::new(&id),
            store::CampaignStatus::Completed,
            None,
            9,
        )
        .await
        .unwrap();
    let (status, _) = call(
        &f.app,
        "POST",
        &format!("/v1/campaigns/{id}/start"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn campaigns_from_customers_and_the_callbacks_campaign() {
    let f = fixture().await;
    let tenant = f.store.tenant_by_name("acme").await.unwrap().unwrap().id;
    let customer = |id: &str, balance: i64, phone: &str| store::CustomerUpsert {
        external_id: id.into(),
        zoho_contact_id: None,
        zoho_books_id: None,
        name: format!("Customer {id}"),
        company: None,
        email: None,
        postal_code: None,
        balance_minor: balance,
        currency: "USD".into(),
        phones: vec![store::CustomerPhone {
            e164: phone.into(),
            kind: store::PhoneKind::Mobile,
        }],
    };
    f.store
        .upsert_customers(
            &tenant,
            &[
                customer("a", 5_000, "+12125550100"),
                customer("b", 0, "+12125550101"),
                customer("c", 20_000, "+12125550102"),
            ],
            5,
        )
        .await
        .unwrap();
    let (status, c) = call(
        &f.app,
        "POST",
        "/v1/campaigns",
        &f.key,
        Some(
            json!({ "name": "owing", "flow": "payment_reminder", "trunk": "kam",
                     "customers": { "min_balance_minor": 1000 }, "start": true }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["status"], "running");
    assert_eq!(c["progress"]["total"], 2);
    let id = c["id"].as_str().unwrap();
    let (_, contacts) = call(
        &f.app,
        "GET",
        &format!("/v1/campaigns/{id}/contacts"),
        &f.key,
        None,
    )
    .await;
    assert_eq!(contacts["contacts"][0]["variables"]["balance"], "$50.00");

    let body =
        json!({ "name": "callbacks", "flow": "receptionist", "trunk": "kam", "kind": "callbacks" });
    let (status, cb) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{cb}");
    assert_eq!(cb["kind"], "callbacks");
    let mut second = body;
    second["name"] = json!("more callbacks");
    let (status, _) = call(&f.app, "POST", "/v1/campaigns", &f.key, Some(second)).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one callbacks campaign per tenant"
    );
}

#[tokio::test]
async fn the_do_not_call_list() {
    let f = fixture().await;
    let (status, res) = call(
        &f.app,
        "POST",
        "/v1/dnc",
        &f.key,
        Some(json!({ "phone": "(212) 555-0100", "reason": "asked" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["added"], 1);
    let (status, res) = call(
        &f.app,
        "POST",
        "/v1/dnc",
        &f.key,
        Some(json!({ "csv": "phone\n+12125550100\n+12125550101\n" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(res["added"], 1, "one was listed already");
    let (status, res) = call(
        &f.app,
        "POST",
        "/v1/dnc",
        &f.key,
        Some(json!({ "csv": "phone\n+12125550199\nbad\n" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(res["error"]["rows"][0]["line"], 3);
    let (_, list) = call(&f.app, "GET", "/v1/dnc", &f.key, None).await;
    let numbers: Vec<&str> = list["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers,
        ["+12125550100", "+12125550101"],
        "the bad CSV added nothing"
    );
    assert_eq!(list["numbers"][0]["source"], "api");
    let (_, theirs) = call(&f.app, "GET", "/v1/dnc", &f.other_key, None).await;
    assert_eq!(theirs["numbers"].as_array().unwrap().len(), 0);
    let (status, _) = call(&f.app, "DELETE", "/v1/dnc/+12125550100", &f.key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&f.app, "DELETE", "/v1/dnc/+12125550100", &f.key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
