//! The payment_reminder flow's `send_payment_link`, through the real flow file, the flow
//! engine, `StoreCallServices` and `billing::PaymentLinks`, against the Dodo and Resend fakes:
//! the caller is told the link was sent only when exactly one e-mail with the checkout link
//! went out; a mail outage is said as such, and so is a missing e-mail address.
//!
//! This drives the engine with text turns, not a SIP call: a real outbound call would need
//! the caller's side to say a postal code (speech clips the repo does not have) through the
//! call core being rebuilt; the SIP path up to the tool is the same for every tool.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use billing::PaymentLinks;
use billing::dodo::DodoClient;
use billing::mail::{Mailer, ResendClient};
use common::{Engine, TestDb};
use crm::{
    CallEventSink, ImportOptions, PhoneNormalizer, StoreCallServices, import_customers,
    import_invoices,
};
use dialogs::{CallServices, CallSetup, CallerInput, Engine as FlowEngine, ReplyEvent};
use serde_json::Value;
use store::{CallDirection, CallId, EventKind, NewCall, Store, TenantId};
use testkit::dodo::FakeDodo;
use testkit::resend::FakeResend;

both_engines!(
    the_link_is_sent_once_and_the_caller_is_told_so,
    a_mail_outage_or_no_address_is_said_as_it_is
);

const CUSTOMERS: &str = "\
external_id,name,company,phone,email,postal_code,balance,currency
C-1,Jane Doe,Doe Bakery,+15551234567,jane@example.com,94107,142.50,USD
C-2,John Roe,Roe Inc,+15557654321,,10001,80.00,USD
";
const INVOICES: &str = "\
customer_external_id,number,status,total,balance,currency,due_date
C-1,INV-2041,overdue,92.50,92.50,USD,2025-05-01
C-1,INV-1987,open,50,50,USD,2025-06-15
C-2,INV-3000,overdue,80,80,USD,2025-05-01
";

async fn say(engine: &mut FlowEngine, text: &str) -> String {
    use futures::StreamExt;
    let mut stream = engine.turn(CallerInput::Speech(text.to_owned()));
    let mut said = Vec::new();
    while let Some(ev) = stream.next().await {
        if let ReplyEvent::Sentence(s) = ev {
            said.push(s);
        }
    }
    said.join(" ")
}

/// The call's events, as the agent's recorder would receive them.
#[derive(Default)]
struct Events(Mutex<Vec<(EventKind, Value)>>);

impl CallEventSink for Events {
    fn record(&self, kind: EventKind, detail: Value) {
        self.0.lock().unwrap().push((kind, detail));
    }

    fn customer_identified(&self, _customer_id: &str) {}
}

struct World {
    tenant: TenantId,
    dodo: FakeDodo,
    resend: FakeResend,
}

async fn world(store: &Store) -> World {
    let tenant = store.create_tenant("acme", 1).await.unwrap().id;
    let opts = ImportOptions::default().with_now_ms(5);
    import_customers(store, &tenant, CUSTOMERS.as_bytes(), &opts)
        .await
        .unwrap();
    import_invoices(store, &tenant, INVOICES.as_bytes(), &opts)
        .await
        .unwrap();
    World {
        tenant,
        dodo: FakeDodo::start("dodo_test").await,
        resend: FakeResend::start("re_test").await,
    }
}

/// One outbound payment_reminder call to `number` up to the payment link; returns what the
/// agent said after the caller asked for the link.
async fn call(store: &Store, w: &World, number: &str) -> (Arc<Events>, String) {
    let call = CallId::generate();
    store
        .insert_call(NewCall {
            id: call.clone(),
            tenant_id: w.tenant.clone(),
            direction: CallDirection::Outbound,
            from_number: "+15550000000".into(),
            to_number: number.into(),
            sip_call_id: None,
            flow: Some("payment_reminder".into()),
            flow_version: None,
            node: "n".into(),
            started_at: 10,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap();
    let mailer = Mailer::new(
        store.clone(),
        ResendClient::new(&w.resend.base_url(), "re_test").unwrap(),
        "Acme Billing <billing@acme.example>",
        "test",
    );
    let links = PaymentLinks::new(
        store.clone(),
        DodoClient::new(&w.dodo.base_url(), "dodo_test").unwrap(),
        "pdt_invoice",
        None,
        mailer,
    );
    let events = Arc::new(Events::default());
    let svc = Arc::new(
        StoreCallServices::new(
            store.clone(),
            &w.tenant,
            &call,
            PhoneNormalizer::new("US").unwrap(),
            events.clone(),
        )
        .with_payment_links(links),
    );
    let customer = svc.lookup_customer(number).await.unwrap().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/flows/payment_reminder.toml"
    );
    let flow = Arc::new(dialogs::Flow::load(std::path::Path::new(path)).unwrap());
    let setup = CallSetup::new(Some(number)).with_customer(Some(customer));
    let mut engine = FlowEngine::new(flow, svc.clone(), None, setup);
    {
        use futures::StreamExt;
        let _: Vec<_> = engine.start().collect().await;
    }
    say(&mut engine, "Yes, that's me.").await;
    let postal = if number.ends_with("4567") {
        "9 4 1 0 7"
    } else {
        "1 0 0 0 1"
    };
    let amount = say(&mut engine, postal).await;
    assert!(
        amount.contains("e-mail you a secure payment link"),
        "{amount}"
    );
    let reply = say(&mut engine, "Please email me the link.").await;
    (events, reply)
}

async fn the_link_is_sent_once_and_the_caller_is_told_so(store: &Store) {
    let w = world(store).await;
    let (events, reply) = call(store, &w, "+15551234567").await;
    assert!(reply.contains("sent the payment link"), "{reply}");
    let checkouts = w.dodo.checkouts();
    assert_eq!(checkouts.len(), 1);
    // The oldest open invoice, for its balance.
    assert_eq!(checkouts[0].request["product_cart"][0]["amount"], 9250);
    assert_eq!(
        checkouts[0].request["metadata"]["invoice_number"],
        "INV-2041"
    );
    let sent = w.resend.sent();
    assert_eq!(sent.len(), 1, "exactly one e-mail");
    assert_eq!(sent[0].to, ["jane@example.com"]);
    assert!(
        sent[0]
            .html
            .as_deref()
            .unwrap()
            .contains(&checkouts[0].checkout_url)
    );
    let events = events.0.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|(kind, _)| *kind == EventKind::PaymentLinkSent),
        "{events:?}"
    );
}

async fn a_mail_outage_or_no_address_is_said_as_it_is(store: &Store) {
    let w = world(store).await;
    w.resend.fail_next(503);
    let (_, reply) = call(store, &w, "+15551234567").await;
    assert!(reply.contains("couldn't go out just yet"), "{reply}");
    assert!(!reply.contains("sent the payment link"), "{reply}");
    assert!(w.resend.sent().is_empty());
    let (_, reply) = call(store, &w, "+15557654321").await;
    assert!(reply.contains("no e-mail address"), "{reply}");
    assert_eq!(
        w.dodo.checkouts().len(),
        1,
        "no checkout without an address"
    );
}
