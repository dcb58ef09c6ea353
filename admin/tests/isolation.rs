//! Tenant isolation, over EVERY route of the OpenAPI document (so a new endpoint is walked as
//! soon as it is documented, and `openapi.rs` makes sure every route is): tenant A's keys
//! (admin and supervisor) against tenant B's ids get 403 or 404 and never a byte of B's data,
//! routes without ids never show B's data, and B's data is unchanged afterwards.

mod support;

use serde_json::Value;
use support::{Fixture, fixture, json, openapi, send};

/// Every marker of tenant B's data that could leak.
fn markers(f: &Fixture) -> Vec<String> {
    let b = &f.b;
    vec![
        b.id.to_string(),
        b.call.to_string(),
        b.message.clone(),
        b.callback.clone(),
        b.number.clone(),
        b.trunk.clone(),
        b.email.clone(),
        b.admin_key_id.clone(),
        b.campaign.clone(),
        b.dnc.clone(),
        "campaign of bravo".into(),
        "Contact of bravo".into(),
        "dnc of bravo".into(),
        "secret words of bravo".into(),
        "recording of bravo".into(),
        "message of bravo".into(),
        "Customer of bravo".into(),
    ]
}

/// B's id for a path parameter; a parameter nobody taught this test fails it.
fn foreign(f: &Fixture, path: &str, param: &str) -> String {
    let b = &f.b;
    match (param, path) {
        ("id", p) if p.starts_with("/v1/calls/") => b.call.to_string(),
        ("id", p) if p.starts_with("/v1/messages/") => b.message.clone(),
        ("id", p) if p.starts_with("/v1/callbacks/") => b.callback.clone(),
        ("id", p) if p.starts_with("/v1/keys/") => b.admin_key_id.clone(),
        ("id", p) if p.starts_with("/v1/tenants/") => b.id.to_string(),
        ("id", p) if p.starts_with("/v1/campaigns/") => b.campaign.clone(),
        ("phone", p) if p.starts_with("/v1/dnc/") => b.dnc.clone(),
        ("number", _) => b.number.clone(),
        ("channel", _) => "caller".into(),
        ("trunk_id", _) => b.trunk.clone(),
        _ => panic!("{path}: no foreign value for parameter {param:?}; teach isolation.rs"),
    }
}

/// A plausible body for a route that takes one (aimed at B where it names anything).
fn body_for(f: &Fixture, method: &str, path: &str) -> Option<String> {
    let b = &f.b;
    let v = match (method, path) {
        ("POST", "/v1/keys") | ("POST", "/v1/tenants/{id}/keys") => {
            serde_json::json!({"role": "admin"})
        }
        ("POST", "/v1/tenants") => serde_json::json!({"name": "intruder"}),
        ("POST", "/v1/tenants/{id}/numbers") => {
            serde_json::json!({"number": "+18009990000", "flow": "receptionist"})
        }
        ("POST", "/v1/tenants/{id}/trunk-routes") => {
            serde_json::json!({"trunk_id": "ST_x", "flow": "receptionist"})
        }
        ("PUT", "/v1/tenants/{id}/plan") => serde_json::json!({"plan": "pro"}),
        ("PATCH", _) => serde_json::json!({"flow": "payment_reminder"}),
        ("PUT", "/v1/settings") => {
            serde_json::json!({"timezone": "UTC", "supervisor_emails": ["a@alpha.example.com"]})
        }
        ("POST", "/v1/campaigns") => serde_json::json!({"name": "intruder", "flow": "receptionist",
            "trunk": "carrier", "contacts_csv": format!("phone\n{}\n", b.phone)}),
        ("POST", "/v1/dnc") => serde_json::json!({"phone": "+15550009999"}),
        ("POST", "/v1/billing/checkout") => {
            serde_json::json!({"plan": "pro", "email": "a@alpha.example.com"})
        }
        ("POST", "/webhooks/dodo") => serde_json::json!({"type": "subscription.cancelled",
            "timestamp": "2026-12-05T08:00:00Z", "data": {"metadata": {"tenant_id": b.id}}}),
        _ => return None,
    };
    Some(v.to_string())
}

/// Required query parameters, filled with B's values.
fn query_for(f: &Fixture, op: &Value) -> String {
    let mut q = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "query" && p["required"] == true {
            let name = p["name"].as_str().unwrap();
            let value = match name {
                "phone" => f.b.phone.clone(),
                other => panic!("no foreign value for query parameter {other:?}"),
            };
            q.push(format!("{name}={}", value.replace('+', "%2B")));
        }
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

async fn snapshot(f: &Fixture) -> String {
    let s = &f.store;
    let b = &f.b.id;
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        s.list_phone_numbers(b).await.unwrap(),
        s.list_trunk_routes(b).await.unwrap(),
        s.list_api_keys(b).await.unwrap(),
        s.tenant_settings(b).await.unwrap(),
        s.subscription(b).await.unwrap(),
        s.message(b, &f.b.message).await.unwrap(),
        s.callback(b, &f.b.callback).await.unwrap(),
        s.tenant(b).await.unwrap(),
    )
}

