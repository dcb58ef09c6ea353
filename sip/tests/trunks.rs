//! Trunks against a scripted registrar (the test answers each request): REGISTER with a 401
//! challenge, refresh at 80 % of the granted expiry, backoff after failures, unregister;
//! OPTIONS keepalives and health; inbound admission (CIDR lists, rate limit, capacity); TCP
//! inbound with rport/received.

mod common;

use std::time::{Duration, Instant};

use common::{addr, config, epoch, events, requests, respond, sent_messages, statuses};
use sip::message::{Method, Request, SipMessage, parse_datagram};
use sip::{
    ConnectionId, Credentials, Endpoint, Event, RateLimit, RegistrationState, TransportKind, Trunk,
};

const REGISTRAR: &str = "192.0.2.30:5060";

fn trunk() -> Trunk {
    let mut t = Trunk::new("carrier", addr(REGISTRAR), "trunk.example.com");
    t.credentials = Some(Credentials::new("agent", "agentpw"));
    t.register = true;
    t.register_expires = 3600;
    t
}

fn registers(ep: &mut Endpoint) -> Vec<Request> {
    requests(&sent_messages(ep), Method::Register)
}

fn states(evs: &[Event]) -> Vec<RegistrationState> {
    evs.iter()
        .filter_map(|e| match e {
            Event::RegistrationChanged { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

/// Fires the endpoint's timers up to `until`, returning the REGISTERs sent and when.
fn run_registers(ep: &mut Endpoint, until: Instant) -> Vec<(Instant, Request)> {
    let mut out = Vec::new();
    while let Some((t, _)) = ep.poll_timeout() {
        if t > until {
            break;
        }
        ep.handle_timeout(t);
        for r in registers(ep) {
            // Retransmissions (same CSeq) are not new attempts.
            let seq = r.headers.cseq().map(|c| c.seq).ok();
            if out.last().is_none_or(|(_, l): &(Instant, Request)| {
                l.headers.cseq().map(|c| c.seq).ok() != seq
            }) {
                out.push((t, r));
            }
        }
    }
    out
}

fn ok_with_contact_expires(req: &Request, expires: u32) -> Vec<u8> {
    let mut r = sip::message::build::response_to(req, 200, Some("reg"));
    let contact = req.headers.get("Contact").unwrap();
    r.headers
        .push("Contact", format!("{contact};expires={expires}"));
    r.headers
        .push("Contact", "<sip:other@198.51.100.1>;expires=30");
    r.headers.push("Expires", "9999");
    r.to_bytes()
}

#[test]
fn register_with_challenge_then_refresh_at_80_percent_of_granted() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 3));
    let t0 = epoch();
    ep.add_trunk(t0, trunk()).unwrap();
    let first = registers(&mut ep);
    assert_eq!(first.len(), 1);
    let r1 = &first[0];
    assert_eq!(r1.uri.to_string(), "sip:trunk.example.com");
    assert_eq!(r1.headers.get("Expires"), Some("3600"));
    assert_eq!(
        r1.headers.to().unwrap().uri.to_string(),
        "sip:agent@trunk.example.com"
    );
    assert_eq!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Registering)
    );
    let mut chal = sip::message::build::response_to(r1, 401, Some("reg"));
    chal.headers.push(
        "WWW-Authenticate",
        r#"Digest realm="trunk.example.com", nonce="abc", qop="auth", algorithm=SHA-256"#,
    );
    ep.handle_datagram(t0, addr(REGISTRAR), &chal.to_bytes());
    let r2 = registers(&mut ep).remove(0);
    assert_eq!(r2.headers.call_id(), r1.headers.call_id());
    assert_eq!(
        r2.headers.cseq().unwrap().seq,
        r1.headers.cseq().unwrap().seq + 1
    );
    let auth = r2.headers.get("Authorization").unwrap();
    assert!(auth.contains("algorithm=SHA-256") && auth.contains("nc=00000001"));
    // The registrar grants 120 s on our Contact (other bindings and the header differ).
    ep.handle_datagram(t0, addr(REGISTRAR), &ok_with_contact_expires(&r2, 120));
    assert_eq!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Registered {
            expires_at: t0 + Duration::from_secs(120)
        })
    );
    let evs = events(&mut ep);
    assert_eq!(
        states(&evs),
        vec![
            RegistrationState::Registering,
            RegistrationState::Registered {
                expires_at: t0 + Duration::from_secs(120)
            }
        ]
    );
    // Refresh at 96 s, with credentials up front (nonce count 2), and no state flap.
    let sent = run_registers(&mut ep, t0 + Duration::from_secs(100));
    let (at, r3) = &sent[0];
    assert_eq!(*at - t0, Duration::from_secs(96));
    assert!(
        r3.headers
            .get("Authorization")
            .unwrap()
            .contains("nc=00000002")
    );
    assert!(states(&events(&mut ep)).is_empty());
    let t = *at;
    ep.handle_datagram(t, addr(REGISTRAR), &ok_with_contact_expires(r3, 120));
    // Unregister: Expires 0 on our contact, then Unregistered.
    ep.unregister(t, "carrier").unwrap();
    let r4 = registers(&mut ep).remove(0);
    assert_eq!(r4.headers.get("Expires"), Some("0"));
    assert!(r4.headers.get("Contact").unwrap().ends_with(";expires=0"));
    ep.handle_datagram(t, addr(REGISTRAR), &respond(&r4, 200, Some("reg")));
    assert_eq!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Unregistered)
    );
    assert!(run_registers(&mut ep, t + Duration::from_secs(7200)).is_empty());
}

