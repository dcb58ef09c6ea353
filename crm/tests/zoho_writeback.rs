//! Call write-back through the outbox against the fake: retries on 500/429/dropped
//! connections then success, a permanent 400 stored as failed with Zoho's message, leases that
//! keep two workers (or a restarted daemon) from sending one row twice, and the calls that are
//! not written back. On SQLite and PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;
mod zoho_support;

use std::time::Duration;

use common::{Engine, TestDb};
use crm::zoho::writeback::SkipReason;
use crm::zoho::{EnqueueOutcome, enqueue_call_log};
use store::{CallDirection, CustomerUpsert, NewCall, OutboxStatus, Store, Turn, TurnLatency};
use testkit::zoho::{Fault, Person, Route};
use zoho_support::{Harness, keyring};

both_engines!(
    write_back_retries_then_succeeds,
    permanent_refusal_is_stored_with_zohos_message,
    leases_survive_restarts_and_never_send_twice,
    calls_without_a_crm_customer_are_not_written_back,
);

/// An ended inbound call of `tenant` from `from`, answered at +1 s, 65 s long, with one turn,
/// identified as `customer` (if any).
async fn ended_call(
    store: &Store,
    tenant: &store::TenantId,
    from: &str,
    customer: Option<&str>,
    at: i64,
) -> store::CallId {
    let id = store::CallId::generate();
    store
        .insert_call(NewCall {
            id: id.clone(),
            tenant_id: tenant.to_owned(),
            direction: CallDirection::Inbound,
            from_number: from.to_owned(),
            to_number: "+15550100100".to_owned(),
            sip_call_id: None,
            flow: Some("receptionist".into()),
            flow_version: None,
            node: "n1".into(),
            started_at: at,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap();
    store.mark_call_answered(&id, at + 1_000).await.unwrap();
    store
        .upsert_turn(&Turn {
            call_id: id.clone(),
            seq: 1,
            started_at: at + 2_000,
            caller_text: Some("What's my balance?".into()),
            agent_text: Some("Your balance is $142.50.".into()),
            interrupted: false,
            latency: TurnLatency::default(),
        })
        .await
        .unwrap();
    if let Some(c) = customer {
        store
            .set_call_customer(&id, tenant, c, at + 500)
            .await
            .unwrap();
    }
    store
        .end_call(&id, at + 66_000, &store::EndReason::CallerHangup)
        .await
        .unwrap();
    id
}

async fn synced_jane(h: &Harness, store: &Store) -> (String, String) {
    h.connect().await;
    let zoho_id = h
        .fake
        .add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    h.sync(false).await;
    let customer = store
        .customers_by_phone(&h.tenant, "+15550142000", 2)
        .await
        .unwrap()
        .remove(0);
    (zoho_id, customer.id)
}

async fn write_back_retries_then_succeeds(store: &Store) {
    let h = Harness::new(store).await;
    let (zoho_id, customer) = synced_jane(&h, store).await;
    let call = ended_call(
        store,
        &h.tenant,
        "+15550142000",
        Some(&customer),
        h.clock.now(),
    )
    .await;
    h.clock.advance(Duration::from_secs(66)); // the call just ended
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &call).await.unwrap(),
        EnqueueOutcome::Queued
    );
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &call).await.unwrap(),
        EnqueueOutcome::AlreadyQueued
    );
    h.fake.fail_next(Route::CallsInsert, Fault::ServerError);
    h.fake.fail_next(
        Route::CallsInsert,
        Fault::TooManyRequests {
            retry_after_secs: 90,
        },
    );
    h.fake.fail_next(Route::CallsInsert, Fault::Drop);

    // Attempt 1: 500 → retried after the backoff (30 s).
    let pass = h.zoho.process_outbox("w1", 10).await.unwrap();
    assert_eq!((pass.retried, pass.sent), (1, 0));
    let item = store.outbox_item_for_call(&call).await.unwrap().unwrap();
    assert_eq!(item.next_attempt_at, h.clock.now() + 30_000);
    assert!(item.last_error.as_deref().unwrap().contains("500"));
    // Not due yet: nothing is sent.
    assert_eq!(h.zoho.process_outbox("w1", 10).await.unwrap().handled(), 0);
    // Attempt 2: 429 with Retry-After: 90 → the server's wait, not ours.
    h.clock.advance(Duration::from_secs(30));
    assert_eq!(h.zoho.process_outbox("w1", 10).await.unwrap().retried, 1);
    let item = store.outbox_item_for_call(&call).await.unwrap().unwrap();
    assert_eq!(item.next_attempt_at, h.clock.now() + 90_000);
    // Attempt 3: the connection drops → network error, retried (backoff doubles: 120 s).
    h.clock.advance(Duration::from_secs(90));
    assert_eq!(h.zoho.process_outbox("w1", 10).await.unwrap().retried, 1);
    let item = store.outbox_item_for_call(&call).await.unwrap().unwrap();
    assert!(
        item.last_error.as_deref().unwrap().contains("unreachable"),
        "{:?}",
        item.last_error
    );
    assert_eq!(item.next_attempt_at, h.clock.now() + 120_000);
    // Attempt 4 succeeds.
    h.clock.advance(Duration::from_secs(120));
    assert_eq!(h.zoho.process_outbox("w1", 10).await.unwrap().sent, 1);
    let item = store.outbox_item_for_call(&call).await.unwrap().unwrap();
    assert_eq!(item.status, OutboxStatus::Sent);
    assert_eq!(item.attempts, 4);
    let calls = h.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(item.remote_id.as_deref(), calls[0]["id"].as_str());
    let c = &calls[0];
    assert_eq!(c["Call_Type"], "Inbound");
    assert_eq!(c["Who_Id"]["id"], zoho_id.as_str());
    assert_eq!(c["Call_Duration"], "01:05");
    assert_eq!(c["Call_Start_Time"], "2026-01-01T00:00:01+00:00");
    assert!(c["Subject"].as_str().unwrap().contains("Jane Doe"));
    assert!(
        c["Description"]
            .as_str()
            .unwrap()
            .contains("Caller: What's my balance?")
    );
    let counts = store.outbox_counts(&h.tenant).await.unwrap();
    assert_eq!((counts.pending, counts.sent, counts.failed), (0, 1, 0));
}

