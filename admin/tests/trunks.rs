//! GET /v1/trunks with an injected trunk directory (the daemon's is the SIP driver).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{Role, Store, StoreOptions};
use tower::ServiceExt;

struct Fixed(Vec<admin::TrunkInfo>);

impl admin::TrunkDirectory for Fixed {
    fn trunks(&self) -> Vec<admin::TrunkInfo> {
        self.0.clone()
    }
}

async fn get(app: &axum::Router, path: &str, key: &str) -> (StatusCode, Value) {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn trunks_are_listed_for_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tenant = store.create_tenant("acme", 1).await.unwrap().id;
    let admin_key = store.create_api_key(&tenant, Role::Admin, 2).await.unwrap();
    let sup_key = store
        .create_api_key(&tenant, Role::Supervisor, 2)
        .await
        .unwrap();
    let metrics = admin::metrics::install();

    // Without a directory (no SIP side): an empty list.
    let app = admin::router(admin::AppState::new(store.clone(), metrics.clone()));
    let (status, body) = get(&app, "/v1/trunks", &admin_key.secret).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["trunks"].as_array().unwrap().len(), 0);

    let info = admin::TrunkInfo {
        name: "carrier".into(),
        proxy: Some("192.0.2.1:5060".into()),
        transport: "udp".into(),
        register: true,
        registration: "registered".into(),
        registered: true,
        expires_at: Some(1_700_000_000_000),
        last_error: Some("REGISTER refused: 403 Forbidden".into()),
        last_error_at: Some(1_699_999_000_000),
        health: Some(admin::TrunkHealthInfo {
            up: true,
            rtt_ms: Some(12),
            checked_at: 1_699_999_990_000,
        }),
    };
    let state = admin::AppState::new(store, metrics).with_trunks(Arc::new(Fixed(vec![info])));
    let app = admin::router(state);
    let (status, body) = get(&app, "/v1/trunks", &admin_key.secret).await;
    assert_eq!(status, StatusCode::OK);
    let t = &body["trunks"][0];
    assert_eq!(t["name"], "carrier");
    assert_eq!(t["registration"], "registered");
    assert_eq!(t["registered"], true);
    assert_eq!(t["expires_at"], 1_700_000_000_000_i64);
    assert_eq!(t["last_error"], "REGISTER refused: 403 Forbidden");
    assert_eq!(t["health"]["up"], true);
    assert_eq!(t["health"]["rtt_ms"], 12);
    let (status, body) = get(&app, "/v1/trunks", &sup_key.secret).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