#[test]
fn failures_back_off_exponentially_and_recover() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 4));
    let t0 = epoch();
    let mut tr = trunk();
    tr.retry_base = Duration::from_secs(5);
    tr.retry_max = Duration::from_secs(30);
    ep.add_trunk(t0, tr).unwrap();
    let r = registers(&mut ep).remove(0);
    ep.handle_datagram(t0, addr(REGISTRAR), &respond(&r, 503, Some("x")));
    assert!(matches!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Failed { status: 503, retry_at }) if retry_at == t0 + Duration::from_secs(5)
    ));
    // Then nothing answers: Timer F (32 s) per attempt, backoff 10, 20, 30 (cap).
    let sent = run_registers(&mut ep, t0 + Duration::from_secs(170));
    let times: Vec<u64> = sent.iter().map(|(t, _)| (*t - t0).as_secs()).collect();
    assert_eq!(times, vec![5, 5 + 32 + 10, 47 + 32 + 20, 99 + 32 + 30]);
    // A retry in flight shows as Registering (after each Failed).
    assert_eq!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Registering)
    );
    assert!(
        states(&events(&mut ep))
            .iter()
            .any(|s| matches!(s, RegistrationState::Failed { status: 408, .. }))
    );
    let (t, last) = sent.last().unwrap().clone();
    ep.handle_datagram(t, addr(REGISTRAR), &respond(&last, 200, Some("x")));
    // No expires in the 200: what we asked for counts.
    assert_eq!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Registered {
            expires_at: t + Duration::from_secs(3600)
        })
    );
}

#[test]
fn wrong_password_is_a_failure_not_a_loop() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 5));
    let t0 = epoch();
    ep.add_trunk(t0, trunk()).unwrap();
    let chal = |r: &Request| {
        let mut c = sip::message::build::response_to(r, 401, Some("reg"));
        c.headers.push(
            "WWW-Authenticate",
            r#"Digest realm="trunk.example.com", nonce="same""#,
        );
        c.to_bytes()
    };
    let r1 = registers(&mut ep).remove(0);
    ep.handle_datagram(t0, addr(REGISTRAR), &chal(&r1));
    let r2 = registers(&mut ep).remove(0);
    ep.handle_datagram(t0, addr(REGISTRAR), &chal(&r2));
    assert!(registers(&mut ep).is_empty());
    assert!(matches!(
        ep.registration_state("carrier"),
        Some(RegistrationState::Failed { status: 401, .. })
    ));
}

