//! Outbound campaigns: a campaign row (flow, trunk, settings, status), its contacts (one per
//! number, with a state and a disposition), every attempt placed for a contact, and the claim
//! protocol daemons use to share the work (see [`claim`](Store::claim_contacts)).
//!
//! The store keeps the data and its integrity (one transaction per creation, claims that two
//! daemons cannot both win, attempt numbers that cannot repeat); the rules — which contact is
//! inside its calling window, what to do after a busy line — are the agent's, passed in.

mod claim;
mod dnc;
mod types;

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

pub use claim::{AttemptEnd, ClaimDecision, ClaimReport, ClaimRequest, Claimed, ContactNext};
pub use dnc::{DncEntry, DncSource, NewDnc};
pub use types::{
    AttemptResult, CallingWindow, CampaignKind, CampaignSettings, CampaignStatus, ContactState,
    Disposition, FailurePause, RetryPolicy, RetryRule,
};

use crate::{Backend, CallId, CampaignId, ContactId, Store, StoreError, TenantId};

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: CampaignKind,
    pub flow: String,
    pub trunk: String,
    pub status: CampaignStatus,
    /// Why it is paused (by whom, or the failures that paused it).
    pub status_reason: Option<String>,
    pub settings: CampaignSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A campaign to create (with its contacts, see [`Store::create_campaign`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: CampaignKind,
    pub flow: String,
    pub trunk: String,
    pub settings: CampaignSettings,
    /// `Draft` (start it later) or `Running`.
    pub status: CampaignStatus,
    pub created_at: i64,
}

/// One number of a campaign.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CampaignContact {
    pub id: ContactId,
    pub campaign_id: CampaignId,
    pub tenant_id: TenantId,
    /// The CSV line it came from.
    pub line: Option<i64>,
    /// E.164.
    pub phone: String,
    pub name: Option<String>,
    /// IANA zone names, space separated (all must be inside a calling window).
    pub time_zone: String,
    /// Flow variables (a JSON object).
    pub variables: serde_json::Value,
    pub customer_id: Option<String>,
    pub callback_id: Option<String>,
    pub state: ContactState,
    pub disposition: Option<Disposition>,
    /// The flow's outcome (`completed` contacts).
    pub outcome: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_by: Option<String>,
    pub lease_until: Option<i64>,
    pub dial_at: Option<i64>,
    pub last_call_id: Option<CallId>,
    pub updated_at: i64,
}

/// A contact to add.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewContact {
    pub line: Option<i64>,
    /// E.164 (the caller normalises).
    pub phone: String,
    pub name: Option<String>,
    pub time_zone: String,
    pub variables: serde_json::Map<String, serde_json::Value>,
    pub customer_id: Option<String>,
    pub callback_id: Option<String>,
    /// Not before this time (unix ms); `None`: as soon as the campaign runs.
    pub not_before: Option<i64>,
}

/// How far a campaign has come.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CampaignProgress {
    pub total: i64,
    pub pending: i64,
    pub claimed: i64,
    pub done: i64,
    /// Calls placed so far.
    pub attempts: i64,
    /// Contacts per disposition (done ones, and pending ones waiting for a retry).
    pub dispositions: BTreeMap<String, i64>,
}

/// One attempt (call) for a contact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CampaignAttempt {
    pub id: String,
    pub contact_id: ContactId,
    pub seq: i64,
    pub node: String,
    pub call_id: Option<CallId>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub result: Option<AttemptResult>,
    pub end_reason: Option<String>,
    pub detail: Option<String>,
}

/// Rows per multi-row insert: 9 binds per contact, far below both engines' limits.
const CONTACT_CHUNK: usize = 500;

