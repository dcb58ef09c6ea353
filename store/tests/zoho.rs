//! Repository tests for the Zoho integration's tables: encrypted secrets, connections and
//! their leases, sync runs and watermarks, the write-back outbox, and the customer-cache
//! operations a sync uses. Every test runs on SQLite and on PostgreSQL (see `common`).

#[macro_use]
mod common;

use common::{Engine, TestDb};
use store::{
    BooksLink, CrmCustomerUpsert, CustomerPhone, CustomerUpsert, InvoiceUpsert, NewOutboxItem,
    NewSecret, OutboxStatus, PhoneKind, Store, SyncRunProgress, SyncRunStatus, UpsertOutcome,
    ZohoConnect, ZohoStatus,
};

both_engines!(
    secrets_are_replaced_only_if_unchanged,
    connection_lifecycle_and_disconnect_once,
    sync_lease_excludes_a_second_holder_until_it_expires,
    sync_runs_and_watermarks,
    outbox_claims_are_exclusive_and_survive_restarts,
    outbox_retry_fail_and_counts,
    crm_upserts_keep_books_fields,
    books_links_detach_merge_and_deletions,
    call_customers_are_recorded_per_call,
);

async fn tenant(store: &Store, name: &str) -> store::TenantId {
    store.create_tenant(name, 1).await.unwrap().id
}

fn secret(purpose: &str, key: &str, text: &str) -> NewSecret {
    NewSecret {
        purpose: purpose.to_owned(),
        key_id: key.to_owned(),
        ciphertext: text.to_owned(),
    }
}

fn phones(list: &[&str]) -> Vec<CustomerPhone> {
    list.iter()
        .map(|p| CustomerPhone {
            e164: (*p).to_owned(),
            kind: PhoneKind::Mobile,
        })
        .collect()
}

fn crm(ext: &str, name: &str, list: &[&str]) -> CrmCustomerUpsert {
    CrmCustomerUpsert {
        external_id: ext.to_owned(),
        zoho_contact_id: ext.rsplit(':').next().unwrap().to_owned(),
        name: name.to_owned(),
        company: None,
        email: None,
        postal_code: None,
        phones: phones(list),
    }
}

async fn secrets_are_replaced_only_if_unchanged(store: &Store) {
    let t = tenant(store, "acme").await;
    store
        .put_secret(&t, &secret("zoho.refresh_token", "k1", "AAA"), 10)
        .await
        .unwrap();
    store
        .put_secret(&t, &secret("zoho.access_token", "k1", "BBB"), 10)
        .await
        .unwrap();
    let usage = store.secret_key_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].key_id.as_str(), usage[0].secrets), ("k1", 2));
    assert!(store.sample_secret("k1").await.unwrap().is_some());
    assert!(store.sample_secret("k2").await.unwrap().is_none());

    let old = store
        .secret(&t, "zoho.refresh_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.ciphertext, "AAA");
    let todo = store.secrets_not_under("k2", 10).await.unwrap();
    assert_eq!(todo.len(), 2);
    assert!(
        store
            .replace_secret(&old, &secret("zoho.refresh_token", "k2", "CCC"), 20)
            .await
            .unwrap()
    );
    // The row changed since `old` was read: a second replace must not clobber it.
    assert!(
        !store
            .replace_secret(&old, &secret("zoho.refresh_token", "k2", "DDD"), 30)
            .await
            .unwrap()
    );
    let now = store
        .secret(&t, "zoho.refresh_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (now.key_id.as_str(), now.ciphertext.as_str()),
        ("k2", "CCC")
    );
    assert_eq!(store.secrets_not_under("k2", 10).await.unwrap().len(), 1);
    assert!(store.delete_secret(&t, "zoho.access_token").await.unwrap());
    assert!(!store.delete_secret(&t, "zoho.access_token").await.unwrap());
    // Debug output never shows the ciphertext.
    assert!(!format!("{now:?}").contains("CCC"));
}