#[test]
fn interval_too_brief_raises_the_expiry() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 6));
    let t0 = epoch();
    let mut tr = trunk();
    tr.register_expires = 60;
    ep.add_trunk(t0, tr).unwrap();
    let r1 = registers(&mut ep).remove(0);
    let mut r = sip::message::build::response_to(&r1, 423, Some("x"));
    r.headers.push("Min-Expires", "300");
    ep.handle_datagram(t0, addr(REGISTRAR), &r.to_bytes());
    let r2 = registers(&mut ep).remove(0);
    assert_eq!(r2.headers.get("Expires"), Some("300"));
}

#[test]
fn options_keepalive_reports_health() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 8));
    let t0 = epoch();
    let mut tr = trunk();
    tr.register = false;
    tr.keepalive_interval = Some(Duration::from_secs(30));
    ep.add_trunk(t0, tr).unwrap();
    let opts = requests(&sent_messages(&mut ep), Method::Options);
    assert_eq!(opts.len(), 1);
    let t1 = t0 + Duration::from_millis(40);
    ep.handle_datagram(t1, addr(REGISTRAR), &respond(&opts[0], 200, Some("x")));
    let evs = events(&mut ep);
    assert!(evs.iter().any(|e| matches!(e,
        Event::TrunkHealth { trunk, up: true, rtt: Some(rtt) } if trunk == "carrier" && *rtt == Duration::from_millis(40))));
    assert!(ep.trunk_health("carrier").unwrap().up);
    // The next probe at 30 s goes unanswered: down after Timer F; probes continue meanwhile
    // without piling up.
    let mut now = t1;
    let mut probes = 0;
    let mut down = false;
    while let Some((t, _)) = ep.poll_timeout() {
        if t > t0 + Duration::from_secs(70) {
            break;
        }
        now = t;
        ep.handle_timeout(now);
        probes += requests(&sent_messages(&mut ep), Method::Options)
            .iter()
            .filter(|r| r.headers.cseq().is_ok())
            .count();
        down |= events(&mut ep).iter().any(|e| {
            matches!(
                e,
                Event::TrunkHealth {
                    up: false,
                    rtt: None,
                    ..
                }
            )
        });
    }
    assert!(down, "no down report by {:?}", now - t0);
    assert!(probes >= 2, "first probe plus its retransmissions");
    assert!(!ep.trunk_health("carrier").unwrap().up);
}

