//! `StoreCallServices`: the flow engine's `CallServices` over the store, on SQLite and
//! PostgreSQL. Tenant isolation first: another tenant's customer is never returned.

// Shared with the store's own tests; formatted by its owners, not by `cargo fmt -p crm`.
#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use common::{Engine, TestDb};
use crm::services::Clock;
use crm::{
    CallEventSink, ImportOptions, PhoneNormalizer, StoreCallServices, import_customers,
    import_invoices,
};
use dialogs::{
    CallEvent, CallServices, CallSetup, CallerInput, CustomerId, Engine as FlowEngine,
    RefusalReason, ReplyEvent,
};
use serde_json::Value;
use store::{CallDirection, CallId, EventKind, NewCall, Store, TenantId};

both_engines!(
    lookup_identifies_only_this_tenants_unambiguous_callers,
    data_requests_never_cross_tenants,
    messages_and_callbacks_are_stored_with_the_call,
    payment_link_and_events_go_to_the_calls_event_sink,
    stop_calling_me_lists_the_number_for_this_tenant_only,
);

struct Setup {
    acme: TenantId,
    globex: TenantId,
    call: CallId,
    /// What the services handed to the call's event sink.
    events: Arc<Events>,
}

/// Collects events as the agent's recorder would receive them.
#[derive(Default)]
struct Events(Mutex<Vec<(EventKind, Value)>>, Mutex<Vec<String>>);

impl CallEventSink for Events {
    fn record(&self, kind: EventKind, detail: Value) {
        self.0.lock().unwrap().push((kind, detail));
    }

    fn customer_identified(&self, customer_id: &str) {
        self.1.lock().unwrap().push(customer_id.to_owned());
    }
}

