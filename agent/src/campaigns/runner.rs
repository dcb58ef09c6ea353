//! The thin async task around the [`Scheduler`]: reads the clock, carries the scheduler's
//! outputs to the store and the SIP stack (one task per call, `calls::run_outbound`), and feeds
//! back what happened. Every decision is the scheduler's.
//!
//! Shutdown: on `stop` the scheduler claims nothing more and releases the claims it has not
//! dialled; calls in progress go on for up to `grace`, then are hung up (`daemon_shutdown`)
//! and recorded as interrupted attempts (called again later, by this or another daemon). The
//! task returns once every call it placed is recorded.

use std::time::Duration;

use serde_json::json;
use sip::driver::SipHandle;
use store::{
    AttemptEnd, CampaignKind, CampaignStatus, ClaimRequest, ContactId, EventKind, NewContact,
    Store, StoreError,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::outcome::classify;
use super::scheduler::{CallEnd, Dial, Finish, Input, Output, Scheduler, SchedulerConfig};
use crate::calls::{CallRuntime, OutboundRequest, run_outbound};
use crate::clock::now_ms;

/// Callbacks taken into a callbacks campaign per refresh.
const CALLBACKS_PER_REFRESH: u32 = 200;
/// Calls that ended, waiting for the loop (a full queue makes call tasks wait, never drops).
const ENDED_QUEUE: usize = 256;

/// Runs a daemon's share of the campaigns.
pub struct CampaignRunner {
    rt: CallRuntime,
    sip: SipHandle,
    cfg: SchedulerConfig,
    phones: crm::PhoneNormalizer,
}

impl CampaignRunner {
    /// A runner placing calls with `rt` through `sip`.
    pub fn new(
        rt: CallRuntime,
        sip: SipHandle,
        cfg: SchedulerConfig,
        phones: crm::PhoneNormalizer,
    ) -> Self {
        Self {
            rt,
            sip,
            cfg,
            phones,
        }
    }

    /// The scheduler's settings from `[campaigns]` for this node.
    pub fn scheduler_config(cfg: &crate::config::Config) -> SchedulerConfig {
        let c = &cfg.campaigns;
        SchedulerConfig {
            node: cfg.node_id(),
            lease_ms: i64::try_from(c.lease_secs.max(1) * 1000).unwrap_or(60_000),
            poll_ms: i64::try_from(c.poll_ms.max(10)).unwrap_or(1000),
            refresh_ms: 5_000,
            claim_batch: c.claim_batch.max(1),
            number_busy_retry_ms: 30_000,
            trunk_backoff_base_ms: i64::try_from(c.trunk_backoff_base_ms).unwrap_or(1000),
            trunk_backoff_max_ms: i64::try_from(c.trunk_backoff_max_secs * 1000).unwrap_or(300_000),
            default_trunk_limits: super::TrunkLimits {
                max_concurrent: c.trunk_max_concurrent.max(1),
                calls_per_second: c.trunk_calls_per_second,
            },
            trunk_limits: c
                .trunk_limits
                .iter()
                .map(|l| {
                    (
                        l.trunk.clone(),
                        super::TrunkLimits {
                            max_concurrent: l.max_concurrent.max(1),
                            calls_per_second: l.calls_per_second,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Runs until `stop` fires and every call placed is over (see the module docs).
    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let store = self.rt.store.clone();
        let node = self.cfg.node.clone();
        match store.release_node_claims(&node, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "released campaign claims left by a previous run"
            ),
            Err(e) => tracing::error!(error = %e, "cannot release this node's old campaign claims"),
        }
        let mut sched = Scheduler::new(self.cfg.clone(), now_ms());
        let (ended_tx, mut ended_rx) = mpsc::channel::<(ContactId, CallEnd)>(ENDED_QUEUE);
        let (hangup_tx, hangup_rx) = watch::channel(false);
        let mut calls = JoinSet::new();
        let mut stopping = false;
        let mut hang_up_at: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        loop {
            while let Some(out) = sched.poll_output() {
                match out {
                    Output::Dial(dial) => {
                        let task = CallTask {
                            rt: self.rt.clone(),
                            sip: self.sip.clone(),
                            node: node.clone(),
                            ended: ended_tx.clone(),
                            hangup: hangup_rx.clone(),
                        };
                        calls.spawn(task.run(*dial));
                    }
                    other => self.execute(&mut sched, other).await,
                }
            }
            if sched.is_finished() {
                break;
            }
            let timer = sched
                .poll_timeout()
                .map(|(at, _)| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                Some((contact_id, ended)) = ended_rx.recv() => {
                    sched.handle(now_ms(), Input::CallEnded { contact_id, ended });
                }
                () = tokio::time::sleep(timer) => sched.handle_timeout(now_ms()),
                () = stopped(&mut stop), if !stopping => {
                    stopping = true;
                    hang_up_at = Some(Instant::now() + grace);
                    tracing::info!(calls = sched.in_flight(), "campaigns: no new calls; finishing calls in progress");
                    sched.handle(now_ms(), Input::Stop);
                }
                () = sleep_until(hang_up_at), if hang_up_at.is_some() && give_up_at.is_none() => {
                    tracing::warn!(calls = sched.in_flight(), "campaigns: grace period over; hanging up");
                    let _ = hangup_tx.send(true);
                    give_up_at = Some(Instant::now() + Duration::from_secs(10));
                }
                () = sleep_until(give_up_at), if give_up_at.is_some() => {
                    tracing::error!(calls = sched.in_flight(), "campaigns: calls did not end; their claims return after the lease");
                    break;
                }
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
            }
        }
        calls.abort_all();
    }

    /// Carries out one output (everything but dialling).
    async fn execute(&self, sched: &mut Scheduler, out: Output) {
        let store = &self.rt.store;
        let node = self.cfg.node.as_str();
        match out {
            Output::RefreshCampaigns => match self.running_campaigns().await {
                Ok(list) => sched.handle(now_ms(), Input::Campaigns(list)),
                Err(e) => tracing::warn!(error = %e, "cannot read running campaigns"),
            },
            Output::Claim { campaign_id, max } => {
                let now = now_ms();
                let req = ClaimRequest {
                    campaign_id: &campaign_id,
                    node,
                    now,
                    lease_ms: self.cfg.lease_ms,
                    max,
                    number_busy_retry_ms: self.cfg.number_busy_retry_ms,
                };
                let claimed = store
                    .claim_contacts(&req, |c| sched.claim_decision(&campaign_id, c, now))
                    .await;
                match claimed {
                    Ok(report) => {
                        if report.dnc > 0 {
                            metrics::counter!("agent_campaign_contacts_dnc_total")
                                .increment(u64::from(report.dnc));
                        }
                        if report.completed {
                            tracing::info!(campaign = %campaign_id, "campaign completed");
                        }
                        sched.handle(
                            now_ms(),
                            Input::Claimed {
                                campaign_id,
                                report,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, campaign = %campaign_id, "claim failed");
                        sched.handle(now_ms(), Input::ClaimFailed { campaign_id });
                    }
                }
            }
            Output::Finish(f) => finish(store, node, &f).await,
            Output::Release { contacts } => {
                if let Err(e) = store.release_claims(node, &contacts, now_ms()).await {
                    tracing::warn!(error = %e, count = contacts.len(), "cannot release claims; they return after the lease");
                }
            }
            Output::Defer { contact_id, until } => {
                if let Err(e) = store.defer_claim(node, &contact_id, until, now_ms()).await {
                    tracing::warn!(error = %e, "cannot defer a claim; it returns after the lease");
                }
            }
            Output::RenewLeases { contacts, until } => {
                if let Err(e) = store.renew_leases(node, &contacts, until).await {
                    tracing::warn!(error = %e, "cannot renew campaign leases");
                }
            }
            Output::Pause {
                campaign_id,
                reason,
            } => {
                tracing::warn!(campaign = %campaign_id, %reason, "pausing campaign");
                if let Err(e) = store.pause_campaign(&campaign_id, &reason, now_ms()).await {
                    tracing::error!(error = %e, "cannot pause the campaign");
                }
            }
            // Dialling is spawned by the loop; nothing else is left.
            _ => {}
        }
    }

    /// The running campaigns; callbacks campaigns first take in their tenant's new callbacks.
    async fn running_campaigns(&self) -> Result<Vec<store::Campaign>, StoreError> {
        let store = &self.rt.store;
        let list = store.campaigns_with_status(CampaignStatus::Running).await?;
        for c in list.iter().filter(|c| c.kind == CampaignKind::Callbacks) {
            let callbacks = store
                .callbacks_to_enqueue(&c.tenant_id, CALLBACKS_PER_REFRESH)
                .await?;
            let contacts: Vec<NewContact> = callbacks
                .into_iter()
                .filter_map(|cb| {
                    let phone = self.phones.normalize(&cb.number).ok()?.into_string();
                    let zone = crm::campaign::zone_for(
                        &phone,
                        None,
                        c.settings.default_time_zone.as_deref(),
                    )
                    .ok()?;
                    let mut variables = serde_json::Map::new();
                    for (k, v) in [
                        ("reason", &cb.reason),
                        ("preferred_time", &cb.preferred_time),
                    ] {
                        if let Some(v) = v {
                            variables.insert(k.to_owned(), json!(v));
                        }
                    }
                    Some(NewContact {
                        line: None,
                        phone,
                        name: None,
                        time_zone: zone,
                        variables,
                        customer_id: cb.customer_id,
                        callback_id: Some(cb.id),
                        not_before: cb.due_at,
                    })
                })
                .collect();
            if !contacts.is_empty() {
                let added = store.add_contacts(c, &contacts, now_ms()).await?;
                tracing::info!(campaign = %c.id, added, "callbacks taken into the callbacks campaign");
            }
        }
        Ok(list)
    }
}

/// One campaign call: the attempt recorded, the call placed and run to its end, reported.
struct CallTask {
    rt: CallRuntime,
    sip: SipHandle,
    node: String,
    ended: mpsc::Sender<(ContactId, CallEnd)>,
    hangup: watch::Receiver<bool>,
}

impl CallTask {
    async fn run(self, dial: Dial) {
        let store = self.rt.store.clone();
        let contact = dial.contact;
        let started = now_ms();
        let seq = match store.start_attempt(&contact.id, &self.node, started).await {
            Ok(seq) => seq,
            Err(e) => {
                if !matches!(e, StoreError::Conflict { .. }) {
                    tracing::warn!(error = %e, "cannot start a campaign attempt; not dialling");
                    let _ = store
                        .release_claims(&self.node, std::slice::from_ref(&contact.id), now_ms())
                        .await;
                }
                let ended = CallEnd {
                    seq: None,
                    result: store::AttemptResult::Interrupted,
                    trunk_failure: false,
                    permanent: false,
                    campaign_fault: None,
                    call_id: None,
                    end_reason: None,
                    detail: Some(e.to_string()),
                    outcome: None,
                };
                let _ = self.ended.send((contact.id, ended)).await;
                return;
            }
        };
        // The contact's columns become the flow's variables (strings as they are, anything
        // else as JSON text).
        let vars = contact
            .variables
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let request = OutboundRequest {
            trunk: dial.trunk,
            number: contact.phone.clone(),
            tenant: Some(contact.tenant_id.clone()),
            vars,
            flow: Some(dial.flow),
            progress: None,
        };
        let result = run_outbound(self.rt.clone(), self.sip, request, self.hangup).await;
        let mut outcome = None;
        if let Ok(r) = &result {
            let detail = json!({
                "campaign_id": dial.campaign_id,
                "contact_id": contact.id,
                "attempt": seq,
            });
            if let Err(e) = store
                .add_call_event(&r.call_id, started, &EventKind::CampaignAttempt, detail)
                .await
            {
                tracing::warn!(error = %e, "cannot note the campaign on the call");
            }
            if r.answered {
                outcome = flow_outcome(&store, &r.call_id).await;
            }
        }
        let ended = classify(seq, &result, outcome);
        metrics::counter!("agent_campaign_calls_total", "result" => ended.result.as_str())
            .increment(1);
        let _ = self.ended.send((contact.id, ended)).await;
    }
}

/// The flow's last recorded outcome on a call (call event `outcome`).
async fn flow_outcome(store: &Store, call_id: &store::CallId) -> Option<String> {
    let events = store.list_call_events(call_id).await.ok()?;
    events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Outcome)
        .and_then(|e| e.detail.get("outcome")?.as_str().map(str::to_owned))
}

/// Stores an attempt's end, retrying a failed write a few times (a lost write leaves the claim
/// to expire; the attempt is then closed as `lost`).
async fn finish(store: &Store, node: &str, f: &Finish) {
    let end = AttemptEnd {
        contact_id: &f.contact_id,
        node,
        seq: f.seq,
        now: now_ms(),
        result: f.result,
        call_id: f.call_id.as_ref(),
        end_reason: f.end_reason.as_deref(),
        detail: f.detail.as_deref(),
        outcome: f.outcome.as_deref(),
        next: f.next,
    };
    for wait_ms in [0, 200, 1000, 3000] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        match store.finish_attempt(&end).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(contact = %f.contact_id, "attempt already closed as lost (lease ran out)");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot record a campaign attempt; retrying"),
        }
    }
    tracing::error!(contact = %f.contact_id, "campaign attempt not recorded; its claim returns after the lease");
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Shared pieces for `serve`: whether to run, and the runner.
pub fn runner_for(
    cfg: &crate::config::Config,
    rt: CallRuntime,
    sip: SipHandle,
) -> anyhow::Result<Option<CampaignRunner>> {
    if !cfg.campaigns.enabled {
        return Ok(None);
    }
    let phones = crm::PhoneNormalizer::new(&cfg.crm.default_region)
        .map_err(|e| anyhow::anyhow!("crm.default_region: {e}"))?;
    Ok(Some(CampaignRunner::new(
        rt,
        sip,
        CampaignRunner::scheduler_config(cfg),
        phones,
    )))
}
