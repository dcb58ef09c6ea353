//! One call's RTCP without I/O (RFC 3550 §6): builds our compound reports (SR while we send,
//! else RR, with one report block about the incoming stream and an SDES CNAME; BYE at the end),
//! reads the peer's (its SR for LSR/DLSR, its report block about our stream for the far end's
//! view of loss and jitter, and the round-trip time), and sums it all up as [`MediaQuality`].
//!
//! Time comes in: `Instant`s for arrivals and intervals, the NTP wallclock for SRs
//! ([`ntp_timestamp`] converts a duration since the Unix epoch). The round trip is measured on
//! the monotonic clock: we remember when each SR left and look the echoed LSR up, so a wallclock
//! step during the call cannot distort it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::RtpError;
use super::reception::ReceptionStats;
use super::rtcp::{
    ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SenderReport, parse_compound,
    write_compound,
};

/// RFC 3550 §6.2: the minimum deterministic report interval.
pub const RTCP_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// SDES item type of the canonical name.
const SDES_CNAME: u8 = 1;
/// Our SRs remembered for matching an echoed LSR (over a minute of reports).
const SENT_SR_MEMORY: usize = 16;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp (RFC 3550 §4) for a time given as a duration since the Unix epoch.
pub fn ntp_timestamp(since_unix_epoch: Duration) -> u64 {
    let secs = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp: what LSR echoes.
fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in the 1/65536 s units of DLSR.
fn to_dlsr_units(d: Duration) -> u32 {
    (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32
}

fn from_dlsr_units(units: u32) -> Duration {
    Duration::from_secs_f64(f64::from(units) / 65536.0)
}

/// RFC 3550 §6.3.1 for a two-party call: the deterministic interval is the 5 s minimum (half of
/// it before the first report), randomised to 0.5–1.5 times that so reports do not synchronise.
/// `unit` is a uniform random number in `[0, 1]`. The `e − 3/2` compensation is not applied: it
/// offsets timer reconsideration, which a fixed two-member session does not run, and leaving it
/// out keeps the mean interval at 5 s.
pub fn report_interval(first: bool, unit: f64) -> Duration {
    let td = if first {
        RTCP_MIN_INTERVAL / 2
    } else {
        RTCP_MIN_INTERVAL
    };
    let u = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    td.mul_f64(0.5 + u)
}

/// What we sent, for the sender-info part of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The RTP timestamp corresponding to the SR's NTP time.
    pub rtp_timestamp: u32,
    pub packets: u64,
    pub octets: u64,
}

/// A call's media quality: the incoming stream as measured here, and our outgoing stream as
/// the peer's reports describe it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MediaQuality {
    /// Incoming packets counted (duplicates included, as RFC 3550 counts them).
    pub packets_received: u64,
    /// Incoming packets the sequence numbers say were sent.
    pub packets_expected: u64,
    /// `expected − received` (negative when duplicates outnumber losses).
    pub packets_lost: i64,
    /// Lost share of expected, 0–100.
    pub loss_pct: f64,
    /// RFC 3550 interarrival jitter of the incoming stream.
    pub jitter_ms: f64,
    /// Round trip from the peer's report echoing one of our SRs (LSR/DLSR).
    pub rtt_ms: Option<f64>,
    /// Our packets the peer counts as lost (cumulative, from its latest report).
    pub remote_packets_lost: Option<i64>,
    /// The peer's loss share for our stream, 0–100.
    pub remote_loss_pct: Option<f64>,
    /// The peer's jitter for our stream.
    pub remote_jitter_ms: Option<f64>,
    /// Compound RTCP packets sent and received, and received ones that did not parse.
    pub reports_sent: u64,
    pub reports_received: u64,
    pub reports_invalid: u64,
    /// The peer sent an RTCP BYE.
    pub peer_bye: bool,
}