impl Events {
    fn taken(&self) -> Vec<(EventKind, Value)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

const ACME: &str = "\
external_id,name,company,phone,postal_code,balance,currency
C-1,Jane Doe,Doe Bakery,+15551234567,94107,142.50,USD
C-2,Front Desk,Shared Co,+15550001000,,0,USD
C-3,Back Office,Shared Co,+15550001000,,0,USD
";
const GLOBEX: &str = "\
external_id,name,phone,balance,currency
G-1,Other Tenant's Customer,+15559876543,999.00,USD
";
const ACME_INVOICES: &str = "\
customer_external_id,number,status,total,balance,currency,due_date
C-1,INV-2041,overdue,92.50,92.50,USD,2025-05-01
C-1,INV-1987,open,50,50,USD,2025-06-15
";
const GLOBEX_INVOICES: &str = "\
customer_external_id,number,status,total,balance,currency,due_date
G-1,INV-9,overdue,999,999,USD,2025-05-01
";

async fn setup(store: &Store) -> Setup {
    let acme = store.create_tenant("acme", 1).await.unwrap().id;
    let globex = store.create_tenant("globex", 1).await.unwrap().id;
    let opts = ImportOptions::default().with_now_ms(5);
    import_customers(store, &acme, ACME.as_bytes(), &opts)
        .await
        .unwrap();
    import_customers(store, &globex, GLOBEX.as_bytes(), &opts)
        .await
        .unwrap();
    import_invoices(store, &acme, ACME_INVOICES.as_bytes(), &opts)
        .await
        .unwrap();
    import_invoices(store, &globex, GLOBEX_INVOICES.as_bytes(), &opts)
        .await
        .unwrap();
    let call = CallId::generate();
    store
        .insert_call(NewCall {
            id: call.clone(),
            tenant_id: acme.clone(),
            direction: CallDirection::Inbound,
            from_number: "+15551234567".to_owned(),
            to_number: "+15550000000".to_owned(),
            sip_call_id: None,
            flow: Some("receptionist".to_owned()),
            flow_version: None,
            node: "n".to_owned(),
            started_at: 10,
            transport: store::CallTransport::Sip,
        })
        .await
        .unwrap();
    Setup {
        acme,
        globex,
        call,
        events: Arc::default(),
    }
}

fn fixed_clock() -> Clock {
    Arc::new(|| 42_000)
}

fn services(store: &Store, s: &Setup) -> StoreCallServices {
    StoreCallServices::new(
        store.clone(),
        &s.acme,
        &s.call,
        PhoneNormalizer::new("US").unwrap(),
        s.events.clone(),
    )
    .with_clock(fixed_clock())
}

async fn lookup_identifies_only_this_tenants_unambiguous_callers(store: &Store) {
    let s = setup(store).await;
    let svc = services(store, &s);
    for caller in [
        "+15551234567",
        "5551234567",
        "15551234567",
        "sip:+15551234567@trunk;user=phone",
    ] {
        let jane = svc.lookup_customer(caller).await.unwrap().expect(caller);
        assert_eq!(jane.name, "Jane Doe");
        assert_eq!(
            (jane.balance_minor, jane.currency.as_str()),
            (14_250, "USD")
        );
        assert_eq!(jane.company.as_deref(), Some("Doe Bakery"));
        assert_eq!(jane.postal_code.as_deref(), Some("94107"));
    }
    // Every successful lookup names the call's customer to the sink (for the CRM write-back).
    assert_eq!(s.events.1.lock().unwrap().len(), 4);
    // Globex's customer calls Acme's number: unknown here.
    assert_eq!(svc.lookup_customer("+15559876543").await.unwrap(), None);
    // A shared line identifies nobody rather than one of them.
    assert_eq!(svc.lookup_customer("+15550001000").await.unwrap(), None);
    for withheld in ["anonymous", "", "sip:anonymous@anonymous.invalid", "+1555"] {
        assert_eq!(
            svc.lookup_customer(withheld).await.unwrap(),
            None,
            "{withheld:?}"
        );
    }
    // The engine's pre-answer lookup goes through the same path.
    let found = dialogs::identify_caller(&svc, "555-123-4567").await;
    assert_eq!(found.map(|c| c.name), Some("Jane Doe".to_owned()));
}

async fn data_requests_never_cross_tenants(store: &Store) {
    let s = setup(store).await;
    let svc = services(store, &s);
    let theirs = store
        .customer_by_external_id(&s.globex, "G-1")
        .await
        .unwrap()
        .unwrap();
    let theirs = CustomerId(theirs.id);
    assert_eq!(svc.customer(&theirs).await.unwrap(), None);
    assert!(svc.invoices(&theirs).await.unwrap().is_empty());
    assert!(svc.send_payment_link(&theirs).await.is_err());
    assert_eq!(
        svc.customer(&CustomerId("made-up".to_owned()))
            .await
            .unwrap(),
        None
    );

    let jane = svc.lookup_customer("+15551234567").await.unwrap().unwrap();
    let fresh = svc.customer(&jane.id).await.unwrap().unwrap();
    assert_eq!(fresh, jane);
    let invoices = svc.invoices(&jane.id).await.unwrap();
    let numbers: Vec<_> = invoices.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["INV-1987", "INV-2041"]);
    assert_eq!(
        (
            invoices[1].total_minor,
            invoices[1].due_date.as_str(),
            invoices[1].status.as_str()
        ),
        (9_250, "2025-05-01", "overdue")
    );
    // The services of a Globex call see Globex's data only.
    let other = StoreCallServices::new(
        store.clone(),
        &s.globex,
        &CallId::generate(),
        PhoneNormalizer::default(),
        s.events.clone(),
    );
    assert_eq!(other.customer(&jane.id).await.unwrap(), None);
    assert!(
        other
            .lookup_customer("+15559876543")
            .await
            .unwrap()
            .is_some()
    );
}

/// Drives the real flow engine (the shipped receptionist flow, scripted mode) over the
/// store-backed services: `NewMessage`/`NewCallback` are built by the engine's tools.
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