async fn connection_lifecycle_and_disconnect_once(store: &Store) {
    let t = tenant(store, "acme").await;
    assert!(store.zoho_connection(&t).await.unwrap().is_none());
    store
        .start_zoho_authorization(&t, "eu", "https://accounts.zoho.eu", "st-1", 500, 100)
        .await
        .unwrap();
    let c = store.zoho_connection(&t).await.unwrap().unwrap();
    assert_eq!(c.status, ZohoStatus::Pending);
    assert_eq!(c.pending_state.as_deref(), Some("st-1"));
    assert!(store.connected_zoho_tenants().await.unwrap().is_empty());

    let connect = ZohoConnect {
        dc: "eu".into(),
        accounts_server: "https://accounts.zoho.eu".into(),
        api_domain: "https://www.zohoapis.eu".into(),
        access_expires_at: 3_600_200,
        granted_at: 200,
        secrets: vec![
            secret("zoho.refresh_token", "k1", "R"),
            secret("zoho.access_token", "k1", "A"),
        ],
    };
    store.save_zoho_connection(&t, &connect, 200).await.unwrap();
    let c = store.zoho_connection(&t).await.unwrap().unwrap();
    assert_eq!(c.status, ZohoStatus::Connected);
    assert_eq!(c.api_domain.as_deref(), Some("https://www.zohoapis.eu"));
    assert_eq!(c.pending_state, None);
    assert_eq!(c.token_grants, vec![200]);
    assert_eq!(c.connected_at, Some(200));
    assert_eq!(store.connected_zoho_tenants().await.unwrap().len(), 1);

    // A reconnect in progress keeps the connection usable.
    store
        .start_zoho_authorization(&t, "eu", "https://accounts.zoho.eu", "st-2", 900, 300)
        .await
        .unwrap();
    let c = store.zoho_connection(&t).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.pending_state.as_deref()),
        (ZohoStatus::Connected, Some("st-2"))
    );

    assert!(
        store
            .save_zoho_access_token(
                &t,
                &secret("zoho.access_token", "k1", "A2"),
                7_000,
                &[200, 400],
                400
            )
            .await
            .unwrap()
    );
    let c = store.zoho_connection(&t).await.unwrap().unwrap();
    assert_eq!(
        (c.access_expires_at, c.token_grants.clone()),
        (Some(7_000), vec![200, 400])
    );
    assert_eq!(
        store
            .secret(&t, "zoho.access_token")
            .await
            .unwrap()
            .unwrap()
            .ciphertext,
        "A2"
    );

    assert!(
        store
            .mark_zoho_disconnected(&t, "refresh token revoked", 500)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_zoho_disconnected(&t, "again", 600)
            .await
            .unwrap(),
        "only once"
    );
    let c = store.zoho_connection(&t).await.unwrap().unwrap();
    assert_eq!(c.status, ZohoStatus::Disconnected);
    assert_eq!(c.status_reason.as_deref(), Some("refresh token revoked"));
    assert_eq!(c.disconnected_at, Some(500));
    assert!(
        store
            .secret(&t, "zoho.access_token")
            .await
            .unwrap()
            .is_none()
    );
    // A disconnected tenant takes no new access tokens.
    assert!(
        !store
            .save_zoho_access_token(
                &t,
                &secret("zoho.access_token", "k1", "A3"),
                9_000,
                &[],
                700
            )
            .await
            .unwrap()
    );
}

