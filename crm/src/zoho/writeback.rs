//! Call write-back: each ended call with an identified CRM customer becomes a CRM Calls
//! record, through the durable outbox (`zoho_outbox`).
//!
//! [`enqueue_call_log`] runs when a call has ended: it reads the call, its turns and the
//! customer its caller-ID lookup identified, and queues the request body. It only touches the
//! database, never Zoho, so it cannot hold a call up. [`Zoho::process_outbox`] sends what is
//! due: success marks the row sent with the new record's id; 429, 5xx, network errors and token
//! trouble retry with backoff; a refusal (a 4xx, or a per-record `"status": "error"`) marks the
//! row failed with Zoho's code and message.
//!
//! The body (Kaizen #38, https://help.zoho.com/portal/en/community/topic/kaizen-38-calls-api):
//! `{"data": [{"Subject", "Call_Type": "Inbound"|"Outbound"|"Missed", "Call_Start_Time":
//! "2026-12-05T10:15:00+00:00", "Call_Duration": "mm:ss", "Description", "Who_Id": {"id"}}]}`
//! for a contact; a lead goes in `What_Id` with `"$se_module": "Leads"` (Who_Id takes contacts
//! only).

use std::time::Duration;

use serde_json::{Value, json};
use store::{Call, CallDirection, NewOutboxItem, OutboxItem, Store, StoreError, ZohoStatus};

use super::records::Module;
use super::sync::map::parse_crm_external_id;
use super::{RetryPolicy, Zoho, ZohoError, time};

/// The outbox row kind for a CRM Calls record.
pub const CRM_CALL: &str = "crm_call";
/// Zoho's limit on a textarea such as `Description`.
const DESCRIPTION_MAX_CHARS: usize = 32_000;

/// What [`enqueue_call_log`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnqueueOutcome {
    /// A row was queued.
    Queued,
    /// A row for this call exists already.
    AlreadyQueued,
    /// Nothing to write back, and why.
    Skipped(SkipReason),
}

/// Why a call is not written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    NoSuchCall,
    NotEnded,
    ZohoNotConnected,
    NoIdentifiedCustomer,
    CustomerGone,
    /// The customer did not come from Zoho CRM (a CSV import, or Books only).
    NotACrmCustomer,
}

/// Why the write-back could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteBackError {
    #[error("cannot queue the call log: {0}")]
    Store(#[from] StoreError),
}

/// Queues the CRM call log of an ended call (see the module docs). Safe to call more than
/// once per call.
pub async fn enqueue_call_log(
    store: &Store,
    tenant_id: &store::TenantId,
    call_id: &store::CallId,
) -> Result<EnqueueOutcome, WriteBackError> {
    let skip = |r| Ok(EnqueueOutcome::Skipped(r));
    let Some(call) = store.get_call(tenant_id, call_id).await? else {
        return skip(SkipReason::NoSuchCall);
    };
    let Some(ended_at) = call.ended_at else {
        return skip(SkipReason::NotEnded);
    };
    let connected = store
        .zoho_connection(tenant_id)
        .await?
        .is_some_and(|c| c.status == ZohoStatus::Connected);
    if !connected {
        return skip(SkipReason::ZohoNotConnected);
    }
    let Some(customer_id) = store.call_customer(tenant_id, call_id).await? else {
        return skip(SkipReason::NoIdentifiedCustomer);
    };
    let Some(customer) = store.customer(tenant_id, &customer_id).await? else {
        return skip(SkipReason::CustomerGone);
    };
    let Some((module, record_id)) = parse_crm_external_id(&customer.external_id) else {
        return skip(SkipReason::NotACrmCustomer);
    };
    let turns = store.list_turns(call_id).await?;
    let payload = call_record(&call, ended_at, &customer.name, module, record_id, &turns);
    let queued = store
        .enqueue_outbox(&NewOutboxItem {
            tenant_id: tenant_id.to_owned(),
            call_id: call_id.to_owned(),
            kind: CRM_CALL.to_owned(),
            payload,
            created_at: ended_at,
        })
        .await?;
    Ok(if queued {
        EnqueueOutcome::Queued
    } else {
        EnqueueOutcome::AlreadyQueued
    })
}

