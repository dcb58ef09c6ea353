//! The Zoho sync against the fake: full and incremental CRM listings (watermark, the
//! If-Modified-Since header, page tokens past record 2,000), deletions, records without a
//! phone, Books contacts linked to CRM customers with exact balances and invoices, retries on
//! 429/5xx/dropped connections, and the cache still answering when Zoho is down. On SQLite and
//! PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;
mod zoho_support;

use std::time::{Duration, Instant};

use common::{Engine, TestDb};
use crm::zoho::ZohoError;
use crm::{CallerMatch, CustomerDirectory, PhoneNormalizer};
use serde_json::json;
use store::{Store, SyncRunStatus};
use testkit::zoho::{BooksContactSeed, Fault, InvoiceSeed, Person, Route};
use zoho_support::{Harness, options};

both_engines!(
    full_then_incremental_crm_sync,
    books_contacts_link_to_crm_customers_with_balances_and_invoices,
    retries_honour_retry_after_and_outages_leave_the_cache_answering,
    one_sync_per_tenant_at_a_time,
);

async fn lookup(store: &Store, tenant: &store::TenantId, number: &str) -> Option<store::Customer> {
    let dir = CustomerDirectory::new(store.clone(), PhoneNormalizer::default());
    match dir.lookup_caller(tenant, number, 0).await.unwrap() {
        CallerMatch::Found(k) => Some(k.customer),
        _ => None,
    }
}

fn phone(i: usize) -> String {
    format!("+1555{:07}", 1_000_000 + i)
}