async fn sync_lease_excludes_a_second_holder_until_it_expires(store: &Store) {
    let t = tenant(store, "acme").await;
    store
        .start_zoho_authorization(&t, "us", "https://accounts.zoho.com", "s", 1, 1)
        .await
        .unwrap();
    assert!(
        store
            .acquire_zoho_sync_lease(&t, "node-a", 1_000, 61_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_zoho_sync_lease(&t, "node-b", 2_000, 62_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_zoho_sync_lease(&t, "node-a", 3_000, 63_000)
            .await
            .unwrap(),
        "renew"
    );
    // Expired: the other node may take over.
    assert!(
        store
            .acquire_zoho_sync_lease(&t, "node-b", 63_001, 99_000)
            .await
            .unwrap()
    );
    store.release_zoho_sync_lease(&t, "node-a").await.unwrap();
    assert!(
        !store
            .acquire_zoho_sync_lease(&t, "node-a", 64_000, 99_000)
            .await
            .unwrap()
    );
    store.release_zoho_sync_lease(&t, "node-b").await.unwrap();
    assert!(
        store
            .acquire_zoho_sync_lease(&t, "node-a", 64_000, 99_000)
            .await
            .unwrap()
    );
}

async fn sync_runs_and_watermarks(store: &Store) {
    let t = tenant(store, "acme").await;
    let run = store
        .start_zoho_sync_run(&t, true, "cli", "n1", 100)
        .await
        .unwrap();
    assert_eq!(run.status, SyncRunStatus::Running);
    let progress = SyncRunProgress {
        counts: serde_json::json!({"crm:Contacts": {"upserted": 5}}),
        skipped_no_phone: 2,
        pages: 3,
    };
    store
        .update_zoho_sync_run(&run.id, &progress)
        .await
        .unwrap();
    store
        .finish_zoho_sync_run(&run.id, &progress, None, 200)
        .await
        .unwrap();
    let second = store
        .start_zoho_sync_run(&t, false, "schedule", "n1", 300)
        .await
        .unwrap();
    store
        .finish_zoho_sync_run(&second.id, &progress, Some("zoho unavailable"), 400)
        .await
        .unwrap();
    let third = store
        .start_zoho_sync_run(&t, false, "schedule", "n2", 500)
        .await
        .unwrap();
    assert_eq!(
        store
            .fail_interrupted_zoho_sync_runs("n1", 600)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .fail_interrupted_zoho_sync_runs("n2", 600)
            .await
            .unwrap(),
        1
    );
    let runs = store.list_zoho_sync_runs(&t, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].id, third.id, "newest first");
    assert_eq!(runs[0].status, SyncRunStatus::Failed);
    assert!(runs[0].error.as_deref().unwrap().contains("interrupted"));
    assert_eq!(runs[1].error.as_deref(), Some("zoho unavailable"));
    assert_eq!(runs[2].status, SyncRunStatus::Succeeded);
    assert_eq!(runs[2].counts["crm:Contacts"]["upserted"], 5);
    assert_eq!((runs[2].skipped_no_phone, runs[2].pages), (2, 3));
    assert!(runs[2].full && !runs[1].full);

    assert_eq!(
        store.zoho_watermark(&t, "crm:Contacts").await.unwrap(),
        None
    );
    store
        .set_zoho_watermark(&t, "crm:Contacts", "2026-01-01T10:00:00+00:00", 1)
        .await
        .unwrap();
    store
        .set_zoho_watermark(&t, "crm:Contacts", "2026-01-02T10:00:00+00:00", 2)
        .await
        .unwrap();
    assert_eq!(
        store
            .zoho_watermark(&t, "crm:Contacts")
            .await
            .unwrap()
            .as_deref(),
        Some("2026-01-02T10:00:00+00:00")
    );
    assert_eq!(store.zoho_watermarks(&t).await.unwrap().len(), 1);
}

fn outbox_item(tenant: &store::TenantId, call: &str, at: i64) -> NewOutboxItem {
    NewOutboxItem {
        tenant_id: tenant.to_owned(),
        call_id: store::CallId::new(call),
        kind: "crm_call".to_owned(),
        payload: serde_json::json!({"data": [{"Subject": call}]}),
        created_at: at,
    }
}

async fn outbox_claims_are_exclusive_and_survive_restarts(store: &Store) {
    let t = tenant(store, "acme").await;
    for i in 0..20 {
        assert!(
            store
                .enqueue_outbox(&outbox_item(&t, &format!("call-{i}"), 100))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .enqueue_outbox(&outbox_item(&t, "call-0", 150))
            .await
            .unwrap(),
        "one per call"
    );

    // Four workers race for the same rows: each row is claimed exactly once.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_outbox(&format!("w{w}"), 1_000, 60_000, 20)
                .await
                .unwrap()
        }));
    }
    let mut claimed: Vec<String> = Vec::new();
    for t in tasks {
        claimed.extend(
            t.await
                .unwrap()
                .into_iter()
                .map(|i| i.call_id.into_string()),
        );
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(before, claimed.len(), "a row claimed twice");
    assert_eq!(claimed.len(), 20);
    // Nothing is claimable while the leases hold.
    assert!(
        store
            .claim_outbox("w9", 2_000, 60_000, 50)
            .await
            .unwrap()
            .is_empty()
    );

    // The holders "crash"; after the lease the rows come back, with the attempt counted.
    let again = store.claim_outbox("w9", 61_001, 60_000, 50).await.unwrap();
    assert_eq!(again.len(), 20);
    assert!(
        again
            .iter()
            .all(|i| i.attempts == 2 && i.lease_owner.as_deref() == Some("w9"))
    );
    // A worker whose lease was taken over cannot complete the row.
    let first = &again[0];
    let stale_owner = "w0";
    assert!(
        !store
            .complete_outbox(&first.id, stale_owner, Some("z1"), 61_100)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete_outbox(&first.id, "w9", Some("z1"), 61_100)
            .await
            .unwrap()
    );
    let done = store
        .outbox_item_for_call(&first.call_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, OutboxStatus::Sent);
    assert_eq!(done.remote_id.as_deref(), Some("z1"));
    assert!(done.lease_owner.is_none());
}

