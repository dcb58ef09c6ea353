//! Queues the e-mails nobody asks for explicitly: each tenant's daily summary (once the
//! configured local time has passed, for the day before, in the tenant's zone) and a notice
//! per message or callback request. Idempotency keys make every step safe to repeat: a
//! restart, a second daemon or a crash between queueing and moving the cursor never queues
//! the same e-mail twice.

use std::time::Duration;

use store::{Enqueued, NewMail, Store, StoreError};
use tokio::sync::watch;

use super::templates::{callback_notice, daily_summary, message_notice};

const MESSAGES_CURSOR: &str = "message_notices";
const CALLBACKS_CURSOR: &str = "callback_notices";

/// Queues summaries and notices.
#[derive(Clone, Debug)]
pub struct Notifier {
    store: Store,
    /// Local time of day after which yesterday's summary goes out.
    summary_at: jiff::civil::Time,
    currency: String,
}

impl Notifier {
    pub fn new(store: Store, summary_at: jiff::civil::Time, currency: &str) -> Notifier {
        Notifier {
            store,
            summary_at,
            currency: currency.to_owned(),
        }
    }

    /// One pass at `now_ms`; returns how many e-mails were queued.
    pub async fn tick(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut queued = 0;
        let tenants = self.store.tenants_with_supervisors().await?;
        for settings in &tenants {
            let tz = jiff::tz::TimeZone::get(&settings.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
            let now = jiff::Timestamp::from_millisecond(now_ms)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(tz);
            if now.time() < self.summary_at {
                continue;
            }
            let Ok(today) = now.start_of_day() else {
                continue;
            };
            let Ok(yesterday) = today.yesterday() else {
                continue;
            };
            let key = format!("daily-summary:{}:{}", settings.tenant_id, yesterday.date());
            let from = yesterday.timestamp().as_millisecond();
            let to = today.timestamp().as_millisecond();
            let (from, to) = (align(from), align(to));
            let summary =
                crate::analytics::summary(&self.store, &settings.tenant_id, from, to).await?;
            let name = self
                .store
                .tenant(&settings.tenant_id)
                .await?
                .map(|t| t.name)
                .unwrap_or_default();
            let (subject, html, text) = daily_summary(
                &name,
                &yesterday.date().to_string(),
                &summary,
                &self.currency,
            );
            queued += self
                .enqueue(
                    &settings.tenant_id,
                    key,
                    "daily_summary",
                    &settings.supervisor_emails,
                    subject,
                    html,
                    text,
                    now_ms,
                )
                .await?;
        }
        queued += self.message_notices(&tenants, now_ms).await?;
        queued += self.callback_notices(&tenants, now_ms).await?;
        Ok(queued)
    }

    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        tenant_id: &store::TenantId,
        key: String,
        kind: &str,
        to: &[String],
        subject: String,
        html: String,
        text: String,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let added = self
            .store
            .enqueue_mail(&NewMail {
                tenant_id: tenant_id.to_owned(),
                idempotency_key: key,
                kind: kind.to_owned(),
                to: to.to_vec(),
                subject,
                html,
                text,
                created_at: now_ms,
            })
            .await?;
        Ok(usize::from(matches!(added, Enqueued::Added(_))))
    }

    async fn message_notices(
        &self,
        tenants: &[store::TenantSettings],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let (at, id) = self.cursor(MESSAGES_CURSOR, now_ms).await?;
        let items = self.store.messages_after((at, &id), 100).await?;
        let mut queued = 0;
        for m in &items {
            if let Some(s) = tenants.iter().find(|s| s.tenant_id == m.tenant_id) {
                let (subject, html, text) = message_notice(
                    m.caller_number.as_deref(),
                    m.caller_name.as_deref(),
                    &m.text,
                );
                queued += self
                    .enqueue(
                        &m.tenant_id,
                        format!("message:{}", m.id),
                        "message_notice",
                        &s.supervisor_emails,
                        subject,
                        html,
                        text,
                        now_ms,
                    )
                    .await?;
            }
            self.store
                .set_mail_cursor(MESSAGES_CURSOR, m.created_at, &m.id)
                .await?;
        }
        Ok(queued)
    }

    async fn callback_notices(
        &self,
        tenants: &[store::TenantSettings],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let (at, id) = self.cursor(CALLBACKS_CURSOR, now_ms).await?;
        let items = self.store.callbacks_after((at, &id), 100).await?;
        let mut queued = 0;
        for c in &items {
            if let Some(s) = tenants.iter().find(|s| s.tenant_id == c.tenant_id) {
                let (subject, html, text) =
                    callback_notice(&c.number, c.preferred_time.as_deref(), c.reason.as_deref());
                queued += self
                    .enqueue(
                        &c.tenant_id,
                        format!("callback:{}", c.id),
                        "callback_notice",
                        &s.supervisor_emails,
                        subject,
                        html,
                        text,
                        now_ms,
                    )
                    .await?;
            }
            self.store
                .set_mail_cursor(CALLBACKS_CURSOR, c.created_at, &c.id)
                .await?;
        }
        Ok(queued)
    }

    /// A scan's cursor; the first run starts a day back rather than at the beginning of time.
    async fn cursor(&self, name: &str, now_ms: i64) -> Result<(i64, String), StoreError> {
        Ok(match self.store.mail_cursor(name).await? {
            Some(c) => c,
            None => (now_ms - 86_400_000, String::new()),
        })
    }

    /// Ticks every `every` until `stop` turns true.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.tick(crate::unix_ms_now()).await {
                tracing::warn!(error = %e, "queueing summaries and notices failed");
            }
        }
    }
}

/// Down to a quarter hour (zones with odd historical offsets).
fn align(ms: i64) -> i64 {
    ms.div_euclid(900_000) * 900_000
}
