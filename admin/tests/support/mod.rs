//! Two tenants with data, keys of every role, and the router with billing configured.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use billing::{Overage, Plan, Plans, Prices};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{CallDirection, NewCall, Role, Store, StoreOptions, Turn, TurnLatency};
use tower::ServiceExt;

pub const T0: i64 = 1_796_457_600_000; // 2026-12-05T08:00:00Z
pub const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ==";

/// One tenant's ids and keys.
pub struct TenantData {
    pub id: store::TenantId,
    pub campaign: String,
    pub dnc: String,
    pub name: String,
    pub admin: String,
    pub supervisor: String,
    pub admin_key_id: String,
    pub call: store::CallId,
    pub message: String,
    pub callback: String,
    pub number: String,
    pub trunk: String,
    pub email: String,
    pub phone: String,
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub app: axum::Router,
    pub a: TenantData,
    pub b: TenantData,
    pub platform: String,
}

pub fn prices() -> Prices {
    Prices {
        currency: "USD".into(),
        inbound_per_minute: 10_000,
        outbound_per_minute: 15_000,
        stt_per_audio_minute: 6_000,
        llm_prompt_per_1k_tokens: 150,
        llm_completion_per_1k_tokens: 600,
        tts_per_1k_chars: 15_000,
    }
}

pub fn plans() -> Plans {
    let plan = |name: &str, minutes, product: &str| Plan {
        name: name.into(),
        included_minutes: minutes,
        concurrent_calls: 2,
        overage: Overage::Block,
        overage_per_minute: 0,
        dodo_product_id: product.into(),
    };
    Plans {
        enforce: true,
        default_plan: "trial".into(),
        plans: BTreeMap::from([
            ("trial".into(), plan("trial", 10, "")),
            ("pro".into(), plan("pro", 1000, "pdt_pro")),
        ]),
        max_call_ms: 7_200_000,
    }
}

pub fn billing(dodo_base: Option<&str>) -> admin::BillingContext {
    admin::BillingContext {
        plans: plans(),
        prices: prices(),
        dodo: dodo_base.map(|b| billing::dodo::DodoClient::new(b, "dodo_test").unwrap()),
        webhook_secret: Some(billing::webhook::WebhookSecret::parse(WEBHOOK_SECRET).unwrap()),
        return_url: None,
    }
}

