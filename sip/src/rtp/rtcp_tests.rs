//! RTCP tests: byte vectors written out from the RFC 3550 §6.4/§6.5/§6.6 layouts, the session's
//! report logic (LSR/DLSR, round trip, the peer's view), and robustness against random and
//! mutated input.

use std::time::Duration;

use super::rtcp_session::{RtcpSession, SenderInfo, ntp_timestamp, report_interval};
use super::*;

/// SR with one report block, SDES CNAME "a@b", BYE — byte by byte.
const SR_SDES_BYE: &[u8] = &[
    // SR: V=2 P=0 RC=1, PT=200, length 12 words.
    0x81, 0xC8, 0x00, 0x0C, //
    0x11, 0x22, 0x33, 0x44, // SSRC of sender
    0xE1, 0xA2, 0xB3, 0xC4, 0x80, 0x00, 0x00, 0x00, // NTP timestamp
    0x00, 0x00, 0x1F, 0x40, // RTP timestamp 8000
    0x00, 0x00, 0x00, 0x32, // packet count 50
    0x00, 0x00, 0x1F, 0x40, // octet count 8000
    0x55, 0x66, 0x77, 0x88, // SSRC_1
    0x19, 0x00, 0x00, 0x14, // fraction lost 25, cumulative 20
    0x00, 0x01, 0x00, 0x05, // extended highest sequence: 1 cycle + 5
    0x00, 0x00, 0x00, 0x50, // jitter 80
    0xA2, 0xB3, 0xC4, 0x80, // LSR
    0x00, 0x00, 0x40, 0x00, // DLSR 0.25 s
    // SDES: SC=1, PT=202, length 3: SSRC, CNAME(1) len 3 "a@b", end, pad to 32 bits.
    0x81, 0xCA, 0x00, 0x03, //
    0x11, 0x22, 0x33, 0x44, //
    0x01, 0x03, b'a', b'@', b'b', 0x00, 0x00, 0x00, //
    // BYE: SC=1, PT=203, length 1.
    0x81, 0xCB, 0x00, 0x01, //
    0x11, 0x22, 0x33, 0x44,
];

/// RR with one block whose cumulative loss is −1 (24-bit two's complement).
const RR_NEGATIVE_LOSS: &[u8] = &[
    0x81, 0xC9, 0x00, 0x07, //
    0x01, 0x02, 0x03, 0x04, //
    0x0A, 0x0B, 0x0C, 0x0D, //
    0x00, 0xFF, 0xFF, 0xFF, // fraction 0, cumulative −1
    0x00, 0x00, 0xFF, 0xFF, //
    0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00,
];

fn sr_sdes_bye() -> Vec<RtcpPacket> {
    vec![
        RtcpPacket::SenderReport(SenderReport {
            ssrc: 0x1122_3344,
            ntp_timestamp: 0xE1A2_B3C4_8000_0000,
            rtp_timestamp: 8000,
            packet_count: 50,
            octet_count: 8000,
            reports: vec![ReportBlock {
                ssrc: 0x5566_7788,
                fraction_lost: 25,
                cumulative_lost: 20,
                highest_seq: 0x0001_0005,
                jitter: 80,
                last_sr: 0xA2B3_C480,
                delay_since_last_sr: 0x4000,
            }],
        }),
        RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 0x1122_3344,
            items: vec![(1, b"a@b".to_vec())],
        }]),
        RtcpPacket::Bye {
            sources: vec![0x1122_3344],
            reason: None,
        },
    ]
}

#[test]
fn known_vectors_parse_and_serialise_byte_for_byte() {
    assert_eq!(parse_compound(SR_SDES_BYE).unwrap(), sr_sdes_bye());
    assert_eq!(write_compound(&sr_sdes_bye()), SR_SDES_BYE);
    let rr = vec![RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 0x0102_0304,
        reports: vec![ReportBlock {
            ssrc: 0x0A0B_0C0D,
            fraction_lost: 0,
            cumulative_lost: -1,
            highest_seq: 0xFFFF,
            jitter: 0,
            last_sr: 0,
            delay_since_last_sr: 0,
        }],
    })];
    assert_eq!(parse_compound(RR_NEGATIVE_LOSS).unwrap(), rr);
    assert_eq!(write_compound(&rr), RR_NEGATIVE_LOSS);
}