/// [`enqueue_call_log`] on its own task, logging the outcome: for the call pipeline, which
/// must not wait for it.
pub fn spawn_call_log(store: &Store, tenant_id: &store::TenantId, call_id: &store::CallId) {
    let (store, tenant_id, call_id) = (store.clone(), tenant_id.to_owned(), call_id.to_owned());
    tokio::spawn(async move {
        match enqueue_call_log(&store, &tenant_id, &call_id).await {
            Ok(EnqueueOutcome::Queued) => tracing::debug!(%call_id, "zoho call log queued"),
            Ok(outcome) => tracing::trace!(%call_id, ?outcome, "no zoho call log"),
            Err(e) => tracing::warn!(%call_id, error = %e, "zoho call log not queued"),
        }
    });
}

/// The request body for one call.
fn call_record(
    call: &Call,
    ended_at: i64,
    customer_name: &str,
    module: Module,
    record_id: &str,
    turns: &[store::Turn],
) -> Value {
    let answered = call.answered_at;
    let (call_type, direction) = match (call.direction, answered) {
        (CallDirection::Inbound, Some(_)) => ("Inbound", "Inbound"),
        (CallDirection::Inbound, None) => ("Missed", "Missed"),
        (CallDirection::Outbound, _) => ("Outbound", "Outbound"),
    };
    let start = answered.unwrap_or(call.started_at);
    let duration = answered.map_or(0, |a| ended_at - a);
    let mut record = json!({
        "Subject": format!("{direction} call with {customer_name} (voice agent)"),
        "Call_Type": call_type,
        "Call_Start_Time": time::format_ms(start),
        "Description": summary(call, turns),
    });
    if call_type != "Missed" {
        record["Call_Duration"] = json!(time::duration_mm_ss(duration));
    }
    match module {
        Module::Contacts => record["Who_Id"] = json!({ "id": record_id }),
        Module::Leads => {
            record["What_Id"] = json!({ "id": record_id });
            record["$se_module"] = json!("Leads");
        }
    }
    json!({ "data": [record] })
}

/// What was said, turn by turn, under a line on how the call went; cut to Zoho's limit.
fn summary(call: &Call, turns: &[store::Turn]) -> String {
    let mut text = format!(
        "{} call, flow {}, ended: {}. {} caller turns.\n",
        match call.direction {
            CallDirection::Inbound => "Inbound",
            CallDirection::Outbound => "Outbound",
        },
        call.flow.as_deref().unwrap_or("-"),
        call.end_reason
            .as_ref()
            .map_or("unknown", store::EndReason::as_str),
        turns.iter().filter(|t| t.caller_text.is_some()).count(),
    );
    for t in turns {
        if let Some(said) = t.caller_text.as_deref().filter(|s| !s.trim().is_empty()) {
            text.push_str(&format!("Caller: {}\n", said.trim()));
        }
        if let Some(reply) = t.agent_text.as_deref().filter(|s| !s.trim().is_empty()) {
            let cut = if t.interrupted { " [interrupted]" } else { "" };
            text.push_str(&format!("Agent: {}{cut}\n", reply.trim()));
        }
    }
    if text.chars().count() > DESCRIPTION_MAX_CHARS {
        text = text.chars().take(DESCRIPTION_MAX_CHARS - 1).collect();
        text.push('…');
    }
    text
}

/// What one [`Zoho::process_outbox`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxPass {
    pub sent: u32,
    pub retried: u32,
    pub failed: u32,
}

impl OutboxPass {
    pub fn handled(&self) -> u32 {
        self.sent + self.retried + self.failed
    }
}

enum Verdict {
    Sent(Option<String>),
    Retry(String, Option<Duration>),
    Fail(String),
}

impl Zoho {
    /// Claims up to `limit` due outbox rows for `owner` and sends them, one HTTP try each.
    pub async fn process_outbox(&self, owner: &str, limit: u32) -> Result<OutboxPass, ZohoError> {
        let store = self.store();
        let cfg = self.config();
        let lease = cfg.outbox_lease.as_millis() as i64;
        let items = store.claim_outbox(owner, self.now(), lease, limit).await?;
        let mut pass = OutboxPass::default();
        for item in items {
            let verdict = self.send_item(&item).await;
            let now = self.now();
            match verdict {
                Verdict::Sent(remote_id) => {
                    store
                        .complete_outbox(&item.id, owner, remote_id.as_deref(), now)
                        .await?;
                    pass.sent += 1;
                    tracing::debug!(call_id = %item.call_id, "zoho call log sent");
                }
                Verdict::Retry(error, retry_after) => {
                    let attempt = u32::try_from(item.attempts).unwrap_or(u32::MAX);
                    let wait = cfg.outbox_backoff.delay(attempt, retry_after);
                    store
                        .retry_outbox(&item.id, owner, now + wait.as_millis() as i64, &error, now)
                        .await?;
                    pass.retried += 1;
                    tracing::debug!(call_id = %item.call_id, attempt, error, "zoho call log will be retried");
                }
                Verdict::Fail(error) => {
                    store.fail_outbox(&item.id, owner, &error, now).await?;
                    pass.failed += 1;
                    tracing::warn!(call_id = %item.call_id, error, "zoho refused the call log");
                }
            }
        }
        Ok(pass)
    }