async fn tenant(store: &Store, name: &str, digit: char) -> TenantData {
    let id = store.create_tenant(name, T0).await.unwrap().id;
    let admin = store.create_api_key(&id, Role::Admin, T0).await.unwrap();
    let supervisor = store
        .create_api_key(&id, Role::Supervisor, T0)
        .await
        .unwrap();
    let call = store::CallId::generate();
    let phone = format!("+1555000{}{}{}{}", digit, digit, digit, digit);
    store
        .insert_call(NewCall {
            id: call.clone(),
            tenant_id: id.clone(),
            direction: CallDirection::Inbound,
            from_number: phone.clone(),
            to_number: format!("+1800{digit}{digit}{digit}0000"),
            sip_call_id: None,
            flow: Some("receptionist".into()),
            flow_version: None,
            node: "n1".into(),
            started_at: T0 + 60_000,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap();
    store.mark_call_answered(&call, T0 + 61_000).await.unwrap();
    store
        .upsert_turn(&Turn {
            call_id: call.clone(),
            seq: 1,
            started_at: T0 + 62_000,
            caller_text: Some(format!("secret words of {name}")),
            agent_text: Some("hello".into()),
            interrupted: false,
            latency: TurnLatency {
                e2e_ms: Some(800),
                eot_ms: Some(300),
                ..TurnLatency::default()
            },
        })
        .await
        .unwrap();
    store
        .add_usage(&id, Some(&call), "call_ms", 120_000, "ms", T0 + 181_000)
        .await
        .unwrap();
    // A recording whose "audio" is the tenant's marker: a download that crossed tenants
    // would show it.
    let path = std::env::temp_dir().join(format!("{}-caller.wav", call.as_str()));
    std::fs::write(&path, format!("recording of {name}")).unwrap();
    store
        .add_recording(&store::CallRecording {
            call_id: call.clone(),
            tenant_id: id.clone(),
            channel: "caller".into(),
            path: path.display().to_string(),
            format: "wav".into(),
            sample_rate: 8_000,
            duration_ms: 120_000,
            bytes: 17,
            created_at: T0 + 181_000,
        })
        .await
        .unwrap();
    store
        .end_call(
            &call,
            T0 + 181_000,
            &store::EndReason::from_code("caller_hangup"),
        )
        .await
        .unwrap();
    let message = store
        .insert_message(store::NewMessage {
            tenant_id: id.clone(),
            call_id: Some(call.clone()),
            text: format!("message of {name}"),
            created_at: T0 + 100_000,
            ..store::NewMessage::default()
        })
        .await
        .unwrap()
        .id;
    let callback = store
        .insert_callback(store::NewCallback {
            tenant_id: id.clone(),
            call_id: Some(call.clone()),
            customer_id: None,
            number: phone.clone(),
            preferred_time: None,
            due_at: None,
            reason: None,
            created_at: T0 + 100_000,
        })
        .await
        .unwrap()
        .id;
    let number = format!("+1800{digit}{digit}{digit}0000");
    store
        .add_phone_number(&number, &id, "receptionist", T0)
        .await
        .unwrap();
    let trunk = format!("ST_{name}");
    store
        .add_trunk_route(&trunk, &id, "receptionist", T0)
        .await
        .unwrap();
    let email = format!("boss@{name}.example.com");
    store
        .put_tenant_settings(&store::TenantSettings {
            tenant_id: id.clone(),
            timezone: "UTC".into(),
            supervisor_emails: vec![email.clone()],
            updated_at: T0,
        })
        .await
        .unwrap();
    store
        .upsert_customer(
            &id,
            &store::CustomerUpsert {
                external_id: format!("c-{name}"),
                zoho_contact_id: None,
                zoho_books_id: None,
                name: format!("Customer of {name}"),
                company: None,
                email: None,
                postal_code: None,
                balance_minor: 100,
                currency: "USD".into(),
                phones: vec![store::CustomerPhone {
                    e164: phone.clone(),
                    kind: store::PhoneKind::Mobile,
                }],
            },
            T0,
        )
        .await
        .unwrap();
    // A campaign calling the tenant's customer, and a number on its do-not-call list.
    let campaign = store
        .create_campaign(
            store::NewCampaign {
                tenant_id: id.clone(),
                name: format!("campaign of {name}"),
                kind: store::CampaignKind::List,
                flow: "payment_reminder".into(),
                trunk: "carrier".into(),
                settings: store::CampaignSettings::default(),
                status: store::CampaignStatus::Draft,
                created_at: T0,
            },
            &[store::NewContact {
                phone: phone.clone(),
                name: Some(format!("Contact of {name}")),
                time_zone: "UTC".into(),
                ..store::NewContact::default()
            }],
        )
        .await
        .unwrap()
        .id
        .to_string();
    let dnc = format!("+1555999{}{}{}{}", digit, digit, digit, digit);
    store
        .add_dnc(
            &id,
            &[store::NewDnc {
                phone: dnc.clone(),
                source: store::DncSource::Api,
                reason: Some(format!("dnc of {name}")),
                call_id: None,
            }],
            T0,
        )
        .await
        .unwrap();
    TenantData {
        campaign,
        dnc,
        id,
        name: name.to_owned(),
        admin: admin.secret,
        supervisor: supervisor.secret,
        admin_key_id: admin.key.id,
        call,
        message,
        callback,
        number,
        trunk,
        email,
        phone,
    }
}

/// Tenants `alpha` and `bravo` with a call, a message, a callback, a number, a trunk route,
/// settings and a customer each; an `ops` tenant holding the platform key. Folded.
pub async fn fixture(dodo_base: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let a = tenant(&store, "alpha", '1').await;
    let b = tenant(&store, "bravo", '2').await;
    let ops = store.create_tenant("ops", T0).await.unwrap().id;
    let platform = store
        .create_api_key(&ops, Role::Platform, T0)
        .await
        .unwrap()
        .secret;
    billing::Folder::new(store.clone(), prices())
        .fold_all(10, T0)
        .await
        .unwrap();
    let mut state = admin::AppState::new(store.clone(), admin::metrics::install())
        .with_billing(billing(dodo_base));
    state.clock = Arc::new(|| T0 + 3_600_000);
    let app = admin::router(state);
    Fixture {
        _dir: dir,
        store,
        app,
        a,
        b,
        platform,
    }
}

/// Sends a request; returns status, headers' content type and body text.
pub async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
    headers: &[(String, String)],
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The OpenAPI document as JSON.
pub fn openapi() -> Value {
    serde_json::to_value(admin::openapi::document()).unwrap()
}