async fn messages_and_callbacks_are_stored_with_the_call(store: &Store) {
    let s = setup(store).await;
    let svc = Arc::new(services(store, &s));
    let caller = "+15551234567";
    let jane = svc.lookup_customer(caller).await.unwrap().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/flows/receptionist.toml"
    );
    let flow = Arc::new(dialogs::Flow::load(std::path::Path::new(path)).unwrap());
    let setup = CallSetup::new(Some(caller))
        .with_customer(Some(jane.clone()))
        .with_caller_id_trusted(true);
    let mut engine = FlowEngine::new(flow, svc.clone(), None, setup);
    {
        use futures::StreamExt;
        let greeting: Vec<_> = engine.start().collect().await;
        assert!(!greeting.is_empty());
    }
    let reply = say(&mut engine, "what do I owe").await;
    assert!(reply.contains("$142.50"), "{reply}");
    say(&mut engine, "I want to leave a message").await;
    assert_eq!(engine.node(), "take_message");
    say(&mut engine, "Please call me about the oven.").await;
    assert_eq!(engine.node(), "message_taken");
    say(&mut engine, "please call me back").await;
    assert_eq!(engine.node(), "callback_scheduled");

    let stored = store.messages_for_call(&s.call).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].tenant_id, s.acme);
    assert_eq!(stored[0].customer_id.as_deref(), Some(jane.id.0.as_str()));
    assert_eq!(stored[0].caller_number.as_deref(), Some(caller));
    assert!(stored[0].text.contains("oven"), "{:?}", stored[0].text);
    assert_eq!(
        (stored[0].created_at, stored[0].status),
        (42_000, store::MessageStatus::New)
    );

    let callbacks = store.callbacks_for_call(&s.call).await.unwrap();
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].number, caller, "stored in E.164");
    assert_eq!(
        callbacks[0].customer_id.as_deref(),
        Some(jane.id.0.as_str())
    );
    assert_eq!(callbacks[0].tenant_id, s.acme);
    let events = s.events.taken();
    assert!(
        events
            .iter()
            .any(|(kind, _)| *kind == EventKind::ToolCalled),
        "{events:?}"
    );
}

async fn payment_link_and_events_go_to_the_calls_event_sink(store: &Store) {
    let s = setup(store).await;
    let svc = services(store, &s);
    let jane = svc.lookup_customer("+15551234567").await.unwrap().unwrap();
    // Without payment links configured nothing is sent, and the tool is told so.
    assert!(svc.send_payment_link(&jane.id).await.is_err());
    svc.record_event(CallEvent::Refused {
        tool: "list_invoices".to_owned(),
        reason: RefusalReason::ForeignIdentity,
    });
    svc.record_event(CallEvent::Outcome {
        outcome: "promised_to_pay".to_owned(),
        note: None,
    });
    let events = s.events.taken();
    let kinds: Vec<_> = events.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::PaymentLinkFailed,
            EventKind::Refused,
            EventKind::Outcome
        ],
        "{events:?}"
    );
    assert_eq!(events[0].1["customer_id"], jane.id.0.as_str());
    assert!(
        events[0].1["error"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    assert_eq!(events[1].1["reason"], "foreign_identity");
    assert_eq!(events[1].1["tool"], "list_invoices");
    assert!(events[1].1.get("type").is_none(), "the tag is the kind");
    assert_eq!(events[2].1["outcome"], "promised_to_pay");
    // Nothing is written by the services themselves: the recorder is the one writer.
    assert!(store.list_call_events(&s.call).await.unwrap().is_empty());
}

async fn stop_calling_me_lists_the_number_for_this_tenant_only(store: &Store) {
    let s = setup(store).await;
    let svc = services(store, &s);
    svc.add_to_dnc(dialogs::DncRequest::new(
        "(555) 123-4567",
        Some("asked".into()),
    ))
    .await
    .unwrap();
    assert!(store.is_dnc(&s.acme, "+15551234567").await.unwrap());
    assert!(!store.is_dnc(&s.globex, "+15551234567").await.unwrap());
    let listed = store.list_dnc(&s.acme, 10, None).await.unwrap();
    assert_eq!(listed[0].source, store::DncSource::Call);
    assert_eq!(listed[0].call_id.as_ref(), Some(&s.call));
    assert_eq!(listed[0].reason.as_deref(), Some("asked"));
    assert_eq!(listed[0].created_at, 42_000);
    // Asking twice keeps one entry and records the event each time.
    svc.add_to_dnc(dialogs::DncRequest::new("+15551234567", None))
        .await
        .unwrap();
    assert_eq!(store.list_dnc(&s.acme, 10, None).await.unwrap().len(), 1);
    let events = s.events.taken();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].0, EventKind::DncAdded);
    assert_eq!(events[0].1["phone"], "+15551234567");
}
