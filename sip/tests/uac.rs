//! Outbound calls against a scripted trunk (the test plays the proxy, message by message, in
//! simulated time): digest challenges (401/407, stale, refused), early media, ringing timeout
//! with CANCEL, 422 retry, failure classes, transport errors and the TCP switch for large
//! INVITEs.

mod common;

use std::time::Duration;

use common::{addr, config, epoch, events, requests, respond, sent_messages, statuses};
use sip::message::{Method, Request, SipMessage, Uri, parse_datagram};
use sip::sdp::{Codec, Direction, OfferParams, build_offer};
use sip::{
    CallId, Credentials, EndReason, Endpoint, Event, FailureClass, InviteParams, Transmit,
    TransportKind,
};

const PROXY: &str = "192.0.2.30:5060";

fn invite_params() -> InviteParams {
    let offer = build_offer(&OfferParams {
        codecs: &[Codec::pcmu()],
        address: "192.0.2.10".parse().unwrap(),
        port: 30000,
        session_id: 1,
        username: "agent",
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: Direction::SendRecv,
    });
    let mut p = InviteParams::new(
        Uri::parse("sip:+15551234@trunk.example.com").unwrap(),
        addr(PROXY),
        Uri::parse("sip:agent@trunk.example.com").unwrap(),
        offer,
    );
    p.credentials = Some(Credentials {
        username: "agent".into(),
        password: "agentpw".into(),
        realm: Some("trunk.example.com".into()),
    });
    p
}

fn ep() -> Endpoint {
    Endpoint::new(config("192.0.2.10:5060", 7))
}

/// The one INVITE among the messages sent.
fn the_invite(msgs: &[(Transmit, SipMessage)]) -> Request {
    let inv = requests(msgs, Method::Invite);
    assert_eq!(inv.len(), 1, "expected one INVITE");
    inv[0].clone()
}

fn challenge(inv: &Request, status: u16, nonce: &str, extra: &str) -> Vec<u8> {
    let mut r = sip::message::build::response_to(inv, status, Some("px"));
    let name = if status == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    r.headers.push(
        name,
        format!(
            r#"Digest realm="trunk.example.com", nonce="{nonce}", qop="auth", algorithm=MD5{extra}"#
        ),
    );
    r.to_bytes()
}

