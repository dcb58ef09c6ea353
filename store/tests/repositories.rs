//! The repository suite. Every test runs twice: on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use common::{Engine, TestDb};
use serde_json::json;
use store::{
    CallDirection, CallFilter, CallId, CallStatus, EndReason, EventKind, NewCall, Role, Store,
    StoreError, TenantId, Turn, TurnLatency,
};

both_engines!(
    tenants_are_unique_and_ensure_is_idempotent,
    api_keys_authenticate_until_revoked,
    phone_numbers_map_to_tenant_and_flow,
    calls_lifecycle_and_pagination,
    call_events_keep_json_detail,
    turns_upsert_as_stages_complete,
    usage_totals_by_kind_and_window,
    migrations_are_idempotent_and_ping_works,
    orphaned_calls_are_ended_per_node,
);

async fn tenants_are_unique_and_ensure_is_idempotent(store: &Store) {
    let a = store.create_tenant("acme", 1_000).await.unwrap();
    let dup = store.create_tenant("acme", 2_000).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict { what: "tenant" })),
        "{dup:?}"
    );
    let again = store.ensure_tenant("acme", 3_000).await.unwrap();
    assert_eq!(again, a);
    let b = store.ensure_tenant("globex", 4_000).await.unwrap();
    assert_eq!(b.name, "globex");
    let names: Vec<_> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "globex"]);
}

async fn api_keys_authenticate_until_revoked(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let new = store
        .create_api_key(&t.id, Role::Supervisor, 10)
        .await
        .unwrap();
    assert!(new.secret.starts_with("agk_") && new.secret.len() > 40);
    assert!(new.secret.starts_with(&new.key.prefix));
    let who = store
        .authenticate_api_key(&new.secret, 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.tenant_id, t.id);
    assert_eq!(who.role, Role::Supervisor);
    assert!(
        store
            .authenticate_api_key("agk_wrong", 20)
            .await
            .unwrap()
            .is_none()
    );
    // A key differing in one character is a different key.
    let mut tampered = new.secret.clone();
    tampered.pop();
    tampered.push('x');
    assert!(
        store
            .authenticate_api_key(&tampered, 20)
            .await
            .unwrap()
            .is_none()
    );

    store.revoke_api_key(&new.key.id, 30).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&new.secret, 40)
            .await
            .unwrap()
            .is_none()
    );
    store.revoke_api_key(&new.key.id, 50).await.unwrap();
    let keys = store.list_api_keys(&t.id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].revoked_at,
        Some(30),
        "second revoke keeps the first time"
    );
    assert!(matches!(
        store.revoke_api_key("nope", 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn phone_numbers_map_to_tenant_and_flow(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    store
        .add_phone_number("+15551230000", &t.id, "receptionist", 2)
        .await
        .unwrap();
    let dup = store
        .add_phone_number("+15551230000", &t.id, "other", 3)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })));
    let n = store.phone_number("+15551230000").await.unwrap().unwrap();
    assert_eq!(
        (n.tenant_id.as_str(), n.flow.as_str()),
        (t.id.as_str(), "receptionist")
    );
    assert!(store.phone_number("+15550000000").await.unwrap().is_none());
}

fn new_call(tenant: &TenantId, started_at: i64) -> NewCall {
    NewCall {
        id: CallId::generate(),
        tenant_id: tenant.clone(),
        direction: CallDirection::Inbound,
        from_number: "+15551112222".to_owned(),
        to_number: "+15553334444".to_owned(),
        sip_call_id: Some(format!("sip-{started_at}")),
        flow: Some("receptionist".to_owned()),
        flow_version: Some("abc123".to_owned()),
        node: "node-a".to_owned(),
        started_at,
        transport: store::CallTransport::Sip,
    }
}

