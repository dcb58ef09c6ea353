//! Timer behaviour of each transaction, stepped in simulated time.

use std::time::{Duration, Instant};

use super::*;
use crate::message::{SipMessage, Uri, parse_datagram};
use crate::transmit::{Outbox, Target, TransportKind};

fn peer() -> Target {
    Target::udp("192.0.2.9:5060".parse().unwrap())
}

fn tcp_peer() -> Target {
    Target::new("192.0.2.9:5060".parse().unwrap(), TransportKind::Tcp)
}

/// Steps a transaction to each deadline until `until`, returning the offsets (ms from `t0`)
/// at which something was sent, and the final expiry.
fn run(
    t0: Instant,
    until: Duration,
    out: &mut Outbox,
    mut deadline: impl FnMut() -> Deadline,
    mut fire: impl FnMut(Instant, &mut Outbox) -> Expiry,
) -> (Vec<u128>, Option<(u128, Expiry)>) {
    let mut sends = Vec::new();
    while let Some((t, _)) = deadline() {
        if t > t0 + until {
            break;
        }
        let before = out.queue.len();
        let e = fire(t, out);
        if out.queue.len() > before {
            sends.push((t - t0).as_millis());
        }
        if e != Expiry::Nothing {
            return (sends, Some(((t - t0).as_millis(), e)));
        }
    }
    (sends, None)
}

fn invite() -> Request {
    let raw = b"INVITE sip:a@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\r\nTo: <sip:a@192.0.2.9>\r\nFrom: <sip:b@192.0.2.1>;tag=f\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nRoute: <sip:p@192.0.2.5;lr>\r\n\r\n";
    match parse_datagram(raw) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn response(status: u16) -> Response {
    let mut r = crate::message::build::response_to(&invite(), status, Some("t"));
    r.reason = "x".into();
    r
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_then_f() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx =
        NonInviteClient::start(t0, b"OPTIONS".to_vec(), peer(), Timers::default(), &mut out);
    assert_eq!(out.queue.len(), 1);
    let cell = std::cell::RefCell::new(&mut tx);
    let (sends, end) = run(
        t0,
        Duration::from_secs(60),
        &mut out,
        || cell.borrow().deadline(),
        |n, o| cell.borrow_mut().on_timeout(n, o),
    );
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(end, Some((32000, Expiry::TimedOut)));
}

#[test]
fn non_invite_client_proceeding_uses_t2_and_k_after_final() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = NonInviteClient::start(t0, b"BYE".to_vec(), peer(), Timers::default(), &mut out);
    assert_eq!(tx.on_response(t0, 100), ClientOutcome::PassToCore);
    tx.on_timeout(t0 + Duration::from_millis(500), &mut out);
    assert_eq!(tx.deadline().map(|(t, _)| (t - t0).as_millis()), Some(4500));
    assert_eq!(
        tx.on_response(t0 + Duration::from_secs(1), 200),
        ClientOutcome::PassToCore
    );
    assert_eq!(
        tx.on_response(t0 + Duration::from_secs(1), 200),
        ClientOutcome::Absorbed
    );
    assert_eq!(
        tx.deadline(),
        Some((t0 + Duration::from_secs(6), "Timer K"))
    );
    assert_eq!(
        tx.on_timeout(t0 + Duration::from_secs(6), &mut out),
        Expiry::Terminated
    );
    assert!(tx.is_terminated());
}

#[test]
fn invite_client_timer_a_doubles_until_b() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteClient::start(t0, invite(), peer(), Timers::default(), &mut out);
    let cell = std::cell::RefCell::new(&mut tx);
    let (sends, end) = run(
        t0,
        Duration::from_secs(60),
        &mut out,
        || cell.borrow().deadline(),
        |n, o| cell.borrow_mut().on_timeout(n, o),
    );
    assert_eq!(sends, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(end, Some((32000, Expiry::TimedOut)));
}

#[test]
fn invite_client_acks_non_2xx_and_absorbs_retransmissions_until_d() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteClient::start(t0, invite(), peer(), Timers::default(), &mut out);
    out.queue.clear();
    assert_eq!(
        tx.on_response(t0, &response(180), &mut out),
        ClientOutcome::PassToCore
    );
    assert!(tx.deadline().is_none(), "A and B stop on a provisional");
    assert_eq!(
        tx.on_response(t0, &response(486), &mut out),
        ClientOutcome::PassToCore
    );
    let ack = out.queue.pop_front().unwrap();
    let Ok(SipMessage::Request(ack)) = parse_datagram(&ack.payload) else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().to_string(), "1 ACK");
    assert_eq!(ack.headers.to().unwrap().tag(), Some("t"));
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKabc"));
    assert_eq!(ack.headers.count("Route"), 1);
    assert_eq!(
        tx.on_response(t0, &response(486), &mut out),
        ClientOutcome::Absorbed
    );
    assert_eq!(out.queue.len(), 1, "ACK resent for the retransmitted final");
    assert_eq!(
        tx.on_timeout(t0 + Duration::from_secs(32), &mut out),
        Expiry::Terminated
    );
}