#[test]
fn ntp_timestamps_count_from_1900() {
    assert_eq!(ntp_timestamp(Duration::ZERO), 2_208_988_800u64 << 32);
    assert_eq!(
        ntp_timestamp(Duration::from_millis(1500)),
        (2_208_988_801u64 << 32) | 0x8000_0000
    );
}

#[test]
fn report_interval_is_randomised_around_five_seconds() {
    assert_eq!(report_interval(false, 0.0), Duration::from_millis(2500));
    assert_eq!(report_interval(false, 0.5), Duration::from_secs(5));
    assert_eq!(report_interval(false, 1.0), Duration::from_millis(7500));
    assert_eq!(report_interval(true, 0.5), Duration::from_millis(2500));
    assert_eq!(report_interval(false, f64::NAN), Duration::from_secs(5));
    assert_eq!(report_interval(false, 7.0), Duration::from_millis(7500));
}

const US: u32 = 0xAAAA_0001;
const PEER: u32 = 0xBBBB_0002;

fn session() -> RtcpSession {
    RtcpSession::new(US, 65_000, 8000, "agent@test")
}

fn sender(packets: u64) -> Option<SenderInfo> {
    Some(SenderInfo {
        rtp_timestamp: 1234,
        packets,
        octets: packets * 160,
    })
}

#[test]
fn reports_are_rr_until_we_send_and_carry_a_block_once_we_receive() {
    let t0 = crate::test_epoch();
    let mut s = session();
    let first = parse_compound(&s.report(t0, 1 << 32, None)).unwrap();
    assert_eq!(
        first,
        vec![
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: US,
                reports: Vec::new()
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: US,
                items: vec![(1, b"agent@test".to_vec())]
            }]),
        ]
    );
    // 50 packets from the peer, every fifth lost.
    for i in (0..50u16).filter(|i| i % 5 != 2) {
        s.on_rtp(PEER, i, u32::from(i) * 160, t0, false);
    }
    let packets = parse_compound(&s.report(t0, 2 << 32, sender(40))).unwrap();
    let RtcpPacket::SenderReport(sr) = &packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!((sr.ssrc, sr.packet_count, sr.octet_count), (US, 40, 6400));
    assert_eq!(sr.ntp_timestamp, 2 << 32);
    let b = sr.reports[0];
    assert_eq!((b.ssrc, b.cumulative_lost, b.highest_seq), (PEER, 10, 49));
    assert_eq!(b.fraction_lost, 51); // 10/50 × 256 = 51.2
    assert_eq!(
        (b.last_sr, b.delay_since_last_sr),
        (0, 0),
        "no SR from the peer yet"
    );
    let q = s.quality();
    assert_eq!(
        (q.packets_received, q.packets_expected, q.packets_lost),
        (40, 50, 10)
    );
    assert!((q.loss_pct - 20.0).abs() < 1e-9);
    assert_eq!(q.reports_sent, 2);
}

#[test]
fn our_block_echoes_the_peers_sr_with_the_delay_since() {
    let t0 = crate::test_epoch();
    let mut s = session();
    s.on_rtp(PEER, 1, 0, t0, true);
    let peer_sr = write_compound(&[RtcpPacket::SenderReport(SenderReport {
        ssrc: PEER,
        ntp_timestamp: 0x0000_1234_5678_0000,
        ..Default::default()
    })]);
    s.on_rtcp(&peer_sr, t0).unwrap();
    let packets = parse_compound(&s.report(t0 + Duration::from_millis(250), 0, None)).unwrap();
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!(rr.reports[0].last_sr, 0x1234_5678);
    assert_eq!(rr.reports[0].delay_since_last_sr, 16384); // 0.25 s in 1/65536 s
}

