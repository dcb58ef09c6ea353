//! Nothing from the network may panic: every torture message, truncated at every length and
//! mutated at every position (byte substitutions, case flips, deletions), goes through the
//! parser (plus every typed accessor and a serialise/re-parse round trip), the stream framer
//! and the endpoint core. Also random and mutated input for the SDP, RTP, RTCP and
//! telephone-event parsers.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use common::{addr, config};
use sip::message::{SipMessage, StreamFramer, parse_datagram};
use sip::rtp::{RtpPacket, RtpReceiver, TelephoneEvent, parse_compound};
use sip::sdp::{Codec, SessionDescription, negotiate};
use sip::{Endpoint, Event};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture/msgs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

/// Substitutes chosen to hit the grammar's delimiters.
const SUBSTITUTES: &[u8] = &[0x00, b' ', b'\n', b':', b';', b'<', b'"', b'%', 0xff];

/// Truncations at every length, deletions at every position, and substitutions at every
/// position: all of [`SUBSTITUTES`] plus a case flip when `full`, otherwise one of them in
/// rotation (the full sweep takes about a minute and a half unoptimised).
fn mutations(msg: &[u8], full: bool) -> impl Iterator<Item = Vec<u8>> + '_ {
    let truncations = (0..msg.len()).map(move |n| msg[..n].to_vec());
    let substitutions = (0..msg.len()).flat_map(move |i| {
        let all: Vec<u8> = SUBSTITUTES
            .iter()
            .copied()
            .chain(std::iter::once(msg[i] ^ 0x20))
            .collect();
        let chosen = if full { all } else { vec![all[i % all.len()]] };
        chosen
            .into_iter()
            .filter(move |b| *b != msg[i])
            .map(move |b| {
                let mut m = msg.to_vec();
                m[i] = b;
                m
            })
    });
    let deletions = (0..msg.len()).map(move |i| {
        let mut m = msg.to_vec();
        m.remove(i);
        m
    });
    truncations.chain(substitutions).chain(deletions)
}

/// Exercises everything a parsed message offers.
fn exercise(msg: &SipMessage) {
    let h = msg.headers();
    let _ = (
        h.via(),
        h.from(),
        h.to(),
        h.call_id(),
        h.cseq(),
        h.max_forwards(),
    );
    let _ = (
        h.contact(),
        h.content_length(),
        h.content_type(),
        h.expires(),
    );
    let _ = (
        h.route(),
        h.record_route(),
        h.require(),
        h.supported(),
        h.allow(),
        h.accept(),
    );
    let _ = (h.www_authenticate(), h.authorization());
    if let SipMessage::Request(r) = msg {
        if let Some(u) = r.uri.as_sip() {
            let _ = (u.user_decoded(), u.header_pairs(), u.socket_addr());
        }
        let _ = r.uri.to_string();
    }
    if let Ok(s) = SessionDescription::parse(msg.body()) {
        let _ = negotiate(&s, &[Codec::pcmu(), Codec::pcma()]);
        let _ = SessionDescription::parse(&s.to_bytes());
    }
    // Our serialisation of anything we accepted must parse again.
    let again = msg.to_bytes();
    assert!(
        parse_datagram(&again).is_ok(),
        "re-serialised message does not parse"
    );
}

#[test]
fn torture_mutations_never_panic() {
    let total = sweep(false);
    assert!(total > 60_000);
}

/// The full sweep (about 290,000 messages): `cargo test -p sip --test robustness -- --ignored`.
#[test]
#[ignore = "slow unoptimised; the default test covers every position once"]
fn torture_mutations_full_sweep_never_panics() {
    let total = sweep(true);
    assert!(total > 250_000);
}

fn sweep(full: bool) -> usize {
    let mut total = 0usize;
    let now = common::epoch();
    for (name, msg) in corpus() {
        let mut ep = Endpoint::new(config("192.0.2.20:5060", 3));
        let mut framer = StreamFramer::new(16 * 1024);
        for (i, m) in mutations(&msg, full).enumerate() {
            total += 1;
            let run = catch_unwind(AssertUnwindSafe(|| {
                if let Ok(parsed) = parse_datagram(&m) {
                    exercise(&parsed);
                }
                ep.handle_datagram(now, addr("192.0.2.99:5060"), &m);
                while let Some(e) = ep.poll_event() {
                    if let Event::IncomingCall(ic) = e {
                        let _ = ep.ringing(now, ic.call);
                        let _ = ep.reject(now, ic.call, 486);
                    }
                }
                while ep.poll_transmit().is_some() {}
                framer.push(&m);
                while let Some(r) = framer.pop() {
                    if r.is_err() {
                        framer = StreamFramer::new(16 * 1024);
                        break;
                    }
                }
            }));
            assert!(
                run.is_ok(),
                "{name}: mutation #{i} panicked: {:?}",
                String::from_utf8_lossy(&m)
            );
        }
        ep.handle_timeout(now + std::time::Duration::from_secs(3600));
        while ep.poll_transmit().is_some() {}
        assert_eq!(ep.poll_timeout(), None, "{name}: timers left after an hour");
    }
    println!("{total} mutated messages, no panic");
    total
}

/// xorshift for reproducible pseudo-random bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn media_parsers_never_panic() {
    let mut rng = Rng(0x5eed);
    let mut rx = RtpReceiver::new(Some(101));
    let from = addr("192.0.2.1:4000");
    for _ in 0..50_000 {
        let n = (rng.next() % 80) as usize;
        let mut b = rng.bytes(n);
        if let Some(first) = b.first_mut() {
            // Mostly version 2 so the deeper paths run.
            *first = (*first & 0x3f) | 0x80;
        }
        let _ = RtpPacket::parse(&b);
        let _ = rx.handle_packet(from, &b);
        let _ = parse_compound(&b);
        let _ = TelephoneEvent::parse(&b);
    }
    let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";
    for m in mutations(sdp, true) {
        if let Ok(s) = SessionDescription::parse(&m) {
            let _ = negotiate(&s, &[Codec::pcmu(), Codec::opus(96)]);
            let _ = s.to_string();
        }
    }
}