impl Store {
    /// Creates a campaign and its contacts in **one transaction**: either all of it exists
    /// afterwards or nothing does. A number twice in `contacts` is [`StoreError::Conflict`],
    /// as is a second campaign with the same name (or a second callbacks campaign) in a tenant.
    pub async fn create_campaign(
        &self,
        new: NewCampaign,
        contacts: &[NewContact],
    ) -> Result<Campaign, StoreError> {
        let campaign = Campaign {
            id: CampaignId::generate(),
            tenant_id: new.tenant_id,
            name: new.name,
            kind: new.kind,
            flow: new.flow,
            trunk: new.trunk,
            status: new.status,
            status_reason: None,
            settings: new.settings,
            created_at: new.created_at,
            updated_at: new.created_at,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, tenant_id, name, kind, flow, trunk, status, status_reason, \
             settings, next_dial_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $10)",
        )
        .bind(campaign.id.as_str())
        .bind(campaign.tenant_id.as_str())
        .bind(&campaign.name)
        .bind(campaign.kind.as_str())
        .bind(&campaign.flow)
        .bind(&campaign.trunk)
        .bind(campaign.status.as_str())
        .bind(settings_json(&campaign.settings))
        .bind(campaign.created_at)
        .bind(campaign.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_insert(e, "campaign"))?;
        insert_contacts(&mut tx, &campaign, contacts, campaign.created_at, false).await?;
        tx.commit().await?;
        Ok(campaign)
    }

    /// Adds contacts to an existing campaign; numbers (or callbacks) already in it are
    /// skipped. Returns how many were added.
    pub async fn add_contacts(
        &self,
        campaign: &Campaign,
        contacts: &[NewContact],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = insert_contacts(&mut tx, campaign, contacts, now, true).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// One campaign of a tenant.
    pub async fn campaign(
        &self,
        tenant_id: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    /// One campaign of a tenant by name.
    pub async fn campaign_by_name(
        &self,
        tenant_id: &TenantId,
        name: &str,
    ) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    /// A tenant's campaigns, newest first.
    pub async fn list_campaigns(&self, tenant_id: &TenantId) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(tenant_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// Every tenant's campaigns in `status` (the scheduler reads the running ones).
    pub async fn campaigns_with_status(
        &self,
        status: CampaignStatus,
    ) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = $1 ORDER BY created_at, id"
        ))
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// Moves a campaign to `to` (start: draft|paused → running; pause: running → paused) and
    /// returns it. A move the status does not allow (starting a completed campaign) is
    /// [`StoreError::Conflict`]; asking for the status it already has changes nothing.
    pub async fn set_campaign_status(
        &self,
        tenant_id: &TenantId,
        id: &CampaignId,
        to: CampaignStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<Campaign, StoreError> {
        let from: &[&str] = match to {
            CampaignStatus::Running => &["draft", "paused"],
            CampaignStatus::Paused => &["running"],
            CampaignStatus::Completed => &["running", "paused", "draft"],
            CampaignStatus::Draft => &[],
        };
        let current = self
            .campaign(tenant_id, id)
            .await?
            .ok_or(StoreError::NotFound { what: "campaign" })?;
        if current.status == to {
            return Ok(current);
        }
        if !from.contains(&current.status.as_str()) {
            return Err(StoreError::Conflict {
                what: "campaign status change",
            });
        }
        let done = sqlx::query(
            "UPDATE campaigns SET status = $1, status_reason = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND id = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(id.as_str())
        .bind(current.status.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Someone else changed it between the read and the write.
            return Err(StoreError::Conflict {
                what: "campaign status change",
            });
        }
        self.campaign(tenant_id, id)
            .await?
            .ok_or(StoreError::NotFound { what: "campaign" })
    }

    /// Pauses a running campaign on its own (e.g. too many failed calls), with the reason;
    /// false when it was not running.
    pub async fn pause_campaign(
        &self,
        id: &CampaignId,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaigns SET status = 'paused', status_reason = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'running'",
        )
        .bind(reason)
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Contact counts by state and disposition, and attempts so far.
    pub async fn campaign_progress(&self, id: &CampaignId) -> Result<CampaignProgress, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COALESCE(disposition, ''), COUNT(*), \
             CAST(COALESCE(SUM(attempts), 0) AS BIGINT) \
             FROM campaign_contacts WHERE campaign_id = $1 GROUP BY state, disposition",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut p = CampaignProgress::default();
        for r in rows {
            let state: String = r.get(0);
            let disposition: String = r.get(1);
            let count: i64 = r.get(2);
            let attempts: i64 = r.get(3);
            p.total += count;
            p.attempts += attempts;
            match state.parse::<ContactState>()? {
                ContactState::Pending => p.pending += count,
                ContactState::Claimed => p.claimed += count,
                ContactState::Done => p.done += count,
            }
            if !disposition.is_empty() {
                *p.dispositions.entry(disposition).or_default() += count;
            }
        }
        Ok(p)
    }

    /// A campaign's contacts in id order, `limit` at a time after `after`.
    pub async fn list_contacts(
        &self,
        tenant_id: &TenantId,
        campaign_id: &CampaignId,
        limit: u32,
        after: Option<&ContactId>,
    ) -> Result<Vec<CampaignContact>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE tenant_id = $1 \
             AND campaign_id = $2 AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        ))
        .bind(tenant_id.as_str())
        .bind(campaign_id.as_str())
        .bind(after.map(ContactId::as_str))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(contact_from_row).collect()
    }

    /// One contact of a tenant.
    pub async fn contact(
        &self,
        tenant_id: &TenantId,
        id: &ContactId,
    ) -> Result<Option<CampaignContact>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(contact_from_row).transpose()
    }

    /// A contact's attempts in order.
    pub async fn contact_attempts(
        &self,
        contact_id: &ContactId,
    ) -> Result<Vec<CampaignAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, contact_id, seq, node, call_id, started_at, ended_at, result, end_reason, \
             detail FROM campaign_attempts WHERE contact_id = $1 ORDER BY seq",
        )
        .bind(contact_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CampaignAttempt {
                    id: r.get(0),
                    contact_id: ContactId::new(r.get::<String, _>(1)),
                    seq: r.get(2),
                    node: r.get(3),
                    call_id: r.get::<Option<String>, _>(4).map(CallId::new),
                    started_at: r.get(5),
                    ended_at: r.get(6),
                    result: r
                        .get::<Option<String>, _>(7)
                        .map(|s| s.parse())
                        .transpose()?,
                    end_reason: r.get(8),
                    detail: r.get(9),
                })
            })
            .collect()
    }

    /// Pending callbacks of `tenant_id` that are not yet a contact of any campaign, oldest
    /// first (the callbacks campaign takes them in).
    pub async fn callbacks_to_enqueue(
        &self,
        tenant_id: &TenantId,
        limit: u32,
    ) -> Result<Vec<crate::Callback>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.id FROM callbacks b WHERE b.tenant_id = $1 AND b.status = 'pending' \
             AND NOT EXISTS (SELECT 1 FROM campaign_contacts c WHERE c.callback_id = b.id) \
             ORDER BY b.created_at, b.id LIMIT $2",
        )
        .bind(tenant_id.as_str())
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            if let Some(cb) = self.callback(tenant_id, &id).await? {
                out.push(cb);
            }
        }
        Ok(out)
    }

    /// Begins a write transaction. SQLite starts it `IMMEDIATE` (the write lock taken up
    /// front), so a transaction that reads and then writes cannot fail half-way with
    /// SQLITE_BUSY because another connection wrote in between.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

