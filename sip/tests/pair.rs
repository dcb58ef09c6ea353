//! A UAC endpoint calling a UAS endpoint over the simulated network: call flows, RFC 3261
//! timers, losses, CANCEL, BYE from either side, 481, 488.

mod common;

use std::time::Duration;

use common::{Pair, UAC, UAS, addr};
use sip::message::{SipMessage, Uri, parse_datagram};
use sip::sdp::{
    AnswerParams, Codec, Direction, OfferParams, SessionDescription, build_answer, build_offer,
};
use sip::{CallId, EndReason, Event, InviteParams};

fn offer(codecs: &[Codec]) -> SessionDescription {
    build_offer(&OfferParams {
        codecs,
        address: "192.0.2.10".parse().unwrap(),
        port: 30000,
        session_id: 1,
        username: "uac",
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
    })
}

fn invite_with(p: &mut Pair, codecs: &[Codec]) -> CallId {
    let mut params = InviteParams::new(
        Uri::parse("sip:agent@192.0.2.20").unwrap(),
        addr(UAS),
        Uri::parse("sip:alice@192.0.2.10").unwrap(),
        offer(codecs),
    );
    params.from_display = Some("Alice".into());
    p.uac.invite(p.now, params).expect("invite")
}

fn invite(p: &mut Pair) -> CallId {
    invite_with(p, &[Codec::pcmu(), Codec::pcma()])
}

/// Runs until the UAS reports the incoming call; returns its handle and offer.
fn incoming(p: &mut Pair) -> (CallId, SessionDescription) {
    assert!(p.run_until(Duration::from_secs(40), |p| {
        p.uas_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall(_)))
    }));
    let Some(Event::IncomingCall(ic)) = p
        .uas_events
        .iter()
        .find(|e| matches!(e, Event::IncomingCall(_)))
    else {
        unreachable!()
    };
    (ic.call, ic.offer.clone().expect("offer"))
}

fn answer(p: &mut Pair, call: CallId, offer: &SessionDescription) {
    let codecs = [Codec::pcmu(), Codec::pcma()];
    let (sdp, neg) = build_answer(
        offer,
        &AnswerParams {
            codecs: &codecs,
            address: "192.0.2.20".parse().unwrap(),
            port: 40000,
            session_id: 2,
            username: "uas",
        },
    )
    .unwrap();
    assert_eq!(neg.codec.name, "PCMU");
    assert_eq!(neg.telephone_event, Some(101));
    p.uas.answer(p.now, call, &sdp).expect("answer");
}

fn ended(events: &[Event], call: CallId) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        Event::CallEnded { call: c, reason } if *c == call => Some(reason.clone()),
        _ => None,
    })
}

fn established(events: &[Event], call: CallId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::CallEstablished { call: c, .. } if *c == call))
}

/// Sets up an established call; returns (uac call, uas call).
fn established_call(p: &mut Pair) -> (CallId, CallId) {
    let a = invite(p);
    let (b, off) = incoming(p);
    p.uas.ringing(p.now, b).unwrap();
    answer(p, b, &off);
    assert!(
        p.run_until(Duration::from_secs(5), |p| established(&p.uas_events, b)
            && established(&p.uac_events, a))
    );
    (a, b)
}

#[test]
fn call_answered_then_uac_hangs_up() {
    let mut p = Pair::new(1);
    let (a, b) = established_call(&mut p);
    let remote = p.uac_events.iter().find_map(|e| match e {
        Event::CallEstablished {
            remote_sdp: Some(s),
            ..
        } => Some(s.clone()),
        _ => None,
    });
    assert_eq!(remote.and_then(|s| s.audio().map(|m| m.port)), Some(40000));
    assert!(
        p.uac_events
            .iter()
            .any(|e| matches!(e, Event::CallProgress { status: 180, .. }))
    );
    p.uac.hangup(p.now, a).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::RemoteBye));
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::LocalBye));
    assert_eq!(
        p.sent_by("uas->uac"),
        vec!["100 INVITE", "180 INVITE", "200 INVITE", "200 BYE"]
    );
    assert_eq!(p.sent_by("uac->uas"), vec!["INVITE", "ACK", "BYE"]);
    // Timers J and K drain; then nothing is scheduled and no call remains.
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.uac.poll_timeout(), None);
    assert_eq!(p.uas.poll_timeout(), None);
    assert_eq!((p.uac.active_calls(), p.uas.active_calls()), (0, 0));
}

