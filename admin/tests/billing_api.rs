//! Billing and analytics through the HTTP API: Dodo webhooks signed by the fake (bad or stale
//! signature → 401 and nothing changed; replay → 200 and applied once; events out of order →
//! the newest state wins), checkout through the Dodo fake, analytics parameters checked
//! (naming the parameter), the summary's figures and the CSV export.

mod support;

use support::{T0, WEBHOOK_SECRET, fixture, json, send};
use testkit::dodo::{FakeDodo, event, sign, subscription};

fn now_secs() -> i64 {
    (T0 + 3_600_000) / 1000
}

async fn deliver(
    f: &support::Fixture,
    id: &str,
    ts: i64,
    body: &str,
    secret: &str,
) -> (u16, String) {
    let headers = sign(secret, id, ts, body);
    let (s, b) = send(&f.app, "POST", "/webhooks/dodo", None, Some(body), &headers).await;
    (s.as_u16(), b)
}

#[tokio::test]
async fn webhooks_are_verified_deduplicated_and_applied_newest_first() {
    let f = fixture(None).await;
    let tenant = f.a.id.clone();
    let sub = |status: &str| {
        subscription(
            "sub_1",
            status,
            "pdt_pro",
            tenant.as_str(),
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        )
    };
    let active = event("subscription.active", "2026-12-05T08:30:00Z", sub("active"));
    let cancelled = event(
        "subscription.cancelled",
        "2026-12-05T08:45:00Z",
        sub("cancelled"),
    );
    let status = |f: &support::Fixture| {
        let f_app = f.app.clone();
        let key = f.a.supervisor.clone();
        async move {
            json(
                &send(&f_app, "GET", "/v1/billing", Some(&key), None, &[])
                    .await
                    .1,
            )
        }
    };
    assert_eq!(status(&f).await["status"], "none");
    // Bad signature, wrong secret, stale and future timestamps: 401, nothing stored.
    let other = testkit::dodo::whsec(b"another-secret-another-secret!!");
    assert_eq!(
        deliver(&f, "msg_1", now_secs(), &active, &other).await.0,
        401
    );
    assert_eq!(
        deliver(&f, "msg_1", now_secs() - 301, &active, WEBHOOK_SECRET)
            .await
            .0,
        401
    );
    assert_eq!(
        deliver(&f, "msg_1", now_secs() + 301, &active, WEBHOOK_SECRET)
            .await
            .0,
        401
    );
    let mut tampered = sign(WEBHOOK_SECRET, "msg_1", now_secs(), &active);
    tampered[0].1 = "msg_2".into();
    let (s, _) = send(
        &f.app,
        "POST",
        "/webhooks/dodo",
        None,
        Some(&active),
        &tampered,
    )
    .await;
    assert_eq!(s.as_u16(), 401);
    assert_eq!(f.store.webhook_deliveries("dodo").await.unwrap(), 0);
    assert_eq!(status(&f).await["status"], "none");
    // The cancellation arrives first, then the (older) activation: cancelled stays.
    let (s, b) = deliver(&f, "msg_cancel", now_secs(), &cancelled, WEBHOOK_SECRET).await;
    assert_eq!((s, json(&b)["outcome"].as_str().unwrap()), (200, "applied"));
    let (s, b) = deliver(&f, "msg_active", now_secs() - 200, &active, WEBHOOK_SECRET).await;
    assert_eq!((s, json(&b)["outcome"].as_str().unwrap()), (200, "applied"));
    let st = status(&f).await;
    assert_eq!(st["status"], "cancelled");
    assert_eq!(
        st["plan"]["name"], "trial",
        "a cancelled subscription falls back to the default plan"
    );
    // A replay of the activation (same webhook-id): 200, not applied again.
    let (s, b) = deliver(&f, "msg_active", now_secs(), &active, WEBHOOK_SECRET).await;
    assert_eq!(
        (s, json(&b)["outcome"].as_str().unwrap()),
        (200, "duplicate")
    );
    assert_eq!(f.store.webhook_deliveries("dodo").await.unwrap(), 2);
    // A renewal after the cancellation (a new period) wins again.
    let renewed = event(
        "subscription.renewed",
        "2026-12-05T08:50:00Z",
        sub("active"),
    );
    deliver(&f, "msg_renew", now_secs(), &renewed, WEBHOOK_SECRET).await;
    let st = status(&f).await;
    assert_eq!(
        (st["status"].as_str(), st["plan"]["name"].as_str()),
        (Some("active"), Some("pro"))
    );
    assert_eq!(st["subscription_id"], "sub_1");
    // Payments: a success after a failure of the same payment, delivered in reverse.
    let meta =
        serde_json::json!({"tenant_id": tenant, "purpose": "invoice", "invoice_number": "INV-7"});
    let ok = event(
        "payment.succeeded",
        "2026-12-05T08:40:00Z",
        testkit::dodo::payment("pay_1", "succeeded", 14250, meta.clone()),
    );
    let failed = event(
        "payment.failed",
        "2026-12-05T08:35:00Z",
        testkit::dodo::payment("pay_1", "failed", 14250, meta),
    );
    deliver(&f, "msg_p2", now_secs(), &ok, WEBHOOK_SECRET).await;
    deliver(&f, "msg_p1", now_secs(), &failed, WEBHOOK_SECRET).await;
    let st = status(&f).await;
    assert_eq!(st["payments"][0]["status"], "succeeded");
    assert_eq!(st["payments"][0]["reference"], "INV-7");
    // Unknown tenants are acknowledged and ignored; garbage is a 400.
    let stray = event(
        "subscription.active",
        "2026-12-05T08:30:00Z",
        subscription(
            "sub_x",
            "active",
            "pdt_pro",
            "nobody",
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ),
    );
    let (s, b) = deliver(&f, "msg_stray", now_secs(), &stray, WEBHOOK_SECRET).await;
    assert_eq!((s, json(&b)["outcome"].as_str().unwrap()), (200, "ignored"));
    assert_eq!(
        deliver(&f, "msg_bad", now_secs(), "not json", WEBHOOK_SECRET)
            .await
            .0,
        400
    );
    // B never saw any of it.
    assert!(f.store.subscription(&f.b.id).await.unwrap().is_none());
}

