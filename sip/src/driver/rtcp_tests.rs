//! A call's RTCP over loopback UDP: the test plays the peer with raw sockets, sends RTP with
//! seeded loss towards a media session, and checks the session's measurements, the sender
//! report it sends (with a report block carrying the right fraction lost), what it makes of
//! the peer's receiver report (round trip, the peer's view), and its BYE.

#![allow(clippy::disallowed_methods)] // the driver (and its tests) read the clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::media::MediaSession;
use super::ports::PortAllocator;
use super::rtcp::RtcpLink;
use crate::rtp::{
    MediaQuality, ReceiverReport, ReportBlock, RtcpPacket, RtpHeader, SenderReport, parse_compound,
    write_compound,
};
use crate::sdp::{Codec, Direction, NegotiatedMedia};

const PEER_SSRC: u32 = 0x5EED_0001;
/// The first report comes 1.25–3.75 s after the start (RFC 3550 §6.2, half the minimum).
const WITHIN: Duration = Duration::from_secs(6);

fn negotiated(peer_rtp: SocketAddr, peer_rtcp: Option<SocketAddr>, mux: bool) -> NegotiatedMedia {
    NegotiatedMedia {
        codec: Codec::pcmu(),
        telephone_event: Some(101),
        ptime_ms: 20,
        remote_rtp: Some(peer_rtp),
        remote_rtcp: peer_rtcp,
        rtcp_mux: mux,
        direction: Direction::SendRecv,
    }
}

async fn bind(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

async fn session(neg: NegotiatedMedia) -> MediaSession {
    let ports = PortAllocator::new(42_000..=42_999);
    let sockets = ports.bind("127.0.0.1".parse().unwrap()).await.unwrap();
    MediaSession::start(sockets, neg)
}

/// The session's RTCP address: the odd port above its RTP port.
fn rtcp_of(media: &MediaSession) -> SocketAddr {
    let rtp = media.local_addr();
    SocketAddr::from(([127, 0, 0, 1], rtp.port() + 1))
}

async fn wait_quality(media: &MediaSession, what: &str, ok: impl Fn(&MediaQuality) -> bool) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let q = media.quality();
        if ok(&q) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {q:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads RTCP until a compound packet satisfying `pick` arrives.
async fn next_rtcp<T>(
    socket: &UdpSocket,
    pick: impl Fn(&[RtcpPacket]) -> Option<T>,
) -> (T, Instant) {
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("RTCP from the session in time")
            .unwrap();
        let at = Instant::now();
        let packets = parse_compound(&buf[..n]).expect("the session's RTCP parses");
        if let Some(t) = pick(&packets) {
            return (t, at);
        }
    }
}

#[tokio::test]
async fn lossy_stream_is_measured_and_reports_are_exchanged() {
    let peer_rtp = bind("127.0.0.1").await;
    let peer_rtcp = bind("127.0.0.1").await;
    let started = Instant::now();
    let mut media = session(negotiated(
        peer_rtp.local_addr().unwrap(),
        Some(peer_rtcp.local_addr().unwrap()),
        false,
    ))
    .await;

    // The peer's own SR first, so the session's report block can echo it (LSR/DLSR).
    let peer_ntp = 0xE000_0001_2345_0000u64;
    let sr = write_compound(&[RtcpPacket::SenderReport(SenderReport {
        ssrc: PEER_SSRC,
        ntp_timestamp: peer_ntp,
        ..Default::default()
    })]);
    peer_rtcp.send_to(&sr, rtcp_of(&media)).await.unwrap();

    // 200 packets across the sequence wrap, every tenth dropped, 20 ms of audio each, sent in
    // bursts of ten 2 ms apart: all of it arrives well before the session's first report (at
    // least 1.25 s in), so that report's fraction lost covers exactly these packets.
    let first_seq = 65_500u16;
    for i in 0..200u16 {
        if i % 10 != 5 {
            let header = RtpHeader {
                sequence: first_seq.wrapping_add(i),
                timestamp: u32::from(i) * 160,
                ssrc: PEER_SSRC,
                ..Default::default()
            };
            let packet = header.to_packet(&[0xFF; 160]);
            peer_rtp.send_to(&packet, media.local_addr()).await.unwrap();
        }
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let sent_by = started.elapsed();
    wait_quality(&media, "all RTP counted", |q| q.packets_received == 180).await;
    let q = media.quality();
    assert_eq!((q.packets_expected, q.packets_lost), (200, 20));
    assert!((q.loss_pct - 10.0).abs() < 1e-9, "{q:?}");
    // 20 ms of media per packet arriving back to back: each transit time differs from the
    // previous one by about 20 ms (40 ms across a lost packet), which A.8 averages to ~22 ms.
    assert!((10.0..40.0).contains(&q.jitter_ms), "{q:?}");
    assert!(
        sent_by < Duration::from_millis(1000),
        "RTP took {sent_by:?}"
    );
    assert_eq!(media.stats().quality.packets_received, 180);

    // The session sends RTP (silence), so its report is an SR with one block about our stream.
    let (ours, sr_arrived) = next_rtcp(&peer_rtcp, |p| match p.first() {
        Some(RtcpPacket::SenderReport(sr)) if !sr.reports.is_empty() => Some(sr.clone()),
        _ => None,
    })
    .await;
    let block = ours.reports[0];
    assert_eq!(block.ssrc, PEER_SSRC);
    assert_eq!(block.fraction_lost, 25, "20 of 200 = 25.6/256");
    assert_eq!(block.cumulative_lost, 20);
    assert_eq!(
        block.highest_seq,
        (1 << 16) + u32::from(first_seq.wrapping_add(199))
    );
    assert_eq!(block.last_sr, (peer_ntp >> 16) as u32);
    assert!(block.delay_since_last_sr > 0);
    assert!(ours.packet_count > 0 && ours.octet_count == ours.packet_count * 160);

    // The peer's RR about the session's stream: 7 lost, 20 ms jitter, DLSR as measured.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let held = sr_arrived.elapsed();
    let rr = write_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: PEER_SSRC,
        reports: vec![ReportBlock {
            ssrc: ours.ssrc,
            fraction_lost: 3,
            cumulative_lost: 7,
            highest_seq: 0,
            jitter: 160,
            last_sr: (ours.ntp_timestamp >> 16) as u32,
            delay_since_last_sr: (held.as_secs_f64() * 65536.0) as u32,
        }],
    })]);
    peer_rtcp.send_to(&rr, rtcp_of(&media)).await.unwrap();
    wait_quality(&media, "the peer's report read", |q| q.rtt_ms.is_some()).await;
    let q = media.quality();
    assert_eq!(q.reports_received, 2);
    assert_eq!(q.remote_packets_lost, Some(7));
    assert_eq!(q.remote_jitter_ms, Some(20.0));
    let rtt = q.rtt_ms.unwrap();
    assert!((0.0..50.0).contains(&rtt), "loopback round trip: {rtt} ms");

    // Drain what the session queued for the application, then end it: a BYE follows.
    while tokio::time::timeout(Duration::from_millis(1), media.recv())
        .await
        .is_ok_and(|e| e.is_some())
    {}
    drop(media);
    let (bye, _) = next_rtcp(&peer_rtcp, |p| {
        p.iter().find_map(|x| match x {
            RtcpPacket::Bye { sources, .. } => Some(sources.clone()),
            _ => None,
        })
    })
    .await;
    assert_eq!(bye, vec![ours.ssrc]);
}

