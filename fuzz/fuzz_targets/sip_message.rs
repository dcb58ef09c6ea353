//! SIP messages: the datagram parser, the typed accessors, serialise-and-reparse, the TCP
//! stream framer, and the endpoint core (as UDP datagrams and as stream messages, with time
//! advancing so timers fire). Several messages may be packed in one input, split at `\0\0`.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip::auth::Challenge;
use sip::message::{SipMessage, StreamFramer, parse_datagram};
use sip::{Config, ConnectionId, Endpoint};

fn exercise(msg: &SipMessage) {
    let h = msg.headers();
    let _ = h.via();
    let _ = h.from();
    let _ = h.to();
    let _ = h.cseq();
    let _ = h.contact();
    let _ = h.content_type();
    let _ = h.expires();
    let _ = h.record_route();
    let _ = h.authorization();
    let _ = h.accept();
    if let SipMessage::Response(r) = msg {
        let _ = Challenge::all_in(r);
    }
    let bytes = msg.to_bytes();
    // What we serialise must parse again.
    assert!(
        parse_datagram(&bytes).is_ok(),
        "reserialised message does not parse"
    );
}

fuzz_target!(|data: &[u8]| {
    let from: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut config = Config::new("192.0.2.20:5060".parse().unwrap());
    config.tcp_enabled = true;
    let mut ep = Endpoint::new(config);
    let mut framer = StreamFramer::new(16 * 1024);
    for (i, part) in data.split_pair().into_iter().enumerate() {
        if let Ok(m) = parse_datagram(part) {
            exercise(&m);
        }
        let now = t0 + Duration::from_millis(500 * i as u64);
        ep.handle_datagram(now, from, part);
        framer.push(part);
        while let Some(Ok(parsed)) = framer.pop() {
            ep.handle_stream_message(now, from, ConnectionId(1), parsed);
        }
        ep.handle_timeout(now);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
    ep.handle_timeout(t0 + Duration::from_secs(7200));
    while ep.poll_transmit().is_some() {}
});

trait SplitPair {
    fn split_pair(&self) -> Vec<&[u8]>;
}

impl SplitPair for [u8] {
    fn split_pair(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + 1 < self.len() {
            if self[i] == 0 && self[i + 1] == 0 {
                out.push(&self[start..i]);
                start = i + 2;
                i += 2;
            } else {
                i += 1;
            }
        }
        out.push(&self[start..]);
        out
    }
}
