//! RTP and RTCP: packet parsing, compound RTCP, RFC 4733 events and the latching receiver.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::rtp::{RtpPacket, RtpReceiver, TelephoneEvent, parse_compound, write_compound};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let bytes = p.header.to_packet(p.payload);
        let _ = RtpPacket::parse(&bytes);
    }
    if let Ok(packets) = parse_compound(data) {
        let bytes = write_compound(&packets);
        let _ = parse_compound(&bytes);
    }
    let _ = TelephoneEvent::parse(data);
    let mut rx = RtpReceiver::new(Some(101));
    let from = "192.0.2.1:4000".parse().unwrap();
    for chunk in data.chunks(24) {
        let _ = rx.handle_packet(from, chunk);
    }
    let _ = rx.stats();
});
