//! Sharing a campaign's work between daemons: claims with leases, attempts, releases.
//!
//! **Invariant: a contact is dialled by at most one daemon at a time, and a number by at most
//! one call at a time.** A claim runs in one transaction that
//!
//! 1. locks the campaign row (PostgreSQL: `FOR UPDATE SKIP LOCKED` — a daemon finding it locked
//!    skips the campaign this round instead of queueing), counts the campaign's live claims
//!    against `max_concurrent` and hands out dial times from `next_dial_at` (global pacing);
//! 2. locks due contacts (`FOR UPDATE SKIP LOCKED`), expired claims first;
//! 3. ends contacts on the do-not-call list (`dnc`) and defers those the caller's rules say
//!    are outside their calling window;
//! 4. takes each remaining contact's number in `dialling_numbers` (an upsert that succeeds only
//!    when the number is free or its lease ran out) and marks the contact claimed by this node
//!    until `lease_until`.
//!
//! SQLite is single-node: the same statements run without the `FOR UPDATE` clauses inside a
//! `BEGIN IMMEDIATE` transaction, which serialises writers.
//!
//! A daemon renews its leases while it holds contacts; a killed daemon's leases run out and
//! the next claim takes its contacts again, marking the attempt it had started `lost`.
//! `UNIQUE (contact_id, seq)` on attempts makes a duplicated attempt impossible to store.

use sqlx::Row;

use super::{
    AttemptResult, CONTACT_COLUMNS, CampaignContact, CampaignSettings, CampaignStatus,
    ContactState, Disposition, contact_from_row,
};
use crate::{Backend, CallId, CampaignId, ContactId, Store, StoreError};

/// What to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub campaign_id: &'a CampaignId,
    /// The claiming daemon (`calls.node`).
    pub node: &'a str,
    pub now: i64,
    /// How long a claim holds without renewal.
    pub lease_ms: i64,
    /// Most contacts to claim (this daemon's own free capacity); the campaign's
    /// `max_concurrent` caps it further.
    pub max: u32,
    /// A contact whose number another call is dialling is looked at again this much later.
    pub number_busy_retry_ms: i64,
}

/// The caller's verdict on a due contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    Claim,
    /// Not now (outside its calling window): look at it again at `until` (unix ms).
    Defer {
        until: i64,
    },
}

/// A claimed contact and when to dial it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub contact: CampaignContact,
    /// The campaign's pacing slot for this call (unix ms).
    pub dial_at: i64,
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimReport {
    pub claimed: Vec<Claimed>,
    /// Contacts ended as `dnc`.
    pub dnc: u32,
    /// Contacts deferred by the caller's decision.
    pub deferred: u32,
    /// Contacts skipped because their number is being dialled by another call.
    pub number_busy: u32,
    /// Expired claims taken back (their daemon died); their open attempt is now `lost`.
    pub lost: u32,
    /// Another daemon was claiming from this campaign (PostgreSQL); try again shortly.
    pub contended: bool,
    /// The campaign is not running (or does not exist).
    pub not_running: bool,
    /// The campaign has no contact left to call: it was marked completed.
    pub completed: bool,
}

/// What becomes of a contact after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactNext {
    /// Finished with this disposition.
    Done(Disposition),
    /// Called again at `at` (unix ms).
    Retry { at: i64 },
}

/// The end of an attempt (see [`Store::finish_attempt`]).
#[derive(Debug, Clone)]
pub struct AttemptEnd<'a> {
    pub contact_id: &'a ContactId,
    pub node: &'a str,
    /// From [`Store::start_attempt`].
    pub seq: i64,
    pub now: i64,
    pub result: AttemptResult,
    pub call_id: Option<&'a CallId>,
    /// The call's stored end reason.
    pub end_reason: Option<&'a str>,
    /// e.g. `486 Busy Here`.
    pub detail: Option<&'a str>,
    /// The flow's outcome (`completed`).
    pub outcome: Option<&'a str>,
    pub next: ContactNext,
}