#[test]
fn round_trip_and_the_peers_view_come_from_its_report() {
    let t0 = crate::test_epoch();
    let mut s = session();
    let ntp = ntp_timestamp(Duration::from_secs(1_700_000_000));
    let ours = parse_compound(&s.report(t0, ntp, sender(200))).unwrap();
    let RtcpPacket::SenderReport(sr) = &ours[0] else {
        panic!()
    };
    // The peer held our SR for 100 ms and its report arrived 150 ms after we sent: 50 ms RTT.
    let lsr = (sr.ntp_timestamp >> 16) as u32;
    let rr = |fraction_lost, cumulative_lost, highest_seq| {
        write_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: PEER,
            reports: vec![ReportBlock {
                ssrc: US,
                fraction_lost,
                cumulative_lost,
                highest_seq,
                jitter: 40,
                last_sr: lsr,
                delay_since_last_sr: 6554, // 100.01 ms
            }],
        })])
    };
    // 200 of ours expected (65000 + 199 = 65199), 20 lost: 10 %.
    s.on_rtcp(&rr(25, 20, 65_199), t0 + Duration::from_millis(150))
        .unwrap();
    let q = s.quality();
    let rtt = q.rtt_ms.unwrap();
    assert!((rtt - 50.0).abs() < 0.1, "{rtt}");
    assert_eq!(q.remote_packets_lost, Some(20));
    assert!((q.remote_loss_pct.unwrap() - 10.0).abs() < 1e-9);
    assert!((q.remote_jitter_ms.unwrap() - 5.0).abs() < 1e-9);
    assert_eq!(q.reports_received, 1);
    // Across our sequence wrap (65000 + 999 = 1 cycle + 463): 1000 expected, 50 lost.
    s.on_rtcp(
        &rr(12, 50, (1 << 16) + 463),
        t0 + Duration::from_millis(150),
    )
    .unwrap();
    assert!((s.quality().remote_loss_pct.unwrap() - 5.0).abs() < 1e-9);
    // An implausible count (the peer's tracking restarted) falls back to its fraction.
    s.on_rtcp(&rr(64, 20, 10), t0).unwrap();
    assert!((s.quality().remote_loss_pct.unwrap() - 25.0).abs() < 1e-9);
    // A report echoing an SR we never sent leaves the round trip as it was.
    let mut other = session();
    other
        .on_rtcp(&rr(0, 0, 65_100), t0 + Duration::from_millis(150))
        .unwrap();
    assert_eq!(other.quality().rtt_ms, None);
}

#[test]
fn blocks_about_other_sources_and_reflected_srs_are_ignored() {
    let t0 = crate::test_epoch();
    let mut s = session();
    s.on_rtp(PEER, 1, 0, t0, true);
    let foreign = write_compound(&[
        RtcpPacket::SenderReport(SenderReport {
            ssrc: US, // our own SR looped back
            ntp_timestamp: 0x0000_9999_9999_0000,
            reports: vec![ReportBlock {
                ssrc: 0x1234,
                fraction_lost: 200,
                ..Default::default()
            }],
            ..Default::default()
        }),
        RtcpPacket::SenderReport(SenderReport {
            ssrc: 0x7777, // a source we are not receiving
            ntp_timestamp: 0x0000_8888_8888_0000,
            ..Default::default()
        }),
    ]);
    s.on_rtcp(&foreign, t0).unwrap();
    assert_eq!(s.quality().remote_loss_pct, None);
    let packets = parse_compound(&s.report(t0, 0, None)).unwrap();
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!()
    };
    assert_eq!(rr.reports[0].last_sr, 0);
}

