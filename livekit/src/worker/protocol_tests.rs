//! The worker core in simulated time: no sockets, no sleeping.

use super::*;

fn config(max_jobs: u32) -> CoreConfig {
    CoreConfig {
        agent_name: "receptionist".into(),
        version: "1.0".into(),
        max_jobs,
        reconnect_initial: Duration::from_millis(500),
        reconnect_max: Duration::from_secs(30),
    }
}

fn server(message: server_message::Message) -> proto::ServerMessage {
    proto::ServerMessage {
        message: Some(message),
    }
}

fn job(id: &str) -> proto::Job {
    proto::Job {
        id: id.into(),
        room: Some(proto::Room {
            name: format!("room-{id}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn availability(id: &str) -> proto::ServerMessage {
    server(server_message::Message::Availability(
        proto::AvailabilityRequest {
            job: Some(job(id)),
            resuming: false,
        },
    ))
}

fn assignment(id: &str) -> proto::ServerMessage {
    server(server_message::Message::Assignment(proto::JobAssignment {
        job: Some(job(id)),
        url: None,
        token: "t".into(),
    }))
}

fn drain(core: &mut WorkerCore) -> Vec<worker_message::Message> {
    std::iter::from_fn(|| core.poll_transmit())
        .filter_map(|m| m.message)
        .collect()
}

fn events(core: &mut WorkerCore) -> Vec<CoreEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn yes(_: &proto::Job) -> bool {
    true
}

/// A core that is connected and registered at `t0`, transmit queue drained.
fn registered(max_jobs: u32, t0: Instant) -> WorkerCore {
    let mut core = WorkerCore::new(config(max_jobs), t0);
    core.handle_connected(t0);
    let sent = drain(&mut core);
    assert!(matches!(
        sent.as_slice(),
        [worker_message::Message::Register(r)]
            if r.agent_name == "receptionist" && r.r#type == proto::JobType::JtRoom as i32
    ));
    core.handle_message(
        t0,
        server(server_message::Message::Register(
            proto::RegisterWorkerResponse {
                worker_id: "AW_1".into(),
                ..Default::default()
            },
        )),
        &mut yes,
    );
    assert_eq!(
        events(&mut core),
        vec![CoreEvent::Registered {
            worker_id: "AW_1".into()
        }]
    );
    drain(&mut core);
    core
}

fn accept(core: &mut WorkerCore, now: Instant, id: &str) {
    core.handle_message(now, availability(id), &mut yes);
    core.handle_message(now, assignment(id), &mut yes);
    let _ = drain(core);
    let _ = events(core);
}

#[test]
fn availability_is_answered_with_identity_and_agent_name_then_assignment_becomes_a_job() {
    let t0 = Instant::now();
    let mut core = registered(2, t0);
    core.handle_message(t0, availability("AJ_1"), &mut yes);
    let sent = drain(&mut core);
    let [worker_message::Message::Availability(resp)] = sent.as_slice() else {
        panic!("expected one availability response, got {sent:?}");
    };
    assert!(resp.available);
    assert_eq!(resp.job_id, "AJ_1");
    assert_eq!(resp.participant_identity, "agent-AJ_1");
    assert_eq!(
        resp.participant_attributes.get(AGENT_NAME_ATTRIBUTE),
        Some(&"receptionist".to_owned())
    );
    core.handle_message(t0, assignment("AJ_1"), &mut yes);
    let ev = events(&mut core);
    assert!(matches!(ev.as_slice(), [CoreEvent::Assigned(a)] if a.token == "t"));
    assert_eq!(core.job_count(), 1);
    assert!((core.load() - 0.5).abs() < 1e-6);
}

#[test]
fn declines_beyond_max_jobs_and_when_admission_refuses() {
    let t0 = Instant::now();
    let mut core = registered(1, t0);
    accept(&mut core, t0, "AJ_1");
    core.handle_message(t0, availability("AJ_2"), &mut yes);
    let sent = drain(&mut core);
    assert!(
        matches!(sent.as_slice(), [worker_message::Message::Availability(r)] if !r.available && r.participant_identity.is_empty())
    );

    let mut core = registered(3, t0);
    core.handle_message(t0, availability("AJ_9"), &mut |_| false);
    let sent = drain(&mut core);
    assert!(matches!(sent.as_slice(), [worker_message::Message::Availability(r)] if !r.available));
}

#[test]
fn a_promised_slot_counts_until_assignment_or_timeout() {
    let t0 = Instant::now();
    let mut core = registered(1, t0);
    core.handle_message(t0, availability("AJ_1"), &mut yes);
    drain(&mut core);
    // The promise holds the only slot.
    core.handle_message(t0, availability("AJ_2"), &mut yes);
    assert!(
        matches!(drain(&mut core).as_slice(), [worker_message::Message::Availability(r)] if !r.available)
    );
    // After the assignment timeout the slot is free again, and a late assignment is refused.
    let later = t0 + ASSIGNMENT_TIMEOUT + Duration::from_millis(1);
    core.handle_timeout(later);
    drain(&mut core);
    core.handle_message(later, assignment("AJ_1"), &mut yes);
    let sent = drain(&mut core);
    assert!(
        matches!(sent.as_slice(), [worker_message::Message::UpdateJob(u)] if u.status == proto::JobStatus::JsFailed as i32)
    );
    assert!(events(&mut core).is_empty());
    core.handle_message(later, availability("AJ_3"), &mut yes);
    assert!(
        matches!(drain(&mut core).as_slice(), [worker_message::Message::Availability(r)] if r.available)
    );
}

#[test]
fn worker_status_every_2_5_s_with_load_and_full_status() {
    let t0 = Instant::now();
    let mut core = registered(1, t0);
    assert_eq!(
        core.poll_timeout(),
        Some((t0 + STATUS_INTERVAL, "worker status"))
    );
    let mut sent_at = Vec::new();
    let mut now = t0;
    // Step to each deadline for 10 s, taking a job at 3 s.
    while now < t0 + Duration::from_secs(10) {
        let (next, _) = core.poll_timeout().expect("deadline");
        now = next;
        if now >= t0 + Duration::from_secs(3) && core.job_count() == 0 {
            accept(&mut core, now, "AJ_1");
        }
        core.handle_timeout(now);
        for m in drain(&mut core) {
            if let worker_message::Message::UpdateWorker(u) = m {
                sent_at.push((now - t0, u));
            }
        }
    }
    let times: Vec<_> = sent_at.iter().map(|(t, _)| t.as_millis()).collect();
    assert_eq!(times, vec![2500, 5000, 7500, 10000]);
    let (_, first) = &sent_at[0];
    assert_eq!(first.status, Some(proto::WorkerStatus::WsAvailable as i32));
    assert_eq!(first.job_count, 0);
    let (_, later) = &sent_at[2];
    assert_eq!(later.status, Some(proto::WorkerStatus::WsFull as i32));
    assert_eq!(later.job_count, 1);
    assert!((later.load - 1.0).abs() < 1e-6);
    let seqs: Vec<_> = sent_at.iter().map(|(_, u)| u.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seq must grow: {seqs:?}"
    );
}

#[test]
fn register_timeout_asks_to_disconnect_and_backoff_doubles() {
    let t0 = Instant::now();
    let mut core = WorkerCore::new(config(1), t0);
    core.handle_connected(t0);
    drain(&mut core);
    assert_eq!(
        core.poll_timeout(),
        Some((t0 + REGISTER_TIMEOUT, "register timeout"))
    );
    core.handle_timeout(t0 + Duration::from_secs(9));
    assert!(events(&mut core).is_empty());
    let t = t0 + REGISTER_TIMEOUT;
    core.handle_timeout(t);
    assert_eq!(
        events(&mut core),
        vec![CoreEvent::Disconnect(DisconnectReason::RegisterTimeout)]
    );
    let delays: Vec<_> = (0..8)
        .map(|_| core.handle_disconnected(t) - t)
        .map(|d| d.as_millis())
        .collect();
    assert_eq!(
        delays,
        vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
    );
}

#[test]
fn anything_but_register_first_is_a_protocol_violation() {
    let t0 = Instant::now();
    let mut core = WorkerCore::new(config(1), t0);
    core.handle_connected(t0);
    core.handle_message(t0, availability("AJ_1"), &mut yes);
    assert!(matches!(
        events(&mut core).as_slice(),
        [CoreEvent::Disconnect(DisconnectReason::Protocol(_))]
    ));
    core.handle_message(t0, proto::ServerMessage { message: None }, &mut yes);
    assert!(matches!(
        events(&mut core).as_slice(),
        [CoreEvent::Disconnect(DisconnectReason::Protocol(_))]
    ));
}

#[test]
fn jobs_survive_a_reconnection_and_are_re_reported() {
    let t0 = Instant::now();
    let mut core = registered(2, t0);
    accept(&mut core, t0, "AJ_1");
    accept(&mut core, t0, "AJ_2");
    let t1 = t0 + Duration::from_secs(1);
    let retry = core.handle_disconnected(t1);
    assert_eq!(retry - t1, Duration::from_millis(500));
    // AJ_2 finishes while disconnected: its final status waits for the next registration.
    core.handle_job_status("AJ_2", JobStatus::Success);
    assert!(drain(&mut core).is_empty());
    core.handle_connected(retry);
    drain(&mut core);
    core.handle_message(
        retry,
        server(server_message::Message::Register(
            proto::RegisterWorkerResponse {
                worker_id: "AW_2".into(),
                ..Default::default()
            },
        )),
        &mut yes,
    );
    let sent = drain(&mut core);
    let updates: Vec<_> = sent
        .iter()
        .filter_map(|m| match m {
            worker_message::Message::UpdateJob(u) => Some((u.job_id.as_str(), u.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        updates,
        vec![
            ("AJ_2", proto::JobStatus::JsSuccess as i32),
            ("AJ_1", proto::JobStatus::JsRunning as i32)
        ]
    );
    assert!(
        matches!(sent.first(), Some(worker_message::Message::UpdateWorker(u)) if u.job_count == 1)
    );
    // Backoff starts over after a successful registration.
    assert_eq!(
        core.handle_disconnected(retry) - retry,
        Duration::from_millis(500)
    );
}

#[test]
fn termination_of_a_running_job_is_an_event_unknown_ones_are_ignored() {
    let t0 = Instant::now();
    let mut core = registered(2, t0);
    accept(&mut core, t0, "AJ_1");
    let term = |id: &str| {
        server(server_message::Message::Termination(
            proto::JobTermination { job_id: id.into() },
        ))
    };
    core.handle_message(t0, term("AJ_1"), &mut yes);
    core.handle_message(t0, term("AJ_X"), &mut yes);
    assert_eq!(
        events(&mut core),
        vec![CoreEvent::Terminated {
            job_id: "AJ_1".into()
        }]
    );
    core.handle_job_status("AJ_1", JobStatus::Failed("terminated".into()));
    let sent = drain(&mut core);
    assert!(
        matches!(sent.as_slice(), [worker_message::Message::UpdateJob(u)] if u.status == proto::JobStatus::JsFailed as i32 && u.error == "terminated")
    );
    assert_eq!(core.job_count(), 0);
}

#[test]
fn the_core_never_reads_the_clock() {
    let source = include_str!("protocol.rs");
    for forbidden in ["Instant::now", "SystemTime::now", "tokio::"] {
        assert!(!source.contains(forbidden), "protocol.rs uses {forbidden}");
    }
}
