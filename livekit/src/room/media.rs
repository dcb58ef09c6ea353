//! Audio in both directions, shaped like `sip::driver::media` so a call leg can sit on either:
//! received Opus RTP as [`RtpAudio`] events with loss/jitter counters, and a pacer that writes
//! one queued frame per 20 ms to our published track with our own RTP sequence numbers and
//! 48 kHz timestamps (Opus's RTP clock, RFC 7587 §4.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::RoomEvent;

/// Encoded frames the application may queue ahead of the pacer (4 × 20 ms = 80 ms in flight
/// after a barge-in flush), as in the SIP media task.
pub const FRAMES_AHEAD: usize = 4;
/// One Opus frame: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// RTP timestamp units per 20 ms frame at Opus's 48 kHz clock.
const SAMPLES_PER_FRAME: u32 = 960;
/// Dynamic payload type our offer gives Opus (the browsers' and LiveKit's choice).
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;
/// A 20 ms Opus frame of silence: TOC 0xF8 (CELT-only FB 20 ms, mono, one frame) and a
/// two-byte body that decodes to zeros — the packet WebRTC stacks send for muted audio.
pub const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// One received audio packet from the SIP participant's track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpAudio {
    pub sequence: u16,
    /// 48 kHz units.
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    /// One Opus packet.
    pub payload: Vec<u8>,
    /// When it was read from the track.
    pub arrived: Instant,
}

/// A frame to send. Build it with [`FrameSender::frame`] so it carries the current epoch.
#[derive(Debug, Clone)]
pub struct OutFrame {
    payload: Vec<u8>,
    mark: Option<u64>,
    tag: u64,
    epoch: u32,
}

/// Counters of the call's media.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    pub packets_received: u64,
    /// Expected minus received over the sequence range seen (RFC 3550 A.3), never negative.
    pub packets_lost: u64,
    /// Interarrival jitter (RFC 3550 §6.4.1), in milliseconds.
    pub jitter_ms: f64,
    /// Received packets dropped because the application was not reading.
    pub packets_dropped_backlog: u64,
    pub frames_sent: u64,
    pub frames_discarded: u64,
    pub silence_frames_sent: u64,
    /// Data packets that were not a valid `DataPacket`.
    pub data_packets_invalid: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    epoch: AtomicU32,
    /// Tag of the last frame sent, plus one (0: none yet).
    sent_tag: AtomicU64,
    frames_sent: AtomicU64,
    frames_discarded: AtomicU64,
    silence_sent: AtomicU64,
    pub(crate) packets_dropped_backlog: AtomicU64,
    pub(crate) data_packets_invalid: AtomicU64,
    pub(crate) receive: std::sync::Mutex<ReceiveStats>,
}

impl Shared {
    pub(crate) fn stats(&self) -> MediaStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let receive = self.receive.lock().map(|r| r.clone()).unwrap_or_default();
        MediaStats {
            packets_received: receive.received,
            packets_lost: receive.lost(),
            jitter_ms: receive.jitter / 48.0,
            packets_dropped_backlog: get(&self.packets_dropped_backlog),
            frames_sent: get(&self.frames_sent),
            frames_discarded: get(&self.frames_discarded),
            silence_frames_sent: get(&self.silence_sent),
            data_packets_invalid: get(&self.data_packets_invalid),
        }
    }
}

/// Loss and jitter of the received stream, RFC 3550 Appendix A.1/A.3/A.8 in 48 kHz units.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceiveStats {
    received: u64,
    base_seq: Option<u32>,
    /// Highest extended sequence number.
    max_ext: u32,
    /// Last packet's (arrival, rtp timestamp).
    last: Option<(Instant, u32)>,
    jitter: f64,
}

impl ReceiveStats {
    pub(crate) fn on_packet(&mut self, sequence: u16, timestamp: u32, arrived: Instant) {
        self.received += 1;
        match self.base_seq {
            None => {
                self.base_seq = Some(u32::from(sequence));
                self.max_ext = u32::from(sequence);
            }
            Some(_) => {
                let max_seq = self.max_ext as u16;
                let delta = sequence.wrapping_sub(max_seq);
                if delta != 0 && delta < 0x8000 {
                    let cycles = self.max_ext & 0xFFFF_0000;
                    let wrapped = if sequence < max_seq { 0x1_0000 } else { 0 };
                    self.max_ext = cycles.wrapping_add(wrapped) | u32::from(sequence);
                }
            }
        }
        if let Some((prev_arrival, prev_ts)) = self.last {
            let arrival_delta = arrived
                .saturating_duration_since(prev_arrival)
                .as_secs_f64()
                * 48_000.0;
            let ts_delta = f64::from(timestamp.wrapping_sub(prev_ts) as i32);
            let d = (arrival_delta - ts_delta).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last = Some((arrived, timestamp));
    }

    fn lost(&self) -> u64 {
        let Some(base) = self.base_seq else { return 0 };
        let expected = u64::from(self.max_ext.wrapping_sub(base)) + 1;
        expected.saturating_sub(self.received)
    }
}

/// Queues frames for the pacer. Cheap to clone.
#[derive(Clone)]
pub struct FrameSender {
    pub(crate) frames: mpsc::Sender<OutFrame>,
    pub(crate) shared: Arc<Shared>,
}

impl FrameSender {
    /// A frame stamped with the current epoch; `tag` is the application's number for it
    /// ([`FrameSender::last_sent_tag`]), `mark` is reported back as [`RoomEvent::FrameSent`]
    /// when the frame is written to the track.
    pub fn frame(&self, payload: Vec<u8>, mark: Option<u64>, tag: u64) -> OutFrame {
        OutFrame {
            payload,
            mark,
            tag,
            epoch: self.shared.epoch.load(Ordering::Acquire),
        }
    }