#[test]
fn bye_is_sent_last_and_the_peers_is_noticed() {
    let t0 = crate::test_epoch();
    let mut s = session();
    let packets = parse_compound(&s.bye(t0, 0, sender(1))).unwrap();
    assert_eq!(packets.len(), 3);
    assert!(matches!(packets[0], RtcpPacket::SenderReport(_)));
    assert_eq!(
        packets[2],
        RtcpPacket::Bye {
            sources: vec![US],
            reason: None
        }
    );
    assert!(!s.quality().peer_bye);
    let peer_bye = write_compound(&[
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: PEER,
            reports: Vec::new(),
        }),
        RtcpPacket::Bye {
            sources: vec![PEER],
            reason: Some(b"bye".to_vec()),
        },
    ]);
    s.on_rtcp(&peer_bye, t0).unwrap();
    assert!(s.quality().peer_bye);
}

#[test]
fn truncated_and_malformed_reports_are_errors_and_counted() {
    let t0 = crate::test_epoch();
    let mut s = session();
    for n in 0..SR_SDES_BYE.len() {
        // Every cut that is not on a packet boundary is an error.
        let on_boundary = [0, 52, 68].contains(&n);
        assert_eq!(
            parse_compound(&SR_SDES_BYE[..n]).is_err(),
            !on_boundary || n == 0,
            "{n}"
        );
    }
    let mut bad_version = SR_SDES_BYE.to_vec();
    bad_version[0] = 0x41;
    assert_eq!(s.on_rtcp(&bad_version, t0), Err(RtpError::BadVersion));
    let mut bad_padding = RR_NEGATIVE_LOSS.to_vec();
    bad_padding[0] |= 0x20; // padding flag with a last octet of 0
    assert_eq!(s.on_rtcp(&bad_padding, t0), Err(RtpError::BadPadding));
    let mut long_length = RR_NEGATIVE_LOSS.to_vec();
    long_length[3] = 8;
    assert_eq!(s.on_rtcp(&long_length, t0), Err(RtpError::TooShort));
    // An RR whose count promises more blocks than its length holds.
    let mut count = RR_NEGATIVE_LOSS.to_vec();
    count[0] = 0x82;
    assert_eq!(s.on_rtcp(&count, t0), Err(RtpError::TooShort));
    let q = s.quality();
    assert_eq!((q.reports_invalid, q.reports_received), (4, 0));
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let t0 = crate::test_epoch();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = session();
    let mut parsed = 0u32;
    let valid = [SR_SDES_BYE, RR_NEGATIVE_LOSS];
    for round in 0..60_000 {
        let buf: Vec<u8> = match round % 3 {
            // Pure noise.
            0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            // A plausible header (version 2, an RTCP type, any count and length) then noise,
            // so the body parsers see most of the input.
            1 => {
                let len = rng.below(200);
                let mut b: Vec<u8> = (0..len + 4).map(|_| rng.next() as u8).collect();
                b[0] = 0x80 | (b[0] & 0x1f);
                b[1] = 200 + (rng.below(5) as u8);
                b[2] = 0;
                b[3] = (len / 4) as u8 ^ (rng.below(2) as u8);
                b
            }
            // A valid compound with a few bytes changed, cut or extended.
            _ => {
                let mut b = valid[rng.below(2)].to_vec();
                for _ in 0..=rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                match rng.below(3) {
                    0 => b.truncate(rng.below(b.len() + 1)),
                    1 => b.extend((0..rng.below(9)).map(|_| rng.next() as u8)),
                    _ => {}
                }
                b
            }
        };
        if let Ok(packets) = parse_compound(&buf) {
            parsed += 1;
            // Whatever parses serialises again without panicking.
            let _ = write_compound(&packets);
        }
        let _ = s.on_rtcp(&buf, t0);
    }
    // The generators reach the parsers' success paths too, not only the early exits.
    assert!(parsed > 1000, "{parsed}");
    let q = s.quality();
    assert_eq!(q.reports_received + q.reports_invalid, 60_000);
}
