//! The endpoint's stateful paths with the identities right, so the fuzzer spends its time on
//! what follows them: in-dialog requests to an answered call (re-INVITE/UPDATE offers, INFO
//! DTMF, NOTIFY sipfrag for a pending transfer, session-timer headers) and responses to our
//! outbound INVITE and REGISTER (challenges, 422, 423, Session-Expires, Contact expires).
//!
//! Input: byte 0 picks the scenario and method, bytes 1..3 a status code; the rest is split at
//! `\0\0` into extra header lines and a body.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip::message::{SipMessage, Uri, parse_datagram};
use sip::sdp::{Codec, Direction, OfferParams, build_offer};
use sip::{Config, Credentials, Endpoint, Event, InviteParams, Trunk};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn peer() -> SocketAddr {
    "192.0.2.1:5060".parse().unwrap()
}

fn endpoint() -> Endpoint {
    let mut c = Config::new("192.0.2.20:5060".parse().unwrap());
    c.tcp_enabled = true;
    Endpoint::new(c)
}

fn drain(ep: &mut Endpoint) -> Vec<SipMessage> {
    let mut v = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        if let Ok(m) = parse_datagram(&t.payload) {
            v.push(m);
        }
    }
    v
}

/// An answered inbound call; returns our To tag.
fn answered(ep: &mut Endpoint, t0: Instant) -> Option<(sip::CallId, String)> {
    let invite = format!(
        "INVITE sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKinv\r\nMax-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=peer\r\nTo: <sip:agent@192.0.2.20>\r\nCall-ID: fuzzcall\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\nSupported: timer\r\nSession-Expires: 120\r\nAllow: INVITE, ACK, BYE, UPDATE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    ep.handle_datagram(t0, peer(), invite.as_bytes());
    let call = std::iter::from_fn(|| ep.poll_event()).find_map(|e| match e {
        Event::IncomingCall(ic) => Some(ic.call),
        _ => None,
    })?;
    let answer = sip::sdp::SessionDescription::parse(OFFER.as_bytes()).ok()?;
    ep.answer(t0, call, &answer).ok()?;
    let tag = drain(ep).into_iter().find_map(|m| match m {
        SipMessage::Response(r) if r.status == 200 => r.headers.to().ok()?.tag().map(str::to_owned),
        _ => None,
    })?;
    let ack = format!(
        "ACK sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKack\r\nFrom: <sip:a@192.0.2.1>;tag=peer\r\nTo: <sip:agent@192.0.2.20>;tag={tag}\r\nCall-ID: fuzzcall\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_datagram(t0, peer(), ack.as_bytes());
    Some((call, tag))
}

fn parts(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\0\0") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let status = 100 + u16::from_be_bytes([data[1], data[2]]) % 600;
    let (extra, body) = parts(&data[3..]);
    let extra = String::from_utf8_lossy(extra);
    let mut ep = endpoint();
    match data[0] % 3 {
        0 => {
            let Some((call, tag)) = answered(&mut ep, t0) else {
                return;
            };
            if data[0] & 0x80 != 0 {
                let _ = ep.transfer(t0, call, Uri::parse("sip:desk@192.0.2.9").unwrap());
            }
            let methods = [
                "INVITE", "UPDATE", "INFO", "NOTIFY", "BYE", "REFER", "OPTIONS", "ACK",
            ];
            let m = methods[usize::from(data[0] / 3) % methods.len()];
            let mut req = format!("{m} sip:agent@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf1\r\nMax-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=peer\r\nTo: <sip:agent@192.0.2.20>;tag={tag}\r\nCall-ID: fuzzcall\r\nCSeq: 2 {m}\r\n").into_bytes();
            req.extend_from_slice(extra.as_bytes());
            if !extra.is_empty() && !extra.ends_with("\r\n") {
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            req.extend_from_slice(body);
            ep.handle_datagram(t0 + Duration::from_secs(1), peer(), &req);
        }
        1 => {
            let offer = build_offer(&OfferParams {
                codecs: &[Codec::pcmu()],
                address: "192.0.2.20".parse().unwrap(),
                port: 4000,
                session_id: 1,
                username: "agent",
                telephone_event: Some(101),
                ptime_ms: 20,
                direction: Direction::SendRecv,
            });
            let mut p = InviteParams::new(
                Uri::parse("sip:b@192.0.2.1").unwrap(),
                peer(),
                Uri::parse("sip:agent@192.0.2.20").unwrap(),
                offer,
            );
            p.credentials = Some(Credentials::new("agent", "pw"));
            p.ringing_timeout = Some(Duration::from_secs(5));
            if ep.invite(t0, p).is_err() {
                return;
            }
            respond(&mut ep, t0, status, &extra, body);
        }
        _ => {
            let mut t = Trunk::new("t", peer(), "example.com");
            t.register = true;
            t.credentials = Some(Credentials::new("agent", "pw"));
            t.keepalive_interval = (status % 2 == 0).then_some(Duration::from_secs(30));
            if ep.add_trunk(t0, t).is_err() {
                return;
            }
            respond(&mut ep, t0, status, &extra, body);
        }
    }
    // Everything that was scheduled runs out.
    let mut now = t0;
    for _ in 0..40 {
        drain(&mut ep);
        while ep.poll_event().is_some() {}
        let Some((t, _)) = ep.poll_timeout() else {
            break;
        };
        now = now.max(t);
        ep.handle_timeout(now);
    }
});

/// Answers every request the endpoint sent with the fuzzed status, headers and body.
fn respond(ep: &mut Endpoint, t0: Instant, status: u16, extra: &str, body: &[u8]) {
    for m in drain(ep) {
        let SipMessage::Request(req) = m else {
            continue;
        };
        let mut r = sip::message::build::response_to(&req, status, Some("callee")).to_bytes();
        // Insert the extra headers before Content-Length (always the last header we write).
        let text = String::from_utf8_lossy(&r).into_owned();
        let Some(pos) = text.find("Content-Length:") else {
            continue;
        };
        let mut msg = text[..pos].as_bytes().to_vec();
        msg.extend_from_slice(extra.as_bytes());
        if !extra.is_empty() && !extra.ends_with("\r\n") {
            msg.extend_from_slice(b"\r\n");
        }
        msg.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        msg.extend_from_slice(body);
        r = msg;
        ep.handle_datagram(t0 + Duration::from_millis(50), peer(), &r);
    }
}
