//! The agent worker against testkit's fake LiveKit `/agent` endpoint.

mod common;

use std::time::Duration;

use common::{AGENT_NAME, next_job, start_worker};
use livekit::proto::{self, worker_message};
use livekit::token::{self, AccessToken, Credentials};
use livekit::worker::{AGENT_NAME_ATTRIBUTE, JobStatus, Worker, WorkerOptions};
use testkit::livekit::{FakeError, FakeLiveKit, WorkerMessageRecord};

fn job_updates(log: &[WorkerMessageRecord], job_id: &str) -> Vec<(u64, i32)> {
    log.iter()
        .filter_map(|r| match &r.message.message {
            Some(worker_message::Message::UpdateJob(u)) if u.job_id == job_id => {
                Some((r.connection, u.status))
            }
            _ => None,
        })
        .collect()
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn register_availability_assignment_and_status_cadence() {
    let fake = FakeLiveKit::start().await;
    let (worker, mut jobs) = start_worker(&fake, 2).await;

    // The server's websocket pings are answered.
    assert!(fake.ping_worker());
    fake.wait_worker_pongs(1, Duration::from_secs(5))
        .await
        .expect("pong");

    let dispatch = fake.dispatch_job("room-a").await.expect("accepted");
    let mut job = next_job(&mut jobs).await;
    assert_eq!(job.id, dispatch.job_id);
    assert_eq!(job.room_name, "room-a");
    assert_eq!(
        job.url,
        fake.url(),
        "no url in the assignment: the worker's own"
    );
    assert_eq!(job.agent_name, AGENT_NAME);
    // The room token is the server's, for the identity we asked for.
    let claims = token::verify(
        &job.token,
        |k| (k == "devkey").then(|| "secret".into()),
        token::unix_now(),
    )
    .expect("server-minted token");
    assert_eq!(claims.sub, format!("agent-{}", job.id));
    assert!(claims.video().room_join && claims.video().room == "room-a");
    assert!(job.handle.set_status(JobStatus::Running).await);

    let log = fake.worker_messages();
    let Some(worker_message::Message::Register(register)) = &log[0].message.message else {
        panic!("first message must be register: {:?}", log[0]);
    };
    assert_eq!(register.agent_name, AGENT_NAME);
    assert_eq!(register.r#type, proto::JobType::JtRoom as i32);
    let availability = log
        .iter()
        .find_map(|r| match &r.message.message {
            Some(worker_message::Message::Availability(a)) => Some(a.clone()),
            _ => None,
        })
        .expect("availability response");
    assert!(availability.available);
    assert_eq!(
        availability
            .participant_attributes
            .get(AGENT_NAME_ATTRIBUTE)
            .map(String::as_str),
        Some(AGENT_NAME)
    );
    wait_for("running status", || {
        job_updates(&fake.worker_messages(), &job.id)
            .contains(&(1, proto::JobStatus::JsRunning as i32))
    })
    .await;

    // UpdateWorkerStatus: right after registering, then every 2.5 s, with the job counted.
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let updates: Vec<_> = fake
        .worker_messages()
        .into_iter()
        .filter_map(|r| match r.message.message {
            Some(worker_message::Message::UpdateWorker(u)) => Some((r.at, u)),
            _ => None,
        })
        .collect();
    assert!(updates.len() >= 3, "updates: {}", updates.len());
    // The exact cadence is checked in simulated time (worker::protocol tests); here, on a
    // loaded machine, within ±0.5 s.
    for pair in updates.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            (2000..=3000).contains(&gap.as_millis()),
            "status updates {} ms apart",
            gap.as_millis()
        );
    }
    let last = &updates.last().expect("update").1;
    assert_eq!(last.job_count, 1);
    assert!((last.load - 0.5).abs() < 1e-6);
    assert_eq!(last.status, Some(proto::WorkerStatus::WsAvailable as i32));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let counters = worker.counters();
    assert_eq!(
        (
            counters.registrations,
            counters.jobs_accepted,
            counters.jobs_assigned
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_job_beyond_max_jobs_is_declined() {
    let fake = FakeLiveKit::start().await;
    let (worker, mut jobs) = start_worker(&fake, 1).await;
    fake.dispatch_job("room-1").await.expect("first accepted");
    let _first = next_job(&mut jobs).await;
    assert_eq!(
        fake.dispatch_job("room-2").await.err(),
        Some(FakeError::Declined)
    );
    let counters = worker.counters();
    assert_eq!((counters.jobs_accepted, counters.jobs_declined), (1, 1));
}

#[tokio::test]
async fn termination_fires_the_job_signal_and_the_final_status_reaches_the_server() {
    let fake = FakeLiveKit::start().await;
    let (_worker, mut jobs) = start_worker(&fake, 2).await;
    fake.dispatch_job("room-t").await.expect("accepted");
    let mut job = next_job(&mut jobs).await;
    assert!(!job.handle.is_terminated());
    assert!(fake.terminate_job(&job.id));
    tokio::time::timeout(Duration::from_secs(5), job.handle.terminated())
        .await
        .expect("termination signal");
    assert!(job.handle.set_status(JobStatus::Success).await);
    wait_for("success status", || {
        job_updates(&fake.worker_messages(), &job.id)
            .contains(&(1, proto::JobStatus::JsSuccess as i32))
    })
    .await;
}

#[tokio::test]
async fn reconnects_after_the_server_drops_it_and_re_reports_the_running_job() {
    let fake = FakeLiveKit::start().await;
    let (mut worker, mut jobs) = start_worker(&fake, 2).await;
    fake.dispatch_job("room-r").await.expect("accepted");
    let mut job = next_job(&mut jobs).await;
    assert!(job.handle.set_status(JobStatus::Running).await);

    assert!(fake.drop_worker_connection());
    fake.wait_registrations(2, Duration::from_secs(5))
        .await
        .expect("re-registered");
    worker.registered().await.expect("running");
    wait_for("re-report on the new connection", || {
        job_updates(&fake.worker_messages(), &job.id)
            .contains(&(2, proto::JobStatus::JsRunning as i32))
    })
    .await;
    assert!(!job.handle.is_terminated(), "the job keeps running");
    assert!(job.handle.set_status(JobStatus::Success).await);
    wait_for("final status on the new connection", || {
        job_updates(&fake.worker_messages(), &job.id)
            .contains(&(2, proto::JobStatus::JsSuccess as i32))
    })
    .await;
    let counters = worker.counters();
    assert_eq!((counters.disconnects, counters.registrations), (1, 2));
    // A cut connection is a loss, not a frame we could not read.
    assert_eq!(counters.malformed_frames, 0);
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection_is_counted_and_the_worker_reconnects() {
    let fake = FakeLiveKit::start().await;
    let (worker, _jobs) = start_worker(&fake, 1).await;
    assert!(fake.send_malformed_frame());
    fake.wait_registrations(2, Duration::from_secs(5))
        .await
        .expect("re-registered");
    wait_for("the worker's second registration", || {
        worker.counters().registrations == 2
    })
    .await;
    let counters = worker.counters();
    assert_eq!(counters.malformed_frames, 1);
    assert_eq!(counters.registrations, 2);
    // The new connection works.
    fake.dispatch_job("room-m")
        .await
        .expect("accepted after reconnecting");
}

#[tokio::test]
async fn a_token_without_the_agent_grant_is_refused() {
    let fake = FakeLiveKit::start().await;
    // A room token is a valid token, but not for /agent (agentservice.go: 401).
    let token = AccessToken::for_room_join("devkey", "someone", "room").sign("secret");
    let request = format!("{}/agent?access_token={token}", fake.url());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }

    // A worker with the wrong secret never registers and counts its failures.
    let options = WorkerOptions::new(&fake.url(), Credentials::new("devkey", "wrong"), AGENT_NAME)
        .with_reconnect(Duration::from_millis(50), Duration::from_millis(100));
    let (worker, _jobs) = Worker::start(options, |_| true).expect("start");
    wait_for("connect failures", || {
        worker.counters().connect_failures >= 2
    })
    .await;
    assert_eq!(worker.counters().registrations, 0);
    let (accepted, refused) = fake.worker_connection_counts();
    assert_eq!(accepted, 0);
    assert!(refused >= 3, "refused {refused}");
}