/// One call's RTCP state. Feed it received RTP ([`RtcpSession::on_rtp`]) and RTCP
/// ([`RtcpSession::on_rtcp`]); ask it for reports when the interval expires.
#[derive(Debug, Clone)]
pub struct RtcpSession {
    ssrc: u32,
    cname: Vec<u8>,
    /// Our first RTP sequence number, to turn the peer's extended highest sequence into a
    /// packet count.
    first_sequence: u16,
    reception: ReceptionStats,
    /// The peer's last SR: its SSRC, the NTP middle bits, and when it arrived.
    peer_sr: Option<(u32, u32, Instant)>,
    /// Our recent SRs: NTP middle bits and when each was built.
    sent_srs: VecDeque<(u32, Instant)>,
    /// The peer's latest report block about our stream.
    remote: Option<ReportBlock>,
    rtt: Option<Duration>,
    reports_sent: u64,
    reports_received: u64,
    reports_invalid: u64,
    peer_bye: bool,
}

impl RtcpSession {
    /// `ssrc` and `first_sequence`: those of our RTP sender; `clock_rate`: the negotiated
    /// codec's RTP clock; `cname`: our SDES canonical name (e.g. `agent@host`).
    pub fn new(ssrc: u32, first_sequence: u16, clock_rate: u32, cname: impl Into<Vec<u8>>) -> Self {
        Self {
            ssrc,
            cname: cname.into(),
            first_sequence,
            reception: ReceptionStats::new(clock_rate),
            peer_sr: None,
            sent_srs: VecDeque::new(),
            remote: None,
            rtt: None,
            reports_sent: 0,
            reports_received: 0,
            reports_invalid: 0,
            peer_bye: false,
        }
    }

    /// Accounts one RTP packet of the incoming (latched) stream; see
    /// [`ReceptionStats::on_packet`].
    pub fn on_rtp(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        arrived: Instant,
        with_jitter: bool,
    ) {
        self.reception
            .on_packet(ssrc, sequence, timestamp, arrived, with_jitter);
    }

    /// Our next compound report: an SR when `sender` is given (we sent RTP since the last
    /// report), else an RR; then the SDES CNAME.
    pub fn report(&mut self, now: Instant, ntp: u64, sender: Option<SenderInfo>) -> Vec<u8> {
        let packets = self.report_packets(now, ntp, sender);
        write_compound(&packets)
    }

    /// The last report, with a BYE for our source appended.
    pub fn bye(&mut self, now: Instant, ntp: u64, sender: Option<SenderInfo>) -> Vec<u8> {
        let mut packets = self.report_packets(now, ntp, sender);
        packets.push(RtcpPacket::Bye {
            sources: vec![self.ssrc],
            reason: None,
        });
        write_compound(&packets)
    }

