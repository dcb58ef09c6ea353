//! The admin API through `tower::ServiceExt::oneshot` (no socket), on a SQLite store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{
    CallDirection, CallId, EndReason, EventKind, NewCall, Role, Store, StoreOptions, TenantId,
    Turn, TurnLatency,
};
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
    tenant: TenantId,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tenant = store.create_tenant("acme", 1).await.unwrap().id;
    let app = admin::router(admin::AppState::new(
        store.clone(),
        admin::metrics::install(),
    ));
    Fixture {
        _dir: dir,
        store,
        app,
        tenant,
    }
}

async fn get(app: &axum::Router, path: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn health_ready_and_metrics_need_no_key() {
    let f = fixture().await;
    assert_eq!(get(&f.app, "/health", None).await.0, StatusCode::OK);
    assert_eq!(get(&f.app, "/ready", None).await.0, StatusCode::OK);
    let (status, text) = get(&f.app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("agent_http_requests_total"), "{text}");
}

#[tokio::test]
async fn ready_is_503_when_the_database_is_gone() {
    let f = fixture().await;
    f.store.close().await;
    let (status, _) = get(&f.app, "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&f.app, "/health", None).await.0,
        StatusCode::OK,
        "alive regardless"
    );
}

#[tokio::test]
async fn v1_needs_a_valid_unrevoked_key_and_the_right_role() {
    let f = fixture().await;
    let (status, body) = get(&f.app, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&body)["error"]["code"], "unauthorized");
    assert_eq!(
        get(&f.app, "/v1/whoami", Some("agk_nope")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let sup = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap();
    let (status, body) = get(&f.app, "/v1/whoami", Some(&sup.secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["role"], "supervisor");
    let (status, body) = get(&f.app, "/v1/keys", Some(&sup.secret)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(json(&body)["error"]["code"], "forbidden");

    let adm = f
        .store
        .create_api_key(&f.tenant, Role::Admin, 3)
        .await
        .unwrap();
    let (status, body) = get(&f.app, "/v1/keys", Some(&adm.secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["keys"].as_array().unwrap().len(), 2);
    assert!(!body.contains(&adm.secret), "secrets are never listed");

    f.store.revoke_api_key(&sup.key.id, 4).await.unwrap();
    assert_eq!(
        get(&f.app, "/v1/whoami", Some(&sup.secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Unknown /v1 routes are JSON 404s once authenticated, and 401 before.
    let (status, body) = get(&f.app, "/v1/nothing", Some(&adm.secret)).await;
    assert_eq!(
        (status, json(&body)["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn calls_list_pages_and_detail_has_turns_and_events() {
    let f = fixture().await;
    let key = f
        .store
        .create_api_key(&f.tenant, Role::Supervisor, 2)
        .await
        .unwrap()
        .secret;
    let mut ids = Vec::new();
    for i in 0..3 {
        let call = f
            .store
            .insert_call(NewCall {
                id: CallId::generate(),
                tenant_id: f.tenant.clone(),
                direction: CallDirection::Inbound,
                from_number: format!("+1555000000{i}"),
                to_number: "+15559990000".to_owned(),
                sip_call_id: None,
                flow: Some("receptionist".to_owned()),
                flow_version: None,
                node: "n".to_owned(),
                started_at: 1_000 + i,
                transport: store::CallTransport::Sip,
            })
            .await
            .unwrap();
        ids.push(call.id);
    }
    f.store.mark_call_answered(&ids[2], 1_500).await.unwrap();
    f.store
        .end_call(&ids[2], 9_500, &EndReason::CallerHangup)
        .await
        .unwrap();
    f.store
        .add_call_event(&ids[2], 1_500, &EventKind::Answered, serde_json::json!({}))
        .await
        .unwrap();
    f.store
        .upsert_turn(&Turn {
            call_id: ids[2].clone(),
            seq: 1,
            started_at: 2_000,
            caller_text: Some("check my balance".to_owned()),
            agent_text: Some("Sure.".to_owned()),
            interrupted: false,
            latency: TurnLatency {
                eot_ms: Some(500),
                stt_ms: Some(90),
                llm_ms: Some(1),
                tts_ms: Some(40),
                e2e_ms: Some(650),
            },
        })
        .await
        .unwrap();

    let (status, body) = get(&f.app, "/v1/calls?limit=2", Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = json(&body);
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], ids[2].as_str(), "newest first");
    assert_eq!(calls[0]["end_reason"], "caller_hangup");
    assert_eq!(calls[0]["from"], "+15550000002");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, body) = get(
        &f.app,
        &format!("/v1/calls?limit=2&cursor={cursor}"),
        Some(&key),
    )
    .await;
    let page = json(&body);
    assert_eq!(page["calls"].as_array().unwrap().len(), 1);
    assert_eq!(page["calls"][0]["id"], ids[0].as_str());
    assert!(page["next_cursor"].is_null());

    let (_, body) = get(&f.app, "/v1/calls?status=ended", Some(&key)).await;
    assert_eq!(json(&body)["calls"].as_array().unwrap().len(), 1);

    let (status, body) = get(&f.app, &format!("/v1/calls/{}", ids[2]), Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    let call = json(&body);
    assert_eq!(call["turns"][0]["caller_text"], "check my balance");
    assert_eq!(call["turns"][0]["latency"]["e2e_ms"], 650);
    assert_eq!(call["events"][0]["kind"], "answered");
    assert_eq!(call["duration_ms"], 8_000);
}

#[tokio::test]
async fn bad_input_gets_json_4xx() {
    let f = fixture().await;
    let key = f
        .store
        .create_api_key(&f.tenant, Role::Admin, 2)
        .await
        .unwrap()
        .secret;
    for path in [
        "/v1/calls?status=flying",
        "/v1/calls?limit=0",
        "/v1/calls?limit=abc",
        "/v1/calls?cursor=garbage",
        "/v1/calls?colour=blue",
    ] {
        let (status, body) = get(&f.app, path, Some(&key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(json(&body)["error"]["code"], "bad_request", "{path}");
    }
    let (status, body) = get(&f.app, "/v1/calls/does-not-exist", Some(&key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["code"], "not_found");
    let (status, body) = get(&f.app, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    json(&body);
}