fn ended(evs: &[Event], call: CallId) -> Option<EndReason> {
    evs.iter().find_map(|e| match e {
        Event::CallEnded { call: c, reason } if *c == call => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn proxy_challenge_is_answered_with_same_call_id_and_tag_and_next_cseq() {
    let mut ep = ep();
    let t0 = epoch();
    let call = ep.invite(t0, invite_params()).unwrap();
    let first = the_invite(&sent_messages(&mut ep));
    assert_eq!(first.headers.get("Supported"), Some("timer"));
    assert_eq!(ep.sip_call_id(call), first.headers.call_id().ok());
    assert_eq!(first.headers.get("Session-Expires"), Some("1800"));
    ep.handle_datagram(t0, addr(PROXY), &challenge(&first, 407, "n1", ""));
    let msgs = sent_messages(&mut ep);
    // The transaction ACKs the 407; the core resends the INVITE with credentials.
    let acks = requests(&msgs, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].headers.cseq().unwrap(),
        first.headers.cseq().unwrap().with_ack()
    );
    let second = the_invite(&msgs);
    assert_eq!(second.headers.call_id(), first.headers.call_id());
    assert_eq!(
        second.headers.from().unwrap().tag(),
        first.headers.from().unwrap().tag()
    );
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
    assert_ne!(
        second.headers.top_via().unwrap().branch(),
        first.headers.top_via().unwrap().branch()
    );
    let auth = second
        .headers
        .get("Proxy-Authorization")
        .expect("credentials");
    assert!(auth.contains(r#"username="agent""#) && auth.contains("nc=00000001"));
    assert!(!auth.contains("agentpw"));
    // 183 with early media, then 200.
    let mut ringing = sip::message::build::response_to(&second, 183, Some("callee"));
    ringing.headers.push("Content-Type", "application/sdp");
    ringing.body = invite_params().offer.to_bytes();
    ep.handle_datagram(t0, addr(PROXY), &ringing.to_bytes());
    let mut ok = sip::message::build::response_to(&second, 200, Some("callee"));
    ok.headers.push("Contact", "<sip:callee@192.0.2.30>");
    ep.handle_datagram(t0, addr(PROXY), &ok.to_bytes());
    let msgs = sent_messages(&mut ep);
    assert_eq!(requests(&msgs, Method::Ack).len(), 1);
    let evs = events(&mut ep);
    assert!(evs.iter().any(|e| matches!(e,
        Event::CallProgress { call: c, status: 183, remote_sdp: Some(_) } if *c == call)));
    assert_eq!(ep.sip_call_id(call), first.headers.call_id().ok());
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::CallEstablished { call: c, .. } if *c == call))
    );
    assert_eq!(ep.stats().auth_challenges_answered, 1);
}

trait WithAck {
    fn with_ack(self) -> sip::message::CSeq;
}

impl WithAck for sip::message::CSeq {
    fn with_ack(mut self) -> sip::message::CSeq {
        self.method = Method::Ack;
        self
    }
}

#[test]
fn same_nonce_twice_fails_the_call_but_stale_retries() {
    let mut ep = ep();
    let t0 = epoch();
    let call = ep.invite(t0, invite_params()).unwrap();
    let first = the_invite(&sent_messages(&mut ep));
    ep.handle_datagram(t0, addr(PROXY), &challenge(&first, 401, "n1", ""));
    let second = the_invite(&sent_messages(&mut ep));
    assert!(second.headers.get("Authorization").is_some());
    // stale=true: the nonce expired, not the password; retry once more.
    ep.handle_datagram(
        t0,
        addr(PROXY),
        &challenge(&second, 401, "n1", ", stale=true"),
    );
    let third = the_invite(&sent_messages(&mut ep));
    assert_eq!(
        third.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 2
    );
    // The same nonce again without stale: the credentials are wrong.
    ep.handle_datagram(t0, addr(PROXY), &challenge(&third, 401, "n1", ""));
    assert!(requests(&sent_messages(&mut ep), Method::Invite).is_empty());
    let reason = ended(&events(&mut ep), call).unwrap();
    assert_eq!(reason, EndReason::AuthFailed { status: 401 });
    assert_eq!(reason.failure_class(), Some(FailureClass::Rejected));
}

#[test]
fn challenge_for_another_realm_or_without_credentials_fails() {
    let mut ep = ep();
    let t0 = epoch();
    let mut p = invite_params();
    p.credentials = None;
    let call = ep.invite(t0, p).unwrap();
    let inv = the_invite(&sent_messages(&mut ep));
    ep.handle_datagram(t0, addr(PROXY), &challenge(&inv, 407, "n", ""));
    assert_eq!(
        ended(&events(&mut ep), call),
        Some(EndReason::AuthFailed { status: 407 })
    );
}

#[test]
fn ringing_timeout_cancels_and_ends_as_no_answer() {
    let mut ep = ep();
    let t0 = epoch();
    let mut p = invite_params();
    p.ringing_timeout = Some(Duration::from_secs(20));
    let call = ep.invite(t0, p).unwrap();
    let inv = the_invite(&sent_messages(&mut ep));
    let t1 = t0 + Duration::from_millis(100);
    ep.handle_datagram(t1, addr(PROXY), &respond(&inv, 180, Some("callee")));
    events(&mut ep);
    // Step the endpoint's own timers until it cancels.
    let mut now = t1;
    let mut cancel = None;
    while let Some((t, _)) = ep.poll_timeout() {
        if t > t0 + Duration::from_secs(60) {
            break;
        }
        now = t;
        ep.handle_timeout(now);
        let c = requests(&sent_messages(&mut ep), Method::Cancel);
        if let Some(c) = c.into_iter().next() {
            cancel = Some(c);
            break;
        }
    }
    let cancel = cancel.expect("CANCEL sent");
    assert_eq!(now - t0, Duration::from_secs(20));
    assert_eq!(
        cancel.headers.top_via().unwrap().branch(),
        inv.headers.top_via().unwrap().branch()
    );
    ep.handle_datagram(now, addr(PROXY), &respond(&cancel, 200, Some("callee")));
    ep.handle_datagram(now, addr(PROXY), &respond(&inv, 487, Some("callee")));
    let reason = ended(&events(&mut ep), call).unwrap();
    assert_eq!(reason, EndReason::RingTimeout);
    assert_eq!(reason.failure_class(), Some(FailureClass::NoAnswer));
    assert_eq!(requests(&sent_messages(&mut ep), Method::Ack).len(), 1);
}

#[test]
fn ringing_timeout_before_any_provisional_cancels_after_the_first() {
    let mut ep = ep();
    let t0 = epoch();
    let mut p = invite_params();
    p.ringing_timeout = Some(Duration::from_secs(1));
    let call = ep.invite(t0, p).unwrap();
    let inv = the_invite(&sent_messages(&mut ep));
    ep.handle_timeout(t0 + Duration::from_secs(1));
    let t2 = t0 + Duration::from_secs(2);
    ep.handle_datagram(t2, addr(PROXY), &respond(&inv, 100, None));
    assert_eq!(requests(&sent_messages(&mut ep), Method::Cancel).len(), 1);
    ep.handle_datagram(t2, addr(PROXY), &respond(&inv, 487, Some("x")));
    assert_eq!(ended(&events(&mut ep), call), Some(EndReason::RingTimeout));
}

#[test]
fn final_failures_map_to_classes() {
    for (status, class) in [
        (486, FailureClass::Busy),
        (600, FailureClass::Busy),
        (480, FailureClass::NoAnswer),
        (408, FailureClass::NoAnswer),
        (404, FailureClass::Rejected),
        (603, FailureClass::Rejected),
        (503, FailureClass::Unreachable),
    ] {
        let mut ep = ep();
        let t0 = epoch();
        let call = ep.invite(t0, invite_params()).unwrap();
        let inv = the_invite(&sent_messages(&mut ep));
        ep.handle_datagram(t0, addr(PROXY), &respond(&inv, status, Some("x")));
        let reason = ended(&events(&mut ep), call).unwrap();
        assert_eq!(reason.failure_class(), Some(class), "{status}");
        assert_eq!(requests(&sent_messages(&mut ep), Method::Ack).len(), 1);
    }
}

#[test]
fn session_interval_too_small_is_retried_with_min_se() {
    let mut ep = ep();
    let t0 = epoch();
    let call = ep.invite(t0, invite_params()).unwrap();
    let first = the_invite(&sent_messages(&mut ep));
    let mut r = sip::message::build::response_to(&first, 422, Some("x"));
    r.headers.push("Min-SE", "3600");
    ep.handle_datagram(t0, addr(PROXY), &r.to_bytes());
    let second = the_invite(&sent_messages(&mut ep));
    assert_eq!(second.headers.get("Session-Expires"), Some("3600"));
    assert_eq!(second.headers.get("Min-SE"), Some("3600"));
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
    let mut ok = sip::message::build::response_to(&second, 200, Some("callee"));
    ok.headers.push("Contact", "<sip:callee@192.0.2.30>");
    ok.headers.push("Session-Expires", "3600;refresher=uac");
    ep.handle_datagram(t0, addr(PROXY), &ok.to_bytes());
    sent_messages(&mut ep);
    assert!(
        events(&mut ep)
            .iter()
            .any(|e| matches!(e, Event::CallEstablished { .. }))
    );
    // We are the refresher: a re-INVITE (the 200 did not allow UPDATE) at half the interval.
    let mut refresh = Vec::new();
    while let Some((due, _)) = ep.poll_timeout() {
        ep.handle_timeout(due);
        refresh = requests(&sent_messages(&mut ep), Method::Invite);
        if !refresh.is_empty() {
            assert_eq!(due - t0, Duration::from_secs(1800));
            break;
        }
    }
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        refresh[0].headers.get("Session-Expires"),
        Some("3600;refresher=uac")
    );
    assert!(
        !refresh[0].body.is_empty(),
        "the refresh re-INVITE offers our SDP"
    );
    let _ = call;
}