#[tokio::test]
async fn checkout_goes_through_dodo_and_returns_its_url() {
    let dodo = FakeDodo::start("dodo_test").await;
    let f = fixture(Some(&dodo.base_url())).await;
    let (s, body) = send(
        &f.app,
        "POST",
        "/v1/billing/checkout",
        Some(&f.a.admin),
        Some(r#"{"plan":"pro","email":"owner@alpha.example.com","name":"Owner"}"#),
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 201, "{body}");
    let v = json(&body);
    let made = dodo.checkouts();
    assert_eq!(made.len(), 1);
    assert_eq!(v["checkout_url"], made[0].checkout_url.as_str());
    assert_eq!(made[0].request["product_cart"][0]["product_id"], "pdt_pro");
    assert_eq!(made[0].request["metadata"]["tenant_id"], f.a.id.as_str());
    assert_eq!(
        made[0].request["customer"]["email"],
        "owner@alpha.example.com"
    );
    // A plan not sold online, an unknown plan, a supervisor: refused before Dodo is asked.
    for (key, body, want) in [
        (&f.a.admin, r#"{"plan":"trial","email":"a@b.co"}"#, 400),
        (&f.a.admin, r#"{"plan":"gold","email":"a@b.co"}"#, 400),
        (&f.a.supervisor, r#"{"plan":"pro","email":"a@b.co"}"#, 403),
    ] {
        let (s, _) = send(
            &f.app,
            "POST",
            "/v1/billing/checkout",
            Some(key),
            Some(body),
            &[],
        )
        .await;
        assert_eq!(s.as_u16(), want, "{body}");
    }
    dodo.fail_next(500);
    let (s, body) = send(
        &f.app,
        "POST",
        "/v1/billing/checkout",
        Some(&f.a.admin),
        Some(r#"{"plan":"pro","email":"a@b.co"}"#),
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 502, "{body}");
    assert_eq!(dodo.checkouts().len(), 1);
}

#[tokio::test]
async fn analytics_ranges_are_checked_and_figures_match_the_calls() {
    let f = fixture(None).await;
    let key = &f.a.supervisor;
    let day = 86_400_000;
    let from = T0 - T0 % day;
    for (query, param) in [
        (format!("from={}&to={}", from + day, from), "to"),
        (format!("from={}&to={}", from, from + 400 * day), "to"),
        (format!("from={}&to={}", from + 7, from + day), "from"),
        (format!("from={from}&to={}&tz=Mars/Base", from + day), "tz"),
    ] {
        let (s, body) = send(
            &f.app,
            "GET",
            &format!("/v1/analytics/summary?{query}"),
            Some(key),
            None,
            &[],
        )
        .await;
        assert_eq!(s.as_u16(), 400, "{query}: {body}");
        let msg = json(&body)["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.starts_with(&format!("{param}:")), "{query}: {msg}");
    }
    let (s, body) = send(
        &f.app,
        "GET",
        &format!(
            "/v1/analytics/timeseries?from={from}&to={}&bucket=week",
            from + day
        ),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 400);
    assert!(body.contains("bucket:"));
    let (s, body) = send(
        &f.app,
        "GET",
        &format!(
            "/v1/analytics/timeseries?from={from}&to={}&bucket=hour",
            from + 40 * day
        ),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(
        s.as_u16(),
        400,
        "hour series are limited to 31 days: {body}"
    );
    // The fixture's one call of tenant A: 2 min inbound, answered, a message taken.
    let (s, body) = send(
        &f.app,
        "GET",
        &format!("/v1/analytics/summary?from={from}&to={}", from + day),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 200, "{body}");
    let v = json(&body);
    let sum = &v["summary"];
    assert_eq!(
        (
            sum["calls"].as_i64(),
            sum["answered"].as_i64(),
            sum["inbound"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(sum["followups"], 1);
    assert_eq!(sum["contained"], 0);
    assert_eq!(sum["cost_micros"], 20_000, "2 min at 10,000 micros");
    assert_eq!(sum["end_reasons"][0]["value"], "caller_hangup");
    assert_eq!(v["currency"], "USD");
    let (s, body) = send(
        &f.app,
        "GET",
        &format!(
            "/v1/analytics/timeseries?from={from}&to={}&bucket=hour&tz=UTC",
            from + day
        ),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 200);
    let points = json(&body)["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 24);
    assert_eq!(
        points
            .iter()
            .map(|p| p["calls"].as_i64().unwrap())
            .sum::<i64>(),
        1
    );
    // GET /v1/calls/{id} carries the priced cost.
    let (_, body) = send(
        &f.app,
        "GET",
        &format!("/v1/calls/{}", f.a.call),
        Some(key),
        None,
        &[],
    )
    .await;
    let cost = &json(&body)["cost"];
    assert_eq!(
        (cost["total_micros"].as_i64(), cost["final"].as_bool()),
        (Some(20_000), Some(true))
    );
    assert_eq!(cost["items"][0]["component"], "transport");
    // CSV: header plus A's call only.
    let (s, csv) = send(
        &f.app,
        "GET",
        &format!("/v1/exports/calls?from={from}&to={}", from + day),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("id,started_at"));
    assert!(
        lines[1].starts_with(f.a.call.as_str()) && lines[1].ends_with(",USD,20000"),
        "{}",
        lines[1]
    );
    let (s, _) = send(
        &f.app,
        "GET",
        "/v1/exports/calls?direction=sideways",
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(s.as_u16(), 400);
}
