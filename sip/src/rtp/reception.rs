//! Receiver statistics for the incoming RTP stream, without I/O: sequence tracking with
//! wraparound and restarts (RFC 3550 A.1), loss for reception reports (A.3) and interarrival
//! jitter (A.8). Arrival times come in as `Instant`s; nothing here reads the clock.
//!
//! One call may see several sources (a B2BUA re-anchoring media changes the SSRC): the report
//! block describes the current source, while the call totals ([`ReceptionStats::totals`]) also
//! count the earlier ones, so a quality record covers the whole call.

use std::time::Instant;

use super::rtcp::ReportBlock;

/// A.1: a forward jump smaller than this is packets lost, not a restart.
const MAX_DROPOUT: u16 = 3000;
/// A.1: a backward step smaller than this is reordering (or a duplicate).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;
/// 24-bit signed range of the report block's cumulative loss.
const MAX_CUMULATIVE: i64 = 0x7f_ffff;
const MIN_CUMULATIVE: i64 = -0x80_0000;

/// Counts over the whole call (every source so far).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceptionTotals {
    /// Packets counted (duplicates included, as RFC 3550 counts them).
    pub received: u64,
    /// Packets the sequence numbers say were sent.
    pub expected: u64,
    /// `expected - received`; negative when duplicates outnumber losses.
    pub lost: i64,
    /// Interarrival jitter of the current source, in RTP timestamp units.
    pub jitter: f64,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    /// Sequence-number wraps, shifted left by 16 (A.1's `cycles`).
    cycles: u32,
    /// The sequence number that would confirm a restart after a big jump.
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Last relative transit time (arrival − RTP timestamp), in timestamp units.
    transit: Option<u32>,
    jitter: f64,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        Self {
            ssrc,
            base_seq: u32::from(seq),
            max_seq: seq,
            cycles: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0.0,
        }
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u64 {
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    /// A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> Seq {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if self.bad_seq == Some(seq) {
                // Two sequential packets after a big jump: the sender restarted its sequence.
                return Seq::Restart;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return Seq::Jump;
        }
        // Else a duplicate or a reordered packet: counted, the maximum stays.
        self.received += 1;
        Seq::Counted
    }
}

/// What A.1 made of a sequence number.
enum Seq {
    Counted,
    /// A big jump: not counted until the next packet confirms it.
    Jump,
    /// The jump was confirmed (or a new source): counting starts over from this packet.
    Restart,
}

/// A.1/A.3/A.8 state for the incoming stream. Feed every packet of the latched stream
/// ([`ReceptionStats::on_packet`]); take one report block per RTCP report.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    clock_rate: u32,
    /// Origin of the arrival clock (the first packet's arrival).
    epoch: Option<Instant>,
    source: Option<Source>,
    /// Totals of sources that came before the current one.
    earlier_received: u64,
    earlier_expected: u64,
}