async fn calls_lifecycle_and_pagination(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let other = store.create_tenant("globex", 1).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .insert_call(new_call(&t.id, 1_000 + i))
                .await
                .unwrap()
                .id,
        );
    }
    // Same start time: ordering falls back to id, still newest (largest id) first.
    ids.push(store.insert_call(new_call(&t.id, 1_004)).await.unwrap().id);
    store.insert_call(new_call(&other.id, 5_000)).await.unwrap();

    store.mark_call_answered(&ids[0], 1_100).await.unwrap();
    assert!(
        store.mark_call_answered(&ids[0], 1_200).await.is_err(),
        "only a ringing call answers"
    );
    store
        .end_call(&ids[0], 2_000, &EndReason::CallerHangup)
        .await
        .unwrap();
    store
        .end_call(&ids[0], 3_000, &EndReason::FlowCompleted)
        .await
        .unwrap();
    let c = store.get_call(&t.id, &ids[0]).await.unwrap().unwrap();
    assert_eq!(c.status, CallStatus::Ended);
    assert_eq!(c.answered_at, Some(1_100));
    assert_eq!(
        (c.ended_at, c.end_reason.as_ref().map(EndReason::as_str)),
        (Some(2_000), Some("caller_hangup"))
    );
    assert!(
        store.get_call(&other.id, &ids[0]).await.unwrap().is_none(),
        "tenant isolation"
    );

    let mut seen = Vec::new();
    let mut filter = CallFilter {
        limit: 2,
        ..Default::default()
    };
    loop {
        let page = store.list_calls(&t.id, &filter).await.unwrap();
        assert!(page.calls.len() <= 2);
        seen.extend(page.calls.iter().map(|c| (c.started_at, c.id.clone())));
        match page.next {
            Some(next) => filter.after = Some(next.to_string().parse().unwrap()),
            None => break,
        }
    }
    let mut expected: Vec<_> = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first, no duplicates across pages");
    assert_eq!(
        seen.len(),
        6,
        "all of the tenant's calls, none of the other's"
    );

    let ended = CallFilter {
        status: Some(CallStatus::Ended),
        limit: 50,
        after: None,
    };
    let page = store.list_calls(&t.id, &ended).await.unwrap();
    assert_eq!(page.calls.len(), 1);
    assert_eq!(page.calls[0].id, ids[0]);
    assert!(page.next.is_none());
}

async fn call_events_keep_json_detail(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let call = store.insert_call(new_call(&t.id, 10)).await.unwrap();
    store
        .add_call_event(&call.id, 11, &EventKind::Answered, json!({}))
        .await
        .unwrap();
    store
        .add_call_event(
            &call.id,
            12,
            &EventKind::Dtmf,
            json!({"digit": "5", "duration_ms": 160}),
        )
        .await
        .unwrap();
    let events = store.list_call_events(&call.id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::Dtmf);
    assert_eq!(events[1].detail["digit"], "5");
    assert_eq!(events[1].detail["duration_ms"], 160);
}

async fn turns_upsert_as_stages_complete(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let call = store.insert_call(new_call(&t.id, 10)).await.unwrap();
    let mut turn = Turn {
        call_id: call.id.clone(),
        seq: 1,
        started_at: 100,
        caller_text: None,
        agent_text: None,
        interrupted: false,
        latency: TurnLatency::default(),
    };
    store.upsert_turn(&turn).await.unwrap();
    turn.caller_text = Some("what is my balance".to_owned());
    turn.latency.eot_ms = Some(500);
    turn.latency.stt_ms = Some(120);
    store.upsert_turn(&turn).await.unwrap();
    turn.agent_text = Some("Your balance is 42 dollars.".to_owned());
    turn.interrupted = true;
    turn.latency = TurnLatency {
        eot_ms: Some(500),
        stt_ms: Some(120),
        llm_ms: Some(3),
        tts_ms: Some(80),
        e2e_ms: Some(720),
    };
    store.upsert_turn(&turn).await.unwrap();
    let turns = store.list_turns(&call.id).await.unwrap();
    assert_eq!(turns, vec![turn]);
}

async fn usage_totals_by_kind_and_window(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let call = store.insert_call(new_call(&t.id, 10)).await.unwrap();
    store
        .add_usage(&t.id, Some(&call.id), "call_ms", 60_000, "ms", 100)
        .await
        .unwrap();
    store
        .add_usage(&t.id, Some(&call.id), "call_ms", 30_000, "ms", 200)
        .await
        .unwrap();
    store
        .add_usage(&t.id, None, "llm_prompt_tokens", 1_234, "tokens", 150)
        .await
        .unwrap();
    assert_eq!(
        store.usage_total(&t.id, "call_ms", 0, 1_000).await.unwrap(),
        90_000
    );
    assert_eq!(
        store
            .usage_total(&t.id, "call_ms", 150, 1_000)
            .await
            .unwrap(),
        30_000
    );
    assert_eq!(
        store.usage_total(&t.id, "nothing", 0, 1_000).await.unwrap(),
        0
    );
}

async fn migrations_are_idempotent_and_ping_works(store: &Store) {
    store.migrate().await.unwrap();
    assert!(store.ping().await);
}

async fn orphaned_calls_are_ended_per_node(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let mine = store.insert_call(new_call(&t.id, 10)).await.unwrap();
    let mut theirs = new_call(&t.id, 11);
    theirs.node = "node-b".to_owned();
    let theirs = store.insert_call(theirs).await.unwrap();
    assert_eq!(
        store
            .end_orphaned_calls("node-a", 99, &EndReason::DaemonRestart)
            .await
            .unwrap(),
        1
    );
    let mine = store.get_call(&t.id, &mine.id).await.unwrap().unwrap();
    assert_eq!(
        mine.end_reason.as_ref().map(EndReason::as_str),
        Some("daemon_restart")
    );
    let theirs = store.get_call(&t.id, &theirs.id).await.unwrap().unwrap();
    assert_eq!(
        theirs.status,
        CallStatus::Ringing,
        "another daemon's call is left alone"
    );
}
