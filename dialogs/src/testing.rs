//! An in-memory [`CallServices`] for the simulator (`agent chat`, `agent flows test`) and
//! tests: customers by phone, invoices, and a record of everything the tools did.
//!
//! It is honest but small: lookups compare phone numbers by their last ten digits (the agent's
//! real implementation matches normalised E.164 in the store).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::tools::{
    CallEvent, CallServices, Customer, CustomerId, DncRequest, Invoice, NewCallback, NewMessage,
    ServiceFuture, same_number,
};

/// Customers and invoices in memory; records messages, callbacks, links and events.
#[derive(Debug, Default)]
pub struct MemoryServices {
    // Never held across an await.
    inner: Mutex<Mem>,
    delay: Option<Duration>,
}

#[derive(Debug, Default)]
struct Mem {
    customers: Vec<(String, Customer)>,
    invoices: HashMap<String, Vec<Invoice>>,
    messages: Vec<NewMessage>,
    callbacks: Vec<NewCallback>,
    payment_links: Vec<CustomerId>,
    dnc: Vec<DncRequest>,
    events: Vec<CallEvent>,
}

impl MemoryServices {
    /// Empty: every caller is unknown.
    pub fn new() -> MemoryServices {
        MemoryServices::default()
    }

    /// The sample data the simulator uses: Jane Doe (+15551234567, balance $142.50, two
    /// invoices, one overdue) and Bob Roe (+15559876543, other company, other invoices).
    pub fn demo() -> MemoryServices {
        MemoryServices::new()
            .with_customer(
                "+15551234567",
                Customer::new("C-1001", "Jane Doe", 14250, "USD")
                    .with_company("Doe Bakery")
                    .with_postal_code("94107"),
            )
            .with_invoices(
                "C-1001",
                vec![
                    Invoice::new("INV-2041", "overdue", 9250, 9250, "USD", "2025-05-01"),
                    Invoice::new("INV-1987", "open", 5000, 5000, "USD", "2025-06-15"),
                ],
            )
            .with_customer(
                "+15559876543",
                Customer::new("C-2002", "Bob Roe", 99900, "USD").with_company("Roe Logistics"),
            )
            .with_invoices(
                "C-2002",
                vec![Invoice::new(
                    "INV-3001",
                    "overdue",
                    99900,
                    99900,
                    "USD",
                    "2025-04-01",
                )],
            )
    }

    /// Adds a customer reachable at `phone`.
    pub fn with_customer(self, phone: &str, customer: Customer) -> MemoryServices {
        self.lock().customers.push((phone.to_string(), customer));
        self
    }

    /// Sets a customer's invoices.
    pub fn with_invoices(self, customer_id: &str, invoices: Vec<Invoice>) -> MemoryServices {
        self.lock()
            .invoices
            .insert(customer_id.to_string(), invoices);
        self
    }

    /// Every call waits this long first (for tool-timeout and interruption tests).
    pub fn with_delay(mut self, delay: Duration) -> MemoryServices {
        self.delay = Some(delay);
        self
    }

    /// Messages taken so far.
    pub fn messages(&self) -> Vec<NewMessage> {
        self.lock().messages.clone()
    }

    /// Callbacks scheduled so far.
    pub fn callbacks(&self) -> Vec<NewCallback> {
        self.lock().callbacks.clone()
    }

    /// Customers a payment link was sent to.
    pub fn payment_links(&self) -> Vec<CustomerId> {
        self.lock().payment_links.clone()
    }

    /// Do-not-call requests so far.
    pub fn dnc(&self) -> Vec<DncRequest> {
        self.lock().dnc.clone()
    }

    /// Call events recorded so far.
    pub fn events(&self) -> Vec<CallEvent> {
        self.lock().events.clone()
    }

    /// Looks a customer up by phone, synchronously (for setting up a simulated call).
    pub fn customer_by_phone(&self, phone: &str) -> Option<Customer> {
        self.lock()
            .customers
            .iter()
            .find(|(p, _)| same_number(p, phone))
            .map(|(_, c)| c.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn wait(&self) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
    }
}

impl CallServices for MemoryServices {
    fn lookup_customer<'a>(
        &'a self,
        caller_number: &'a str,
    ) -> ServiceFuture<'a, Option<Customer>> {
        Box::pin(async move {
            self.wait().await;
            Ok(self.customer_by_phone(caller_number))
        })
    }

    fn customer<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Option<Customer>> {
        Box::pin(async move {
            self.wait().await;
            Ok(self
                .lock()
                .customers
                .iter()
                .find(|(_, c)| &c.id == id)
                .map(|(_, c)| c.clone()))
        })
    }

    fn invoices<'a>(&'a self, id: &'a CustomerId) -> ServiceFuture<'a, Vec<Invoice>> {
        Box::pin(async move {
            self.wait().await;
            Ok(self.lock().invoices.get(&id.0).cloned().unwrap_or_default())
        })
    }

    fn take_message(&self, message: NewMessage) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            self.wait().await;
            self.lock().messages.push(message);
            Ok(())
        })
    }

    fn schedule_callback(&self, callback: NewCallback) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            self.wait().await;
            self.lock().callbacks.push(callback);
            Ok(())
        })
    }

    fn send_payment_link<'a>(
        &'a self,
        id: &'a CustomerId,
    ) -> ServiceFuture<'a, crate::PaymentLinkResult> {
        Box::pin(async move {
            self.wait().await;
            self.lock().payment_links.push(id.clone());
            Ok(crate::PaymentLinkResult::Sent)
        })
    }

    fn add_to_dnc(&self, request: DncRequest) -> ServiceFuture<'_, ()> {
        Box::pin(async move {
            self.wait().await;
            self.lock().dnc.push(request);
            Ok(())
        })
    }

    fn record_event(&self, event: CallEvent) {
        self.lock().events.push(event);
    }
}
