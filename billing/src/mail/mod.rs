//! E-mail: the outbox worker that delivers through Resend, and the notifier that queues daily
//! summaries and message/callback notices.
//!
//! Delivery: a worker claims due rows with a lease, sends each with its idempotency key, and
//! marks it sent; a 429 waits `retry-after` (not counted as a failure), network errors and 5xx
//! back off exponentially (10 s, 20 s, … up to an hour) until `max_attempts`, other 4xx fail
//! the row. A crash after Resend accepted but before the row was marked leaves it pending;
//! the retry carries the same Idempotency-Key, which Resend drops within 24 h.

mod notifier;
pub mod resend;
mod templates;

use std::sync::Arc;
use std::time::Duration;

use store::{OutboxMail, Store, StoreError};
use tokio::sync::{Notify, watch};

pub use notifier::Notifier;
pub use resend::{ResendClient, SendOutcome};
pub use templates::{callback_notice, daily_summary, message_notice, payment_link_mail};

/// How long a claimed row is ours before another worker may take it (longer than a send's
/// 15 s timeout).
const LEASE_MS: i64 = 60_000;

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Still pending (rate limited or a temporary failure): the worker retries.
    Later,
    Failed,
    /// Someone else holds the row (or it is not pending).
    NotClaimed,
}

/// Delivers the outbox.
#[derive(Clone)]
pub struct Mailer {
    store: Store,
    client: ResendClient,
    from: String,
    owner: String,
    max_attempts: i64,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// `owner` names this worker in leases (the node id plus something unique per process).
    pub fn new(store: Store, client: ResendClient, from: &str, owner: &str) -> Mailer {
        Mailer {
            store,
            client,
            from: from.to_owned(),
            owner: owner.to_owned(),
            max_attempts: 8,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The outbox's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Asks the running worker to look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers what is due; returns how many rows were handled.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_mail(&self.owner, now_ms, LEASE_MS, 10)
            .await?;
        let n = claimed.len();
        for mail in claimed {
            self.deliver(mail, now_ms).await?;
        }
        Ok(n)
    }

    /// Claims row `id` and delivers it at once (for a caller waiting on the result).
    pub async fn deliver_now(&self, id: &str, now_ms: i64) -> Result<Delivery, StoreError> {
        match self
            .store
            .claim_mail_row(id, &self.owner, now_ms, LEASE_MS)
            .await?
        {
            Some(mail) => self.deliver(mail, now_ms).await,
            None => Ok(Delivery::NotClaimed),
        }
    }

    async fn deliver(&self, mail: OutboxMail, now_ms: i64) -> Result<Delivery, StoreError> {
        let outcome = self
            .client
            .send(
                &self.from,
                &mail.to,
                &mail.subject,
                &mail.html,
                &mail.text,
                &mail.idempotency_key,
            )
            .await;
        let kind = mail.kind.clone();
        match outcome {
            SendOutcome::Sent(provider_id) => {
                self.store
                    .mark_mail_sent(&mail.id, &self.owner, &provider_id, crate::unix_ms_now())
                    .await?;
                metrics::counter!("agent_mail_sent_total", "kind" => kind).increment(1);
                Ok(Delivery::Sent)
            }
            SendOutcome::RateLimited(wait) => {
                let next = now_ms + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                self.store
                    .retry_mail_later(&mail.id, &self.owner, next, "rate limited (429)", true)
                    .await?;
                metrics::counter!("agent_mail_rate_limited_total").increment(1);
                Ok(Delivery::Later)
            }
            SendOutcome::Retry(error) if mail.attempts < self.max_attempts => {
                let backoff = 10_000_i64 << (mail.attempts.clamp(1, 9) - 1);
                let next = now_ms + backoff.min(3_600_000);
                tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, %error, "e-mail not sent; will retry");
                self.store
                    .retry_mail_later(&mail.id, &self.owner, next, &error, false)
                    .await?;
                Ok(Delivery::Later)
            }
            SendOutcome::Retry(error) | SendOutcome::Rejected(error) => {
                tracing::error!(mail_id = %mail.id, attempts = mail.attempts, %error, "e-mail failed for good");
                self.store.fail_mail(&mail.id, &self.owner, &error).await?;
                metrics::counter!("agent_mail_failed_total", "kind" => kind).increment(1);
                Ok(Delivery::Failed)
            }
        }
    }

    /// Delivers every `every` (or when woken) until `stop` turns true.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            loop {
                match self.deliver_due(crate::unix_ms_now()).await {
                    Ok(10..) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "mail outbox unavailable");
                        break;
                    }
                }
            }
        }
    }
}