#[test]
fn no_response_and_transport_errors_are_unreachable() {
    let mut ep = ep();
    let t0 = epoch();
    let call = ep.invite(t0, invite_params()).unwrap();
    sent_messages(&mut ep);
    ep.handle_transport_error(t0, addr(PROXY), None);
    let reason = ended(&events(&mut ep), call).unwrap();
    assert_eq!(reason, EndReason::TransportError);
    assert_eq!(reason.failure_class(), Some(FailureClass::Unreachable));
    let call = ep.invite(t0, invite_params()).unwrap();
    ep.handle_timeout(t0 + Duration::from_secs(32));
    let reason = ended(&events(&mut ep), call).unwrap();
    assert_eq!(reason, EndReason::Timeout);
    assert_eq!(reason.failure_class(), Some(FailureClass::Unreachable));
}

#[test]
fn large_invite_switches_to_tcp_when_enabled() {
    let mut cfg = config("192.0.2.10:5060", 9);
    cfg.tcp_enabled = true;
    let mut ep = Endpoint::new(cfg);
    let t0 = epoch();
    let mut p = invite_params();
    p.headers.push(("X-Padding".into(), "x".repeat(1400)));
    ep.invite(t0, p).unwrap();
    let msgs = sent_messages(&mut ep);
    let (t, SipMessage::Request(inv)) = &msgs[0] else {
        panic!()
    };
    assert_eq!(t.transport, TransportKind::Tcp);
    assert_eq!(t.connection, None);
    let via = inv.headers.top_via().unwrap();
    assert_eq!(via.transport, sip::message::Transport::Tcp);
    assert!(via.rport().is_some());
    assert!(
        inv.headers
            .get("Contact")
            .unwrap()
            .contains("transport=tcp")
    );
    assert_eq!(ep.stats().requests_switched_to_tcp, 1);
    // Over TCP there are no retransmissions: nothing more until Timer B.
    let (due, _) = ep.poll_timeout().unwrap();
    assert!(due - t0 >= Duration::from_secs(20));
    // A small INVITE stays on UDP.
    ep.invite(t0, invite_params()).unwrap();
    let msgs = sent_messages(&mut ep);
    assert_eq!(msgs[0].0.transport, TransportKind::Udp);
}

#[test]
fn responses_over_tcp_learn_the_connection() {
    let mut ep = ep();
    let t0 = epoch();
    let mut p = invite_params();
    p.transport = Some(TransportKind::Tcp);
    let call = ep.invite(t0, p).unwrap();
    let inv = the_invite(&sent_messages(&mut ep));
    let mut ok = sip::message::build::response_to(&inv, 200, Some("callee"));
    ok.headers
        .push("Contact", "<sip:callee@192.0.2.30;transport=tcp>");
    let conn = sip::ConnectionId(42);
    ep.handle_stream_message(t0, addr(PROXY), conn, parse_datagram(&ok.to_bytes()));
    let msgs = sent_messages(&mut ep);
    let (t, _) = msgs
        .iter()
        .find(|(_, m)| matches!(m, SipMessage::Request(r) if r.method == Method::Ack))
        .unwrap();
    assert_eq!(
        (t.transport, t.connection),
        (TransportKind::Tcp, Some(conn))
    );
    ep.hangup(t0, call).unwrap();
    let msgs = sent_messages(&mut ep);
    assert_eq!(msgs[0].0.connection, Some(conn));
    assert_eq!(statuses(&msgs), Vec::<u16>::new());
}