impl ReceptionStats {
    /// `clock_rate`: the RTP clock of the negotiated codec (8000 for G.711, 48000 for Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            epoch: None,
            source: None,
            earlier_received: 0,
            earlier_expected: 0,
        }
    }

    /// Accounts one received packet. `with_jitter`: false for packets whose timestamp does not
    /// follow the sampling clock (RFC 4733 events repeat their start timestamp), which still
    /// count for loss.
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        arrived: Instant,
        with_jitter: bool,
    ) {
        let epoch = *self.epoch.get_or_insert(arrived);
        let outcome = match &mut self.source {
            Some(s) if s.ssrc == ssrc => s.update_seq(sequence),
            _ => Seq::Restart,
        };
        match outcome {
            Seq::Counted => {}
            Seq::Jump => return,
            Seq::Restart => self.restart(ssrc, sequence),
        }
        let Some(s) = self.source.as_mut() else {
            return;
        };
        if !with_jitter {
            return;
        }
        // A.8: transit = arrival − timestamp in timestamp units. Wrapping u32 arithmetic keeps
        // the difference right across timestamp wraparound.
        let elapsed = arrived.saturating_duration_since(epoch);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = s.transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            s.jitter += (d - s.jitter) / 16.0;
        }
        s.transit = Some(transit);
    }

    /// Starts counting a new source (or the same one after a sequence restart), keeping what
    /// the previous one counted in the call totals.
    fn restart(&mut self, ssrc: u32, sequence: u16) {
        let mut s = Source::new(ssrc, sequence);
        s.received = 1;
        if let Some(old) = self.source.take() {
            self.earlier_received += old.received;
            self.earlier_expected += old.expected();
            if old.ssrc == ssrc {
                // The same sender restarted its sequence: its jitter estimate still holds
                // (RFC 3550 A.1 re-initialises only the sequence state).
                s.jitter = old.jitter;
            }
        }
        self.source = Some(s);
    }

    /// The current source's SSRC.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// A.3: the report block about the current source (LSR/DLSR left 0 for the caller to
    /// fill); advances the interval used for `fraction_lost`. `None` before any packet.
    pub fn report_block(&mut self) -> Option<ReportBlock> {
        let s = self.source.as_mut()?;
        let expected = s.expected();
        let lost = expected as i64 - s.received as i64;
        let expected_interval = expected.saturating_sub(s.expected_prior);
        let received_interval = s.received.saturating_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(MIN_CUMULATIVE, MAX_CUMULATIVE) as i32,
            highest_seq: s.extended_max(),
            jitter: s.jitter as u32,
            last_sr: 0,
            delay_since_last_sr: 0,
        })
    }

    /// Counts over the whole call.
    pub fn totals(&self) -> ReceptionTotals {
        let (received, expected, jitter) = match &self.source {
            Some(s) => (s.received, s.expected(), s.jitter),
            None => (0, 0, 0.0),
        };
        let received = received + self.earlier_received;
        let expected = expected + self.earlier_expected;
        ReceptionTotals {
            received,
            expected,
            lost: expected as i64 - received as i64,
            jitter,
        }
    }

    /// Jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.totals().jitter * 1000.0 / f64::from(self.clock_rate)
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Feeds `seqs` as a 20 ms G.711 stream (timestamp 160 per sequence step) arriving on time.
    fn feed(stats: &mut ReceptionStats, t0: Instant, ssrc: u32, seqs: impl Iterator<Item = u16>) {
        for seq in seqs {
            let step = u64::from(seq);
            let at = t0 + Duration::from_millis(20 * step);
            stats.on_packet(ssrc, seq, (step as u32) * 160, at, true);
        }
    }

    #[test]
    fn loss_counts_and_fraction_per_interval() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        assert!(s.report_block().is_none());
        // 100 packets, every tenth lost.
        feed(&mut s, t0, 7, (0..100).filter(|i| i % 10 != 5));
        let t = s.totals();
        assert_eq!((t.received, t.expected, t.lost), (90, 100, 10));
        let b = s.report_block().unwrap();
        assert_eq!(b.ssrc, 7);
        assert_eq!(b.highest_seq, 99);
        assert_eq!(b.cumulative_lost, 10);
        // 10 of 100 lost = 25.6/256, truncated as A.3 does.
        assert_eq!(b.fraction_lost, 25);
        // A clean second interval: fraction back to 0, cumulative loss stays.
        feed(&mut s, t0, 7, 100..150);
        let b = s.report_block().unwrap();
        assert_eq!(
            (b.fraction_lost, b.cumulative_lost, b.highest_seq),
            (0, 10, 149)
        );
        // No packets since the last report: nothing expected, nothing lost.
        assert_eq!(s.report_block().unwrap().fraction_lost, 0);
    }

    #[test]
    fn sequence_numbers_wrap_into_the_extended_maximum() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        let seqs = (0u16..20)
            .map(|i| 65530u16.wrapping_add(i))
            .filter(|&q| q != 2);
        for (i, seq) in seqs.enumerate() {
            s.on_packet(1, seq, i as u32 * 160, t0, false);
        }
        let b = s.report_block().unwrap();
        // 65530 + 19 = 65549 = one cycle + 13.
        assert_eq!(b.highest_seq, (1 << 16) + 13);
        assert_eq!(b.cumulative_lost, 1);
        let t = s.totals();
        assert_eq!((t.received, t.expected), (19, 20));
    }

    #[test]
    fn jitter_follows_rfc3550_a8_on_a_synthetic_stream() {
        let t0 = crate::test_epoch();
        // On-time packets: no jitter.
        let mut s = ReceptionStats::new(8000);
        feed(&mut s, t0, 1, 0..50);
        assert_eq!(s.totals().jitter, 0.0);

        // Every other packet 10 ms late: each transit difference is 80 timestamp units, so
        // J_n = 80 * (1 - (15/16)^n) after n differences. Timestamps start just below the
        // 32-bit wrap, which must not disturb the estimate.
        let mut s = ReceptionStats::new(8000);
        let ts0 = u32::MAX - 1000;
        let n = 200u32;
        for i in 0..=n {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + late);
            s.on_packet(1, i as u16, ts0.wrapping_add(i * 160), at, true);
        }
        let expected = 80.0 * (1.0 - (15.0f64 / 16.0).powi(n as i32));
        assert!(
            (s.totals().jitter - expected).abs() < 1e-6,
            "{:?}",
            s.totals()
        );
        assert!((s.jitter_ms() - 10.0).abs() < 0.01, "{}", s.jitter_ms());
        assert_eq!(s.report_block().unwrap().jitter, 79);

        // Jitter is scaled by the clock: 48 kHz units for the same 10 ms.
        let mut s = ReceptionStats::new(48_000);
        for i in 0..=n {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + late);
            s.on_packet(1, i as u16, i * 960, at, true);
        }
        assert!((s.jitter_ms() - 10.0).abs() < 0.01, "{}", s.jitter_ms());
    }

    #[test]
    fn events_count_for_loss_but_not_jitter() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        // An RFC 4733 event: same timestamp for 20 packets spread over 400 ms.
        for i in 0..20u16 {
            s.on_packet(
                1,
                i,
                0,
                t0 + Duration::from_millis(20 * u64::from(i)),
                false,
            );
        }
        assert_eq!(s.totals().jitter, 0.0);
        assert_eq!(s.totals().received, 20);
    }

    #[test]
    fn a_big_jump_restarts_only_when_the_next_packet_confirms_it() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        feed(&mut s, t0, 1, 100..110);
        // A stray packet far ahead is not counted, and the stream carries on.
        s.on_packet(1, 30_000, 0, t0, false);
        s.on_packet(1, 110, 0, t0, false);
        let t = s.totals();
        assert_eq!((t.received, t.expected), (11, 11));
        // The sender restarts at 5000: 5000 alone is held, 5001 confirms it.
        s.on_packet(1, 5000, 0, t0, false);
        s.on_packet(1, 5001, 0, t0, false);
        s.on_packet(1, 5002, 0, t0, false);
        let t = s.totals();
        assert_eq!((t.received, t.expected, t.lost), (13, 13, 0));
        let b = s.report_block().unwrap();
        assert_eq!((b.highest_seq, b.cumulative_lost), (5002, 0));
    }

    #[test]
    fn duplicates_and_reordering_follow_a1() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        for seq in [0u16, 1, 3, 2, 2, 4] {
            s.on_packet(1, seq, 0, t0, false);
        }
        let b = s.report_block().unwrap();
        // Six counted, five expected: the duplicate makes the loss negative.
        assert_eq!(
            (b.highest_seq, b.cumulative_lost, b.fraction_lost),
            (4, -1, 0)
        );
    }

    #[test]
    fn a_new_source_keeps_the_call_totals() {
        let t0 = crate::test_epoch();
        let mut s = ReceptionStats::new(8000);
        feed(&mut s, t0, 1, (0..12).filter(|&i| i != 3 && i != 7));
        feed(&mut s, t0, 2, 500..510);
        assert_eq!(s.ssrc(), Some(2));
        let t = s.totals();
        assert_eq!((t.received, t.expected, t.lost), (20, 22, 2));
        let b = s.report_block().unwrap();
        assert_eq!((b.ssrc, b.cumulative_lost, b.highest_seq), (2, 0, 509));
    }
}
