//! The rollups stay exact: folded incrementally as calls are written, they always equal the
//! sum of every call's contribution computed from scratch — including calls that end late
//! (after being folded while active), calls ended twice, late turns and usage, and folds
//! repeated with nothing changed. On SQLite and PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use billing::{Folder, Prices, contribution};
use common::{Engine, TestDb};
use store::rollup::{Counter, RollupTotals};
use store::{CallDirection, CallQuality, NewCall, Store, Turn, TurnLatency};

both_engines!(
    late_ends_reends_and_late_writes_stay_exact,
    breakdowns_and_percentiles_follow_the_calls
);

const T0: i64 = 1_796_457_600_000; // 2026-12-05T08:00:00Z
const MIN: i64 = 60_000;

fn prices() -> Prices {
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

async fn call(
    store: &Store,
    tenant: &store::TenantId,
    at: i64,
    dir: CallDirection,
    node: &str,
) -> store::CallId {
    let id = store::CallId::generate();
    store
        .insert_call(NewCall {
            id: id.clone(),
            tenant_id: tenant.clone(),
            direction: dir,
            from_number: "+15551230000".into(),
            to_number: "+15559870000".into(),
            sip_call_id: None,
            flow: Some("receptionist".into()),
            flow_version: None,
            node: node.into(),
            started_at: at,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap();
    id
}

async fn turn(store: &Store, call: &store::CallId, seq: i64, e2e: i64, eot: i64) {
    store
        .upsert_turn(&Turn {
            call_id: call.clone(),
            seq,
            started_at: T0,
            caller_text: Some("hello".into()),
            agent_text: Some("hi".into()),
            interrupted: false,
            latency: TurnLatency {
                eot_ms: Some(eot),
                e2e_ms: Some(e2e),
                ..TurnLatency::default()
            },
        })
        .await
        .unwrap();
}

/// The sum of every call's contribution, computed from the raw rows now.
async fn from_scratch(store: &Store, calls: &[store::CallId]) -> RollupTotals {
    let mut totals = RollupTotals::zero();
    for id in calls {
        let facts = store.call_facts(id).await.unwrap().unwrap();
        let (c, _) = contribution(&facts, &prices());
        totals.add(&RollupTotals { values: c.values });
    }
    totals
}

async fn check(
    store: &Store,
    folder: &Folder,
    tenant: &store::TenantId,
    calls: &[store::CallId],
) -> RollupTotals {
    folder.fold_all(10, T0).await.unwrap();
    let day = 86_400_000;
    let folded = store
        .rollup_totals(tenant, T0 - T0 % day - day, T0 - T0 % day + 2 * day)
        .await
        .unwrap();
    assert_eq!(folded, from_scratch(store, calls).await);
    folded
}

async fn late_ends_reends_and_late_writes_stay_exact(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    let other = store.create_tenant("other", T0).await.unwrap().id;
    let folder = Folder::new(store.clone(), prices());
    // A call folded while ringing, then while active.
    let a = call(store, &tenant, T0 + 5 * MIN, CallDirection::Inbound, "n1").await;
    let t = check(store, &folder, &tenant, std::slice::from_ref(&a)).await;
    assert_eq!((t.get(Counter::Calls), t.get(Counter::Answered)), (1, 0));
    store
        .mark_call_answered(&a, T0 + 5 * MIN + 1000)
        .await
        .unwrap();
    turn(store, &a, 1, 900, 300).await;
    let t = check(store, &folder, &tenant, std::slice::from_ref(&a)).await;
    assert_eq!(
        (
            t.get(Counter::Calls),
            t.get(Counter::Answered),
            t.get(Counter::Ended)
        ),
        (1, 1, 0)
    );
    // It ends much later (another slot, even another hour): still counted once, in its start slot.
    store
        .add_usage(&tenant, Some(&a), "call_ms", 95 * MIN, "ms", T0 + 100 * MIN)
        .await
        .unwrap();
    store
        .end_call(
            &a,
            T0 + 100 * MIN,
            &store::EndReason::from_code("caller_hangup"),
        )
        .await
        .unwrap();
    let t = check(store, &folder, &tenant, std::slice::from_ref(&a)).await;
    assert_eq!(
        (
            t.get(Counter::Calls),
            t.get(Counter::Ended),
            t.get(Counter::Handled)
        ),
        (1, 1, 1)
    );
    assert_eq!(t.get(Counter::HandleMs), 95 * MIN - 1000);
    assert_eq!(
        t.get(Counter::CostMicros),
        950_000,
        "95 min at 10,000 micros"
    );
    // Ended again (a retried write, an orphan sweep): nothing changes.
    store
        .end_call(
            &a,
            T0 + 200 * MIN,
            &store::EndReason::from_code("agent_hangup"),
        )
        .await
        .unwrap();
    store
        .end_orphaned_calls("n1", T0 + 300 * MIN, &store::EndReason::DaemonRestart)
        .await
        .unwrap();
    assert_eq!(
        check(store, &folder, &tenant, std::slice::from_ref(&a)).await,
        t
    );
    assert_eq!(
        store
            .rollup_breakdown(&tenant, "end_reason", T0 - 86_400_000, T0 + 86_400_000)
            .await
            .unwrap(),
        [("caller_hangup".to_owned(), 1)]
    );
    // A late turn, quality and a message after the end: folded in, still one call.
    turn(store, &a, 2, 1500, 400).await;
    store
        .upsert_call_quality(&CallQuality {
            call_id: a.clone(),
            codec: "PCMU".into(),
            packets_expected: 100,
            packets_received: 100,
            packets_lost: 0,
            loss_bp: 0,
            jitter_us: 100,
            rtt_us: None,
            remote_packets_lost: None,
            remote_loss_bp: None,
            remote_jitter_us: None,
            mos_x100: 420,
            recorded_at: T0 + 100 * MIN,
        })
        .await
        .unwrap();
    store
        .insert_message(store::NewMessage {
            tenant_id: tenant.clone(),
            call_id: Some(a.clone()),
            text: "call me".into(),
            created_at: T0 + 100 * MIN,
            ..store::NewMessage::default()
        })
        .await
        .unwrap();
    let t = check(store, &folder, &tenant, std::slice::from_ref(&a)).await;
    assert_eq!(
        (
            t.get(Counter::Calls),
            t.get(Counter::Turns),
            t.get(Counter::MosN)
        ),
        (1, 2, 1)
    );
    assert_eq!(
        (t.get(Counter::Followups), t.get(Counter::Contained)),
        (1, 0)
    );
    // Folding again with nothing new changes nothing and applies nothing.
    assert_eq!(folder.fold_all(10, T0).await.unwrap(), 0);
    assert_eq!(
        check(store, &folder, &tenant, std::slice::from_ref(&a)).await,
        t
    );
    // Another tenant's calls never show up here.
    let b = call(store, &other, T0 + 6 * MIN, CallDirection::Outbound, "n1").await;
    store
        .end_call(&b, T0 + 7 * MIN, &store::EndReason::from_code("no_answer"))
        .await
        .unwrap();
    assert_eq!(
        check(store, &folder, &tenant, std::slice::from_ref(&a)).await,
        t
    );
    assert_eq!(
        check(store, &folder, &other, &[b])
            .await
            .get(Counter::Outbound),
        1
    );
    // The ledger holds the call's priced cost.
    let cost = store.call_cost(&tenant, &a).await.unwrap().unwrap();
    assert_eq!(
        (cost.currency.as_str(), cost.total_micros),
        ("USD", 950_000)
    );
    assert!(
        store.call_cost(&other, &a).await.unwrap().is_none(),
        "tenant-scoped"
    );
}

async fn breakdowns_and_percentiles_follow_the_calls(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    let folder = Folder::new(store.clone(), prices());
    let mut ids = Vec::new();
    for i in 0..20_i64 {
        let id = call(
            store,
            &tenant,
            T0 + i * 7 * MIN,
            CallDirection::Inbound,
            "n1",
        )
        .await;
        store
            .mark_call_answered(&id, T0 + i * 7 * MIN + 500)
            .await
            .unwrap();
        turn(store, &id, 1, 500 + 100 * i, 200).await;
        store
            .add_call_event(&id, T0, &store::EventKind::from_code("node"), serde_json::json!({"from": "start", "to": if i % 4 == 0 { "transfer" } else { "goodbye" }}))
            .await
            .unwrap();
        if i % 4 == 0 {
            store
                .add_call_event(
                    &id,
                    T0,
                    &store::EventKind::Transfer,
                    serde_json::json!({"state": "accepted"}),
                )
                .await
                .unwrap();
        }
        if i == 3 {
            store
                .add_call_event(
                    &id,
                    T0,
                    &store::EventKind::from_code("refused"),
                    serde_json::json!({"tool": "x"}),
                )
                .await
                .unwrap();
        }
        store
            .end_call(
                &id,
                T0 + i * 7 * MIN + 60_000,
                if i % 4 == 0 {
                    &store::EndReason::Transferred
                } else {
                    &store::EndReason::FlowCompleted
                },
            )
            .await
            .unwrap();
        ids.push(id);
    }
    let t = check(store, &folder, &tenant, &ids).await;
    assert_eq!(
        (
            t.get(Counter::Transferred),
            t.get(Counter::Contained),
            t.get(Counter::Refusals)
        ),
        (5, 15, 1)
    );
    let s = billing::analytics::summary(store, &tenant, T0, T0 + 3 * 3_600_000)
        .await
        .unwrap();
    assert_eq!(s.figures.calls, 20);
    assert_eq!(s.figures.containment, Some(0.75));
    assert_eq!(s.last_nodes[0].value, "goodbye");
    assert_eq!(s.last_nodes[0].calls, 15);
    // e2e samples 500, 600, … 2400: exact median 1400-1500, p95 2300; histogram bins are 100 ms here.
    let p50 = s.figures.e2e_ms.p50.unwrap();
    let p95 = s.figures.e2e_ms.p95.unwrap();
    assert!((1400..=1500).contains(&p50), "{p50}");
    assert!((2250..=2500).contains(&p95), "{p95}");
    // Hourly series of the same range adds up to the summary.
    let b = billing::analytics::boundaries(
        T0,
        T0 + 3 * 3_600_000,
        billing::analytics::Bucket::Hour,
        &jiff::tz::TimeZone::UTC,
    )
    .unwrap();
    let points = billing::analytics::timeseries(store, &tenant, &b)
        .await
        .unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points.iter().map(|p| p.figures.calls).sum::<i64>(), 20);
    assert_eq!(
        points[0].figures.calls, 9,
        "08:00-09:00 holds calls at 0, 7, … 56 minutes"
    );
}