async fn full_then_incremental_crm_sync(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    // 2,450 contacts: beyond the 2,000 records `page` can reach.
    let mut last_bulk = String::new();
    for i in 0..2_450 {
        last_bulk = h
            .fake
            .add_contact(&Person::new("Contact", &format!("No{i}"), &phone(i)));
    }
    let jane = h.fake.add_contact(&Person {
        company: Some("Doe Bakery".into()),
        zip: Some("94107".into()),
        mobile: Some("(555) 014-2000".into()),
        ..Person::new("Jane", "Doe", "")
    });
    let no_phone = h.fake.add_contact(&Person::new("No", "Phone", ""));
    let lead = h.fake.add_lead(&Person::new("Lee", "Lead", "555-777-0001"));
    let report = h
        .zoho
        .sync(&h.tenant, &options(false), &|p| {
            assert!(p.records > 0 && p.pages > 0);
            let _ = p.rate();
        })
        .await
        .unwrap();
    let contacts = report.streams["crm:Contacts"];
    assert_eq!(contacts.listed, 2_452);
    assert_eq!(contacts.inserted, 2_451);
    assert_eq!(contacts.skipped_no_phone, 1);
    assert_eq!(report.streams["crm:Leads"].inserted, 1);
    assert_eq!(store.count_customers(&h.tenant).await.unwrap(), 2_452);

    let requests = h.fake.requests_to("/crm/v8/Contacts");
    assert!(
        requests.iter().all(|r| r.status == 200),
        "no request refused"
    );
    assert!(
        requests.iter().all(|r| r.if_modified_since.is_none()),
        "first run lists all"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.query["fields"].contains("Mobile") && r.query["per_page"] == "200")
    );
    let by_token = requests
        .iter()
        .filter(|r| r.query.contains_key("page_token"))
        .count();
    assert_eq!(requests.len(), 13, "2,452 records in pages of 200");
    assert!(
        by_token >= 3,
        "records past 2,000 were reached with page_token"
    );
    assert!(
        requests
            .iter()
            .filter_map(|r| r.query.get("page"))
            .all(|p| p.parse::<u32>().unwrap() * 200 <= 2_000)
    );

    let found = lookup(store, &h.tenant, "+15550142000").await.unwrap();
    assert_eq!(found.name, "Jane Doe");
    assert_eq!(found.company.as_deref(), Some("Doe Bakery"));
    assert_eq!(found.postal_code.as_deref(), Some("94107"));
    assert_eq!(found.external_id, format!("zoho:crm:Contacts:{jane}"));
    assert_eq!(found.zoho_contact_id.as_deref(), Some(jane.as_str()));
    assert!(
        lookup(store, &h.tenant, "5557770001").await.is_some(),
        "lead by national number"
    );
    let runs = store.list_zoho_sync_runs(&h.tenant, 5).await.unwrap();
    assert_eq!(runs[0].status, SyncRunStatus::Succeeded);
    assert_eq!(runs[0].skipped_no_phone, 1);
    let watermark = store
        .zoho_watermark(&h.tenant, "crm:Contacts")
        .await
        .unwrap()
        .unwrap();

    // Changes in Zoho: Jane's number, a new contact, one deleted, the no-phone one gains one,
    // the lead loses its phone.
    h.fake.advance_clock(60);
    h.fake
        .update_record("Contacts", &jane, "Mobile", json!("+1 555 014 9999"));
    let newbie = h
        .fake
        .add_contact(&Person::new("New", "Comer", "+15550143000"));
    h.fake.delete_record("Contacts", &last_bulk);
    h.fake
        .update_record("Contacts", &no_phone, "Phone", json!("+15550144000"));
    h.fake.update_record("Leads", &lead, "Phone", json!(null));
    let before = h.fake.requests().len();
    let report = h.sync(false).await;
    let contacts = report.streams["crm:Contacts"];
    assert_eq!(contacts.listed, 3, "only what changed since the watermark");
    assert_eq!((contacts.inserted, contacts.updated), (2, 1));
    assert_eq!(report.streams["crm:Contacts:deleted"].deleted, 1);
    assert_eq!(
        report.streams["crm:Leads"].deleted, 1,
        "a lead without a phone leaves"
    );
    let incremental = &h.fake.requests()[before..];
    let list = incremental
        .iter()
        .find(|r| r.path == "/crm/v8/Contacts")
        .unwrap();
    let header = list.if_modified_since.as_deref().unwrap();
    assert_eq!(
        secs(header),
        secs(&watermark) - 1,
        "If-Modified-Since is the watermark less a second"
    );
    assert!(
        incremental
            .iter()
            .any(|r| r.path == "/crm/v8/Contacts/deleted"
                && r.if_modified_since.is_some()
                && r.query["type"] == "all")
    );
    assert!(
        lookup(store, &h.tenant, "+15550142000").await.is_none(),
        "old number gone"
    );
    assert_eq!(
        lookup(store, &h.tenant, "+15550149999").await.unwrap().name,
        "Jane Doe"
    );
    assert!(lookup(store, &h.tenant, "+15550143000").await.is_some());
    assert!(lookup(store, &h.tenant, "+15550144000").await.is_some());
    assert!(lookup(store, &h.tenant, "+15557770001").await.is_none());
    assert!(
        lookup(store, &h.tenant, &phone(2_449)).await.is_none(),
        "deleted in Zoho"
    );
    let _ = newbie;

    // Nothing changed: an incremental run reads again only the watermark's last second (one
    // record per stream here: the fake's clock ticks a second per change), changing nothing.
    let report = h.sync(false).await;
    assert!(report.records() <= 3, "{report:?}");
    assert!(
        report
            .streams
            .values()
            .all(|c| c.inserted == 0 && c.deleted == 0),
        "{report:?}"
    );

    // A full run finds what the deleted-records API never reported (purged for good).
    h.fake.delete_record("Contacts", &newbie);
    let report = h.sync(true).await;
    assert_eq!(report.streams["crm:Contacts"].deleted, 1);
    assert!(lookup(store, &h.tenant, "+15550143000").await.is_none());
    assert_eq!(store.count_customers(&h.tenant).await.unwrap(), 2_451);
}

fn secs(zoho_time: &str) -> i64 {
    testkit::zoho::parse_time(zoho_time).unwrap()
}

