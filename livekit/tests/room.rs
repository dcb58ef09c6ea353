//! Joining a room on testkit's fake LiveKit: signalling order, WebRTC media both ways, DTMF
//! data packets, participant changes, and the twirp SIP API.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use audio::Codec as _;
use common::{best_correlation, clip, clip_path, envelope, next_job, start_worker};
use livekit::proto;
use livekit::room::{self, CallStatus, EndReason, IcePolicy, RoomEvent, RoomOptions, RoomSession};
use livekit::sip_api::{Dial, ServerApi, Transfer};
use livekit::token::Credentials;
use testkit::livekit::{CallHandle, Callee, FakeLiveKit, SipCall, TwirpCall};

const CALLER: &str = "+15551230000";
const DIALLED: &str = "+15559870000";

struct Call {
    call: CallHandle,
    session: RoomSession,
    _job: livekit::worker::Job,
    _worker: livekit::worker::WorkerHandle,
}

async fn call_with_agent(fake: &FakeLiveKit, wav: Option<&str>) -> Call {
    let (worker, mut jobs) = start_worker(fake, 2).await;
    let call = fake
        .dispatch_sip_call(SipCall {
            caller: CALLER.into(),
            dialled: DIALLED.into(),
            wav: wav.map(clip_path),
            ..SipCall::default()
        })
        .await
        .expect("dispatched");
    let job = next_job(&mut jobs).await;
    let options = RoomOptions::default().with_ice(IcePolicy::LoopbackOnly);
    let session = room::join(&job.url, &job.token, options)
        .await
        .expect("joined");
    Call {
        call,
        session,
        _job: job,
        _worker: worker,
    }
}

