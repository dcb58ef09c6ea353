//! [`StoreCallServices`]: the flow engine's [`dialogs::CallServices`] over the store, for one
//! call of one tenant.
//!
//! Identity never comes from the caller: the tenant and call are fixed when the object is
//! built, every query is scoped to that tenant, and customer ids reach it only from call state
//! (the dialogs guardrails). A customer of another tenant is never returned, even when asked
//! for by id.
//!
//! `crm` depends on `dialogs` only for this trait and its data types.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dialogs::{
    CallEvent, CallServices, Customer, CustomerId, Invoice, NewCallback, NewMessage,
    PaymentLinkResult, ServiceError, ServiceFuture,
};
use serde_json::{Value, json};
use store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::directory::{CallerMatch, CustomerDirectory, DirectoryError};
use crate::phone::PhoneNormalizer;

/// Unix milliseconds; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Invoices handed to the flow per request (latest due date first).
pub const INVOICES_PER_REQUEST: u32 = 20;

/// Call events waiting to be written, per call, before new ones are dropped.
pub const DEFAULT_EVENT_QUEUE: usize = 256;

/// Metric: call events dropped because the queue was full or its writer gone.
pub const EVENTS_DROPPED_METRIC: &str = "agent_call_events_dropped_total";
/// Metric: call events the writer could not store.
pub const EVENTS_FAILED_METRIC: &str = "agent_call_events_failed_total";

/// The per-call [`CallServices`] over the store. Build one per call with the call's tenant and
/// id (the call row must exist before events are written); share it as
/// `Arc<dyn CallServices>`.
pub struct StoreCallServices {
    directory: CustomerDirectory,
    store: Store,
    tenant_id: String,
    call_id: String,
    events: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
    clock: Clock,
    payment_links: Option<billing::PaymentLinks>,
}

/// Why a request was refused by this implementation itself (as opposed to the store failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServicesError {
    /// The customer id is not a customer of this call's tenant.
    #[error("no such customer for this tenant")]
    UnknownCustomer,
    /// Payment links are not configured (`[dodo]` and `[email]`).
    #[error("payment links are not configured")]
    NoPaymentLinks,
}

impl StoreCallServices {
    /// Services for call `call_id` of `tenant_id`, reading national caller IDs with `phones`.
    ///
    /// Spawns the call's event writer on the current tokio runtime. Outside a runtime there is
    /// no writer, and every [`CallServices::record_event`] is counted as dropped.
    pub fn new(
        store: Store,
        tenant_id: &str,
        call_id: &str,
        phones: PhoneNormalizer,
    ) -> StoreCallServices {
        let clock: Clock = Arc::new(unix_ms_now);
        StoreCallServices::with_options(
            store,
            tenant_id,
            call_id,
            phones,
            DEFAULT_EVENT_QUEUE,
            clock,
        )
    }

    /// Like [`StoreCallServices::new`] with an event queue of `event_queue` (at least 1) and
    /// a clock for timestamps.
    pub fn with_options(
        store: Store,
        tenant_id: &str,
        call_id: &str,
        phones: PhoneNormalizer,
        event_queue: usize,
        clock: Clock,
    ) -> StoreCallServices {
        let (tx, rx) = mpsc::channel(event_queue.max(1));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(write_events(store.clone(), call_id.to_owned(), rx));
        }
        StoreCallServices {
            directory: CustomerDirectory::new(store.clone(), phones),
            store,
            tenant_id: tenant_id.to_owned(),
            call_id: call_id.to_owned(),
            events: tx,
            dropped: Arc::new(AtomicU64::new(0)),
            clock,
            payment_links: None,
        }
    }

    /// Sends payment links through `links` (Dodo checkout + e-mail); without it the tool
    /// reports an error and the flow says the link could not be sent.
    pub fn with_payment_links(mut self, links: billing::PaymentLinks) -> StoreCallServices {
        self.payment_links = Some(links);
        self
    }

    /// The call these services belong to.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Events dropped so far because the queue was full or the writer gone.
    pub fn dropped_events(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event recorded before this call has been written (or failed). Use at
    /// the end of a call, before marking it ended.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.events.send(Queued::Flush(done)).await.is_ok() {
            // The writer answers after the events ahead of the marker; an error means it is gone.
            let _ = wait.await;
        }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn own_customer(&self, id: &CustomerId) -> Result<Option<store::Customer>, ServiceError> {
        self.store
            .customer(&self.tenant_id, &id.0)
            .await
            .map_err(service_error)
    }
}

