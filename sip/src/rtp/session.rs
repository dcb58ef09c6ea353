//! Per-call RTP bookkeeping without I/O: [`RtpReceiver`] (symmetric latching, SSRC and sequence
//! tracking, telephone-event detection) and [`RtpSender`] (sequence/timestamp/marker for
//! fixed-size frames, RFC 4733 event generation).

use std::net::SocketAddr;

use super::RtpError;
use super::dtmf::{DtmfDetector, DtmfDigit, TelephoneEvent, digit_to_event};
use super::packet::{RtpHeader, RtpPacket};

/// What became of a received datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Audio (or any non-event payload) from the latched source.
    Media(RtpPacket<'a>),
    /// The first packet of a new telephone-event.
    Dtmf(DtmfDigit),
    /// A continuation or end packet of an event already reported.
    DtmfContinuation,
    /// Dropped; see [`Ignored`].
    Ignored(Ignored),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// From a source other than the latched one.
    OtherSource(SocketAddr),
    /// Not a valid RTP packet.
    Invalid(RtpError),
}

/// Receive-side counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub packets: u64,
    pub payload_bytes: u64,
    pub from_other_sources: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub ssrc_changes: u64,
    pub dtmf_events: u64,
}

/// Symmetric-RTP receiver (RFC 4961 style latching): the first source address that sends a
/// valid RTP packet becomes the peer; later packets from any other address are ignored and
/// counted. The driver should send its own RTP to [`RtpReceiver::latched`] once set (NAT
/// traversal), falling back to the SDP address before that.
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    latched: Option<SocketAddr>,
    telephone_event_pt: Option<u8>,
    ssrc: Option<u32>,
    /// Extended highest sequence number (cycles in the high 16 bits).
    ext_max_seq: Option<u32>,
    dtmf: DtmfDetector,
    stats: ReceiverStats,
}

impl RtpReceiver {
    /// `telephone_event_pt`: the negotiated RFC 4733 payload type, if any.
    pub fn new(telephone_event_pt: Option<u8>) -> Self {
        Self {
            latched: None,
            telephone_event_pt,
            ssrc: None,
            ext_max_seq: None,
            dtmf: DtmfDetector::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// Classifies one datagram received on the call's RTP socket.
    pub fn handle_packet<'a>(&mut self, from: SocketAddr, buf: &'a [u8]) -> Received<'a> {
        let packet = match RtpPacket::parse(buf) {
            Ok(p) => p,
            Err(e) => {
                self.stats.invalid += 1;
                return Received::Ignored(Ignored::Invalid(e));
            }
        };
        match self.latched {
            None => self.latched = Some(from),
            Some(l) if l != from => {
                self.stats.from_other_sources += 1;
                return Received::Ignored(Ignored::OtherSource(from));
            }
            Some(_) => {}
        }
        self.track(&packet.header);
        if Some(packet.header.payload_type) == self.telephone_event_pt {
            return match self.dtmf.feed(packet.header.timestamp, packet.payload) {
                Some(d) => {
                    self.stats.dtmf_events += 1;
                    Received::Dtmf(d)
                }
                None => Received::DtmfContinuation,
            };
        }
        self.stats.payload_bytes += packet.payload.len() as u64;
        Received::Media(packet)
    }

    fn track(&mut self, h: &RtpHeader) {
        self.stats.packets += 1;
        if self.ssrc != Some(h.ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
            }
            self.ssrc = Some(h.ssrc);
            self.ext_max_seq = Some(u32::from(h.sequence));
            return;
        }
        let Some(max) = self.ext_max_seq else {
            self.ext_max_seq = Some(u32::from(h.sequence));
            return;
        };
        let delta = h.sequence.wrapping_sub(max as u16);
        if delta == 0 {
            self.stats.duplicates += 1;
        } else if delta < 0x8000 {
            self.ext_max_seq = Some(max.wrapping_add(u32::from(delta)));
        } else {
            self.stats.out_of_order += 1;
        }
    }

    /// The latched peer address.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// The peer's SSRC, once known.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Extended highest sequence number received.
    pub fn extended_max_seq(&self) -> Option<u32> {
        self.ext_max_seq
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }
}

/// Send-side bookkeeping for one RTP stream of fixed-duration frames.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    samples_per_frame: u32,
    sequence: u16,
    timestamp: u32,
    marker_next: bool,
    telephone_event_pt: Option<u8>,
    packets_sent: u64,
    octets_sent: u64,
}