async fn insert_contacts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    campaign: &Campaign,
    contacts: &[NewContact],
    now: i64,
    skip_existing: bool,
) -> Result<u64, StoreError> {
    let mut added = 0;
    for chunk in contacts.chunks(CONTACT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO campaign_contacts (id, campaign_id, tenant_id, line, phone, name, \
             time_zone, variables, customer_id, callback_id, state, attempts, next_attempt_at, \
             updated_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 9;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, $1, $2, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, $3)",
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11,
                b + 12,
            ));
        }
        if skip_existing {
            sql.push_str(" ON CONFLICT DO NOTHING");
        }
        let mut q = sqlx::query(&sql)
            .bind(campaign.id.as_str())
            .bind(campaign.tenant_id.as_str())
            .bind(now);
        for c in chunk {
            q = q
                .bind(ContactId::generate().into_string())
                .bind(c.line)
                .bind(&c.phone)
                .bind(&c.name)
                .bind(&c.time_zone)
                .bind(serde_json::Value::Object(c.variables.clone()).to_string())
                .bind(&c.customer_id)
                .bind(&c.callback_id)
                .bind(c.not_before.unwrap_or(now));
        }
        let done = q
            .execute(&mut **tx)
            .await
            .map_err(|e| StoreError::from_insert(e, "campaign contact"))?;
        added += done.rows_affected();
    }
    Ok(added)
}