    fn report_packets(
        &mut self,
        now: Instant,
        ntp: u64,
        sender: Option<SenderInfo>,
    ) -> Vec<RtcpPacket> {
        let mut block = self.reception.report_block();
        if let (Some(b), Some((ssrc, lsr, at))) = (block.as_mut(), self.peer_sr)
            && b.ssrc == ssrc
        {
            b.last_sr = lsr;
            b.delay_since_last_sr = to_dlsr_units(now.saturating_duration_since(at));
        }
        let reports: Vec<ReportBlock> = block.into_iter().collect();
        let first = match sender {
            Some(s) => {
                if self.sent_srs.len() == SENT_SR_MEMORY {
                    self.sent_srs.pop_front();
                }
                self.sent_srs.push_back((ntp_middle(ntp), now));
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: self.ssrc,
                    ntp_timestamp: ntp,
                    rtp_timestamp: s.rtp_timestamp,
                    // The SR's counts wrap modulo 2^32 (RFC 3550 §6.4.1).
                    packet_count: s.packets as u32,
                    octet_count: s.octets as u32,
                    reports,
                })
            }
            None => RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: self.ssrc,
                reports,
            }),
        };
        self.reports_sent += 1;
        vec![
            first,
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: self.ssrc,
                items: vec![(SDES_CNAME, self.cname.clone())],
            }]),
        ]
    }

    /// Reads one received compound RTCP packet. A packet that does not parse is counted and
    /// its error returned; nothing of it is used.
    pub fn on_rtcp(&mut self, buf: &[u8], arrived: Instant) -> Result<(), RtpError> {
        let packets = match parse_compound(buf) {
            Ok(p) => p,
            Err(e) => {
                self.reports_invalid += 1;
                return Err(e);
            }
        };
        self.reports_received += 1;
        for packet in &packets {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    // Only the stream we receive (or, before its first packet, anyone but a
                    // reflection of ourselves).
                    let from_peer =
                        sr.ssrc != self.ssrc && self.reception.ssrc().is_none_or(|s| s == sr.ssrc);
                    if from_peer {
                        self.peer_sr = Some((sr.ssrc, ntp_middle(sr.ntp_timestamp), arrived));
                    }
                    self.on_blocks(&sr.reports, arrived);
                }
                RtcpPacket::ReceiverReport(rr) => self.on_blocks(&rr.reports, arrived),
                RtcpPacket::Bye { sources, .. } if sources.iter().any(|&s| s != self.ssrc) => {
                    self.peer_bye = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_blocks(&mut self, blocks: &[ReportBlock], arrived: Instant) {
        for b in blocks.iter().filter(|b| b.ssrc == self.ssrc) {
            self.remote = Some(*b);
            if b.last_sr == 0 {
                continue;
            }
            // RFC 3550 §6.4.1: RTT = arrival − LSR − DLSR; LSR identifies which SR it echoes.
            let sent = self
                .sent_srs
                .iter()
                .rev()
                .find(|(lsr, _)| *lsr == b.last_sr);
            let rtt = sent.and_then(|&(_, at)| {
                arrived
                    .checked_duration_since(at)?
                    .checked_sub(from_dlsr_units(b.delay_since_last_sr))
            });
            if rtt.is_some() {
                self.rtt = rtt;
            }
        }
    }

    /// The incoming stream's statistics.
    pub fn reception(&self) -> &ReceptionStats {
        &self.reception
    }

    /// Everything known so far.
    pub fn quality(&self) -> MediaQuality {
        let totals = self.reception.totals();
        let clock = f64::from(self.reception.clock_rate());
        let loss_pct = if totals.expected == 0 {
            0.0
        } else {
            (totals.lost.max(0) as f64 * 100.0 / totals.expected as f64).min(100.0)
        };
        let remote = self.remote;
        MediaQuality {
            packets_received: totals.received,
            packets_expected: totals.expected,
            packets_lost: totals.lost,
            loss_pct,
            jitter_ms: self.reception.jitter_ms(),
            rtt_ms: self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            remote_packets_lost: remote.map(|b| i64::from(b.cumulative_lost)),
            remote_loss_pct: remote.map(|b| self.remote_loss_pct(&b)),
            remote_jitter_ms: remote.map(|b| f64::from(b.jitter) * 1000.0 / clock),
            reports_sent: self.reports_sent,
            reports_received: self.reports_received,
            reports_invalid: self.reports_invalid,
            peer_bye: self.peer_bye,
        }
    }

    /// Cumulative loss over the packets the peer's highest sequence implies we sent; the
    /// block's last-interval fraction when that count is implausible (the peer's sequence
    /// tracking restarted, or its report is about an earlier stream of ours).
    fn remote_loss_pct(&self, b: &ReportBlock) -> f64 {
        let expected = b
            .highest_seq
            .wrapping_sub(u32::from(self.first_sequence))
            .wrapping_add(1);
        if expected == 0
            || expected > 0x8000_0000
            || i64::from(b.cumulative_lost) > i64::from(expected)
        {
            return f64::from(b.fraction_lost) * 100.0 / 256.0;
        }
        (f64::from(b.cumulative_lost.max(0)) * 100.0 / f64::from(expected)).min(100.0)
    }
}