#[test]
fn uas_hangs_up_with_bye() {
    let mut p = Pair::new(2);
    let (a, b) = established_call(&mut p);
    p.uas.hangup(p.now, b).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::RemoteBye));
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::LocalBye));
}

#[test]
fn lost_invites_are_retransmitted_by_timer_a() {
    let mut p = Pair::new(3);
    let mut n = 0;
    p.drop_if = Some(Box::new(move |pk| {
        if pk.label() == "INVITE" {
            n += 1;
            return n <= 2;
        }
        false
    }));
    let _a = invite(&mut p);
    let (_b, _) = incoming(&mut p);
    assert_eq!(p.times_of("uac", "INVITE"), vec![0, 500, 1500]);
}

#[test]
fn timer_b_ends_an_unanswered_invite() {
    let mut p = Pair::new(4);
    p.drop_if = Some(Box::new(|pk| pk.to == addr(UAS)));
    let a = invite(&mut p);
    p.run_for(Duration::from_secs(40));
    assert_eq!(
        p.times_of("uac", "INVITE"),
        vec![0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::Timeout));
}

#[test]
fn lost_ack_gets_2xx_retransmitted_and_acked_again() {
    let mut p = Pair::new(5);
    let mut n = 0;
    p.drop_if = Some(Box::new(move |pk| {
        if pk.label() == "ACK" {
            n += 1;
            return n == 1;
        }
        false
    }));
    let (_a, b) = established_call(&mut p);
    assert_eq!(p.times_of("uas", "200 INVITE").len(), 2);
    assert_eq!(p.times_of("uac", "ACK").len(), 2);
    assert!(established(&p.uas_events, b));
    let stats = p.uas.stats();
    assert!(stats.retransmissions_sent >= 1);
}

#[test]
fn no_ack_means_2xx_retransmissions_then_bye() {
    let mut p = Pair::new(6);
    p.drop_if = Some(Box::new(|pk| pk.label() == "ACK"));
    let a = invite(&mut p);
    let (b, off) = incoming(&mut p);
    answer(&mut p, b, &off);
    let t_answer = p.ms();
    p.run_for(Duration::from_secs(40));
    let sends: Vec<u128> = p
        .times_of("uas", "200 INVITE")
        .iter()
        .map(|t| t - t_answer)
        .collect();
    assert_eq!(
        sends,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::AckTimeout));
    assert_eq!(
        p.times_of("uas", "BYE").first().map(|t| t - t_answer),
        Some(32000)
    );
    // The UAC saw the call established (it sent ACKs), then the BYE.
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::RemoteBye));
}

#[test]
fn cancel_before_answer_gives_487() {
    let mut p = Pair::new(7);
    let a = invite(&mut p);
    let (b, _) = incoming(&mut p);
    p.uas.ringing(p.now, b).unwrap();
    p.run_for(Duration::from_millis(100));
    p.uac.hangup(p.now, a).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::RemoteCancel));
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::LocalCancel));
    assert_eq!(
        p.sent_by("uas->uac"),
        vec!["100 INVITE", "180 INVITE", "200 CANCEL", "487 INVITE"]
    );
    assert_eq!(p.sent_by("uac->uas"), vec!["INVITE", "CANCEL", "ACK"]);
    assert_eq!(
        p.uas.answer(p.now, b, &offer(&[Codec::pcmu()])),
        Err(sip::CallError::UnknownCall)
    );
    p.run_for(Duration::from_secs(40));
    assert_eq!(
        p.times_of("uas", "487 INVITE").len(),
        1,
        "ACK stopped Timer G"
    );
    assert_eq!(p.uas.poll_timeout(), None);
}

#[test]
fn hangup_before_any_provisional_cancels_after_the_first() {
    let mut p = Pair::new(8);
    let a = invite(&mut p);
    p.uac.hangup(p.now, a).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.sent_by("uac->uas"), vec!["INVITE", "CANCEL", "ACK"]);
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::LocalCancel));
}