async fn books_contacts_link_to_crm_customers_with_balances_and_invoices(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    let jane = h
        .fake
        .add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    let carl = h
        .fake
        .add_contact(&Person::new("Carl", "Crm", "+15550145000"));
    // Linked by Zoho's Books–CRM integration.
    let jane_books = h.fake.add_books_contact(&BooksContactSeed {
        name: "Jane Doe".into(),
        phone: Some("+15550142000".into()),
        outstanding: "142.50".into(),
        currency: "USD".into(),
        crm_contact_id: Some(jane.clone()),
        ..BooksContactSeed::default()
    });
    // Not linked, but its number is Carl's: linked by phone.
    let carl_books = h.fake.add_books_contact(&BooksContactSeed {
        name: "Carl C.".into(),
        mobile: Some("555-014-5000".into()),
        outstanding: "0.10".into(),
        currency: "EUR".into(),
        ..BooksContactSeed::default()
    });
    // Only in Books.
    let bob = h.fake.add_books_contact(&BooksContactSeed {
        name: "Bob Roe".into(),
        phone: Some("+44 20 7946 0958".into()),
        outstanding: "1369.66".into(),
        currency: "GBP".into(),
        ..BooksContactSeed::default()
    });
    let nophone = h.fake.add_books_contact(&BooksContactSeed {
        name: "No Phone Ltd".into(),
        outstanding: "5".into(),
        currency: "USD".into(),
        ..BooksContactSeed::default()
    });
    let invoice =
        |customer: &str, number: &str, status: &str, total: &str, balance: &str| InvoiceSeed {
            customer_id: customer.to_owned(),
            number: number.to_owned(),
            status: status.to_owned(),
            total: total.to_owned(),
            balance: balance.to_owned(),
            currency: "USD".to_owned(),
            date: "2026-01-05".to_owned(),
            due_date: "2026-02-04".to_owned(),
        };
    h.fake.add_invoice(&invoice(
        &jane_books,
        "INV-001",
        "overdue",
        "100.00",
        "92.50",
    ));
    h.fake
        .add_invoice(&invoice(&jane_books, "INV-002", "sent", "50", "50"));
    let paid = h
        .fake
        .add_invoice(&invoice(&bob, "INV-003", "paid", "10.99", "0"));
    h.fake
        .add_invoice(&invoice(&nophone, "INV-004", "sent", "5", "5"));

    let report = h.sync(false).await;
    assert_eq!(report.streams["books:contacts"].listed, 4);
    assert_eq!(report.streams["books:contacts"].skipped_no_phone, 1);
    assert_eq!(report.streams["books:invoices"].inserted, 3);
    assert_eq!(
        report.streams["books:invoices"].skipped, 1,
        "no customer for it"
    );
    let books_requests = h.fake.requests_to("/books/v3/contacts");
    assert!(books_requests.iter().all(|r| {
        r.query["organization_id"] == h.fake.books_organization_id()
            && r.query["sort_column"] == "last_modified_time"
            && r.query["sort_order"] == "D"
    }));

    let j = lookup(store, &h.tenant, "+15550142000").await.unwrap();
    assert_eq!(
        (j.name.as_str(), j.balance_minor, j.currency.as_str()),
        ("Jane Doe", 14_250, "USD")
    );
    assert_eq!(j.zoho_books_id.as_deref(), Some(jane_books.as_str()));
    let invoices = store
        .invoices_for_customer(&h.tenant, &j.id, 10)
        .await
        .unwrap();
    assert_eq!(invoices.len(), 2);
    let overdue = invoices.iter().find(|i| i.number == "INV-001").unwrap();
    assert_eq!(
        (
            overdue.status.as_str(),
            overdue.total_minor,
            overdue.balance_minor
        ),
        ("overdue", 10_000, 9_250)
    );
    assert_eq!(
        invoices
            .iter()
            .find(|i| i.number == "INV-002")
            .unwrap()
            .status,
        "open"
    );
    let c = lookup(store, &h.tenant, "+15550145000").await.unwrap();
    assert_eq!(
        (c.name.as_str(), c.balance_minor, c.currency.as_str()),
        ("Carl Crm", 10, "EUR")
    );
    assert_eq!(c.external_id, format!("zoho:crm:Contacts:{carl}"));
    let b = lookup(store, &h.tenant, "+442079460958").await.unwrap();
    assert_eq!(
        (b.name.as_str(), b.balance_minor, b.currency.as_str()),
        ("Bob Roe", 136_966, "GBP")
    );
    assert_eq!(b.external_id, format!("zoho:books:{bob}"));
    assert_eq!(
        store.count_customers(&h.tenant).await.unwrap(),
        3,
        "one customer per person"
    );

    // Bob turns up in CRM: his Books-only customer is folded into the CRM one (invoices and
    // balance move along), so his number still means one customer.
    h.fake.advance_clock(60);
    let bob_crm = h
        .fake
        .add_contact(&Person::new("Bob", "Roe", "+44 20 7946 0958"));
    // Jane pays; Bob's invoice is voided; the phone-less contact goes inactive.
    h.fake.update_books(
        "contacts",
        &jane_books,
        "outstanding_receivable_amount",
        json!(0),
    );
    h.fake
        .update_books("invoices", &paid, "status", json!("void"));
    h.fake
        .update_books("contacts", &nophone, "status", json!("inactive"));
    let report = h.sync(false).await;
    assert_eq!(
        report.streams["books:contacts"].listed, 2,
        "only what changed"
    );
    let b2 = lookup(store, &h.tenant, "+442079460958").await.unwrap();
    assert_eq!(b2.external_id, format!("zoho:crm:Contacts:{bob_crm}"));
    assert_eq!(b2.zoho_books_id.as_deref(), Some(bob.as_str()));
    assert_eq!(b2.balance_minor, 136_966, "Books balance kept");
    assert!(
        store.customer(&h.tenant, &b.id).await.unwrap().is_none(),
        "folded in"
    );
    assert_eq!(
        store
            .invoices_for_customer(&h.tenant, &b2.id, 10)
            .await
            .unwrap()[0]
            .status,
        "void"
    );
    assert_eq!(
        lookup(store, &h.tenant, "+15550142000")
            .await
            .unwrap()
            .balance_minor,
        0
    );
    assert_eq!(store.count_customers(&h.tenant).await.unwrap(), 3);

    // Removed from Books: a full run detaches Carl's Books side and drops its invoices.
    h.fake.remove_books("contacts", &carl_books);
    let report = h.sync(true).await;
    assert_eq!(report.streams["books:contacts"].deleted, 1);
    let c = lookup(store, &h.tenant, "+15550145000").await.unwrap();
    assert_eq!((c.zoho_books_id, c.balance_minor), (None, 0));
}