fn invite_bytes(branch: &str, call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:agent@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nTo: <sip:agent@192.0.2.10>\r\nFrom: <sip:c@203.0.113.5>;tag=f{branch}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@203.0.113.5>\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn sources_outside_the_allow_lists_get_403() {
    let mut cfg = config("192.0.2.10:5060", 9);
    cfg.allowed_sources = vec![("carrier".into(), vec!["198.51.100.0/24".parse().unwrap()])];
    let mut ep = Endpoint::new(cfg);
    let t0 = epoch();
    ep.handle_datagram(t0, addr("203.0.113.5:5060"), &invite_bytes("a", "c1"));
    assert_eq!(statuses(&sent_messages(&mut ep)), vec![403]);
    assert_eq!(ep.stats().rejected_source, 1);
    assert!(events(&mut ep).is_empty());
    // Garbage from outside is dropped, never answered.
    ep.handle_datagram(t0, addr("203.0.113.5:5060"), b"INVITE nonsense\r\n\r\n");
    assert!(sent_messages(&mut ep).is_empty());
    ep.handle_datagram(t0, addr("198.51.100.7:5060"), &invite_bytes("b", "c2"));
    assert_eq!(statuses(&sent_messages(&mut ep)), vec![100]);
    let evs = events(&mut ep);
    assert!(evs.iter().any(|e| matches!(e,
        Event::IncomingCall(ic) if ic.trunk.as_deref() == Some("carrier"))));
}

#[test]
fn rate_limit_drops_excess_requests_per_source() {
    let mut cfg = config("192.0.2.10:5060", 10);
    cfg.rate_limit = Some(RateLimit {
        per_second: 1.0,
        burst: 3,
        max_sources: 100,
    });
    let mut ep = Endpoint::new(cfg);
    let t0 = epoch();
    let options = |n: u32| {
        format!("OPTIONS sip:agent@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKo{n}\r\nTo: <sip:agent@192.0.2.10>\r\nFrom: <sip:c@203.0.113.5>;tag=1\r\nCall-ID: o{n}\r\nCSeq: 1 OPTIONS\r\n\r\n").into_bytes()
    };
    for n in 0..10 {
        ep.handle_datagram(t0, addr("203.0.113.5:5060"), &options(n));
    }
    assert_eq!(statuses(&sent_messages(&mut ep)), vec![200, 200, 200]);
    assert_eq!(ep.stats().rate_limited, 7);
    // Another source has its own bucket; the first refills with time.
    ep.handle_datagram(t0, addr("203.0.113.6:5060"), &options(20));
    ep.handle_datagram(
        t0 + Duration::from_secs(1),
        addr("203.0.113.5:5060"),
        &options(21),
    );
    assert_eq!(statuses(&sent_messages(&mut ep)), vec![200, 200]);
}

#[test]
fn max_concurrent_calls_gives_503_with_retry_after() {
    let mut cfg = config("192.0.2.10:5060", 11);
    cfg.max_concurrent_calls = Some(1);
    let mut ep = Endpoint::new(cfg);
    let t0 = epoch();
    ep.handle_datagram(t0, addr("203.0.113.5:5060"), &invite_bytes("a", "c1"));
    ep.handle_datagram(t0, addr("203.0.113.5:5060"), &invite_bytes("b", "c2"));
    let msgs = sent_messages(&mut ep);
    assert_eq!(statuses(&msgs), vec![100, 503]);
    let SipMessage::Response(r) = &msgs[1].1 else {
        panic!()
    };
    assert_eq!(r.headers.get("Retry-After"), Some("5"));
    assert_eq!(ep.stats().calls_rejected_capacity, 1);
    assert!(
        events(&mut ep)
            .iter()
            .any(|e| matches!(e, Event::InboundRejected { status: 503, .. }))
    );
    assert!(matches!(
        ep.invite(
            t0,
            sip::InviteParams::new(
                sip::message::Uri::parse("sip:x@y").unwrap(),
                addr("203.0.113.5:5060"),
                sip::message::Uri::parse("sip:a@b").unwrap(),
                sip::sdp::SessionDescription::parse(
                    b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
                )
                .unwrap(),
            )
        ),
        Err(sip::CallError::TooManyCalls(1))
    ));
}

#[test]
fn tcp_requests_are_answered_on_their_connection_with_received_and_rport() {
    let mut ep = Endpoint::new(config("192.0.2.10:5060", 12));
    let t0 = epoch();
    let raw = "OPTIONS sip:agent@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.5:5070;branch=z9hG4bKt1;rport\r\nTo: <sip:agent@192.0.2.10>\r\nFrom: <sip:c@10.0.0.5>;tag=1\r\nCall-ID: t1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let conn = ConnectionId(7);
    ep.handle_stream_message(
        t0,
        addr("203.0.113.9:40000"),
        conn,
        parse_datagram(raw.as_bytes()),
    );
    let msgs = sent_messages(&mut ep);
    let (t, SipMessage::Response(r)) = &msgs[0] else {
        panic!()
    };
    assert_eq!(
        (t.transport, t.connection),
        (TransportKind::Tcp, Some(conn))
    );
    assert_eq!(t.destination, addr("203.0.113.9:40000"));
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("203.0.113.9"));
    assert_eq!(via.rport(), Some(Some(40000)));
    assert_eq!(ep.stats().stream_messages_received, 1);
}

#[test]
fn advertised_address_goes_into_via_contact_and_media_ip() {
    let mut cfg = config("0.0.0.0:5060", 13);
    cfg.advertised_addr = Some(addr("198.51.100.50:5062"));
    assert_eq!(cfg.media_ip().to_string(), "198.51.100.50");
    let mut ep = Endpoint::new(cfg);
    let t0 = epoch();
    ep.add_trunk(t0, trunk()).unwrap();
    let r = registers(&mut ep).remove(0);
    assert!(r.headers.get("Via").unwrap().contains("198.51.100.50:5062"));
    assert_eq!(
        r.headers.get("Contact"),
        Some("<sip:agent@198.51.100.50:5062>")
    );
}
