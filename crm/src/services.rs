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

use dialogs::{
    CallEvent, CallServices, Customer, CustomerId, DncRequest, Invoice, NewCallback, NewMessage,
    PaymentLinkResult, ServiceError, ServiceFuture,
};
use serde_json::{Value, json};
use store::{CallId, EventKind, Store, StoreError, TenantId};

use crate::directory::{CallerMatch, CustomerDirectory, DirectoryError};
use crate::phone::PhoneNormalizer;

/// Unix milliseconds; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Invoices handed to the flow per request (latest due date first).
pub const INVOICES_PER_REQUEST: u32 = 20;

/// Where a call's events go. The agent's per-call recorder implements it: it is the one
/// writer of `call_events`, so the flow's events (refusals, tool calls, fallbacks, outcomes)
/// are stored in order with everything else that happens on the call. Implementations must
/// never block (the flow engine calls it from its reply stream).
pub trait CallEventSink: Send + Sync {
    fn record(&self, kind: EventKind, detail: Value);

    /// The caller-ID lookup identified the call's customer (the lookup only ever asks for the
    /// call's own caller): remembered for the call's CRM write-back (`call_customers`).
    fn customer_identified(&self, customer_id: &str);
}

/// The per-call [`CallServices`] over the store. Build one per call with the call's tenant and
/// id; share it as `Arc<dyn CallServices>`.
pub struct StoreCallServices {
    directory: CustomerDirectory,
    store: Store,
    tenant_id: TenantId,
    call_id: CallId,
    events: Arc<dyn CallEventSink>,
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
    /// Services for call `call_id` of `tenant_id`, reading national caller IDs with `phones`,
    /// handing the flow's events to `events`.
    pub fn new(
        store: Store,
        tenant_id: &TenantId,
        call_id: &CallId,
        phones: PhoneNormalizer,
        events: Arc<dyn CallEventSink>,
    ) -> StoreCallServices {
        StoreCallServices {
            directory: CustomerDirectory::new(store.clone(), phones),
            store,
            tenant_id: tenant_id.clone(),
            call_id: call_id.clone(),
            events,
            clock: Arc::new(unix_ms_now),
            payment_links: None,
        }
    }

    /// Uses `clock` for the timestamps of stored messages and callbacks.
    pub fn with_clock(mut self, clock: Clock) -> StoreCallServices {
        self.clock = clock;
        self
    }

    /// Sends payment links through `links` (Dodo checkout + e-mail); without it the tool
    /// reports an error and the flow says the link could not be sent.
    pub fn with_payment_links(mut self, links: billing::PaymentLinks) -> StoreCallServices {
        self.payment_links = Some(links);
        self
    }

    /// The call these services belong to.
    pub fn call_id(&self) -> &CallId {
        &self.call_id
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
                CallerMatch::Found(known) => {
                    // Remembered for the call's write-back to the CRM (`call_customers`). The
                    // lookup only ever asks for the call's own caller, so a match is the call's
                    // customer. Queued, not awaited: this runs before the call is answered.
                    self.events.customer_identified(&known.customer.id);
                    Some(to_dialogs_customer(&known.customer))
                }
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
                    EventKind::PaymentLinkSent,
                    json!({ "customer_id": customer.id, "invoice": invoice }),
                    Ok(PaymentLinkResult::Sent),
                ),
                Ok(billing::PaymentLinkOutcome::Queued { invoice }) => (
                    EventKind::PaymentLinkQueued,
                    json!({ "customer_id": customer.id, "invoice": invoice }),
                    Ok(PaymentLinkResult::Queued),
                ),
                Ok(billing::PaymentLinkOutcome::NoEmail) => (
                    EventKind::PaymentLinkNotSent,
                    json!({ "customer_id": customer.id, "reason": "no_email" }),
                    Ok(PaymentLinkResult::NoEmail),
                ),
                Ok(billing::PaymentLinkOutcome::NothingDue) => (
                    EventKind::PaymentLinkNotSent,
                    json!({ "customer_id": customer.id, "reason": "nothing_due" }),
                    Ok(PaymentLinkResult::NothingDue),
                ),
                Err(e) => {
                    let error = match &e {
                        ServiceError::Backend(source) => source.to_string(),
                        other => other.to_string(),
                    };
                    (
                        EventKind::PaymentLinkFailed,
                        json!({ "customer_id": customer.id, "error": error }),
                        Err(e),
                    )
                }
            };
            self.events.record(kind, detail);
            result
        })
    }

    /// Lists the call's number (E.164 when it reads as one) for this tenant, and records a
    /// `dnc_added` event on the call.
    fn add_to_dnc(&self, request: DncRequest) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            let phone = match self.directory.normalizer().normalize(&request.number) {
                Ok(e164) => e164.into_string(),
                Err(_) => request.number.clone(),
            };
            self.store
                .add_dnc(
                    &self.tenant_id,
                    &[store::NewDnc {
                        phone: phone.clone(),
                        source: store::DncSource::Call,
                        reason: request.reason.clone(),
                        call_id: Some(self.call_id.clone()),
                    }],
                    self.now(),
                )
                .await
                .map_err(service_error)?;
            self.events
                .record(EventKind::DncAdded, json!({ "phone": phone }));
            Ok(())
        })
    }

    /// Hands the event to the call's sink (see [`CallEventSink`]).
    fn record_event(&self, event: CallEvent) {
        let (kind, detail) = event_parts(&event);
        self.events.record(kind, detail);
    }
}

/// `CallEvent` serialises as `{"type": "refused", …}`: the tag becomes the stored kind and
/// the rest the detail.
pub fn event_parts(event: &CallEvent) -> (EventKind, Value) {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = value
        .as_object_mut()
        .and_then(|o| o.remove("type"))
        .and_then(|t| t.as_str().map(EventKind::from_code))
        .unwrap_or_else(|| EventKind::Other("unknown".to_owned()));
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