fn settings_json(settings: &CampaignSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, kind, flow, trunk, status, \
     status_reason, settings, created_at, updated_at";

pub(crate) fn campaign_from_row(r: &AnyRow) -> Result<Campaign, StoreError> {
    let settings: String = r.get(8);
    Ok(Campaign {
        id: CampaignId::new(r.get::<String, _>(0)),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        name: r.get(2),
        kind: r.get::<String, _>(3).parse()?,
        flow: r.get(4),
        trunk: r.get(5),
        status: r.get::<String, _>(6).parse()?,
        status_reason: r.get(7),
        settings: serde_json::from_str(&settings).map_err(|_| StoreError::Corrupt {
            what: "campaign settings",
            value: settings,
        })?,
        created_at: r.get(9),
        updated_at: r.get(10),
    })
}

pub(crate) const CONTACT_COLUMNS: &str = "id, campaign_id, tenant_id, line, phone, name, \
     time_zone, variables, customer_id, callback_id, state, disposition, outcome, attempts, \
     next_attempt_at, claimed_by, lease_until, dial_at, last_call_id, updated_at";

pub(crate) fn contact_from_row(r: &AnyRow) -> Result<CampaignContact, StoreError> {
    let variables: String = r.get(7);
    Ok(CampaignContact {
        id: ContactId::new(r.get::<String, _>(0)),
        campaign_id: CampaignId::new(r.get::<String, _>(1)),
        tenant_id: TenantId::new(r.get::<String, _>(2)),
        line: r.get(3),
        phone: r.get(4),
        name: r.get(5),
        time_zone: r.get(6),
        variables: serde_json::from_str(&variables).map_err(|_| StoreError::Corrupt {
            what: "contact variables",
            value: variables,
        })?,
        customer_id: r.get(8),
        callback_id: r.get(9),
        state: r.get::<String, _>(10).parse()?,
        disposition: r
            .get::<Option<String>, _>(11)
            .map(|s| s.parse())
            .transpose()?,
        outcome: r.get(12),
        attempts: r.get(13),
        next_attempt_at: r.get(14),
        claimed_by: r.get(15),
        lease_until: r.get(16),
        dial_at: r.get(17),
        last_call_id: r.get::<Option<String>, _>(18).map(CallId::new),
        updated_at: r.get(19),
    })
}

/// A customer of the cache to call, with the number chosen for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerToCall {
    pub customer_id: String,
    pub name: String,
    pub balance_minor: i64,
    pub currency: String,
    /// E.164: the customer's mobile number if they have one, else work, home, other.
    pub phone: String,
}

impl Store {
    /// A tenant's customers owing at least `min_balance_minor` (in `currency` when given),
    /// each with one number; a number shared by several customers goes to the first.
    pub async fn customers_to_call(
        &self,
        tenant_id: &TenantId,
        min_balance_minor: i64,
        currency: Option<&str>,
    ) -> Result<Vec<CustomerToCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.balance_minor, c.currency, p.e164, p.kind FROM customers c \
             JOIN customer_phones p ON p.tenant_id = c.tenant_id AND p.customer_id = c.id \
             WHERE c.tenant_id = $1 AND c.balance_minor >= $2 AND ($3 IS NULL OR c.currency = $3) \
             ORDER BY c.id, p.e164",
        )
        .bind(tenant_id.as_str())
        .bind(min_balance_minor)
        .bind(currency)
        .fetch_all(&self.pool)
        .await?;
        let rank = |kind: &str| match kind {
            "mobile" => 0,
            "work" => 1,
            "home" => 2,
            _ => 3,
        };
        let mut out: Vec<(CustomerToCall, u8)> = Vec::new();
        for r in rows {
            let id: String = r.get(0);
            let kind: String = r.get(5);
            let candidate = CustomerToCall {
                customer_id: id,
                name: r.get(1),
                balance_minor: r.get(2),
                currency: r.get(3),
                phone: r.get(4),
            };
            match out.last_mut() {
                Some((last, best)) if last.customer_id == candidate.customer_id => {
                    if rank(&kind) < *best {
                        *last = candidate;
                        *best = rank(&kind);
                    }
                }
                _ => out.push((candidate, rank(&kind))),
            }
        }
        let mut seen = std::collections::HashSet::new();
        Ok(out
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| seen.insert(c.phone.clone()))
            .collect())
    }
}