    /// The tag of the last frame written to the track, if any.
    pub fn last_sent_tag(&self) -> Option<u64> {
        self.shared.sent_tag.load(Ordering::Acquire).checked_sub(1)
    }

    /// Waits for room and queues a frame. Cancel-safe. False when the room has ended.
    pub async fn send(&self, frame: OutFrame) -> bool {
        match self.frames.reserve().await {
            Ok(permit) => {
                permit.send(frame);
                true
            }
            Err(_) => false,
        }
    }

    /// Discards every frame queued so far (barge-in). Takes effect on the next tick.
    pub fn flush(&self) {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Frames written so far (silence fill excluded).
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::Acquire)
    }

    pub fn frames_discarded(&self) -> u64 {
        self.shared.frames_discarded.load(Ordering::Acquire)
    }
}

/// Writes one frame per 20 ms to `track` until the room ends or every frame sender is gone.
pub(crate) async fn run_pacer(
    track: Arc<TrackLocalStaticRTP>,
    mut frames: mpsc::Receiver<OutFrame>,
    events: mpsc::Sender<RoomEvent>,
    shared: Arc<Shared>,
    send_silence: bool,
    mut room_open: tokio::sync::watch::Receiver<()>,
) {
    let mut sequence: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let ssrc: u32 = rand::random();
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // The room task dropped its sender: the session is over.
            _ = room_open.changed() => return,
        }
        let epoch = shared.epoch.load(Ordering::Acquire);
        let mut next = None;
        loop {
            match frames.try_recv() {
                Ok(frame) if frame.epoch != epoch => {
                    shared.frames_discarded.fetch_add(1, Ordering::Relaxed);
                }
                Ok(frame) => {
                    next = Some(frame);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let (payload, mark, tag) = match next {
            Some(f) => (Bytes::from(f.payload), f.mark, Some(f.tag)),
            None if send_silence => {
                shared.silence_sent.fetch_add(1, Ordering::Relaxed);
                (Bytes::from_static(&OPUS_SILENCE), None, None)
            }
            None => {
                // Nothing to send: the timestamp still advances, so the next packet
                // tells the receiver how long the gap was (like Opus DTX).
                timestamp = timestamp.wrapping_add(SAMPLES_PER_FRAME);
                continue;
            }
        };
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: first,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: sequence,
                timestamp,
                ssrc,
                ..Default::default()
            },
            payload,
        };
        first = false;
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(SAMPLES_PER_FRAME);
        // An error here means no remote has bound the track yet (publisher not connected):
        // the frame is spent either way, as on a silent line.
        let _ = track.write_rtp(&packet).await;
        if let Some(tag) = tag {
            shared.frames_sent.fetch_add(1, Ordering::AcqRel);
            shared
                .sent_tag
                .store(tag.saturating_add(1), Ordering::Release);
        }
        if let Some(mark) = mark {
            let at = tokio::time::Instant::now().into_std();
            let _ = events.try_send(RoomEvent::FrameSent { mark, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_gaps_across_wraparound_and_jitter_stays_zero_for_a_steady_stream() {
        let t0 = Instant::now();
        let mut stats = ReceiveStats::default();
        let mut seq: u16 = 65_530;
        let mut ts: u32 = 1000;
        for i in 0..20u64 {
            // Drop two packets: i = 5 and i = 12.
            if i != 5 && i != 12 {
                stats.on_packet(seq, ts, t0 + FRAME * i as u32);
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(SAMPLES_PER_FRAME);
        }
        assert_eq!(stats.received, 18);
        assert_eq!(stats.lost(), 2);
        assert!(stats.jitter < 1.0, "jitter {}", stats.jitter);
        // A late packet (reordered) is received, not counted as a new maximum.
        stats.on_packet(65_535, 0, t0 + FRAME * 25);
        assert_eq!(stats.lost(), 1);
    }

    #[test]
    fn jitter_grows_with_uneven_arrival() {
        let t0 = Instant::now();
        let mut stats = ReceiveStats::default();
        for i in 0..50u32 {
            let wobble = if i % 2 == 0 { 0 } else { 10 };
            stats.on_packet(
                i as u16,
                i * SAMPLES_PER_FRAME,
                t0 + FRAME * i + Duration::from_millis(wobble),
            );
        }
        // Alternating 10 ms deviations converge towards ~10 ms of jitter.
        let ms = stats.jitter / 48.0;
        assert!((5.0..=11.0).contains(&ms), "jitter {ms} ms");
    }
}
