//! Payment links for callers: a Dodo checkout session for the customer's oldest open invoice
//! (or balance), e-mailed to the address on file through the outbox.
//!
//! The outcome says exactly what happened, so the flow can say it: the e-mail was accepted by
//! the provider (`Sent`), or the link exists and the e-mail is queued for retry (`Queued`), or
//! nothing was sent and why.

use std::collections::BTreeMap;

use store::{CheckoutSession, Enqueued, NewMail, Store};

use crate::BillingError;
use crate::dodo::{CartItem, CheckoutCustomer, CheckoutRequest, DodoClient};
use crate::mail::{Delivery, Mailer, payment_link_mail};

/// What [`PaymentLinks::send`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentLinkOutcome {
    /// The e-mail with the link was accepted by the provider.
    Sent { invoice: Option<String> },
    /// The link exists; the e-mail is in the outbox and will be retried.
    Queued { invoice: Option<String> },
    /// No e-mail address on file: nothing sent.
    NoEmail,
    /// Nothing is owed: nothing sent.
    NothingDue,
}

/// Creates and sends payment links.
#[derive(Clone, Debug)]
pub struct PaymentLinks {
    store: Store,
    dodo: DodoClient,
    /// A pay-what-you-want Dodo product standing for "an invoice payment".
    invoice_product_id: String,
    return_url: Option<String>,
    mailer: Mailer,
    company_fallback: String,
}

impl PaymentLinks {
    pub fn new(
        store: Store,
        dodo: DodoClient,
        invoice_product_id: &str,
        return_url: Option<String>,
        mailer: Mailer,
    ) -> PaymentLinks {
        PaymentLinks {
            store,
            dodo,
            invoice_product_id: invoice_product_id.to_owned(),
            return_url,
            mailer,
            company_fallback: "Billing".to_owned(),
        }
    }

    /// Sends customer `customer_id` of `tenant_id` a link for what they owe, during call
    /// `call_id` (one e-mail per call and invoice, however often the tool is called).
    pub async fn send(
        &self,
        tenant_id: &store::TenantId,
        call_id: &store::CallId,
        customer_id: &str,
        now_ms: i64,
    ) -> Result<PaymentLinkOutcome, BillingError> {
        if self.invoice_product_id.is_empty() {
            return Err(BillingError::NotConfigured("dodo.invoice_product_id"));
        }
        let customer = self
            .store
            .customer(tenant_id, customer_id)
            .await?
            .ok_or(store::StoreError::NotFound { what: "customer" })?;
        let Some(email) = customer.email.clone().filter(|e| e.contains('@')) else {
            return Ok(PaymentLinkOutcome::NoEmail);
        };
        let invoices = self
            .store
            .invoices_for_customer(tenant_id, customer_id, 50)
            .await?;
        // The oldest open invoice first: that is the one overdue longest.
        let open = invoices
            .iter()
            .filter(|i| i.balance_minor > 0)
            .min_by(|a, b| a.due_date.cmp(&b.due_date));
        let (amount, currency, invoice) = match open {
            Some(i) => (i.balance_minor, i.currency.clone(), Some(i.number.clone())),
            None => (customer.balance_minor, customer.currency.clone(), None),
        };
        if amount <= 0 {
            return Ok(PaymentLinkOutcome::NothingDue);
        }
        let reference = invoice.clone().unwrap_or_else(|| "balance".to_owned());
        let key = format!("payment-link:{call_id}:{reference}");
        let metadata = BTreeMap::from([
            ("tenant_id".to_owned(), tenant_id.to_string()),
            ("purpose".to_owned(), "invoice".to_owned()),
            ("invoice_number".to_owned(), reference.clone()),
            ("customer_id".to_owned(), customer_id.to_owned()),
            ("call_id".to_owned(), call_id.to_string()),
        ]);
        let created = self
            .dodo
            .create_checkout(&CheckoutRequest {
                product_cart: vec![CartItem {
                    product_id: self.invoice_product_id.clone(),
                    quantity: 1,
                    amount: Some(amount),
                }],
                customer: Some(CheckoutCustomer {
                    email: email.clone(),
                    name: Some(customer.name.clone()),
                }),
                return_url: self.return_url.clone(),
                metadata,
            })
            .await?;
        self.store
            .insert_checkout_session(&CheckoutSession {
                session_id: created.session_id.clone(),
                tenant_id: tenant_id.to_owned(),
                purpose: "invoice".to_owned(),
                plan: None,
                reference: Some(reference.clone()),
                customer_id: Some(customer_id.to_owned()),
                call_id: Some(call_id.to_owned()),
                url: created.checkout_url.clone(),
                created_at: now_ms,
            })
            .await?;
        let company = customer
            .company
            .clone()
            .unwrap_or_else(|| self.company_fallback.clone());
        let spoken = format!("{}.{:02} {currency}", amount / 100, amount % 100);
        let (subject, html, text) = payment_link_mail(
            &company,
            &customer.name,
            &spoken,
            invoice.as_deref(),
            &created.checkout_url,
        );
        let id = match self
            .store
            .enqueue_mail(&NewMail {
                tenant_id: tenant_id.to_owned(),
                idempotency_key: key.clone(),
                kind: "payment_link".to_owned(),
                to: vec![email],
                subject,
                html,
                text,
                created_at: now_ms,
            })
            .await?
        {
            Enqueued::Added(id) => id,
            // Already queued in this call: report what became of that one.
            Enqueued::Exists => {
                return Ok(PaymentLinkOutcome::Queued { invoice });
            }
        };
        Ok(match self.mailer.deliver_now(&id, now_ms).await? {
            Delivery::Sent => PaymentLinkOutcome::Sent { invoice },
            Delivery::Failed => return Err(BillingError::MailRejected),
            Delivery::Later | Delivery::NotClaimed => {
                self.mailer.wake();
                PaymentLinkOutcome::Queued { invoice }
            }
        })
    }
}
