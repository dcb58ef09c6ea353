//! Campaigns, claims and the do-not-call list, on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use std::collections::HashMap;

use common::{Engine, TestDb};
use store::{
    AttemptEnd, AttemptResult, CampaignKind, CampaignSettings, CampaignStatus, ClaimDecision,
    ClaimRequest, ContactNext, ContactState, Disposition, DncSource, NewCallback, NewCampaign,
    NewContact, NewDnc, Store, StoreError, TenantId,
};

both_engines!(
    creation_is_all_or_nothing,
    claims_respect_concurrency_pacing_dnc_and_decisions,
    retries_and_completion,
    expired_leases_return_and_the_attempt_is_lost,
    a_number_is_dialled_by_one_call_at_a_time,
    releases_and_renewals,
    status_changes_and_self_pause,
    dnc_list,
    callbacks_become_contacts_and_close_when_reached,
    concurrent_claimers_never_share_a_contact,
);

const LEASE: i64 = 60_000;

fn contact(phone: &str) -> NewContact {
    NewContact {
        phone: phone.to_owned(),
        time_zone: "America/New_York".to_owned(),
        ..NewContact::default()
    }
}

fn contacts(n: usize) -> Vec<NewContact> {
    (0..n)
        .map(|i| contact(&format!("+1555000{i:04}")))
        .collect()
}

async fn campaign(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    settings: CampaignSettings,
    list: &[NewContact],
) -> store::Campaign {
    store
        .create_campaign(
            NewCampaign {
                tenant_id: tenant.clone(),
                name: name.to_owned(),
                kind: CampaignKind::List,
                flow: "payment_reminder".to_owned(),
                trunk: "kam".to_owned(),
                settings,
                status: CampaignStatus::Running,
                created_at: 1_000,
            },
            list,
        )
        .await
        .unwrap()
}

fn req<'a>(c: &'a store::Campaign, node: &'a str, now: i64, max: u32) -> ClaimRequest<'a> {
    ClaimRequest {
        campaign_id: &c.id,
        node,
        now,
        lease_ms: LEASE,
        max,
        number_busy_retry_ms: 30_000,
    }
}

fn settings(max_concurrent: u32, cps: f64) -> CampaignSettings {
    CampaignSettings {
        max_concurrent,
        calls_per_second: cps,
        ..CampaignSettings::default()
    }
}

async fn finish(
    store: &Store,
    id: &store::ContactId,
    node: &str,
    seq: i64,
    now: i64,
    result: AttemptResult,
    next: ContactNext,
) -> bool {
    store
        .finish_attempt(&AttemptEnd {
            contact_id: id,
            node,
            seq,
            now,
            result,
            call_id: None,
            end_reason: None,
            detail: None,
            outcome: None,
            next,
        })
        .await
        .unwrap()
}

async fn creation_is_all_or_nothing(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let mut list = contacts(3);
    list.push(contact("+15550000001"));
    let dup = store
        .create_campaign(
            NewCampaign {
                tenant_id: t.clone(),
                name: "dup".into(),
                kind: CampaignKind::List,
                flow: "f".into(),
                trunk: "t".into(),
                settings: CampaignSettings::default(),
                status: CampaignStatus::Draft,
                created_at: 1,
            },
            &list,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    assert!(store.list_campaigns(&t).await.unwrap().is_empty());

    let c = campaign(store, &t, "ok", settings(2, 1.0), &contacts(1200)).await;
    let p = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!((p.total, p.pending, p.done, p.attempts), (1200, 1200, 0, 0));
    let again = store
        .create_campaign(
            NewCampaign {
                tenant_id: t.clone(),
                name: "ok".into(),
                kind: CampaignKind::List,
                flow: "f".into(),
                trunk: "t".into(),
                settings: CampaignSettings::default(),
                status: CampaignStatus::Draft,
                created_at: 1,
            },
            &[],
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })));
    let read = store.campaign_by_name(&t, "ok").await.unwrap().unwrap();
    assert_eq!(read, c);
    // Another tenant cannot see it.
    let other = store.create_tenant("globex", 1).await.unwrap().id;
    assert!(store.campaign(&other, &c.id).await.unwrap().is_none());
}

