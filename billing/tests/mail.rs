//! The mail outbox against the Resend fake: retries after 429 (`retry-after`) and 5xx,
//! exactly one delivery per row whatever happens (a lost response, a crashed worker, two
//! workers), daily summaries and notices queued once; and the payment link: a Dodo checkout
//! for the customer's open invoice, e-mailed once. On SQLite and PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use billing::dodo::DodoClient;
use billing::mail::{Delivery, Mailer, Notifier, ResendClient};
use billing::{PaymentLinkOutcome, PaymentLinks};
use common::{Engine, TestDb};
use store::{CustomerUpsert, Enqueued, InvoiceUpsert, NewMail, Store};
use testkit::dodo::FakeDodo;
use testkit::resend::FakeResend;

both_engines!(
    rate_limits_and_failures_are_retried_and_nothing_is_sent_twice,
    a_crashed_worker_leaves_the_row_to_the_next_without_a_second_email,
    summaries_and_notices_are_queued_once,
    a_payment_link_is_one_checkout_and_one_email
);

const T0: i64 = 1_796_457_600_000; // 2026-12-05T08:00:00Z

fn mail(tenant: &store::TenantId, key: &str) -> NewMail {
    NewMail {
        tenant_id: tenant.clone(),
        idempotency_key: key.to_owned(),
        kind: "message_notice".into(),
        to: vec!["boss@example.com".into()],
        subject: "New message".into(),
        html: "<p>hi</p>".into(),
        text: "hi".into(),
        created_at: T0,
    }
}

async fn mailer(store: &Store, resend: &FakeResend, owner: &str) -> Mailer {
    let client = ResendClient::new(&resend.base_url(), "re_test").unwrap();
    Mailer::new(store.clone(), client, "Agent <agent@example.com>", owner)
}

async fn rate_limits_and_failures_are_retried_and_nothing_is_sent_twice(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    let resend = FakeResend::start("re_test").await;
    let m = mailer(store, &resend, "w1").await;
    assert!(matches!(
        store.enqueue_mail(&mail(&tenant, "k1")).await.unwrap(),
        Enqueued::Added(_)
    ));
    assert_eq!(
        store.enqueue_mail(&mail(&tenant, "k1")).await.unwrap(),
        Enqueued::Exists
    );
    resend.rate_limit_next(30);
    assert_eq!(m.deliver_due(T0).await.unwrap(), 1);
    let row = &store.list_mail(&tenant, 10).await.unwrap()[0];
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("pending", 0),
        "a 429 is not a failed attempt"
    );
    assert_eq!(row.next_attempt_at, T0 + 30_000, "retry-after is honoured");
    assert_eq!(
        m.deliver_due(T0 + 29_000).await.unwrap(),
        0,
        "not before retry-after"
    );
    resend.fail_next(503);
    assert_eq!(m.deliver_due(T0 + 30_000).await.unwrap(), 1);
    let row = &store.list_mail(&tenant, 10).await.unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 1));
    assert!(row.next_attempt_at > T0 + 30_000);
    assert_eq!(m.deliver_due(row.next_attempt_at).await.unwrap(), 1);
    let row = &store.list_mail(&tenant, 10).await.unwrap()[0];
    assert_eq!(row.status, "sent");
    assert_eq!(resend.sent().len(), 1);
    assert_eq!(resend.sent()[0].idempotency_key.as_deref(), Some("k1"));
    assert_eq!(resend.requests(), 3);
    // Nothing left to do; a sent row is never sent again.
    assert_eq!(m.deliver_due(T0 + 10_000_000).await.unwrap(), 0);
    // A permanent refusal fails the row without retrying.
    store.enqueue_mail(&mail(&tenant, "k2")).await.unwrap();
    resend.fail_next(422);
    m.deliver_due(T0 + 10_000_000).await.unwrap();
    let failed = store
        .list_mail(&tenant, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.idempotency_key == "k2")
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed.last_error.unwrap().contains("422"));
}

