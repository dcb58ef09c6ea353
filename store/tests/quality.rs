//! Call-quality repository tests. Every test runs twice: on SQLite and on PostgreSQL (see
//! `common`).

#[macro_use]
mod common;

use common::{Engine, TestDb};
use store::{CallDirection, CallId, CallQuality, NewCall, Store, StoreError};

both_engines!(
    quality_round_trips_and_is_replaced_per_call,
    quality_needs_an_existing_call,
);

async fn call(store: &Store) -> CallId {
    let tenant = store.create_tenant("acme", 1).await.unwrap();
    store
        .insert_call(NewCall {
            id: CallId::generate(),
            tenant_id: tenant.id,
            direction: CallDirection::Inbound,
            from_number: "+15551112222".to_owned(),
            to_number: "+15553334444".to_owned(),
            sip_call_id: None,
            flow: None,
            flow_version: None,
            node: "node-a".to_owned(),
            started_at: 1_000,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap()
        .id
}

fn sample(call_id: &CallId) -> CallQuality {
    CallQuality {
        call_id: call_id.clone(),
        codec: "PCMU".to_owned(),
        packets_expected: 3000,
        packets_received: 2910,
        packets_lost: 90,
        loss_bp: 300,
        jitter_us: 4_375,
        rtt_us: Some(48_250),
        remote_packets_lost: Some(-2),
        remote_loss_bp: Some(0),
        remote_jitter_us: Some(1_250),
        mos_x100: 402,
        recorded_at: 61_000,
    }
}

async fn quality_round_trips_and_is_replaced_per_call(store: &Store) {
    let id = call(store).await;
    assert_eq!(store.get_call_quality(&id).await.unwrap(), None);
    let q = sample(&id);
    store.upsert_call_quality(&q).await.unwrap();
    let got = store.get_call_quality(&id).await.unwrap().unwrap();
    assert_eq!(got, q);
    assert!((got.loss_pct() - 3.0).abs() < 1e-9);
    assert!((got.jitter_ms() - 4.375).abs() < 1e-9);
    assert_eq!(got.rtt_ms(), Some(48.25));
    assert!((got.mos() - 4.02).abs() < 1e-9);

    // A second write for the same call replaces the first, unknowns included (NULLs).
    let later = CallQuality {
        packets_expected: 6000,
        packets_received: 6000,
        packets_lost: 0,
        loss_bp: 0,
        rtt_us: None,
        remote_packets_lost: None,
        remote_loss_bp: None,
        remote_jitter_us: None,
        mos_x100: 441,
        recorded_at: 122_000,
        // Values beyond 32 bits survive on both engines.
        jitter_us: 5_000_000_000,
        ..q
    };
    store.upsert_call_quality(&later).await.unwrap();
    assert_eq!(store.get_call_quality(&id).await.unwrap(), Some(later));
    assert_eq!(
        store
            .get_call_quality(&CallId::new("no-such-call"))
            .await
            .unwrap(),
        None
    );
}

async fn quality_needs_an_existing_call(store: &Store) {
    let err = store
        .upsert_call_quality(&sample(&CallId::new("no-such-call")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
}