async fn claims_respect_concurrency_pacing_dnc_and_decisions(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(3, 2.0), &contacts(6)).await;
    store
        .add_dnc(
            &t,
            &[NewDnc {
                phone: "+15550000000".into(),
                source: DncSource::Api,
                reason: None,
                call_id: None,
            }],
            2,
        )
        .await
        .unwrap();
    let report = store
        .claim_contacts(&req(&c, "a", 10_000, 10), |contact| {
            if contact.phone == "+15550000001" {
                ClaimDecision::Defer { until: 99_000 }
            } else {
                ClaimDecision::Claim
            }
        })
        .await
        .unwrap();
    assert_eq!(report.dnc, 1);
    assert_eq!(report.deferred, 1);
    assert_eq!(report.claimed.len(), 3, "max_concurrent");
    let slots: Vec<i64> = report.claimed.iter().map(|c| c.dial_at).collect();
    assert_eq!(slots, [10_000, 10_500, 11_000], "2 calls per second");
    for claimed in &report.claimed {
        assert_eq!(claimed.contact.state, ContactState::Claimed);
        assert_eq!(claimed.contact.claimed_by.as_deref(), Some("a"));
    }
    // Full: nothing more, whoever asks.
    let more = store
        .claim_contacts(&req(&c, "b", 10_100, 10), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert!(more.claimed.is_empty());
    let p = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!((p.claimed, p.done, p.pending), (3, 1, 2));
    assert_eq!(p.dispositions.get("dnc"), Some(&1));
    // The next claim's slots continue after the last one handed out.
    let first = &report.claimed[0].contact;
    let seq = store.start_attempt(&first.id, "a", 10_000).await.unwrap();
    assert_eq!(seq, 1);
    finish(
        store,
        &first.id,
        "a",
        1,
        10_200,
        AttemptResult::Answered,
        ContactNext::Done(Disposition::Answered),
    )
    .await;
    let next = store
        .claim_contacts(&req(&c, "a", 10_300, 10), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(next.claimed.len(), 1);
    assert_eq!(next.claimed[0].dial_at, 11_500);
}

async fn retries_and_completion(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(5, 0.0), &contacts(2)).await;
    let r = store
        .claim_contacts(&req(&c, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(r.claimed.len(), 2);
    let (x, y) = (&r.claimed[0].contact.id, &r.claimed[1].contact.id);
    assert_eq!(store.start_attempt(x, "a", 10_000).await.unwrap(), 1);
    assert_eq!(store.start_attempt(y, "a", 10_000).await.unwrap(), 1);
    finish(
        store,
        x,
        "a",
        1,
        11_000,
        AttemptResult::Busy,
        ContactNext::Retry { at: 71_000 },
    )
    .await;
    finish(
        store,
        y,
        "a",
        1,
        11_000,
        AttemptResult::Completed,
        ContactNext::Done(Disposition::Completed),
    )
    .await;
    let busy = store.contact(&t, x).await.unwrap().unwrap();
    assert_eq!(busy.state, ContactState::Pending);
    assert_eq!(busy.disposition, Some(Disposition::Busy));
    assert_eq!(busy.next_attempt_at, 71_000);
    // Not due yet.
    let early = store
        .claim_contacts(&req(&c, "a", 70_999, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert!(early.claimed.is_empty());
    let due = store
        .claim_contacts(&req(&c, "a", 71_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(due.claimed.len(), 1);
    assert_eq!(store.start_attempt(x, "a", 71_000).await.unwrap(), 2);
    finish(
        store,
        x,
        "a",
        2,
        72_000,
        AttemptResult::NoAnswer,
        ContactNext::Done(Disposition::NoAnswer),
    )
    .await;
    let done = store.campaign(&t, &c.id).await.unwrap().unwrap();
    assert_eq!(done.status, CampaignStatus::Completed);
    let attempts = store.contact_attempts(x).await.unwrap();
    let results: Vec<_> = attempts.iter().map(|a| a.result).collect();
    assert_eq!(
        results,
        [Some(AttemptResult::Busy), Some(AttemptResult::NoAnswer)]
    );
    let p = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!((p.done, p.attempts), (2, 3));
}

async fn expired_leases_return_and_the_attempt_is_lost(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(5, 0.0), &contacts(1)).await;
    let r = store
        .claim_contacts(&req(&c, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    let id = r.claimed[0].contact.id.clone();
    store.start_attempt(&id, "a", 10_000).await.unwrap();
    // "a" dies without renewing. Before the lease runs out nobody else gets it.
    let before = store
        .claim_contacts(&req(&c, "b", 10_000 + LEASE, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert!(before.claimed.is_empty());
    let after = store
        .claim_contacts(&req(&c, "b", 10_001 + LEASE, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(after.claimed.len(), 1);
    assert_eq!(after.lost, 1);
    // "a" comes back: it may neither dial again nor overwrite b's claim.
    assert!(matches!(
        store.start_attempt(&id, "a", 80_000).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        !finish(
            store,
            &id,
            "a",
            1,
            80_000,
            AttemptResult::Answered,
            ContactNext::Done(Disposition::Answered)
        )
        .await
    );
    let held = store.contact(&t, &id).await.unwrap().unwrap();
    assert_eq!(held.claimed_by.as_deref(), Some("b"));
    assert_eq!(store.start_attempt(&id, "b", 80_000).await.unwrap(), 2);
    let attempts = store.contact_attempts(&id).await.unwrap();
    assert_eq!(attempts[0].result, Some(AttemptResult::Lost));
    assert_eq!(attempts[1].node, "b");
}

async fn a_number_is_dialled_by_one_call_at_a_time(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let one = campaign(
        store,
        &t,
        "one",
        settings(5, 0.0),
        &[contact("+15551112222")],
    )
    .await;
    let two = campaign(
        store,
        &t,
        "two",
        settings(5, 0.0),
        &[contact("+15551112222")],
    )
    .await;
    let a = store
        .claim_contacts(&req(&one, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(a.claimed.len(), 1);
    let b = store
        .claim_contacts(&req(&two, "b", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert!(b.claimed.is_empty());
    assert_eq!(b.number_busy, 1);
    let id = a.claimed[0].contact.id.clone();
    store.start_attempt(&id, "a", 10_000).await.unwrap();
    finish(
        store,
        &id,
        "a",
        1,
        20_000,
        AttemptResult::Answered,
        ContactNext::Done(Disposition::Answered),
    )
    .await;
    // Free again once the first call is over (and the skipped contact is due again).
    let b = store
        .claim_contacts(&req(&two, "b", 40_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert_eq!(b.claimed.len(), 1);
}

async fn releases_and_renewals(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(5, 0.0), &contacts(3)).await;
    let r = store
        .claim_contacts(&req(&c, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    let ids: Vec<_> = r.claimed.iter().map(|c| c.contact.id.clone()).collect();
    assert_eq!(
        store.release_claims("a", &ids[..1], 10_100).await.unwrap(),
        1
    );
    assert_eq!(
        store.release_claims("b", &ids[1..], 10_100).await.unwrap(),
        0,
        "not b's"
    );
    // Renewed leases hold past the first lease.
    assert_eq!(
        store
            .renew_leases("a", &ids, 10_000 + 3 * LEASE)
            .await
            .unwrap(),
        2,
        "the released one is no longer a's"
    );
    let other = store
        .claim_contacts(&req(&c, "b", 10_000 + 2 * LEASE, 5), |_| {
            ClaimDecision::Claim
        })
        .await
        .unwrap();
    assert_eq!(other.claimed.len(), 1, "only the released one");
    assert_eq!(other.claimed[0].contact.id, ids[0]);
    // "a" restarts: its claims and started attempts are given back at once.
    store.start_attempt(&ids[1], "a", 10_200).await.unwrap();
    assert_eq!(store.release_node_claims("a", 20_000).await.unwrap(), 2);
    let attempts = store.contact_attempts(&ids[1]).await.unwrap();
    assert_eq!(attempts[0].result, Some(AttemptResult::Lost));
    let p = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!((p.pending, p.claimed), (2, 1));
}

async fn status_changes_and_self_pause(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(5, 0.0), &contacts(2)).await;
    assert!(
        store
            .pause_campaign(&c.id, "trunk refused 10 of 12", 5)
            .await
            .unwrap()
    );
    assert!(!store.pause_campaign(&c.id, "again", 6).await.unwrap());
    let paused = store.campaign(&t, &c.id).await.unwrap().unwrap();
    assert_eq!(paused.status, CampaignStatus::Paused);
    assert_eq!(
        paused.status_reason.as_deref(),
        Some("trunk refused 10 of 12")
    );
    let r = store
        .claim_contacts(&req(&c, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    assert!(r.not_running && r.claimed.is_empty());
    let running = store
        .set_campaign_status(&t, &c.id, CampaignStatus::Running, None, 7)
        .await
        .unwrap();
    assert_eq!(running.status, CampaignStatus::Running);
    assert_eq!(running.status_reason, None);
    store
        .set_campaign_status(&t, &c.id, CampaignStatus::Completed, None, 8)
        .await
        .unwrap();
    let restart = store
        .set_campaign_status(&t, &c.id, CampaignStatus::Running, None, 9)
        .await;
    assert!(matches!(restart, Err(StoreError::Conflict { .. })));
    let gone = store
        .set_campaign_status(
            &t,
            &store::CampaignId::new("nope"),
            CampaignStatus::Paused,
            None,
            9,
        )
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })));
}

async fn dnc_list(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let other = store.create_tenant("globex", 1).await.unwrap().id;
    let entries: Vec<NewDnc> = ["+15550000002", "+15550000001", "+15550000002"]
        .iter()
        .map(|p| NewDnc {
            phone: (*p).to_owned(),
            source: DncSource::Csv,
            reason: Some("asked".into()),
            call_id: None,
        })
        .collect();
    assert_eq!(store.add_dnc(&t, &entries, 5).await.unwrap(), 2);
    assert!(store.is_dnc(&t, "+15550000001").await.unwrap());
    assert!(!store.is_dnc(&other, "+15550000001").await.unwrap());
    let page = store.list_dnc(&t, 1, None).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].phone, "+15550000001");
    let rest = store.list_dnc(&t, 10, Some("+15550000001")).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].source, DncSource::Csv);
    assert!(store.remove_dnc(&t, "+15550000001").await.unwrap());
    assert!(!store.remove_dnc(&t, "+15550000001").await.unwrap());
}

async fn callbacks_become_contacts_and_close_when_reached(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let cb = store
        .insert_callback(NewCallback {
            tenant_id: t.clone(),
            number: "+15557654321".into(),
            reason: Some("billing".into()),
            created_at: 3,
            ..NewCallback::default()
        })
        .await
        .unwrap();
    let c = store
        .create_campaign(
            NewCampaign {
                tenant_id: t.clone(),
                name: "callbacks".into(),
                kind: CampaignKind::Callbacks,
                flow: "receptionist".into(),
                trunk: "kam".into(),
                settings: settings(2, 0.0),
                status: CampaignStatus::Running,
                created_at: 4,
            },
            &[],
        )
        .await
        .unwrap();
    let todo = store.callbacks_to_enqueue(&t, 10).await.unwrap();
    assert_eq!(todo.len(), 1);
    let added = store
        .add_contacts(
            &c,
            &[NewContact {
                callback_id: Some(cb.id.clone()),
                ..contact(&cb.number)
            }],
            5,
        )
        .await
        .unwrap();
    assert_eq!(added, 1);
    assert!(store.callbacks_to_enqueue(&t, 10).await.unwrap().is_empty());
    // Adding it again is a no-op.
    let again = store
        .add_contacts(
            &c,
            &[NewContact {
                callback_id: Some(cb.id.clone()),
                ..contact(&cb.number)
            }],
            6,
        )
        .await
        .unwrap();
    assert_eq!(again, 0);
    let r = store
        .claim_contacts(&req(&c, "a", 10_000, 5), |_| ClaimDecision::Claim)
        .await
        .unwrap();
    let id = r.claimed[0].contact.id.clone();
    store.start_attempt(&id, "a", 10_000).await.unwrap();
    finish(
        store,
        &id,
        "a",
        1,
        11_000,
        AttemptResult::Answered,
        ContactNext::Done(Disposition::Answered),
    )
    .await;
    let closed = store.callback(&t, &cb.id).await.unwrap().unwrap();
    assert_eq!(closed.status, store::CallbackStatus::Done);
    // The callbacks campaign never completes: more callbacks will come.
    let still = store.campaign(&t, &c.id).await.unwrap().unwrap();
    assert_eq!(still.status, CampaignStatus::Running);
}

/// Four claimers race over 120 contacts; each contact is claimed (and finished) exactly once.
async fn concurrent_claimers_never_share_a_contact(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    let c = campaign(store, &t, "c", settings(20, 0.0), &contacts(120)).await;
    let mut tasks = Vec::new();
    for n in 0..4 {
        let store = store.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let node = format!("node{n}");
            let mut mine = Vec::new();
            for round in 0..400 {
                let now = 10_000 + round;
                let r = store
                    .claim_contacts(&req(&c, &node, now, 5), |_| ClaimDecision::Claim)
                    .await
                    .unwrap();
                if r.not_running {
                    break;
                }
                for claimed in r.claimed {
                    let id = claimed.contact.id;
                    let seq = store.start_attempt(&id, &node, now).await.unwrap();
                    finish(
                        &store,
                        &id,
                        &node,
                        seq,
                        now,
                        AttemptResult::Answered,
                        ContactNext::Done(Disposition::Answered),
                    )
                    .await;
                    mine.push(id);
                }
            }
            mine
        }));
    }
    let mut counts: HashMap<store::ContactId, u32> = HashMap::new();
    for task in tasks {
        for id in task.await.unwrap() {
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), 120, "every contact called");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let done = store.campaign(&t, &c.id).await.unwrap().unwrap();
    assert_eq!(done.status, CampaignStatus::Completed);
}
