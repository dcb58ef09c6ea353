//! Call-recording rows. Every test runs twice: on SQLite and on PostgreSQL (see `common`).

#[macro_use]
mod common;

use common::{Engine, TestDb};
use store::{CallId, CallRecording, Store, TenantId};

both_engines!(recordings_are_per_tenant_replaced_per_channel_and_swept_by_age,);

fn row(tenant: &TenantId, call: &CallId, channel: &str, created_at: i64) -> CallRecording {
    CallRecording {
        call_id: call.clone(),
        tenant_id: tenant.clone(),
        channel: channel.to_owned(),
        path: format!("/rec/{}-{channel}.wav", call.as_str()),
        format: "wav".to_owned(),
        sample_rate: 8_000,
        duration_ms: 12_340,
        bytes: 197_484,
        created_at,
    }
}

async fn recordings_are_per_tenant_replaced_per_channel_and_swept_by_age(store: &Store) {
    let acme = store.create_tenant("acme", 1).await.unwrap().id;
    let other = store.create_tenant("other", 1).await.unwrap().id;
    let (old, new) = (CallId::generate(), CallId::generate());
    for (call, at) in [(&old, 1_000), (&new, 50_000)] {
        for channel in ["caller", "agent"] {
            store
                .add_recording(&row(&acme, call, channel, at))
                .await
                .unwrap();
        }
    }
    let listed = store.list_recordings(&acme, &new).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.channel.as_str())
            .collect::<Vec<_>>(),
        ["agent", "caller"]
    );
    assert_eq!(listed[1], row(&acme, &new, "caller", 50_000));
    // Another tenant sees nothing of acme's calls.
    assert!(
        store
            .list_recordings(&other, &new)
            .await
            .unwrap()
            .is_empty()
    );
    // Written again (a retried close): replaced, not duplicated.
    let mut again = row(&acme, &new, "agent", 50_000);
    again.duration_ms = 13_000;
    store.add_recording(&again).await.unwrap();
    let listed = store.list_recordings(&acme, &new).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].duration_ms, 13_000);

    // Retention: only rows older than the cutoff come back, and deleting forgets them.
    let due = store.recordings_before(10_000, 100).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|r| r.call_id == old));
    for r in &due {
        store
            .delete_recording(&r.call_id, &r.channel)
            .await
            .unwrap();
    }
    assert!(store.list_recordings(&acme, &old).await.unwrap().is_empty());
    assert_eq!(
        store.recordings_before(i64::MAX, 100).await.unwrap().len(),
        2
    );
}