async fn a_crashed_worker_leaves_the_row_to_the_next_without_a_second_email(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    let resend = FakeResend::start("re_test").await;
    let id = match store.enqueue_mail(&mail(&tenant, "k1")).await.unwrap() {
        Enqueued::Added(id) => id,
        Enqueued::Exists => unreachable!(),
    };
    // Worker 1 claims the row, sends it, and dies before marking it sent.
    let claimed = store.claim_mail("w1", T0, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let client = ResendClient::new(&resend.base_url(), "re_test").unwrap();
    let r = &claimed[0];
    let first = client
        .send(
            "Agent <agent@example.com>",
            &r.to,
            &r.subject,
            &r.html,
            &r.text,
            &r.idempotency_key,
        )
        .await;
    assert!(matches!(first, billing::mail::SendOutcome::Sent(_)));
    // Worker 2 cannot take it while the lease runs…
    let w2 = mailer(store, &resend, "w2").await;
    assert_eq!(w2.deliver_due(T0 + 59_000).await.unwrap(), 0);
    assert_eq!(
        w2.deliver_now(&id, T0 + 59_000).await.unwrap(),
        Delivery::NotClaimed
    );
    // …then does, and the repeat carries the same Idempotency-Key: one e-mail in all.
    assert_eq!(w2.deliver_due(T0 + 61_000).await.unwrap(), 1);
    assert_eq!(store.mail(&id).await.unwrap().unwrap().status, "sent");
    assert_eq!(resend.requests(), 2);
    assert_eq!(resend.sent().len(), 1);
    // Worker 1 waking up late cannot mark or fail a row it no longer holds.
    assert!(!store.mark_mail_sent(&id, "w1", "x", T0).await.unwrap());
}

async fn summaries_and_notices_are_queued_once(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    store
        .put_tenant_settings(&store::TenantSettings {
            tenant_id: tenant.clone(),
            timezone: "Europe/Paris".into(),
            supervisor_emails: vec!["boss@example.com".into()],
            updated_at: T0,
        })
        .await
        .unwrap();
    store
        .insert_message(store::NewMessage {
            tenant_id: tenant.clone(),
            text: "Please call me <now>".into(),
            caller_number: Some("+15551234567".into()),
            created_at: T0 - 1000,
            ..store::NewMessage::default()
        })
        .await
        .unwrap();
    let at = jiff::civil::time(7, 0, 0, 0);
    let notifier = Notifier::new(store.clone(), at, "USD");
    // 08:00Z is 09:00 in Paris: past 07:00, so yesterday's summary goes out, once.
    assert_eq!(notifier.tick(T0).await.unwrap(), 2);
    assert_eq!(notifier.tick(T0 + 60_000).await.unwrap(), 0);
    // A second daemon (another notifier) queues nothing more either.
    assert_eq!(
        Notifier::new(store.clone(), at, "USD")
            .tick(T0 + 120_000)
            .await
            .unwrap(),
        0
    );
    let rows = store.list_mail(&tenant, 10).await.unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert!(
        keys.contains(&format!("daily-summary:{tenant}:2026-12-04").as_str()),
        "{keys:?}"
    );
    let notice = rows.iter().find(|r| r.kind == "message_notice").unwrap();
    assert!(notice.html.contains("&lt;now&gt;") && notice.to == ["boss@example.com"]);
}

async fn a_payment_link_is_one_checkout_and_one_email(store: &Store) {
    let tenant = store.create_tenant("acme", T0).await.unwrap().id;
    let dodo = FakeDodo::start("dodo_test").await;
    let resend = FakeResend::start("re_test").await;
    let up = store
        .upsert_customer(
            &tenant,
            &CustomerUpsert {
                external_id: "c1".into(),
                name: "Jane Doe".into(),
                company: Some("Acme Plumbing".into()),
                email: Some("jane@example.com".into()),
                postal_code: None,
                balance_minor: 14250,
                currency: "USD".into(),
                phones: vec![],
                zoho_contact_id: None,
                zoho_books_id: None,
            },
            T0,
        )
        .await
        .unwrap();
    let customer = up.id;
    store
        .upsert_invoices(
            &tenant,
            &[InvoiceUpsert {
                customer_id: customer.clone(),
                number: "INV-7".into(),
                zoho_invoice_id: None,
                status: "overdue".into(),
                total_minor: 14250,
                balance_minor: 14250,
                currency: "USD".into(),
                issue_date: None,
                due_date: "2026-11-01".into(),
            }],
            T0,
        )
        .await
        .unwrap();
    let links = PaymentLinks::new(
        store.clone(),
        DodoClient::new(&dodo.base_url(), "dodo_test").unwrap(),
        "pdt_invoice",
        Some("https://example.com/thanks".into()),
        mailer(store, &resend, "w1").await,
    );
    let out = links
        .send(&tenant, &store::CallId::new("call-1"), &customer, T0)
        .await
        .unwrap();
    assert_eq!(
        out,
        PaymentLinkOutcome::Sent {
            invoice: Some("INV-7".into())
        }
    );
    let checkouts = dodo.checkouts();
    assert_eq!(checkouts.len(), 1);
    let req = &checkouts[0].request;
    assert_eq!(req["product_cart"][0]["product_id"], "pdt_invoice");
    assert_eq!(req["product_cart"][0]["amount"], 14250);
    assert_eq!(req["customer"]["email"], "jane@example.com");
    assert_eq!(req["metadata"]["tenant_id"], tenant.as_str());
    assert_eq!(req["metadata"]["invoice_number"], "INV-7");
    let sent = resend.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, ["jane@example.com"]);
    assert!(
        sent[0]
            .html
            .as_deref()
            .unwrap()
            .contains(&checkouts[0].checkout_url)
    );
    assert!(
        sent[0]
            .text
            .as_deref()
            .unwrap()
            .contains(&checkouts[0].checkout_url)
    );
    // Asked again in the same call: no second e-mail.
    links
        .send(&tenant, &store::CallId::new("call-1"), &customer, T0)
        .await
        .unwrap();
    assert_eq!(resend.sent().len(), 1);
    // The mail provider down: the link is queued, and the outcome says so.
    resend.fail_next(503);
    let out = links
        .send(&tenant, &store::CallId::new("call-2"), &customer, T0)
        .await
        .unwrap();
    assert_eq!(
        out,
        PaymentLinkOutcome::Queued {
            invoice: Some("INV-7".into())
        }
    );
}
