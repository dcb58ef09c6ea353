//! GET /v1/calls/{id} carries the call's media quality once it is recorded.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{CallDirection, CallId, CallQuality, NewCall, Role, Store, StoreOptions};
use tower::ServiceExt;

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
async fn call_detail_has_quality_once_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tenant = store.create_tenant("acme", 1).await.unwrap().id;
    let key = store
        .create_api_key(&tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    let app = admin::router(admin::AppState::new(
        store.clone(),
        admin::metrics::install(),
    ));
    let id = store
        .insert_call(NewCall {
            id: CallId::generate(),
            tenant_id: tenant,
            direction: CallDirection::Inbound,
            from_number: "+15550000001".to_owned(),
            to_number: "+15559990000".to_owned(),
            sip_call_id: None,
            flow: None,
            flow_version: None,
            node: "n".to_owned(),
            started_at: 1_000,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap()
        .id;
    let path = format!("/v1/calls/{id}");

    let (status, call) = get(&app, &path, &key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert!(call["quality"].is_null(), "{call}");

    store
        .upsert_call_quality(&CallQuality {
            call_id: id.clone(),
            codec: "PCMA".to_owned(),
            packets_expected: 1000,
            packets_received: 975,
            packets_lost: 25,
            loss_bp: 250,
            jitter_us: 3_500,
            rtt_us: None,
            remote_packets_lost: Some(4),
            remote_loss_bp: Some(40),
            remote_jitter_us: Some(1_250),
            mos_x100: 415,
            recorded_at: 30_000,
        })
        .await
        .unwrap();
    let (status, call) = get(&app, &path, &key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let q = &call["quality"];
    assert_eq!(q["codec"], "PCMA");
    assert_eq!(q["packets_received"], 975);
    assert_eq!(q["packets_lost"], 25);
    assert_eq!(q["loss_pct"], 2.5);
    assert_eq!(q["jitter_ms"], 3.5);
    assert!(q["rtt_ms"].is_null(), "no RTCP report from the peer: {q}");
    assert_eq!(q["mos"], 4.15);
    assert_eq!(q["remote"]["loss_pct"], 0.4);
    assert_eq!(q["remote"]["jitter_ms"], 1.25);
    assert_eq!(q["remote"]["packets_lost"], 4);
}
