//! Plans enforced on real SIP calls: a tenant whose plan includes one minute has used 59 s;
//! its next call (SIPp, answered, hung up after a second) is admitted and takes it over the
//! quota; once the daemon has folded that call into the meter, the following call is refused
//! with 503 before any answer, and is stored as `quota_exceeded`.
//!
//! Needs `sipp` and the whisper test model, like `sipp.rs`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin::{get_json, supervisor_key};
use support::sipp::{run, scenario};
use support::speech::whisper_model;
use support::{Daemon, Env};

fn billing(daemon: &Daemon, key: &str) -> Value {
    get_json(daemon, key, "/v1/billing")
}

fn wait_until(daemon: &Daemon, key: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b = billing(daemon, key);
        if ok(&b) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {b:#}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn calls_over_the_plans_minutes_are_refused_before_answer() {
    let env = Env::new(&format!(
        "[stt]\nmodel = \"{}\"\nthreads = 1\n\
         [billing]\nenforce = true\ndefault_plan = \"tiny\"\nfold_interval_ms = 200\n\
         [billing.plans.tiny]\nincluded_minutes = 1\nconcurrent_calls = 5\noverage = \"block\"\n",
        whisper_model().display()
    ));
    let key = supervisor_key(&env);
    // 59 s already used this month: one earlier call, stored as the pipeline stores them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", env.dir.path().join("agent.db").display());
        let store = store::Store::connect(&url, &store::StoreOptions::default())
            .await
            .unwrap();
        let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
        let now = billing::unix_ms_now();
        let id = store::CallId::generate();
        store
            .insert_call(store::NewCall {
                id: id.clone(),
                tenant_id: tenant.clone(),
                direction: store::CallDirection::Inbound,
                from_number: "+15550001111".into(),
                to_number: "+15550002222".into(),
                sip_call_id: None,
                flow: None,
                flow_version: None,
                node: "earlier".into(),
                started_at: now - 120_000,
                transport: store::CallTransport::Sip,
            })
            .await
            .unwrap();
        store.mark_call_answered(&id, now - 119_000).await.unwrap();
        store
            .add_usage(&tenant, Some(&id), "call_ms", 59_000, "ms", now - 60_000)
            .await
            .unwrap();
        store
            .end_call(&id, now - 60_000, &store::EndReason::CallerHangup)
            .await
            .unwrap();
        store.close().await;
    });
    let daemon = env.serve();
    let b = wait_until(&daemon, &key, "the earlier call metered", |b| {
        b["used_ms"] == 59_000
    });
    assert_eq!(
        (b["plan"]["name"].as_str(), b["enforced"].as_bool()),
        (Some("tiny"), Some(true))
    );

    // Under the quota: answered, talks a second, hangs up.
    let r = run(
        &scenario("bye_during_speech.xml"),
        env.sip,
        &[],
        Duration::from_secs(20),
    );
    assert!(
        r.succeeded(),
        "admitted call: {}\n{}\n{}",
        r.output,
        r.ladder(),
        daemon.log_text()
    );
    let b = wait_until(&daemon, &key, "over the quota", |b| b["remaining_ms"] == 0);
    assert!(b["used_ms"].as_i64().unwrap() > 60_000, "{b:#}");

    // Over it: 503 before any answer, and ACKed.
    let r = run(
        &scenario("refused.xml"),
        env.sip,
        &[],
        Duration::from_secs(10),
    );
    assert!(
        r.succeeded(),
        "refused call: {}\n{}\n{}",
        r.output,
        r.ladder(),
        daemon.log_text()
    );
    assert!(r.responses_to("INVITE", 200).is_empty(), "{}", r.ladder());
    assert_eq!(r.responses_to("INVITE", 503).len(), 1, "{}", r.ladder());
    let calls = get_json(&daemon, &key, "/v1/calls?limit=10")["calls"]
        .as_array()
        .unwrap()
        .clone();
    let refused: Vec<&Value> = calls
        .iter()
        .filter(|c| c["end_reason"] == "quota_exceeded")
        .collect();
    assert_eq!(refused.len(), 1, "{calls:#?}");
    assert!(refused[0]["answered_at"].is_null());
    assert!(daemon.log_text().contains("refused by the tenant's plan"));
}