#[test]
fn rejection_is_retransmitted_by_timer_g_until_ack() {
    let mut p = Pair::new(9);
    p.drop_if = Some(Box::new(|pk| pk.label() == "ACK"));
    let a = invite(&mut p);
    let (b, _) = incoming(&mut p);
    let t = p.ms();
    p.uas.reject(p.now, b, 486).unwrap();
    p.run_for(Duration::from_secs(40));
    let sends: Vec<u128> = p
        .times_of("uas", "486 INVITE")
        .iter()
        .map(|x| x - t)
        .collect();
    assert_eq!(
        sends,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(
        ended(&p.uas_events, b),
        Some(EndReason::LocalRejected { status: 486 })
    );
    assert!(matches!(
        ended(&p.uac_events, a),
        Some(EndReason::RemoteRejected { status: 486, .. })
    ));
    // Timer H ended the server transaction; Timer D the client's.
    assert_eq!(p.uas.poll_timeout(), None);
    assert_eq!(p.uac.poll_timeout(), None);
}

#[test]
fn hangup_of_unanswered_inbound_call_is_480() {
    let mut p = Pair::new(10);
    let a = invite(&mut p);
    let (b, _) = incoming(&mut p);
    p.uas.hangup(p.now, b).unwrap();
    p.run_for(Duration::from_secs(1));
    assert!(matches!(
        ended(&p.uac_events, a),
        Some(EndReason::RemoteRejected { status: 480, .. })
    ));
}

#[test]
fn no_common_codec_is_488_decided_by_the_core() {
    let mut p = Pair::new(11);
    let a = invite_with(&mut p, &[Codec::new(18, "G729", 8000, None)]);
    p.run_for(Duration::from_secs(1));
    assert!(
        !p.uas_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall(_)))
    );
    assert!(
        p.uas_events
            .iter()
            .any(|e| matches!(e, Event::InboundRejected { status: 488, .. }))
    );
    assert!(matches!(
        ended(&p.uac_events, a),
        Some(EndReason::RemoteRejected { status: 488, .. })
    ));
    assert_eq!(p.uas.stats().calls_rejected_no_codec, 1);
}

#[test]
fn bye_timer_e_and_f_when_peer_vanishes() {
    let mut p = Pair::new(12);
    let (a, _b) = established_call(&mut p);
    p.drop_if = Some(Box::new(|pk| pk.to == addr(UAS)));
    let t = p.ms();
    p.uac.hangup(p.now, a).unwrap();
    p.run_for(Duration::from_secs(40));
    let sends: Vec<u128> = p.times_of("uac", "BYE").iter().map(|x| x - t).collect();
    assert_eq!(
        sends,
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::LocalBye));
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut p = Pair::new(13);
    let mut n = 0;
    p.drop_if = Some(Box::new(move |pk| {
        if pk.label() == "ACK" {
            n += 1;
            return n == 1;
        }
        false
    }));
    let a = invite(&mut p);
    let (b, off) = incoming(&mut p);
    answer(&mut p, b, &off);
    p.uas.hangup(p.now, b).unwrap();
    p.run_for(Duration::from_secs(3));
    let ack_ok = p.times_of("uas", "200 INVITE")[1];
    let bye = p.times_of("uas", "BYE");
    assert_eq!(bye.len(), 1);
    assert!(bye[0] > ack_ok, "BYE only after the (second) ACK arrived");
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::LocalBye));
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::RemoteBye));
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut p = Pair::new(14);
    invite(&mut p);
    let (b, _) = incoming(&mut p);
    let raw = p.first_sent(UAC, "INVITE").unwrap();
    let t = p.now;
    p.uas.handle_datagram(t, addr(UAC), &raw);
    p.drain();
    assert_eq!(
        p.uas_events
            .iter()
            .filter(|e| matches!(e, Event::IncomingCall(_)))
            .count(),
        1
    );
    assert_eq!(
        p.times_of("uas", "100 INVITE").len(),
        2,
        "last provisional resent"
    );
    assert_eq!(p.uas.stats().retransmissions_received, 1);
    p.uas.reject(t, b, 603).unwrap();
}

#[test]
fn unknown_dialog_gets_481_and_options_gets_200() {
    let mut p = Pair::new(15);
    let bye = b"BYE sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx1;rport\r\nTo: <sip:agent@192.0.2.20>;tag=nope\r\nFrom: <sip:alice@192.0.2.10>;tag=a\r\nCall-ID: unknown\r\nCSeq: 5 BYE\r\n\r\n";
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), bye);
    let r = p.uas.poll_transmit().unwrap();
    let Ok(SipMessage::Response(r)) = parse_datagram(&r.payload) else {
        panic!()
    };
    assert_eq!(r.status, 481);
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(5060)));
    assert_eq!(via.received(), Some("192.0.2.10"));
    let options = b"OPTIONS sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx2\r\nTo: <sip:agent@192.0.2.20>\r\nFrom: <sip:alice@192.0.2.10>;tag=a\r\nCall-ID: opt\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
    p.uas.handle_datagram(now, addr(UAC), options);
    let r = p.uas.poll_transmit().unwrap();
    let Ok(SipMessage::Response(r)) = parse_datagram(&r.payload) else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert!(r.headers.allow().contains(&sip::message::Method::Invite));
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    assert!(r.headers.contains("Supported"));
    assert!(r.headers.to().unwrap().tag().is_some());
}

