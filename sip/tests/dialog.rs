//! In-dialog features over the simulated network: hold/resume by re-INVITE and UPDATE (the
//! core answers from our SDP), session timers (refresh by the refresher, BYE on expiry, 422),
//! 100rel refusal, blind transfer by REFER with NOTIFY/sipfrag tracking, SIP INFO DTMF.

mod common;

use std::time::Duration;

use common::{Pair, UAC, UAS, addr};
use sip::message::{Method, Request, SipMessage, Uri, parse_datagram};
use sip::sdp::{
    AnswerParams, Codec, Direction, OfferParams, SessionDescription, build_answer, build_offer,
};
use sip::{CallId, EndReason, Event, InviteParams, TransferOutcome};

fn offer(direction: Direction, version: u64) -> SessionDescription {
    let mut o = build_offer(&OfferParams {
        codecs: &[Codec::pcmu(), Codec::pcma()],
        address: "192.0.2.10".parse().unwrap(),
        port: 30000,
        session_id: 1,
        username: "uac",
        telephone_event: Some(101),
        ptime_ms: 20,
        direction,
    });
    o.origin.session_version = version;
    o
}

fn ended(events: &[Event], call: CallId) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        Event::CallEnded { call: c, reason } if *c == call => Some(reason.clone()),
        _ => None,
    })
}

/// An established call; returns (uac call, uas call).
fn established(p: &mut Pair) -> (CallId, CallId) {
    let params = InviteParams::new(
        Uri::parse("sip:agent@192.0.2.20").unwrap(),
        addr(UAS),
        Uri::parse("sip:alice@192.0.2.10").unwrap(),
        offer(Direction::SendRecv, 1),
    );
    let a = p.uac.invite(p.now, params).unwrap();
    assert!(p.run_until(Duration::from_secs(5), |p| {
        p.uas_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall(_)))
    }));
    let Some(Event::IncomingCall(ic)) = p
        .uas_events
        .iter()
        .find(|e| matches!(e, Event::IncomingCall(_)))
        .cloned()
    else {
        unreachable!()
    };
    let (sdp, _) = build_answer(
        ic.offer.as_ref().unwrap(),
        &AnswerParams {
            codecs: &[Codec::pcmu()],
            address: "192.0.2.20".parse().unwrap(),
            port: 40000,
            session_id: 2,
            username: "uas",
        },
    )
    .unwrap();
    p.uas.answer(p.now, ic.call, &sdp).unwrap();
    let b = ic.call;
    assert!(p.run_until(Duration::from_secs(5), |p| {
        let up = |evs: &[Event], c| {
            evs.iter()
                .any(|e| matches!(e, Event::CallEstablished { call, .. } if *call == c))
        };
        up(&p.uas_events, b) && up(&p.uac_events, a)
    }));
    (a, b)
}

/// A request from the UAC in the established dialog, built from its ACK (hand-made, as a
/// peer with features our UAC has no verb for would send it).
fn from_uac(p: &Pair, method: Method, seq_add: u32, branch: &str) -> Request {
    let ack = p.first_sent(UAC, "ACK").unwrap();
    let Ok(SipMessage::Request(mut r)) = parse_datagram(&ack) else {
        panic!()
    };
    r.method = method.clone();
    let seq = r.headers.cseq().unwrap().seq + seq_add;
    r.headers.set("CSeq", format!("{seq} {method}"));
    r.headers.set(
        "Via",
        format!("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}"),
    );
    r
}

fn with_sdp(mut r: Request, sdp: &SessionDescription) -> Request {
    r.headers.set("Content-Type", "application/sdp");
    r.body = sdp.to_bytes();
    r
}

/// The last response `who` sent with this label, parsed.
fn last_response(p: &Pair, from: &str, label: &str) -> sip::message::Response {
    let pk = p
        .sent
        .iter()
        .rev()
        .find(|pk| pk.from == addr(from) && pk.label() == label)
        .unwrap_or_else(|| panic!("no {label}"));
    match parse_datagram(&pk.bytes) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn media_updates(events: &[Event]) -> Vec<Direction> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MediaUpdated { direction, .. } => Some(*direction),
            _ => None,
        })
        .collect()
}