async fn outbox_retry_fail_and_counts(store: &Store) {
    let t = tenant(store, "acme").await;
    store
        .enqueue_outbox(&outbox_item(&t, "a", 100))
        .await
        .unwrap();
    store
        .enqueue_outbox(&outbox_item(&t, "b", 100))
        .await
        .unwrap();
    assert_eq!(store.next_outbox_due().await.unwrap(), Some(100));
    let items = store.claim_outbox("w", 200, 1_000, 10).await.unwrap();
    assert_eq!(items.len(), 2);
    let (a, b) = (&items[0], &items[1]);
    assert!(
        store
            .retry_outbox(&a.id, "w", 5_000, "HTTP 503", 300)
            .await
            .unwrap()
    );
    assert!(
        store
            .fail_outbox(
                &b.id,
                "w",
                "INVALID_DATA: the id given seems to be invalid",
                300
            )
            .await
            .unwrap()
    );
    // Not due yet.
    assert!(
        store
            .claim_outbox("w", 4_999, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_outbox("w", 5_000, 1_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
    assert!(
        store
            .complete_outbox(&again[0].id, "w", None, 5_100)
            .await
            .unwrap()
    );
    let failed = store.outbox_item(&b.id).await.unwrap().unwrap();
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert!(failed.last_error.unwrap().contains("INVALID_DATA"));
    let counts = store.outbox_counts(&t).await.unwrap();
    assert_eq!((counts.pending, counts.sent, counts.failed), (0, 1, 1));
    assert_eq!(store.next_outbox_due().await.unwrap(), None);
}

async fn crm_upserts_keep_books_fields(store: &Store) {
    let t = tenant(store, "acme").await;
    let done = store
        .upsert_crm_customers(
            &t,
            &[
                crm("zoho:crm:Contacts:1", "Jane Doe", &["+15550000001"]),
                crm("zoho:crm:Leads:2", "Bob Roe", &["+15550000002"]),
            ],
            "EUR",
            10,
        )
        .await
        .unwrap();
    assert!(done.iter().all(|u| u.outcome == UpsertOutcome::Inserted));
    let jane = done[0].id.clone();
    store
        .link_books_contacts(
            &t,
            &[BooksLink {
                customer_id: jane.clone(),
                zoho_books_id: "B1".into(),
                balance_minor: 12_345,
                currency: "USD".into(),
            }],
            20,
        )
        .await
        .unwrap();
    // A CRM update changes the name and phones, not the Books side.
    let again = store
        .upsert_crm_customers(
            &t,
            &[crm("zoho:crm:Contacts:1", "Jane Smith", &["+15550000009"])],
            "EUR",
            30,
        )
        .await
        .unwrap();
    assert_eq!(again[0].outcome, UpsertOutcome::Updated);
    let c = store.customer(&t, &jane).await.unwrap().unwrap();
    assert_eq!(c.name, "Jane Smith");
    assert_eq!((c.balance_minor, c.currency.as_str()), (12_345, "USD"));
    assert_eq!(c.zoho_books_id.as_deref(), Some("B1"));
    assert_eq!(c.zoho_contact_id.as_deref(), Some("1"));
    assert!(
        store
            .customers_by_phone(&t, "+15550000001", 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .customers_by_phone(&t, "+15550000009", 2)
            .await
            .unwrap()
            .len(),
        1
    );

    let owners = store
        .customers_by_phones(&t, &["+15550000009", "+15550000002", "+15559999999"])
        .await
        .unwrap();
    assert_eq!(owners.len(), 2);
    let refs = store
        .customer_refs_by_source(&t, "zoho:crm:Leads:")
        .await
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].external_id, "zoho:crm:Leads:2");
    let by_books = store
        .customers_by_books_ids(&t, &["B1", "B2"])
        .await
        .unwrap();
    assert_eq!(by_books["B1"].id, jane);
    let by_ext = store
        .customer_refs_by_external_ids(&t, &["zoho:crm:Leads:2", "nope"])
        .await
        .unwrap();
    assert_eq!(by_ext.len(), 1);
}

async fn books_links_detach_merge_and_deletions(store: &Store) {
    let t = tenant(store, "acme").await;
    let crm_ids = store
        .upsert_crm_customers(
            &t,
            &[crm("zoho:crm:Contacts:1", "Jane", &["+15550000001"])],
            "USD",
            1,
        )
        .await
        .unwrap();
    let jane = crm_ids[0].id.clone();
    let books_only = store
        .upsert_customer(
            &t,
            &CustomerUpsert {
                external_id: "zoho:books:B7".into(),
                zoho_contact_id: None,
                zoho_books_id: Some("B7".into()),
                name: "Jane D.".into(),
                company: None,
                email: None,
                postal_code: None,
                balance_minor: 500,
                currency: "USD".into(),
                phones: phones(&["+15550000001"]),
            },
            2,
        )
        .await
        .unwrap()
        .id;
    let inv = |customer: &str, n: &str, z: &str| InvoiceUpsert {
        customer_id: customer.to_owned(),
        number: n.to_owned(),
        zoho_invoice_id: Some(z.to_owned()),
        status: "open".into(),
        total_minor: 500,
        balance_minor: 500,
        currency: "USD".into(),
        issue_date: None,
        due_date: "2026-02-01".into(),
    };
    store
        .upsert_invoices(
            &t,
            &[
                inv(&books_only, "INV-1", "Z1"),
                inv(&books_only, "INV-2", "Z2"),
            ],
            3,
        )
        .await
        .unwrap();

    // The Books contact turns out to be Jane's: fold it into her CRM customer.
    store
        .merge_customer_into(&t, &books_only, &jane)
        .await
        .unwrap();
    assert!(store.customer(&t, &books_only).await.unwrap().is_none());
    assert_eq!(
        store
            .invoices_for_customer(&t, &jane, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .customers_by_phone(&t, "+15550000001", 5)
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .link_books_contacts(
            &t,
            &[BooksLink {
                customer_id: jane.clone(),
                zoho_books_id: "B7".into(),
                balance_minor: 500,
                currency: "USD".into(),
            }],
            4,
        )
        .await
        .unwrap();
    assert_eq!(
        store.customer_refs_with_books_id(&t).await.unwrap().len(),
        1
    );
    let invoices = store.books_invoice_refs(&t).await.unwrap();
    assert_eq!(invoices.len(), 2);
    assert_eq!(
        store
            .delete_invoices(&t, &[invoices[0].0.as_str()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count_invoices(&t).await.unwrap(), 1);

    // Books drops the contact: Jane stays, without balance or invoices.
    store.detach_books(&t, &[jane.as_str()], 5).await.unwrap();
    let c = store.customer(&t, &jane).await.unwrap().unwrap();
    assert_eq!((c.zoho_books_id, c.balance_minor), (None, 0));
    assert_eq!(store.count_invoices(&t).await.unwrap(), 0);

    // Re-keyed (the CRM record went, Books kept it), then deleted outright.
    store
        .rekey_customer(&t, &jane, "zoho:books:B7", None, 6)
        .await
        .unwrap();
    let c = store.customer(&t, &jane).await.unwrap().unwrap();
    assert_eq!(
        (c.external_id.as_str(), c.zoho_contact_id),
        ("zoho:books:B7", None)
    );
    store
        .upsert_invoices(&t, &[inv(&jane, "INV-3", "Z3")], 7)
        .await
        .unwrap();
    assert_eq!(
        store.delete_customers(&t, &[jane.as_str()]).await.unwrap(),
        1
    );
    assert_eq!(store.count_customers(&t).await.unwrap(), 0);
    assert_eq!(store.count_invoices(&t).await.unwrap(), 0);
    assert!(
        store
            .customers_by_phone(&t, "+15550000001", 5)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn call_customers_are_recorded_per_call(store: &Store) {
    let t = tenant(store, "acme").await;
    let other = tenant(store, "other").await;
    assert_eq!(
        store
            .call_customer(&t, &store::CallId::new("call-1"))
            .await
            .unwrap(),
        None
    );
    store
        .set_call_customer(&store::CallId::new("call-1"), &t, "cust-1", 10)
        .await
        .unwrap();
    store
        .set_call_customer(&store::CallId::new("call-1"), &t, "cust-2", 20)
        .await
        .unwrap();
    assert_eq!(
        store
            .call_customer(&t, &store::CallId::new("call-1"))
            .await
            .unwrap()
            .as_deref(),
        Some("cust-2")
    );
    assert_eq!(
        store
            .call_customer(&other, &store::CallId::new("call-1"))
            .await
            .unwrap(),
        None,
        "per tenant"
    );
}