    async fn send_item(&self, item: &OutboxItem) -> Verdict {
        if item.kind != CRM_CALL {
            return Verdict::Fail(format!("unknown outbox kind {:?}", item.kind));
        }
        let once = RetryPolicy {
            attempts: 1,
            ..self.config().retry
        };
        let response = match self
            .insert_calls(&item.tenant_id, &item.payload, once)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let retry_after = match &e {
                    ZohoError::RefreshLimited { retry_after } => Some(*retry_after),
                    // Reconnecting takes an operator: check back rarely.
                    ZohoError::Disconnected { .. } | ZohoError::RefreshRevoked { .. } => {
                        Some(Duration::from_secs(900))
                    }
                    _ => None,
                };
                return Verdict::Retry(e.to_string(), retry_after);
            }
        };
        let status = response.status;
        let first = response
            .json::<Value>("crm calls insert")
            .ok()
            .and_then(|v| v.get("data").and_then(|d| d.get(0)).cloned());
        let record_status = first
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str);
        match (status, record_status) {
            (200..=299, Some("success")) => Verdict::Sent(
                first
                    .as_ref()
                    .and_then(|r| r.pointer("/details/id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            (429, _) | (500.., _) => {
                let retry_after = response.retry_after;
                let (code, message) = response.error_parts();
                Verdict::Retry(format!("HTTP {status} {code}: {message}"), retry_after)
            }
            // 401 after the API layer's refresh: a token problem, not the record's.
            (401, _) => {
                let (code, message) = response.error_parts();
                Verdict::Retry(format!("HTTP 401 {code}: {message}"), None)
            }
            _ => {
                let (code, message) = response.error_parts();
                Verdict::Fail(format!("HTTP {status} {code}: {message}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(answered: Option<i64>) -> Call {
        Call {
            id: store::CallId::new("c1"),
            tenant_id: store::TenantId::new("t"),
            direction: CallDirection::Inbound,
            from_number: "+15550142000".into(),
            to_number: "+15550100".into(),
            sip_call_id: None,
            flow: Some("receptionist".into()),
            flow_version: None,
            node: "n".into(),
            status: store::CallStatus::Ended,
            started_at: 1_764_929_700_000,
            answered_at: answered,
            ended_at: Some(1_764_929_765_000),
            end_reason: Some(store::EndReason::CallerHangup),
            transport: store::CallTransport::Sip,
        }
    }

    #[test]
    fn call_records_follow_the_calls_api() {
        let turns = vec![store::Turn {
            call_id: store::CallId::new("c1"),
            seq: 1,
            started_at: 0,
            caller_text: Some("What is my balance?".into()),
            agent_text: Some("Your balance is $142.50.".into()),
            interrupted: false,
            latency: store::TurnLatency::default(),
        }];
        let body = call_record(
            &call(Some(1_764_929_701_000)),
            1_764_929_765_000,
            "Jane Doe",
            Module::Contacts,
            "42",
            &turns,
        );
        let r = &body["data"][0];
        assert_eq!(r["Call_Type"], "Inbound");
        assert_eq!(r["Call_Start_Time"], "2025-12-05T10:15:01+00:00");
        assert_eq!(r["Call_Duration"], "01:04");
        assert_eq!(r["Who_Id"]["id"], "42");
        assert!(r.get("$se_module").is_none());
        let d = r["Description"].as_str().unwrap();
        assert!(d.contains("Caller: What is my balance?") && d.contains("Agent: Your balance"));

        let lead = call_record(
            &call(None),
            1_764_929_765_000,
            "Bob",
            Module::Leads,
            "7",
            &[],
        );
        let r = &lead["data"][0];
        assert_eq!(r["Call_Type"], "Missed");
        assert!(r.get("Call_Duration").is_none());
        assert_eq!(
            (r["What_Id"]["id"].as_str(), r["$se_module"].as_str()),
            (Some("7"), Some("Leads"))
        );
    }
}