async fn permanent_refusal_is_stored_with_zohos_message(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    let lead = h.fake.add_lead(&Person::new("Lee", "Lead", "+15550147000"));
    h.sync(false).await;
    let customer = store
        .customers_by_phone(&h.tenant, "+15550147000", 2)
        .await
        .unwrap()
        .remove(0);
    // The lead is deleted in Zoho before the call log goes out: Zoho refuses the What_Id.
    h.fake.delete_record("Leads", &lead);
    let call = ended_call(
        store,
        &h.tenant,
        "+15550147000",
        Some(&customer.id),
        h.clock.now(),
    )
    .await;
    h.clock.advance(Duration::from_secs(66));
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &call).await.unwrap(),
        EnqueueOutcome::Queued
    );
    let pass = h.zoho.process_outbox("w1", 10).await.unwrap();
    assert_eq!(pass.failed, 1);
    let item = store.outbox_item_for_call(&call).await.unwrap().unwrap();
    assert_eq!(item.status, OutboxStatus::Failed);
    let error = item.last_error.unwrap();
    assert!(
        error.contains("400") && error.contains("INVALID_DATA"),
        "{error}"
    );
    assert!(
        error.contains("the id given seems to be invalid") && error.contains("What_Id"),
        "{error}"
    );
    // Never retried.
    h.clock.advance(Duration::from_secs(86_400));
    assert_eq!(h.zoho.process_outbox("w1", 10).await.unwrap().handled(), 0);
    assert_eq!(h.fake.requests_to("/crm/v8/Calls").len(), 1);
}

async fn leases_survive_restarts_and_never_send_twice(store: &Store) {
    let h = Harness::new(store).await;
    let (_, customer) = synced_jane(&h, store).await;
    let mut calls = Vec::new();
    for i in 0..12 {
        let id = ended_call(
            store,
            &h.tenant,
            "+15550142000",
            Some(&customer),
            h.clock.now() + i,
        )
        .await;
        enqueue_call_log(store, &h.tenant, &id).await.unwrap();
        calls.push(id);
    }
    h.clock.advance(Duration::from_secs(67));
    // A daemon claims rows and dies before sending them.
    let lost = store
        .claim_outbox("dead-node", h.clock.now(), 120_000, 5)
        .await
        .unwrap();
    assert_eq!(lost.len(), 5);
    // The restarted daemon, and a second one on the same database, work at once: the live
    // rows go out exactly once; the dead node's rows wait for their lease.
    let other = Harness::zoho(store, &h.fake, keyring(7), &h.clock);
    let (a, b) = tokio::join!(
        h.zoho.process_outbox("node-a", 20),
        other.process_outbox("node-b", 20)
    );
    assert_eq!(a.unwrap().sent + b.unwrap().sent, 7);
    assert_eq!(h.fake.calls().len(), 7);
    h.clock.advance(Duration::from_secs(121));
    let pass = other.process_outbox("node-b", 20).await.unwrap();
    assert_eq!(pass.sent, 5, "{pass:?}");
    assert_eq!(h.fake.calls().len(), 12, "every call logged once");
    let counts = store.outbox_counts(&h.tenant).await.unwrap();
    assert_eq!((counts.pending, counts.sent), (0, 12));
}

async fn calls_without_a_crm_customer_are_not_written_back(store: &Store) {
    let h = Harness::new(store).await;
    // Not connected yet.
    let csv = store
        .upsert_customer(
            &h.tenant,
            &CustomerUpsert {
                external_id: "csv-1".into(),
                zoho_contact_id: None,
                zoho_books_id: None,
                name: "Imported".into(),
                company: None,
                email: None,
                postal_code: None,
                balance_minor: 0,
                currency: "USD".into(),
                phones: vec![],
            },
            1,
        )
        .await
        .unwrap()
        .id;
    let call = ended_call(store, &h.tenant, "+15550148000", Some(&csv), 1).await;
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &call).await.unwrap(),
        EnqueueOutcome::Skipped(SkipReason::ZohoNotConnected)
    );
    h.connect().await;
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &call).await.unwrap(),
        EnqueueOutcome::Skipped(SkipReason::NotACrmCustomer)
    );
    let anonymous = ended_call(store, &h.tenant, "anonymous", None, 2).await;
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &anonymous)
            .await
            .unwrap(),
        EnqueueOutcome::Skipped(SkipReason::NoIdentifiedCustomer)
    );
    assert_eq!(
        enqueue_call_log(store, &h.tenant, &store::CallId::new("no-such-call"))
            .await
            .unwrap(),
        EnqueueOutcome::Skipped(SkipReason::NoSuchCall)
    );
    assert_eq!(store.outbox_counts(&h.tenant).await.unwrap().pending, 0);
}