async fn retries_honour_retry_after_and_outages_leave_the_cache_answering(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    h.fake
        .add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    h.fake.fail_next(
        Route::CrmRead,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    h.fake.fail_next(Route::CrmRead, Fault::ServerError);
    h.fake.fail_next(Route::CrmRead, Fault::Drop);
    let started = Instant::now();
    let report = h.sync(false).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(report.streams["crm:Contacts"].inserted, 1);
    let statuses: Vec<u16> = h
        .fake
        .requests_to("/crm/v8/Contacts")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        &statuses[..4],
        &[429, 500, 0, 200],
        "0: the connection was cut"
    );

    // Zoho down for longer than the retries: the run fails, is stored as failed, and the
    // cache still answers.
    h.fake.advance_clock(10);
    h.fake
        .add_contact(&Person::new("Ann", "Other", "+15550146000"));
    for _ in 0..4 {
        h.fake.fail_next(Route::CrmRead, Fault::ServerError);
    }
    let err = h
        .zoho
        .sync(&h.tenant, &options(false), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::Api { status: 500, .. }), "{err}");
    assert!(err.is_transient());
    let runs = store.list_zoho_sync_runs(&h.tenant, 5).await.unwrap();
    assert_eq!(runs[0].status, SyncRunStatus::Failed);
    assert!(runs[0].error.as_deref().unwrap().contains("500"));
    assert_eq!(
        lookup(store, &h.tenant, "+15550142000").await.unwrap().name,
        "Jane Doe"
    );
    // The next run picks up what the failed one missed.
    let report = h.sync(false).await;
    assert_eq!(report.streams["crm:Contacts"].inserted, 1);
    assert!(lookup(store, &h.tenant, "+15550146000").await.is_some());
}

async fn one_sync_per_tenant_at_a_time(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    let now = h.clock.now();
    assert!(
        store
            .acquire_zoho_sync_lease(&h.tenant, "other-node", now, now + 60_000)
            .await
            .unwrap()
    );
    let err = h
        .zoho
        .sync(&h.tenant, &options(false), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ZohoError::SyncBusy { ref holder } if holder == "other-node"),
        "{err}"
    );
    assert!(h.fake.requests_to("/crm/v8/Contacts").is_empty());
    h.clock.advance(Duration::from_secs(61));
    h.sync(false).await;
}