#[test]
fn hold_and_resume_by_reinvite_are_answered_by_the_core() {
    let mut p = Pair::new(21);
    let (_a, b) = established(&mut p);
    let hold = with_sdp(
        from_uac(&p, Method::Invite, 1, "hold"),
        &offer(Direction::SendOnly, 2),
    );
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &hold.to_bytes());
    p.run_for(Duration::from_millis(100));
    let ok = last_response(&p, UAS, "200 INVITE");
    let answer = SessionDescription::parse(&ok.body).unwrap();
    let audio = answer.audio().unwrap();
    assert!(audio.attribute("recvonly").is_some());
    assert_eq!(audio.port, 40000);
    assert_eq!(
        answer.origin.session_version, 3,
        "changed answer: version + 1"
    );
    assert_eq!(media_updates(&p.uas_events), vec![Direction::RecvOnly]);
    // The 200 is retransmitted until an ACK for its CSeq comes.
    p.run_for(Duration::from_millis(600));
    assert!(p.times_of("uas", "200 INVITE").len() >= 3);
    let mut ack = from_uac(&p, Method::Ack, 1, "hold");
    ack.headers
        .set("CSeq", format!("{} ACK", hold.headers.cseq().unwrap().seq));
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &ack.to_bytes());
    let n = p.times_of("uas", "200 INVITE").len();
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        p.times_of("uas", "200 INVITE").len(),
        n,
        "ACK stopped the retransmissions"
    );
    // Resume.
    let resume = with_sdp(
        from_uac(&p, Method::Invite, 2, "resume"),
        &offer(Direction::SendRecv, 3),
    );
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &resume.to_bytes());
    p.drain();
    assert_eq!(
        media_updates(&p.uas_events),
        vec![Direction::RecvOnly, Direction::SendRecv]
    );
    let ok = last_response(&p, UAS, "200 INVITE");
    let answer = SessionDescription::parse(&ok.body).unwrap();
    assert!(answer.audio().unwrap().attribute("sendrecv").is_some());
    assert_eq!(ended(&p.uas_events, b), None);
}

#[test]
fn inactive_update_and_old_style_hold() {
    let mut p = Pair::new(22);
    let (_a, _b) = established(&mut p);
    let upd = with_sdp(
        from_uac(&p, Method::Update, 1, "upd"),
        &offer(Direction::Inactive, 2),
    );
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &upd.to_bytes());
    p.drain();
    let ok = last_response(&p, UAS, "200 UPDATE");
    let answer = SessionDescription::parse(&ok.body).unwrap();
    assert!(answer.audio().unwrap().attribute("inactive").is_some());
    // RFC 2543 hold: c=0.0.0.0 with sendrecv means "do not send to me".
    let mut zero = offer(Direction::SendRecv, 3);
    zero.connection = Some(sip::sdp::Connection::ip("0.0.0.0".parse().unwrap()));
    let upd = with_sdp(from_uac(&p, Method::Update, 2, "upd2"), &zero);
    p.uas.handle_datagram(now, addr(UAC), &upd.to_bytes());
    p.drain();
    assert_eq!(
        media_updates(&p.uas_events),
        vec![Direction::Inactive, Direction::RecvOnly]
    );
    // An offer without a common codec is refused; the call and its SDP stay.
    let mut g729 = offer(Direction::SendRecv, 4);
    let m = &mut g729.media[0];
    m.formats = vec!["18".into()];
    m.attributes
        .retain(|a| a.name != "rtpmap" && a.name != "fmtp");
    let upd = with_sdp(from_uac(&p, Method::Update, 3, "upd3"), &g729);
    p.uas.handle_datagram(now, addr(UAC), &upd.to_bytes());
    p.drain();
    assert!(p.sent_by("uas->uac").contains(&"488 UPDATE".to_owned()));
}

