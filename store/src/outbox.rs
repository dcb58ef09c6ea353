//! The mail outbox: e-mails to send, claimed by workers with a lease, retried, never lost.
//!
//! One row per logical e-mail, unique by `idempotency_key` (enqueueing twice is a no-op). A
//! worker claims due rows with a conditional UPDATE (the row must still be unleased or its
//! lease expired), so on PostgreSQL several daemons never send the same row at once; the key
//! is also sent to the provider, which drops a repeat after a lost response.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, TenantId, new_id};

/// An e-mail to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub tenant_id: TenantId,
    pub idempotency_key: String,
    /// `daily_summary`, `message_notice`, `callback_notice`, `payment_link`.
    pub kind: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub created_at: i64,
}

/// A row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: String,
    pub tenant_id: TenantId,
    pub idempotency_key: String,
    pub kind: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Whether [`Store::enqueue_mail`] added a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Added(String),
    /// A row with this idempotency key exists already.
    Exists,
}

const MAIL_COLUMNS: &str = "id, tenant_id, idempotency_key, kind, recipients, subject, html, \
     text_body, status, attempts, next_attempt_at, last_error, provider_id, created_at, sent_at";

fn mail_from_row(r: &AnyRow) -> OutboxMail {
    let to: String = r.get(4);
    OutboxMail {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        idempotency_key: r.get(2),
        kind: r.get(3),
        to: serde_json::from_str(&to).unwrap_or_default(),
        subject: r.get(5),
        html: r.get(6),
        text: r.get(7),
        status: r.get(8),
        attempts: r.get(9),
        next_attempt_at: r.get(10),
        last_error: r.get(11),
        provider_id: r.get(12),
        created_at: r.get(13),
        sent_at: r.get(14),
    }
}

impl Store {
    /// Adds an e-mail, due now; an existing idempotency key leaves the outbox unchanged.
    pub async fn enqueue_mail(&self, mail: &NewMail) -> Result<Enqueued, StoreError> {
        let id = new_id();
        let done = sqlx::query(
            "INSERT INTO mail_outbox (id, tenant_id, idempotency_key, kind, recipients, subject, \
             html, text_body, status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&id)
        .bind(mail.tenant_id.as_str())
        .bind(&mail.idempotency_key)
        .bind(&mail.kind)
        .bind(serde_json::to_string(&mail.to).unwrap_or_default())
        .bind(&mail.subject)
        .bind(&mail.html)
        .bind(&mail.text)
        .bind(mail.created_at)
        .execute(&self.pool)
        .await?;
        Ok(if done.rows_affected() == 1 {
            Enqueued::Added(id)
        } else {
            Enqueued::Exists
        })
    }

    /// Claims up to `limit` due rows for `owner` until `now_ms + lease_ms`, counting an attempt
    /// on each. Rows leased by another live worker are skipped.
    pub async fn claim_mail(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMail>, StoreError> {
        let candidates = sqlx::query(
            "SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for c in candidates {
            let id: String = c.get(0);
            let done = sqlx::query(
                "UPDATE mail_outbox SET lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1 WHERE id = $3 AND status = 'pending' \
                 AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(&id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1
                && let Some(mail) = self.mail(&id).await?
            {
                claimed.push(mail);
            }
        }
        Ok(claimed)
    }

    /// Claims row `id` for `owner` if it is pending and not leased by a live worker.
    pub async fn claim_mail_row(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<OutboxMail>, StoreError> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1 WHERE id = $3 AND status = 'pending' \
             AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(owner)
        .bind(now_ms + lease_ms)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.mail(id).await
    }

    /// One outbox row.
    pub async fn mail(&self, id: &str) -> Result<Option<OutboxMail>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(mail_from_row))
    }

    /// A tenant's outbox, newest first.
    pub async fn list_mail(
        &self,
        tenant_id: &TenantId,
        limit: u32,
    ) -> Result<Vec<OutboxMail>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id.as_str())
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(mail_from_row).collect())
    }

    /// Marks a claimed row sent (only while `owner` still holds it).
    pub async fn mark_mail_sent(
        &self,
        id: &str,
        owner: &str,
        provider_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET status = 'sent', provider_id = $1, sent_at = $2, \
             lease_owner = NULL, lease_until = NULL, last_error = NULL \
             WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
        )
        .bind(provider_id)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases a claimed row for another try at `next_attempt_at`; `uncount` takes back the
    /// attempt counted at claim (rate limits are not failures).
    pub async fn retry_mail_later(
        &self,
        id: &str,
        owner: &str,
        next_attempt_at: i64,
        error: &str,
        uncount: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, \
             lease_until = NULL, attempts = attempts - $3 \
             WHERE id = $4 AND lease_owner = $5 AND status = 'pending'",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(i64::from(uncount))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a claimed row up for good.
    pub async fn fail_mail(&self, id: &str, owner: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET status = 'failed', last_error = $1, lease_owner = NULL, \
             lease_until = NULL WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
        )
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Where a scan named `name` stopped: `(created_at, id)` of the last item handled.
    pub async fn mail_cursor(&self, name: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT created_at, item_id FROM mail_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Moves a scan's cursor.
    pub async fn set_mail_cursor(
        &self,
        name: &str,
        created_at: i64,
        item_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mail_cursors (name, created_at, item_id) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at, \
             item_id = excluded.item_id",
        )
        .bind(name)
        .bind(created_at)
        .bind(item_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Messages of every tenant created after `(created_at, id)`, oldest first.
    pub async fn messages_after(
        &self,
        after: (i64, &str),
        limit: u32,
    ) -> Result<Vec<crate::Message>, StoreError> {
        let ids = sqlx::query(
            "SELECT tenant_id, id FROM messages WHERE created_at > $1 OR (created_at = $1 AND id > $2) \
             ORDER BY created_at, id LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in ids {
            if let Some(m) = self
                .message(&r.get::<TenantId, _>(0), &r.get::<String, _>(1))
                .await?
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Callbacks of every tenant created after `(created_at, id)`, oldest first.
    pub async fn callbacks_after(
        &self,
        after: (i64, &str),
        limit: u32,
    ) -> Result<Vec<crate::Callback>, StoreError> {
        let ids = sqlx::query(
            "SELECT tenant_id, id FROM callbacks WHERE created_at > $1 OR (created_at = $1 AND id > $2) \
             ORDER BY created_at, id LIMIT $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in ids {
            if let Some(c) = self
                .callback(&r.get::<TenantId, _>(0), &r.get::<String, _>(1))
                .await?
            {
                out.push(c);
            }
        }
        Ok(out)
    }
}