impl CallServices for StoreCallServices {
    fn lookup_customer<'a>(
        &'a self,
        caller_number: &'a str,
    ) -> ServiceFuture<'a, Option<Customer>> {
        Box::pin(async move {
            let found = self
                .directory
                .lookup_caller(&self.tenant_id, caller_number, 0)
                .await
                .map_err(|DirectoryError::Store(e)| service_error(e))?;
            Ok(match found {
                CallerMatch::Found(known) => Some(to_dialogs_customer(&known.customer)),
                // Ambiguous numbers identify nobody: the caller continues as unknown.
                _ => None,
            })
        })
    }

    fn customer<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Option<Customer>> {
        Box::pin(async move {
            Ok(self
                .own_customer(id)
                .await?
                .as_ref()
                .map(to_dialogs_customer))
        })
    }

    fn invoices<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Vec<Invoice>> {
        Box::pin(async move {
            let invoices = self
                .store
                .invoices_for_customer(&self.tenant_id, &id.0, INVOICES_PER_REQUEST)
                .await
                .map_err(service_error)?;
            Ok(invoices
                .iter()
                .map(|i| {
                    Invoice::new(
                        &i.number,
                        &i.status,
                        i.total_minor,
                        i.balance_minor,
                        &i.currency,
                        &i.due_date,
                    )
                })
                .collect())
        })
    }

    fn take_message(&self, message: NewMessage) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            self.store
                .insert_message(store::NewMessage {
                    tenant_id: self.tenant_id.clone(),
                    call_id: Some(self.call_id.clone()),
                    customer_id: message.customer_id.map(|c| c.0),
                    caller_number: message.caller_number,
                    caller_name: message.caller_name,
                    text: message.text,
                    created_at: self.now(),
                })
                .await
                .map_err(service_error)?;
            Ok(())
        })
    }

    fn schedule_callback(&self, callback: NewCallback) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            // The dialogs guardrails already allowed this number; store it in E.164 when it
            // reads as one so the callback list matches caller IDs, else as given.
            let number = match self.directory.normalizer().normalize(&callback.number) {
                Ok(e164) => e164.into_string(),
                Err(_) => callback.number,
            };
            self.store
                .insert_callback(store::NewCallback {
                    tenant_id: self.tenant_id.clone(),
                    call_id: Some(self.call_id.clone()),
                    customer_id: callback.customer_id.map(|c| c.0),
                    number,
                    preferred_time: callback.when,
                    due_at: None,
                    reason: callback.note,
                    created_at: self.now(),
                })
                .await
                .map_err(service_error)?;
            Ok(())
        })
    }

    /// Creates a Dodo checkout for the customer's open invoice and e-mails it (see
    /// `billing::PaymentLinks`), and stores what happened as a call event:
    /// `payment_link_sent`, `payment_link_queued`, `payment_link_not_sent` (no e-mail on
    /// file, nothing due) or `payment_link_failed`.
    fn send_payment_link<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, PaymentLinkResult> {
        Box::pin(async move {
            let Some(customer) = self.own_customer(id).await? else {
                return Err(ServiceError::Backend(Box::new(
                    ServicesError::UnknownCustomer,
                )));
            };
            let outcome = match &self.payment_links {
                Some(links) => links
                    .send(&self.tenant_id, &self.call_id, &customer.id, self.now())
                    .await
                    .map_err(|e| ServiceError::Backend(Box::new(e))),
                None => Err(ServiceError::Backend(Box::new(
                    ServicesError::NoPaymentLinks,
                ))),
            };
            let (kind, detail, result) = match outcome {
                Ok(billing::PaymentLinkOutcome::Sent { invoice }) => (
                    "payment_link_sent",
                    json!({ "customer_id": customer.id, "invoice": invoice }),
                    Ok(PaymentLinkResult::Sent),
                ),
                Ok(billing::PaymentLinkOutcome::Queued { invoice }) => (
                    "payment_link_queued",
                    json!({ "customer_id": customer.id, "invoice": invoice }),
                    Ok(PaymentLinkResult::Queued),
                ),
                Ok(billing::PaymentLinkOutcome::NoEmail) => (
                    "payment_link_not_sent",
                    json!({ "customer_id": customer.id, "reason": "no_email" }),
                    Ok(PaymentLinkResult::NoEmail),
                ),
                Ok(billing::PaymentLinkOutcome::NothingDue) => (
                    "payment_link_not_sent",
                    json!({ "customer_id": customer.id, "reason": "nothing_due" }),
                    Ok(PaymentLinkResult::NothingDue),
                ),
                Err(e) => {
                    let error = match &e {
                        ServiceError::Backend(source) => source.to_string(),
                        other => other.to_string(),
                    };
                    (
                        "payment_link_failed",
                        json!({ "customer_id": customer.id, "error": error }),
                        Err(e),
                    )
                }
            };
            self.store
                .add_call_event(&self.call_id, self.now(), kind, detail)
                .await
                .map_err(service_error)?;
            result
        })
    }

    /// Queues the event for the call's writer task; never waits. A full queue drops the event
    /// and counts it ([`EVENTS_DROPPED_METRIC`], [`StoreCallServices::dropped_events`]).
    fn record_event(&self, event: CallEvent) {
        let (kind, detail) = event_parts(&event);
        let queued = Queued::Event {
            at: self.now(),
            kind,
            detail,
        };
        if let Err(e) = self.events.try_send(queued) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "writer_gone",
            };
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(EVENTS_DROPPED_METRIC, "reason" => reason).increment(1);
            tracing::warn!(call_id = %self.call_id, reason, "call event dropped");
        }
    }
}