impl Store {
    /// Claims up to `req.max` due contacts of a running campaign for `req.node`; `decide`
    /// is asked about each due contact not on the do-not-call list. See the module docs.
    pub async fn claim_contacts(
        &self,
        req: &ClaimRequest<'_>,
        mut decide: impl FnMut(&CampaignContact) -> ClaimDecision,
    ) -> Result<ClaimReport, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut report = ClaimReport::default();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT status, settings, next_dial_at, tenant_id FROM campaigns WHERE id = $1{lock}"
        ))
        .bind(req.campaign_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Locked by another daemon's claim (PostgreSQL), or gone.
            report.contended = self.backend() == Backend::Postgres;
            report.not_running = !report.contended;
            return Ok(report);
        };
        let status: CampaignStatus = row.get::<String, _>(0).parse()?;
        if status != CampaignStatus::Running {
            report.not_running = true;
            return Ok(report);
        }
        let settings_text: String = row.get(1);
        let settings: CampaignSettings =
            serde_json::from_str(&settings_text).map_err(|_| StoreError::Corrupt {
                what: "campaign settings",
                value: settings_text,
            })?;
        let next_dial_at: i64 = row.get(2);
        let tenant_id: String = row.get(3);

        let live: i64 = sqlx::query(
            "SELECT COUNT(*) FROM campaign_contacts WHERE campaign_id = $1 \
             AND state = 'claimed' AND lease_until >= $2",
        )
        .bind(req.campaign_id.as_str())
        .bind(req.now)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let free = (i64::from(settings.max_concurrent) - live).clamp(0, i64::from(req.max));
        if free == 0 {
            tx.commit().await?;
            return Ok(report);
        }
        // Contacts deferred or ended as dnc do not use capacity, so look at more than `free`.
        let fetch = (free * 4 + 16).min(1000);
        let mut rows = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE campaign_id = $1 \
             AND state = 'claimed' AND lease_until < $2 ORDER BY lease_until, id LIMIT $3{lock}"
        ))
        .bind(req.campaign_id.as_str())
        .bind(req.now)
        .bind(fetch)
        .fetch_all(&mut *tx)
        .await?;
        // Two queries rather than one with OR: each walks the (campaign_id, state,
        // next_attempt_at) index in order, so the cost does not grow with the list.
        let room = fetch - rows.len() as i64;
        if room > 0 {
            rows.extend(
                sqlx::query(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE campaign_id = $1 \
                     AND state = 'pending' AND next_attempt_at <= $2 \
                     ORDER BY next_attempt_at, id LIMIT $3{lock}"
                ))
                .bind(req.campaign_id.as_str())
                .bind(req.now)
                .bind(room)
                .fetch_all(&mut *tx)
                .await?,
            );
        }
        let contacts = rows
            .iter()
            .map(contact_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if contacts.is_empty() {
            report.completed = complete_if_done(&mut tx, req.campaign_id, req.now).await?;
            tx.commit().await?;
            return Ok(report);
        }
        let on_dnc = dnc_among(&mut tx, &tenant_id, &contacts).await?;

        let interval_ms = if settings.calls_per_second > 0.0 {
            (1000.0 / settings.calls_per_second).round() as i64
        } else {
            0
        };
        let mut slot = next_dial_at.max(req.now);
        let mut claimed = 0;
        for mut contact in contacts {
            if contact.state == ContactState::Claimed {
                // Its daemon stopped renewing: whatever it had started is lost.
                sqlx::query(
                    "UPDATE campaign_attempts SET ended_at = $1, result = 'lost' \
                     WHERE contact_id = $2 AND ended_at IS NULL",
                )
                .bind(req.now)
                .bind(contact.id.as_str())
                .execute(&mut *tx)
                .await?;
                report.lost += 1;
            }
            if on_dnc.contains(&contact.phone) {
                set_contact(&mut tx, &contact.id, "done", Some("dnc"), None, req.now).await?;
                report.dnc += 1;
                continue;
            }
            if claimed == free {
                if contact.state == ContactState::Claimed {
                    set_contact(&mut tx, &contact.id, "pending", None, None, req.now).await?;
                }
                continue;
            }
            if let ClaimDecision::Defer { until } = decide(&contact) {
                set_contact(&mut tx, &contact.id, "pending", None, Some(until), req.now).await?;
                report.deferred += 1;
                continue;
            }
            let dial_at = slot;
            let lease_until = dial_at.max(req.now) + req.lease_ms;
            let took = sqlx::query(
                "INSERT INTO dialling_numbers (tenant_id, phone, contact_id, claimed_by, lease_until) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, phone) DO UPDATE \
                 SET contact_id = excluded.contact_id, claimed_by = excluded.claimed_by, \
                 lease_until = excluded.lease_until \
                 WHERE dialling_numbers.lease_until < $6 \
                 OR dialling_numbers.contact_id = excluded.contact_id",
            )
            .bind(&tenant_id)
            .bind(&contact.phone)
            .bind(contact.id.as_str())
            .bind(req.node)
            .bind(lease_until)
            .bind(req.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if took == 0 {
                let later = req.now + req.number_busy_retry_ms;
                set_contact(&mut tx, &contact.id, "pending", None, Some(later), req.now).await?;
                report.number_busy += 1;
                continue;
            }
            sqlx::query(
                "UPDATE campaign_contacts SET state = 'claimed', claimed_by = $1, \
                 lease_until = $2, dial_at = $3, updated_at = $4 WHERE id = $5",
            )
            .bind(req.node)
            .bind(lease_until)
            .bind(dial_at)
            .bind(req.now)
            .bind(contact.id.as_str())
            .execute(&mut *tx)
            .await?;
            contact.state = ContactState::Claimed;
            contact.claimed_by = Some(req.node.to_owned());
            contact.lease_until = Some(lease_until);
            contact.dial_at = Some(dial_at);
            contact.updated_at = req.now;
            report.claimed.push(Claimed { contact, dial_at });
            claimed += 1;
            slot += interval_ms;
        }
        if claimed > 0 {
            sqlx::query("UPDATE campaigns SET next_dial_at = $1 WHERE id = $2")
                .bind(slot)
                .bind(req.campaign_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if report.dnc > 0 {
            report.completed = complete_if_done(&mut tx, req.campaign_id, req.now).await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Records that `node` is placing a call for its claimed contact: returns the attempt's
    /// number (1, 2, …). [`StoreError::Conflict`] when the contact is no longer claimed by
    /// `node` (its lease ran out and another daemon took it): do not dial.
    pub async fn start_attempt(
        &self,
        contact_id: &ContactId,
        node: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE campaign_contacts SET attempts = attempts + 1, updated_at = $1 \
             WHERE id = $2 AND state = 'claimed' AND claimed_by = $3",
        )
        .bind(now)
        .bind(contact_id.as_str())
        .bind(node)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict {
                what: "contact claim",
            });
        }
        let row = sqlx::query("SELECT attempts, campaign_id FROM campaign_contacts WHERE id = $1")
            .bind(contact_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let seq: i64 = row.get(0);
        let campaign_id: String = row.get(1);
        sqlx::query(
            "INSERT INTO campaign_attempts (id, campaign_id, contact_id, seq, node, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(crate::new_id())
        .bind(&campaign_id)
        .bind(contact_id.as_str())
        .bind(seq)
        .bind(node)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_insert(e, "campaign attempt"))?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Records how an attempt went and what becomes of its contact, releases the claim and the
    /// number, and completes the campaign when nothing is left. A done contact that came from a
    /// callback and reached someone closes the callback. Returns false when the attempt had
    /// already been closed as `lost` (this daemon's lease ran out): then only the attempt's
    /// call is noted and the contact, which another daemon may hold now, is left alone.
    pub async fn finish_attempt(&self, end: &AttemptEnd<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let closed = sqlx::query(
            "UPDATE campaign_attempts SET ended_at = $1, result = $2, call_id = $3, \
             end_reason = $4, detail = $5 WHERE contact_id = $6 AND seq = $7 AND ended_at IS NULL",
        )
        .bind(end.now)
        .bind(end.result.as_str())
        .bind(end.call_id.map(CallId::as_str))
        .bind(end.end_reason)
        .bind(end.detail)
        .bind(end.contact_id.as_str())
        .bind(end.seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if closed == 0 {
            sqlx::query(
                "UPDATE campaign_attempts SET call_id = $1, end_reason = $2, detail = $3 \
                 WHERE contact_id = $4 AND seq = $5",
            )
            .bind(end.call_id.map(CallId::as_str))
            .bind(end.end_reason)
            .bind(end.detail)
            .bind(end.contact_id.as_str())
            .bind(end.seq)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
        let (state, disposition, next_at) = match end.next {
            ContactNext::Done(d) => ("done", Some(d), None),
            ContactNext::Retry { at } => ("pending", end.result.disposition(), Some(at)),
        };
        sqlx::query(
            "UPDATE campaign_contacts SET state = $1, disposition = COALESCE($2, disposition), \
             outcome = COALESCE($3, outcome), next_attempt_at = COALESCE($4, next_attempt_at), \
             claimed_by = NULL, lease_until = NULL, dial_at = NULL, \
             last_call_id = COALESCE($5, last_call_id), updated_at = $6 \
             WHERE id = $7 AND state = 'claimed' AND claimed_by = $8",
        )
        .bind(state)
        .bind(disposition.map(Disposition::as_str))
        .bind(end.outcome)
        .bind(next_at)
        .bind(end.call_id.map(CallId::as_str))
        .bind(end.now)
        .bind(end.contact_id.as_str())
        .bind(end.node)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM dialling_numbers WHERE contact_id = $1 AND claimed_by = $2")
            .bind(end.contact_id.as_str())
            .bind(end.node)
            .execute(&mut *tx)
            .await?;
        if let ContactNext::Done(d) = end.next {
            let row = sqlx::query(
                "SELECT campaign_id, callback_id, tenant_id FROM campaign_contacts WHERE id = $1",
            )
            .bind(end.contact_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let campaign_id = CampaignId::new(row.get::<String, _>(0));
            let callback_id: Option<String> = row.get(1);
            let tenant_id: String = row.get(2);
            if let Some(cb) = callback_id
                && matches!(d, Disposition::Answered | Disposition::Completed)
            {
                sqlx::query(
                    "UPDATE callbacks SET status = 'done', closed_at = $1 \
                     WHERE tenant_id = $2 AND id = $3 AND status = 'pending'",
                )
                .bind(end.now)
                .bind(&tenant_id)
                .bind(&cb)
                .execute(&mut *tx)
                .await?;
            }
            complete_if_done(&mut tx, &campaign_id, end.now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives back `node`'s claims on `contacts` that were never dialled (shutdown, a paused
    /// campaign): they become pending again, due as they were. Returns how many.
    pub async fn release_claims(
        &self,
        node: &str,
        contacts: &[ContactId],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut released = 0;
        for id in contacts {
            released += sqlx::query(
                "UPDATE campaign_contacts SET state = 'pending', claimed_by = NULL, \
                 lease_until = NULL, dial_at = NULL, updated_at = $1 \
                 WHERE id = $2 AND state = 'claimed' AND claimed_by = $3",
            )
            .bind(now)
            .bind(id.as_str())
            .bind(node)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM dialling_numbers WHERE contact_id = $1 AND claimed_by = $2")
                .bind(id.as_str())
                .bind(node)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// Gives back `node`'s claim on a contact that was not dialled and should wait until
    /// `at` (its calling window closed while it waited for the trunk). False when `node` did
    /// not hold it.
    pub async fn defer_claim(
        &self,
        node: &str,
        contact: &ContactId,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE campaign_contacts SET state = 'pending', next_attempt_at = $1, \
             claimed_by = NULL, lease_until = NULL, dial_at = NULL, updated_at = $2 \
             WHERE id = $3 AND state = 'claimed' AND claimed_by = $4",
        )
        .bind(at)
        .bind(now)
        .bind(contact.as_str())
        .bind(node)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM dialling_numbers WHERE contact_id = $1 AND claimed_by = $2")
            .bind(contact.as_str())
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    /// At start-up: every claim `node` still holds is from its previous run. Attempts it had
    /// started are closed as `lost`; the contacts become pending again. Returns how many
    /// contacts were released.
    pub async fn release_node_claims(&self, node: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE campaign_attempts SET ended_at = $1, result = 'lost' \
             WHERE node = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(node)
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "UPDATE campaign_contacts SET state = 'pending', claimed_by = NULL, \
             lease_until = NULL, dial_at = NULL, updated_at = $1 \
             WHERE claimed_by = $2 AND state = 'claimed'",
        )
        .bind(now)
        .bind(node)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM dialling_numbers WHERE claimed_by = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(released)
    }

    /// Extends `node`'s claims on `contacts` (and their numbers) to `until`; returns how many
    /// were still held. Claims not listed are left to expire: a claim the daemon lost track of
    /// (a write that failed) returns to the pool after its lease.
    pub async fn renew_leases(
        &self,
        node: &str,
        contacts: &[ContactId],
        until: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut renewed = 0;
        for chunk in contacts.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let list = list.join(", ");
            let sql = format!(
                "UPDATE campaign_contacts SET lease_until = $1 WHERE claimed_by = $2 \
                 AND state = 'claimed' AND id IN ({list})"
            );
            let mut q = sqlx::query(&sql).bind(until).bind(node);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            renewed += q.execute(&mut *tx).await?.rows_affected();
            let sql = format!(
                "UPDATE dialling_numbers SET lease_until = $1 WHERE claimed_by = $2 \
                 AND contact_id IN ({list})"
            );
            let mut q = sqlx::query(&sql).bind(until).bind(node);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(renewed)
    }
}

/// Sets a contact's state (releasing any claim), its disposition and next attempt time when
/// given.
async fn set_contact(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &ContactId,
    state: &str,
    disposition: Option<&str>,
    next_attempt_at: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE campaign_contacts SET state = $1, disposition = COALESCE($2, disposition), \
         next_attempt_at = COALESCE($3, next_attempt_at), claimed_by = NULL, \
         lease_until = NULL, dial_at = NULL, updated_at = $4 WHERE id = $5",
    )
    .bind(state)
    .bind(disposition)
    .bind(next_attempt_at)
    .bind(now)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    if state != "claimed" {
        sqlx::query("DELETE FROM dialling_numbers WHERE contact_id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Marks a running list campaign completed when none of its contacts is left to call.
async fn complete_if_done(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &CampaignId,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE campaigns SET status = 'completed', status_reason = NULL, updated_at = $1 \
         WHERE id = $2 AND status = 'running' AND kind = 'list' AND NOT EXISTS \
         (SELECT 1 FROM campaign_contacts WHERE campaign_id = $2 \
          AND state IN ('pending', 'claimed'))",
    )
    .bind(now)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The phones among `contacts` that are on the tenant's do-not-call list.
async fn dnc_among(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
    contacts: &[CampaignContact],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut listed = std::collections::HashSet::new();
    for chunk in contacts.chunks(500) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT phone FROM dnc_numbers WHERE tenant_id = $1 AND phone IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for c in chunk {
            q = q.bind(&c.phone);
        }
        for row in q.fetch_all(&mut **tx).await? {
            listed.insert(row.get::<String, _>(0));
        }
    }
    Ok(listed)
}