impl RtpSender {
    /// `samples_per_frame`: clock rate × ptime (160 for 8 kHz, 20 ms). Seed the SSRC, sequence
    /// and timestamp randomly (RFC 3550 §5.1) in production.
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        samples_per_frame: u32,
        initial_sequence: u16,
        initial_timestamp: u32,
    ) -> Self {
        Self {
            ssrc,
            payload_type,
            samples_per_frame,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            marker_next: true,
            telephone_event_pt: None,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// Enables [`RtpSender::dtmf`] with the negotiated telephone-event payload type.
    pub fn with_telephone_event(mut self, pt: Option<u8>) -> Self {
        self.telephone_event_pt = pt;
        self
    }

    /// The next audio packet: one frame, marker set on the first packet of a talkspurt.
    pub fn audio(&mut self, payload: &[u8]) -> Vec<u8> {
        let marker = std::mem::take(&mut self.marker_next);
        let pkt = self.packet(self.payload_type, marker, self.timestamp, payload);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame);
        pkt
    }

    /// Skips `frames` frames without sending (silence suppression); the next packet starts a
    /// talkspurt.
    pub fn skip(&mut self, frames: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(self.samples_per_frame.wrapping_mul(frames));
        self.marker_next = true;
    }

    /// The packets of one RFC 4733 event lasting about `duration_ms`: one per frame interval,
    /// all with the event's start timestamp, the first with the marker, growing durations, and
    /// the end packet three times (§2.5.1.4). Send them in place of audio frames, one per frame
    /// tick (the three end packets may go back to back). Afterwards the audio timestamp has
    /// advanced past the event.
    pub fn dtmf(
        &mut self,
        digit: char,
        duration_ms: u32,
        volume: u8,
    ) -> Result<Vec<Vec<u8>>, RtpError> {
        let pt = self.telephone_event_pt.ok_or(RtpError::NoTelephoneEvent)?;
        let event = digit_to_event(digit).ok_or(RtpError::BadDigit)?;
        // Samples per ms, derived from the frame size of a 20 ms frame (8 kHz → 8).
        let per_ms = (self.samples_per_frame / 20).max(1);
        let frame_ms = (self.samples_per_frame / per_ms).max(1);
        let frames = duration_ms.div_ceil(frame_ms).max(1);
        let start = self.timestamp;
        let mut out = Vec::with_capacity(frames as usize + 2);
        for i in 1..=frames {
            let end = i == frames;
            let duration = (i * self.samples_per_frame).min(u32::from(u16::MAX)) as u16;
            let payload = TelephoneEvent {
                event,
                end,
                volume,
                duration,
            }
            .to_bytes();
            let copies = if end { 3 } else { 1 };
            for _ in 0..copies {
                out.push(self.packet(pt, i == 1 && out.is_empty(), start, &payload));
            }
        }
        self.timestamp = start.wrapping_add(frames * self.samples_per_frame);
        self.marker_next = true;
        Ok(out)
    }

    fn packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let pkt = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
            csrc: Vec::new(),
            extension: None,
        }
        .to_packet(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.packets_sent += 1;
        self.octets_sent += payload.len() as u64;
        pkt
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The timestamp the next audio frame will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// `(packets, payload octets)` sent, for RTCP sender reports.
    pub fn counts(&self) -> (u64, u64) {
        (self.packets_sent, self.octets_sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], p))
    }

    #[test]
    fn latches_to_first_valid_source() {
        let mut tx = RtpSender::new(7, 0, 160, 65534, 1000);
        let mut rx = RtpReceiver::new(Some(101));
        assert!(matches!(
            rx.handle_packet(addr(1), b"garbage"),
            Received::Ignored(Ignored::Invalid(_))
        ));
        assert_eq!(rx.latched(), None);
        let p1 = tx.audio(&[0xff; 160]);
        let Received::Media(m) = rx.handle_packet(addr(2), &p1) else {
            panic!()
        };
        assert!(m.header.marker);
        assert_eq!(rx.latched(), Some(addr(2)));
        let p2 = tx.audio(&[0xff; 160]);
        assert_eq!(
            rx.handle_packet(addr(3), &p2),
            Received::Ignored(Ignored::OtherSource(addr(3)))
        );
        let Received::Media(m2) = rx.handle_packet(addr(2), &p2) else {
            panic!()
        };
        assert!(!m2.header.marker);
        assert_eq!(m2.header.timestamp, 1160);
        let p3 = tx.audio(&[0xff; 160]);
        rx.handle_packet(addr(2), &p3);
        rx.handle_packet(addr(2), &p3);
        rx.handle_packet(addr(2), &p1);
        let s = rx.stats();
        assert_eq!(
            (
                s.packets,
                s.from_other_sources,
                s.invalid,
                s.duplicates,
                s.out_of_order
            ),
            (5, 1, 1, 1, 1)
        );
        assert_eq!(rx.extended_max_seq(), Some(65536));
    }

    #[test]
    fn dtmf_sending_and_detection() {
        let mut tx = RtpSender::new(7, 0, 160, 0, 0).with_telephone_event(Some(101));
        tx.audio(&[0; 160]);
        let pkts = tx.dtmf('#', 100, 10).unwrap();
        assert_eq!(pkts.len(), 4 + 3);
        let parsed: Vec<_> = pkts.iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
        assert!(parsed[0].header.marker);
        assert!(parsed[1..].iter().all(|p| !p.header.marker));
        assert!(
            parsed
                .iter()
                .all(|p| p.header.timestamp == 160 && p.header.payload_type == 101)
        );
        let seqs: Vec<u16> = parsed.iter().map(|p| p.header.sequence).collect();
        assert_eq!(seqs, (1..8).collect::<Vec<u16>>());
        let ends = parsed
            .iter()
            .filter(|p| TelephoneEvent::parse(p.payload).unwrap().end)
            .count();
        assert_eq!(ends, 3);
        assert_eq!(
            TelephoneEvent::parse(parsed[6].payload).unwrap().duration,
            800
        );
        let next = tx.audio(&[0; 160]);
        let next = RtpPacket::parse(&next).unwrap();
        assert_eq!(next.header.timestamp, 160 + 800);
        assert!(next.header.marker);

        let mut rx = RtpReceiver::new(Some(101));
        let got: Vec<_> = pkts.iter().map(|p| rx.handle_packet(addr(9), p)).collect();
        assert!(matches!(
            got[0],
            Received::Dtmf(DtmfDigit { digit: '#', .. })
        ));
        assert!(got[1..].iter().all(|r| *r == Received::DtmfContinuation));
        assert!(RtpSender::new(1, 0, 160, 0, 0).dtmf('1', 100, 10).is_err());
    }
}