#[tokio::test]
async fn rtcp_mux_peers_get_no_reports_and_strangers_are_not_heard() {
    let peer_rtp = bind("127.0.0.1").await;
    let media = session(negotiated(peer_rtp.local_addr().unwrap(), None, true)).await;
    let rr = |ssrc| {
        write_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc,
            reports: Vec::new(),
        })])
    };
    // Multiplexed on the RTP port, from the peer's media address: read.
    peer_rtp
        .send_to(&rr(PEER_SSRC), media.local_addr())
        .await
        .unwrap();
    wait_quality(&media, "muxed RTCP read", |q| q.reports_received == 1).await;
    // From an address the call's media does not use: dropped, on either port.
    let stranger = bind("127.0.0.2").await;
    stranger.send_to(&rr(1), media.local_addr()).await.unwrap();
    stranger.send_to(&rr(1), rtcp_of(&media)).await.unwrap();
    // A malformed packet from the peer is counted as such.
    peer_rtp
        .send_to(
            &[0x80, 0xC9, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8],
            media.local_addr(),
        )
        .await
        .unwrap();
    wait_quality(&media, "malformed RTCP counted", |q| q.reports_invalid == 1).await;
    assert_eq!(media.quality().reports_received, 1);
    // Only RTP comes to the peer's port: we never multiplex our reports onto it.
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, peer_rtp.recv_from(&mut buf)).await
    {
        assert!(
            n > 1 && !(200..=204).contains(&buf[1]),
            "RTCP sent despite rtcp-mux"
        );
    }
}

#[tokio::test]
async fn the_first_report_is_due_within_rfc_bounds_unless_the_peer_wants_mux() {
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let start = tokio::time::Instant::now();
    let (link, _) = RtcpLink::new(
        bind("127.0.0.1").await,
        &negotiated(peer, None, false),
        1,
        1,
    );
    let due = link.next_report().expect("a report timer") - start;
    assert!(
        (Duration::from_millis(1240)..=Duration::from_millis(3800)).contains(&due),
        "{due:?}"
    );
    let (mux, _) = RtcpLink::new(bind("127.0.0.1").await, &negotiated(peer, None, true), 1, 1);
    assert_eq!(mux.next_report(), None);
}