#[test]
fn reinvite_glare_and_pending_ack_get_491_or_500() {
    let mut p = Pair::new(23);
    let (_a, _b) = established(&mut p);
    // Drop ACKs so the first re-INVITE's 2xx stays unacknowledged.
    p.drop_if = Some(Box::new(|pk| pk.label() == "ACK"));
    let r1 = with_sdp(
        from_uac(&p, Method::Invite, 1, "r1"),
        &offer(Direction::SendOnly, 2),
    );
    let r2 = with_sdp(
        from_uac(&p, Method::Invite, 2, "r2"),
        &offer(Direction::SendRecv, 3),
    );
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &r1.to_bytes());
    p.uas.handle_datagram(now, addr(UAC), &r2.to_bytes());
    p.drain();
    let r = last_response(&p, UAS, "500 INVITE");
    assert!(r.headers.get("Retry-After").is_some());
}

#[test]
fn session_timer_refreshes_by_update_and_the_call_stays_up() {
    let mut p = Pair::new(24);
    let (a, b) = established(&mut p);
    let ok = last_response(&p, UAS, "200 INVITE");
    assert_eq!(
        ok.headers.get("Session-Expires"),
        Some("1800;refresher=uac")
    );
    assert!(ok.headers.require().contains(&"timer"));
    p.run_for(Duration::from_secs(2000));
    let updates = p.times_of("uac", "UPDATE");
    let secs: Vec<u128> = updates.iter().map(|ms| ms / 1000).collect();
    assert_eq!(secs.len(), 2, "{secs:?}");
    assert!(secs[0] >= 900 && secs[0] < 902, "{secs:?}");
    assert!(p.sent_by("uas->uac").contains(&"200 UPDATE".to_owned()));
    assert_eq!(ended(&p.uac_events, a), None);
    assert_eq!(ended(&p.uas_events, b), None);
}

#[test]
fn session_expires_without_refresh_and_the_uas_sends_bye() {
    let mut p = Pair::new(25);
    let (a, b) = established(&mut p);
    let t_answer = p.times_of("uas", "200 INVITE")[0];
    // The refresher (the UAC) goes silent.
    p.drop_if = Some(Box::new(|pk| pk.from == addr(UAC)));
    p.run_for(Duration::from_secs(1900));
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::SessionExpired));
    let bye = p.times_of("uas", "BYE")[0];
    // 1800 - min(32, 600) = 1768 s after the 200.
    assert_eq!((bye - t_answer) / 1000, 1768);
    // The UAC's refresh timed out (Timer F): it ended its side too (RFC 3261 §12.2.1.2).
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::SessionExpired));
}

#[test]
fn interval_below_min_se_gets_422_and_the_uac_retries() {
    let mut p = Pair::new(26);
    let mut uas_cfg = common::config(UAS, 99);
    uas_cfg.min_se = 1000;
    p.uas = sip::Endpoint::new(uas_cfg);
    let mut uac_cfg = common::config(UAC, 98);
    uac_cfg.session_expires = Some(600);
    p.uac = sip::Endpoint::new(uac_cfg);
    let (_a, _b) = established(&mut p);
    let r = last_response(&p, UAS, "422 INVITE");
    assert_eq!(r.headers.get("Min-SE"), Some("1000"));
    let ok = last_response(&p, UAS, "200 INVITE");
    assert_eq!(
        ok.headers.get("Session-Expires"),
        Some("1000;refresher=uac")
    );
    assert!(
        p.uas_events
            .iter()
            .any(|e| matches!(e, Event::InboundRejected { status: 422, .. }))
    );
}

#[test]
fn require_100rel_gets_420_but_require_timer_is_accepted() {
    let mut p = Pair::new(27);
    let raw = |branch: &str, require: &str| {
        format!("INVITE sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nTo: <sip:agent@192.0.2.20>\r\nFrom: <sip:a@192.0.2.10>;tag={branch}\r\nCall-ID: {branch}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.10>\r\nRequire: {require}\r\nSupported: timer\r\nSession-Expires: 300\r\nContent-Length: 0\r\n\r\n").into_bytes()
    };
    let now = p.now;
    p.uas
        .handle_datagram(now, addr(UAC), &raw("r1", "100rel, timer"));
    p.uas.handle_datagram(now, addr(UAC), &raw("r2", "timer"));
    p.drain();
    let r = last_response(&p, UAS, "420 INVITE");
    assert_eq!(r.headers.get("Unsupported"), Some("100rel"));
    assert!(p.sent_by("uas->uac").contains(&"100 INVITE".to_owned()));
}