enum Queued {
    Event {
        at: i64,
        kind: String,
        detail: Value,
    },
    Flush(oneshot::Sender<()>),
}

/// The call's event writer: stores events in order until every sender is gone.
async fn write_events(store: Store, call_id: String, mut rx: mpsc::Receiver<Queued>) {
    while let Some(item) = rx.recv().await {
        match item {
            Queued::Event { at, kind, detail } => {
                if let Err(e) = store.add_call_event(&call_id, at, &kind, detail).await {
                    metrics::counter!(EVENTS_FAILED_METRIC).increment(1);
                    tracing::warn!(%call_id, kind, error = %e, "call event not stored");
                }
            }
            Queued::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// `CallEvent` serialises as `{"type": "refused", …}`: the tag becomes the stored kind and
/// the rest the detail.
fn event_parts(event: &CallEvent) -> (String, Value) {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = value
        .as_object_mut()
        .and_then(|o| o.remove("type"))
        .and_then(|t| t.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let detail = match value {
        Value::Object(_) => value,
        _ => json!({}),
    };
    (kind, detail)
}

fn to_dialogs_customer(c: &store::Customer) -> Customer {
    let mut out = Customer::new(&c.id, &c.name, c.balance_minor, &c.currency);
    if let Some(company) = &c.company {
        out = out.with_company(company);
    }
    if let Some(code) = &c.postal_code {
        out = out.with_postal_code(code);
    }
    out
}

fn service_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Connect { .. } => ServiceError::Unavailable,
        other => ServiceError::Backend(Box::new(other)),
    }
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