#[tokio::test]
async fn a_foreign_key_never_reaches_another_tenants_data_on_any_route() {
    let dodo = testkit::dodo::FakeDodo::start("dodo_test").await;
    let f = fixture(Some(&dodo.base_url())).await;
    let doc = openapi();
    let before = snapshot(&f).await;
    let markers = markers(&f);
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let mut url = path.clone();
            let mut has_id = false;
            for param in path
                .split('{')
                .skip(1)
                .filter_map(|s| s.split_once('}'))
                .map(|s| s.0)
            {
                url = url.replace(&format!("{{{param}}}"), &foreign(&f, path, param));
                has_id = true;
            }
            url.push_str(&query_for(&f, op));
            let body = body_for(&f, &method, path);
            for key in [&f.a.admin, &f.a.supervisor] {
                let (status, text) =
                    send(&f.app, &method, &url, Some(key), body.as_deref(), &[]).await;
                let code = status.as_u16();
                for m in &markers {
                    assert!(
                        !text.contains(m.as_str()),
                        "{method} {url}: leaked {m:?} ({code}): {text}"
                    );
                }
                if path == "/webhooks/dodo" {
                    assert_eq!(code, 401, "{method} {url}: unsigned webhook");
                } else if has_id {
                    assert!(code == 403 || code == 404, "{method} {url}: {code} {text}");
                } else {
                    assert!(code < 500, "{method} {url}: {code} {text}");
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= 70, "walked only {walked} route × key pairs");
    assert_eq!(snapshot(&f).await, before, "tenant B's data changed");
}

#[tokio::test]
async fn own_data_is_served_and_only_the_platform_key_manages_tenants() {
    let f = fixture(None).await;
    // Positive controls: A sees its own things through the same routes.
    let (s, body) = send(
        &f.app,
        "GET",
        &format!("/v1/calls/{}", f.a.call),
        Some(&f.a.supervisor),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("secret words of alpha"));
    let (s, body) = send(
        &f.app,
        "PATCH",
        &format!("/v1/numbers/{}", f.a.number.replace('+', "%2B")),
        Some(&f.a.admin),
        Some(r#"{"flow":"payment_reminder"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // A supervisor cannot change numbers; an admin cannot create tenants.
    let (s, _) = send(
        &f.app,
        "PATCH",
        &format!("/v1/numbers/{}", f.a.number),
        Some(&f.a.supervisor),
        Some(r#"{"flow":"x"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = send(
        &f.app,
        "POST",
        "/v1/tenants",
        Some(&f.a.admin),
        Some(r#"{"name":"x"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 403);
    // The platform key creates a tenant, gives it a key and a number.
    let (s, body) = send(
        &f.app,
        "POST",
        "/v1/tenants",
        Some(&f.platform),
        Some(r#"{"name":"charlie"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let charlie = json(&body)["id"].as_str().unwrap().to_owned();
    let (s, body) = send(
        &f.app,
        "POST",
        &format!("/v1/tenants/{charlie}/keys"),
        Some(&f.platform),
        Some(r#"{"role":"admin"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let key = json(&body)["secret"].as_str().unwrap().to_owned();
    let (s, _) = send(
        &f.app,
        "POST",
        &format!("/v1/tenants/{charlie}/numbers"),
        Some(&f.platform),
        Some(r#"{"number":"+18005550100","flow":"receptionist"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 201);
    // A number already held by another tenant is a conflict, whoever asks.
    let (s, _) = send(
        &f.app,
        "POST",
        &format!("/v1/tenants/{charlie}/numbers"),
        Some(&f.platform),
        Some(&format!(
            r#"{{"number":"{}","flow":"receptionist"}}"#,
            f.b.number
        )),
        &[],
    )
    .await;
    assert_eq!(s, 409);
    let (s, body) = send(&f.app, "GET", "/v1/numbers", Some(&key), None, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(json(&body)["numbers"].as_array().unwrap().len(), 1);
    // Platform keys are never handed out over the API.
    let (s, _) = send(
        &f.app,
        "POST",
        "/v1/keys",
        Some(&key),
        Some(r#"{"role":"platform"}"#),
        &[],
    )
    .await;
    assert_eq!(s, 400);
}