/// A NOTIFY for the transfer, as the transferee would send it to the UAS.
fn notify(refer: &Request, seq: u32, sipfrag: &str, state: &str) -> Vec<u8> {
    let from = refer.headers.get("To").unwrap();
    let to = refer.headers.get("From").unwrap();
    format!(
        "NOTIFY sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKn{seq}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {seq} NOTIFY\r\nEvent: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{sipfrag}",
        refer.headers.call_id().unwrap(),
        sipfrag.len()
    )
    .into_bytes()
}

fn transfer_results(events: &[Event]) -> Vec<TransferOutcome> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TransferResult { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// Establishes a call, has the UAS transfer it with the REFER kept from the UAC (the test
/// plays the transferee), and answers 202. Returns the calls and the REFER.
fn transfer_started(seed: u64) -> (Pair, CallId, CallId, Request) {
    let mut p = Pair::new(seed);
    let (a, b) = established(&mut p);
    p.drop_if = Some(Box::new(|pk| pk.label() == "REFER"));
    let target = Uri::parse("sip:desk@192.0.2.99").unwrap();
    p.uas.transfer(p.now, b, target).unwrap();
    assert_eq!(
        p.uas.transfer(p.now, b, Uri::parse("sip:x@y").unwrap()),
        Err(sip::CallError::TransferPending)
    );
    p.drain();
    let raw = p.first_sent(UAS, "REFER").unwrap();
    let Ok(SipMessage::Request(refer)) = parse_datagram(&raw) else {
        panic!()
    };
    assert_eq!(refer.headers.get("Refer-To"), Some("<sip:desk@192.0.2.99>"));
    assert_eq!(
        refer.headers.get("Referred-By"),
        Some("<sip:agent@192.0.2.20>")
    );
    let accepted = sip::message::build::response_to(&refer, 202, None).to_bytes();
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &accepted);
    p.drain();
    assert!(
        transfer_results(&p.uas_events).is_empty(),
        "202 alone is not success"
    );
    (p, a, b, refer)
}

#[test]
fn transfer_succeeds_on_2xx_sipfrag_then_we_leave_the_call() {
    let (mut p, a, b, refer) = transfer_started(28);
    let now = p.now;
    p.uas.handle_datagram(
        now,
        addr(UAC),
        &notify(
            &refer,
            200_010,
            "SIP/2.0 100 Trying\r\n",
            "active;expires=60",
        ),
    );
    p.uas.handle_datagram(
        now,
        addr(UAC),
        &notify(
            &refer,
            200_011,
            "SIP/2.0 200 OK\r\n",
            "terminated;reason=noresource",
        ),
    );
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.times_of("uas", "200 NOTIFY").len(), 2);
    assert_eq!(
        transfer_results(&p.uas_events),
        vec![TransferOutcome::Accepted]
    );
    assert_eq!(ended(&p.uas_events, b), Some(EndReason::Transferred));
    assert_eq!(ended(&p.uac_events, a), Some(EndReason::RemoteBye));
}

#[test]
fn transfer_failure_keeps_the_call() {
    let (mut p, _a, b, refer) = transfer_started(29);
    let now = p.now;
    p.uas.handle_datagram(
        now,
        addr(UAC),
        &notify(&refer, 200_010, "SIP/2.0 486 Busy Here\r\n", "terminated"),
    );
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        transfer_results(&p.uas_events),
        vec![TransferOutcome::Failed { status: 486 }]
    );
    assert_eq!(ended(&p.uas_events, b), None);
    // A NOTIFY after the transfer is over, or for another package, is refused.
    p.uas.handle_datagram(
        now,
        addr(UAC),
        &notify(&refer, 200_012, "SIP/2.0 200 OK\r\n", "terminated"),
    );
    p.drain();
    assert!(p.sent_by("uas->uac").contains(&"481 NOTIFY".to_owned()));
}

#[test]
fn transfer_without_final_notify_times_out() {
    let (mut p, _a, b, _refer) = transfer_started(30);
    p.run_for(Duration::from_secs(61));
    assert_eq!(
        transfer_results(&p.uas_events),
        vec![TransferOutcome::TimedOut]
    );
    assert_eq!(ended(&p.uas_events, b), None);
}

