//! `/v1/messages`, `/v1/callbacks` and `/v1/customers` through `tower::ServiceExt::oneshot`,
//! on a SQLite store.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{
    CustomerPhone, CustomerUpsert, InvoiceUpsert, NewCallback, NewMessage, PhoneKind, Role, Store,
    StoreOptions, TenantId,
};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
    tenant: TenantId,
    other: TenantId,
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
    let mut state = admin::AppState::new(store.clone(), admin::metrics::install());
    state.clock = std::sync::Arc::new(|| 99_000);
    let app = admin::router(state);
    Fixture {
        _dir: dir,
        store,
        app,
        tenant,
        other,
    }
}

async fn request(app: &axum::Router, method: Method, path: &str, key: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

async fn get(app: &axum::Router, path: &str, key: &str) -> (StatusCode, Value) {
    request(app, Method::GET, path, key).await
}

async fn post(app: &axum::Router, path: &str, key: &str) -> (StatusCode, Value) {
    request(app, Method::POST, path, key).await
}

async fn message(store: &Store, tenant: &TenantId, text: &str, at: i64) -> String {
    store
        .insert_message(NewMessage {
            tenant_id: tenant.clone(),
            caller_number: Some("+15551234567".to_owned()),
            caller_name: Some("Jane".to_owned()),
            text: text.to_owned(),
            created_at: at,
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn messages_list_newest_first_in_pages_and_can_be_handled() {
    let f = fixture().await;
    let sup = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(message(&f.store, &f.tenant, &format!("message {i}"), 1_000 + i).await);
    }
    let theirs = message(&f.store, &f.other, "not yours", 5_000).await;

    let (status, page) = get(&f.app, "/v1/messages?limit=2", &sup.secret).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let list = page["messages"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], ids[2].as_str(), "newest first");
    assert_eq!(list[0]["text"], "message 2");
    assert_eq!(list[0]["status"], "new");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = get(
        &f.app,
        &format!("/v1/messages?limit=2&cursor={cursor}"),
        &sup.secret,
    )
    .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["id"], ids[0].as_str());
    assert!(page["next_cursor"].is_null());

    let (status, handled) = post(
        &f.app,
        &format!("/v1/messages/{}/handled", ids[1]),
        &sup.secret,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{handled}");
    assert_eq!(handled["status"], "handled");
    assert_eq!(handled["handled_at"], 99_000);
    assert_eq!(handled["handled_by"], sup.key.id.as_str());

    let (_, page) = get(&f.app, "/v1/messages?status=new", &sup.secret).await;
    let remaining: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(remaining, [ids[2].as_str(), ids[0].as_str()]);
    let (_, page) = get(&f.app, "/v1/messages?status=handled", &sup.secret).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);

    // Another tenant's message is invisible: 404, not 403.
    let (status, body) = post(
        &f.app,
        &format!("/v1/messages/{theirs}/handled"),
        &sup.secret,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let admin = f
        .store
        .create_api_key(&f.tenant, Role::Admin, 3)
        .await
        .unwrap();
    let (status, _) = post(
        &f.app,
        &format!("/v1/messages/{}/handled", ids[0]),
        &admin.secret,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "admins may mark messages handled too"
    );
}

#[tokio::test]
async fn callbacks_list_and_close() {
    let f = fixture().await;
    let key = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    let cb = f
        .store
        .insert_callback(NewCallback {
            tenant_id: f.tenant.clone(),
            number: "+15551234567".to_owned(),
            preferred_time: Some("tomorrow morning".to_owned()),
            reason: Some("invoice".to_owned()),
            created_at: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, page) = get(&f.app, "/v1/callbacks", &key).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["callbacks"][0]["preferred_time"], "tomorrow morning");
    assert_eq!(page["callbacks"][0]["status"], "pending");
    let (status, done) = post(&f.app, &format!("/v1/callbacks/{}/done", cb.id), &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (done["status"].as_str(), done["closed_at"].as_i64()),
        (Some("done"), Some(99_000))
    );
    let (_, page) = get(&f.app, "/v1/callbacks?status=pending", &key).await;
    assert!(page["callbacks"].as_array().unwrap().is_empty());
    let (status, _) = post(&f.app, "/v1/callbacks/nope/done", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn customers_by_phone_are_per_tenant_and_hide_the_postal_code() {
    let f = fixture().await;
    let key = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    let jane = CustomerUpsert {
        external_id: "C-1".to_owned(),
        zoho_contact_id: None,
        zoho_books_id: None,
        name: "Jane Doe".to_owned(),
        company: Some("Doe Bakery".to_owned()),
        email: None,
        postal_code: Some("94107".to_owned()),
        balance_minor: 14_250,
        currency: "USD".to_owned(),
        phones: vec![CustomerPhone {
            e164: "+15551234567".to_owned(),
            kind: PhoneKind::Mobile,
        }],
    };
    let id = f
        .store
        .upsert_customer(&f.tenant, &jane, 5)
        .await
        .unwrap()
        .id;
    let mut theirs = jane.clone();
    theirs.name = "Someone Else".to_owned();
    f.store.upsert_customer(&f.other, &theirs, 5).await.unwrap();
    f.store
        .upsert_invoices(
            &f.tenant,
            &[InvoiceUpsert {
                customer_id: id.clone(),
                number: "INV-1".to_owned(),
                zoho_invoice_id: None,
                status: "overdue".to_owned(),
                total_minor: 9_250,
                balance_minor: 9_250,
                currency: "USD".to_owned(),
                issue_date: None,
                due_date: "2025-05-01".to_owned(),
            }],
            6,
        )
        .await
        .unwrap();

    let (status, body) = get(&f.app, "/v1/customers?phone=%2B1%20(555)%20123-4567", &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], "+15551234567");
    let list = body["customers"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only this tenant's customer: {body}");
    assert_eq!(list[0]["name"], "Jane Doe");
    assert_eq!(list[0]["balance_minor"], 14_250);
    assert_eq!(list[0]["phones"][0]["kind"], "mobile");
    assert_eq!(list[0]["invoices"][0]["number"], "INV-1");
    assert!(list[0].get("postal_code").is_none() && !body.to_string().contains("94107"));

    let (status, body) = get(&f.app, "/v1/customers?phone=%2B15550000000", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["customers"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_input_gets_json_4xx() {
    let f = fixture().await;
    let key = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    for path in [
        "/v1/messages?status=read",
        "/v1/messages?limit=0",
        "/v1/messages?limit=201",
        "/v1/messages?cursor=garbage",
        "/v1/messages?colour=blue",
        "/v1/callbacks?status=new",
        "/v1/callbacks?cursor=12_",
        "/v1/customers",
        "/v1/customers?phone=5551234567",
        "/v1/customers?phone=%2B1555abc",
        "/v1/customers?phone=%2B15551234567&name=jane",
    ] {
        let (status, body) = get(&f.app, path, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
    }
    let (status, body) = post(&f.app, "/v1/messages/nope/handled", &key).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = get(&f.app, "/v1/messages", "agk_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