async fn next_event(
    session: &mut RoomSession,
    what: &str,
    pred: impl Fn(&RoomEvent) -> bool,
) -> RoomEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, session.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("session ended waiting for {what}"));
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn media_both_ways_dtmf_marks_and_the_caller_hanging_up() {
    let fake = FakeLiveKit::start().await;
    let Call {
        call,
        mut session,
        _job,
        _worker,
    } = call_with_agent(&fake, Some("balance_question_16k.wav")).await;
    assert_eq!(session.info().name, call.room_name());

    // The SIP participant from the JoinResponse, with its attributes.
    let RoomEvent::SipParticipant(sip) = next_event(&mut session, "SIP participant", |e| {
        matches!(e, RoomEvent::SipParticipant(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(sip.phone_number.as_deref(), Some(CALLER));
    assert_eq!(sip.trunk_phone_number.as_deref(), Some(DIALLED));
    assert_eq!(sip.call_status, Some(CallStatus::Active));
    assert!(sip.call_id.is_some());
    assert_eq!(sip.identity, call.sip_identity());

    // Publishes a different clip once media is up: one Opus frame per 20 ms, the first marked.
    let start_publishing = |sender: livekit::room::FrameSender| {
        let reply = clip("yes_correct_16k.wav");
        tokio::spawn(async move {
            let mut codec =
                audio::OpusCodec::new(16_000, audio::OpusConfig::default()).expect("opus");
            let mut out = vec![0u8; audio::OpusCodec::MAX_PACKET];
            for (tag, frame) in reply.chunks_exact(320).enumerate() {
                let n = codec.encode(frame, &mut out).expect("encode");
                let mark = (tag == 0).then_some(7);
                assert!(
                    sender
                        .send(sender.frame(out[..n].to_vec(), mark, tag as u64))
                        .await
                );
            }
            sender
        })
    };
    let mut publisher = None;

    // Receive the caller's clip and decode it.
    let expected = clip("balance_question_16k.wav");
    let mut decoder = audio::OpusCodec::new(16_000, audio::OpusConfig::default()).expect("opus");
    let mut received = Vec::new();
    let mut pcm = vec![0i16; 1920];
    let mut mark_at: Option<Instant> = None;
    let wanted = expected.len() + 16_000; // the clip plus a second of what follows
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while received.len() < wanted {
        let event = tokio::time::timeout_at(deadline, session.recv())
            .await
            .expect("audio in time")
            .expect("session open");
        match event {
            RoomEvent::Audio(a) => {
                assert_eq!(a.payload_type, 111);
                let n = decoder
                    .decode(&a.payload, &mut pcm)
                    .expect("decodable Opus");
                received.extend_from_slice(&pcm[..n]);
            }
            RoomEvent::FrameSent { mark: 7, at } => mark_at = Some(at),
            RoomEvent::MediaConnected => publisher = Some(start_publishing(session.sender())),
            _ => {}
        }
    }
    let (r, lag) = best_correlation(&envelope(&expected), &envelope(&received), 100);
    eprintln!("received vs clip: r = {r:.3} at lag {lag} frames");
    assert!(
        r > 0.9,
        "received audio follows the clip: r = {r:.3} at lag {lag} frames"
    );
    let stats = session.stats();
    assert!(stats.packets_received as usize >= expected.len() / 320);
    assert_eq!(stats.packets_lost, 0);

    // What we published reached the caller's side.
    let sender = publisher
        .expect("media connected")
        .await
        .expect("publisher");
    if mark_at.is_none() {
        next_event(&mut session, "mark", |e| {
            matches!(e, RoomEvent::FrameSent { mark: 7, .. })
        })
        .await;
    }
    let published = clip("yes_correct_16k.wav");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sender.last_sent_tag() != Some((published.len() / 320 - 1) as u64) {
        assert!(Instant::now() < deadline, "all frames written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorded = call.recorded_audio();
    let (r, lag) = best_correlation(&envelope(&published), &envelope(&recorded), 250);
    eprintln!("recorded vs published: r = {r:.3} at lag {lag} frames");
    assert!(
        r > 0.9,
        "recorded audio follows what we sent: r = {r:.3} at lag {lag} frames"
    );

    // DTMF both ways.
    call.send_dtmf('5');
    let RoomEvent::Dtmf { digit, .. } = next_event(&mut session, "DTMF", |e| {
        matches!(e, RoomEvent::Dtmf { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(digit, '5');
    session.send_dtmf('#').await.expect("dtmf sent");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = call.data_from_agent();
        if let Some(proto::DataPacket {
            value: Some(proto::data_packet::Value::SipDtmf(d)),
            destination_identities,
            ..
        }) = sent.first()
        {
            assert_eq!((d.code, d.digit.as_str()), (11, "#"));
            assert_eq!(destination_identities, &vec![call.sip_identity()]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "DTMF data packet reached the fake"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An attribute change, then the caller hangs up.
    call.update_attributes(HashMap::from([(
        "sip.h.x-note".to_owned(),
        "vip".to_owned(),
    )]));
    let RoomEvent::SipParticipant(updated) = next_event(&mut session, "attribute update", |e| {
        matches!(e, RoomEvent::SipParticipant(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(
        updated.attributes.get("sip.h.x-note").map(String::as_str),
        Some("vip")
    );
    call.leave();
    let ended = next_event(&mut session, "end", |e| matches!(e, RoomEvent::Ended(_))).await;
    assert_eq!(
        ended,
        RoomEvent::Ended(EndReason::ParticipantLeft {
            identity: call.sip_identity()
        })
    );
    assert!(session.recv().await.is_none(), "nothing after Ended");

    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let log = call.signal_log();
    let position = |what: &str| {
        log.iter()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("{what} in {log:?}"))
    };
    assert!(position("add_track") < position("offer"), "{log:?}");
    assert!(position("answer") < log.len());
    assert!(call.agent_left(), "we said leave when the call ended");
}

#[tokio::test]
async fn flush_discards_queued_frames_and_room_close_ends_the_session() {
    let fake = FakeLiveKit::start().await;
    let Call {
        call,
        mut session,
        _job,
        _worker,
    } = call_with_agent(&fake, None).await;
    next_event(&mut session, "media", |e| {
        matches!(e, RoomEvent::MediaConnected)
    })
    .await;

    // Barge-in: frames queued before a flush are never written; the next one is.
    let sender = session.sender();
    for tag in 100..104 {
        assert!(
            sender
                .send(sender.frame(room::OPUS_SILENCE.to_vec(), None, tag))
                .await
        );
    }
    sender.flush();
    assert!(
        sender
            .send(sender.frame(room::OPUS_SILENCE.to_vec(), Some(9), 200))
            .await
    );
    next_event(&mut session, "mark", |e| {
        matches!(e, RoomEvent::FrameSent { mark: 9, .. })
    })
    .await;
    assert_eq!(sender.last_sent_tag(), Some(200));
    // At most one of the four went out before the flush took effect.
    assert!(
        sender.frames_discarded() >= 3,
        "discarded {}",
        sender.frames_discarded()
    );
    assert_eq!(sender.frames_discarded() + sender.frames_sent(), 5);

    // The call had no clip (the caller sends encoded silence); audio played on demand arrives.
    call.play_wav(&clip_path("yes_correct_16k.wav"))
        .expect("clip");
    let mut decoder = audio::OpusCodec::new(16_000, audio::OpusConfig::default()).expect("opus");
    let mut pcm = vec![0i16; 1920];
    let mut loudest = 0.0f64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while loudest < 1000.0 {
        let event = tokio::time::timeout_at(deadline, session.recv())
            .await
            .expect("speech in time")
            .expect("open");
        if let RoomEvent::Audio(a) = event {
            let n = decoder.decode(&a.payload, &mut pcm).expect("decode");
            loudest = envelope(&pcm[..n]).into_iter().fold(loudest, f64::max);
        }
    }

    call.close_room();
    let ended = next_event(&mut session, "end", |e| matches!(e, RoomEvent::Ended(_))).await;
    assert_eq!(ended, RoomEvent::Ended(EndReason::RoomClosed));
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn transfer_reaches_the_server_with_its_fields_and_the_caller_leaves() {
    let fake = FakeLiveKit::start().await;
    let Call {
        call,
        mut session,
        _job,
        _worker,
    } = call_with_agent(&fake, None).await;
    let api = ServerApi::new(&fake.url(), fake.credentials()).expect("api");
    let transfer = Transfer::new(call.room_name(), &call.sip_identity(), "tel:+15550001111");
    api.transfer_sip_participant(transfer)
        .await
        .expect("transfer accepted");
    let calls = fake.twirp_calls();
    let [TwirpCall::Transfer(request)] = calls.as_slice() else {
        panic!("one transfer expected: {calls:?}");
    };
    assert_eq!(request.room_name, call.room_name());
    assert_eq!(request.participant_identity, call.sip_identity());
    assert_eq!(request.transfer_to, "tel:+15550001111");
    let ended = next_event(&mut session, "end", |e| matches!(e, RoomEvent::Ended(_))).await;
    assert!(matches!(
        ended,
        RoomEvent::Ended(EndReason::ParticipantLeft { .. })
    ));

    // Errors come back typed, with the twirp code.
    let unknown = Transfer::new(call.room_name(), "sip_nobody", "tel:+1");
    let err = api
        .transfer_sip_participant(unknown)
        .await
        .expect_err("not found");
    assert_eq!(err.twirp_code(), Some("not_found"));
    let forged = ServerApi::new(&fake.url(), Credentials::new("devkey", "wrong")).expect("api");
    let err = forged
        .transfer_sip_participant(Transfer::new(
            call.room_name(),
            &call.sip_identity(),
            "tel:+1",
        ))
        .await
        .expect_err("bad signature");
    assert_eq!(err.twirp_code(), Some("unauthenticated"));

    // Dial-out and dispatch reach the server too; a failed dial carries its SIP status.
    let mut dial = Dial::new("ST_out", "+15552223333", "outbound-1");
    dial.wait_until_answered = true;
    dial.ringing_timeout = Some(Duration::from_secs(20));
    let info = api.create_sip_participant(dial).await.expect("dial-out");
    assert_eq!(info.room_name, "outbound-1");
    assert_eq!(info.participant_identity, "sip_+15552223333");
    fake.set_callee(
        "+15552224444",
        Callee::Fails {
            after: Duration::ZERO,
            status: 486,
        },
    );
    let mut busy = Dial::new("ST_out", "+15552224444", "outbound-2");
    busy.wait_until_answered = true;
    let err = api.create_sip_participant(busy).await.expect_err("busy");
    assert_eq!(err.sip_status(), Some((486, "SIP_STATUS_BUSY_HERE")));
    api.create_dispatch(proto::CreateAgentDispatchRequest {
        agent_name: common::AGENT_NAME.into(),
        room: "outbound-1".into(),
        ..Default::default()
    })
    .await
    .expect("dispatch");
    let calls = fake.twirp_calls();
    assert!(matches!(&calls[2], TwirpCall::CreateSipParticipant(r)
        if r.sip_call_to == "+15552223333"
            && r.wait_until_answered
            && r.ringing_timeout.as_ref().is_some_and(|t| t.seconds == 20)));
    assert!(matches!(&calls[4], TwirpCall::CreateDispatch(r) if r.room == "outbound-1"));
}

#[tokio::test]
async fn a_lost_signal_connection_ends_the_session() {
    let fake = FakeLiveKit::start().await;
    let Call {
        call,
        mut session,
        _job,
        _worker,
    } = call_with_agent(&fake, None).await;
    next_event(&mut session, "SIP participant", |e| {
        matches!(e, RoomEvent::SipParticipant(_))
    })
    .await;
    call.drop_signal();
    let ended = next_event(&mut session, "end", |e| matches!(e, RoomEvent::Ended(_))).await;
    assert_eq!(ended, RoomEvent::Ended(EndReason::SignalLost));
    assert!(!call.agent_left(), "no leave on a dead connection");
}