#[test]
fn info_in_dialog_is_answered_and_reported() {
    let mut p = Pair::new(16);
    let (_a, b) = established_call(&mut p);
    // The ACK carries the dialog identifiers; turn it into an INFO with the next CSeq.
    let ack = p.first_sent(UAC, "ACK").unwrap();
    let Ok(SipMessage::Request(mut info)) = parse_datagram(&ack) else {
        panic!()
    };
    info.method = sip::message::Method::Info;
    let seq = info.headers.cseq().unwrap().seq + 1;
    info.headers.set("CSeq", format!("{seq} INFO"));
    info.headers
        .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinfo1");
    info.headers.set("Content-Type", "application/dtmf-relay");
    info.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &info.to_bytes());
    p.drain();
    assert!(p.sent_by("uas->uac").contains(&"200 INFO".to_owned()));
    assert!(p.uas_events.iter().any(|e| matches!(e,
        Event::Dtmf { call, digit: '5', duration_ms: Some(160) } if *call == b)));
    // An older CSeq in the same dialog is refused with 500.
    info.headers.set("CSeq", format!("{} INFO", seq - 5));
    info.headers
        .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinfo2");
    p.uas.handle_datagram(now, addr(UAC), &info.to_bytes());
    p.drain();
    assert!(p.sent_by("uas->uac").contains(&"500 INFO".to_owned()));
}

#[test]
fn seeded_loss_never_leaves_calls_half_open() {
    let mut completed = 0;
    for seed in 0..30 {
        let mut p = Pair::new(100 + seed);
        p.loss_percent = 25;
        let a = invite(&mut p);
        let got = p.run_until(Duration::from_secs(40), |p| {
            p.uas_events
                .iter()
                .any(|e| matches!(e, Event::IncomingCall(_)))
        });
        if got {
            let (b, off) = incoming(&mut p);
            let _ = p.uas.ringing(p.now, b);
            answer(&mut p, b, &off);
            p.run_for(Duration::from_secs(5));
            let _ = p.uac.hangup(p.now, a);
            p.run_for(Duration::from_secs(70));
            assert!(
                ended(&p.uas_events, b).is_some(),
                "seed {seed}: uas call never ended"
            );
            if established(&p.uas_events, b) && ended(&p.uac_events, a) == Some(EndReason::LocalBye)
            {
                completed += 1;
            }
        } else {
            p.run_for(Duration::from_secs(70));
        }
        assert!(
            ended(&p.uac_events, a).is_some(),
            "seed {seed}: uac call never ended"
        );
        assert_eq!(
            (p.uac.active_calls(), p.uas.active_calls()),
            (0, 0),
            "seed {seed}"
        );
        assert_eq!(p.uac.poll_timeout(), None, "seed {seed}");
        assert_eq!(p.uas.poll_timeout(), None, "seed {seed}");
    }
    // With 25 % loss most calls still complete thanks to retransmissions.
    assert!(completed >= 20, "only {completed}/30 calls completed");
}

#[test]
fn offerless_reinvite_gets_our_sdp_and_the_call_continues() {
    let mut p = Pair::new(17);
    let (a, b) = established_call(&mut p);
    let ack = p.first_sent(UAC, "ACK").unwrap();
    let Ok(SipMessage::Request(mut reinvite)) = parse_datagram(&ack) else {
        panic!()
    };
    reinvite.method = sip::message::Method::Invite;
    let seq = reinvite.headers.cseq().unwrap().seq + 1;
    reinvite.headers.set("CSeq", format!("{seq} INVITE"));
    reinvite
        .headers
        .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreinv1");
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &reinvite.to_bytes());
    p.drain();
    assert!(p.sent_by("uas->uac").contains(&"200 INVITE".to_owned()));
    let ok = p
        .sent
        .iter()
        .rev()
        .find(|pk| pk.label() == "200 INVITE")
        .unwrap();
    let Ok(SipMessage::Response(ok)) = parse_datagram(&ok.bytes) else {
        panic!()
    };
    // No offer in the re-INVITE: our 200 offers our current SDP (same version).
    let sdp = SessionDescription::parse(&ok.body).unwrap();
    assert_eq!(sdp.audio().map(|m| m.port), Some(40000));
    assert_eq!(ended(&p.uas_events, b), None);
    p.uac.hangup(p.now, a).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::RemoteBye));
}