#[test]
fn invite_client_accepted_passes_2xx_retransmissions() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteClient::start(t0, invite(), peer(), Timers::default(), &mut out);
    assert_eq!(
        tx.on_response(t0, &response(200), &mut out),
        ClientOutcome::PassToCore
    );
    assert_eq!(
        tx.on_response(t0, &response(200), &mut out),
        ClientOutcome::PassToCore
    );
    assert!(tx.is_final());
    assert_eq!(
        tx.deadline(),
        Some((t0 + Duration::from_secs(32), "Timer M"))
    );
}

#[test]
fn invite_server_timer_g_then_h() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteServer::new(peer(), Timers::default());
    tx.respond(t0, 100, b"100".to_vec(), &mut out);
    tx.on_retransmission(&mut out);
    assert_eq!(
        out.queue.len(),
        2,
        "INVITE retransmission gets the last provisional"
    );
    tx.respond(t0, 486, b"486".to_vec(), &mut out);
    out.queue.clear();
    let cell = std::cell::RefCell::new(&mut tx);
    let (sends, end) = run(
        t0,
        Duration::from_secs(60),
        &mut out,
        || cell.borrow().deadline(),
        |n, o| cell.borrow_mut().on_timeout(n, o),
    );
    assert_eq!(
        sends,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(end, Some((32000, Expiry::TimedOut)));
}

#[test]
fn invite_server_ack_stops_g_and_starts_i() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteServer::new(peer(), Timers::default());
    tx.respond(t0, 487, b"487".to_vec(), &mut out);
    assert_eq!(
        tx.on_ack(t0 + Duration::from_millis(100)),
        AckMatch::NonSuccess
    );
    assert_eq!(
        tx.deadline(),
        Some((t0 + Duration::from_millis(5100), "Timer I"))
    );
    assert_eq!(
        tx.on_timeout(t0 + Duration::from_millis(5100), &mut out),
        Expiry::Terminated
    );
}

#[test]
fn invite_server_accepted_absorbs_invite_until_l() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = InviteServer::new(peer(), Timers::default());
    tx.respond(t0, 200, b"200".to_vec(), &mut out);
    tx.on_retransmission(&mut out);
    assert_eq!(out.queue.len(), 1);
    tx.respond(t0, 200, b"200".to_vec(), &mut out);
    assert_eq!(out.queue.len(), 2, "core 2xx retransmissions pass through");
    assert_eq!(
        tx.deadline(),
        Some((t0 + Duration::from_secs(32), "Timer L"))
    );
}

#[test]
fn non_invite_server_timer_j_and_retransmit() {
    let t0 = crate::test_epoch();
    let mut out = Outbox::default();
    let mut tx = NonInviteServer::new(peer(), Timers::default());
    tx.on_retransmission(&mut out);
    assert!(out.queue.is_empty(), "Trying absorbs");
    tx.respond(t0, 200, b"200".to_vec(), &mut out);
    tx.on_retransmission(&mut out);
    assert_eq!(out.queue.len(), 2);
    assert_eq!(out.retransmissions, 1);
    assert_eq!(
        tx.deadline(),
        Some((t0 + Duration::from_secs(32), "Timer J"))
    );
    assert_eq!(
        tx.on_timeout(t0 + Duration::from_secs(32)),
        Expiry::Terminated
    );
    let reliable = NonInviteServer::new(tcp_peer(), Timers::default());
    drop(reliable);
}

#[test]
fn keys_match_ack_and_cancel_to_invite() {
    let inv = invite();
    let key = TxKey::for_request(&inv).unwrap();
    let mut ack = inv.clone();
    ack.method = Method::Ack;
    assert_eq!(TxKey::for_request(&ack).unwrap(), key);
    let mut cancel = inv.clone();
    cancel.method = Method::Cancel;
    assert_eq!(
        TxKey::for_request(&cancel)
            .unwrap()
            .with_method(Method::Invite),
        key
    );
    let mut legacy = inv;
    legacy.headers.set("Via", "SIP/2.0/UDP 192.0.2.1");
    assert!(matches!(
        TxKey::for_request(&legacy),
        Ok(TxKey::Legacy { .. })
    ));
    let _ = Uri::parse("sip:x");
}