#[test]
fn refer_refused_by_the_peer_and_inbound_refer_is_403() {
    let mut p = Pair::new(31);
    let (_a, b) = established(&mut p);
    // Our own UAS-side endpoint refuses inbound REFER with 403.
    p.uas
        .transfer(p.now, b, Uri::parse("sip:desk@192.0.2.99").unwrap())
        .unwrap();
    p.run_for(Duration::from_secs(1));
    assert!(p.sent_by("uac->uas").contains(&"403 REFER".to_owned()));
    assert_eq!(
        transfer_results(&p.uas_events),
        vec![TransferOutcome::Failed { status: 403 }]
    );
}

#[test]
fn info_dtmf_both_content_types() {
    let mut p = Pair::new(32);
    let (_a, b) = established(&mut p);
    let mut info = from_uac(&p, Method::Info, 1, "i1");
    info.headers.set("Content-Type", "application/dtmf");
    info.body = b"#".to_vec();
    let now = p.now;
    p.uas.handle_datagram(now, addr(UAC), &info.to_bytes());
    let mut other = from_uac(&p, Method::Info, 2, "i2");
    other.headers.set("Content-Type", "application/x-custom");
    other.body = b"hello".to_vec();
    p.uas.handle_datagram(now, addr(UAC), &other.to_bytes());
    p.drain();
    assert!(p.uas_events.iter().any(|e| matches!(e,
        Event::Dtmf { call, digit: '#', duration_ms: None } if *call == b)));
    assert!(p.uas_events.iter().any(|e| matches!(e,
        Event::InfoReceived { content_type: Some(ct), .. } if ct == "application/x-custom")));
}

#[test]
fn we_refresh_when_the_caller_does_not_support_timers() {
    let mut ep = sip::Endpoint::new(common::config(UAS, 40));
    let t0 = common::epoch();
    let sdp = offer(Direction::SendRecv, 1).to_string();
    let invite = format!(
        "INVITE sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKold1\r\nMax-Forwards: 70\r\nTo: <sip:agent@192.0.2.20>\r\nFrom: <sip:a@192.0.2.10>;tag=old\r\nCall-ID: old1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.10>\r\nAllow: INVITE, ACK, BYE, CANCEL\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    ep.handle_datagram(t0, addr(UAC), invite.as_bytes());
    let Some(Event::IncomingCall(ic)) = common::events(&mut ep).into_iter().next() else {
        panic!()
    };
    let (answer, _) = build_answer(
        ic.offer.as_ref().unwrap(),
        &AnswerParams {
            codecs: &[Codec::pcmu()],
            address: "192.0.2.20".parse().unwrap(),
            port: 40000,
            session_id: 2,
            username: "uas",
        },
    )
    .unwrap();
    ep.answer(t0, ic.call, &answer).unwrap();
    let msgs = common::sent_messages(&mut ep);
    let Some((_, SipMessage::Response(ok))) = msgs.last() else {
        panic!()
    };
    assert_eq!(
        ok.headers.get("Session-Expires"),
        Some("1800;refresher=uas")
    );
    assert!(ok.headers.require().is_empty());
    let to = ok.headers.get("To").unwrap();
    let ack = format!(
        "ACK sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKold2\r\nMax-Forwards: 70\r\nTo: {to}\r\nFrom: <sip:a@192.0.2.10>;tag=old\r\nCall-ID: old1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_datagram(t0, addr(UAC), ack.as_bytes());
    let mut refresh = None;
    while let Some((t, _)) = ep.poll_timeout() {
        ep.handle_timeout(t);
        if let Some(r) = common::requests(&common::sent_messages(&mut ep), Method::Invite).pop() {
            refresh = Some((t - t0, r));
            break;
        }
    }
    let (at, r) = refresh.expect("refresh re-INVITE");
    assert_eq!(at, Duration::from_secs(900));
    assert_eq!(r.headers.get("Session-Expires"), Some("1800;refresher=uac"));
    assert_eq!(
        SessionDescription::parse(&r.body).unwrap(),
        answer,
        "unchanged SDP"
    );
}
