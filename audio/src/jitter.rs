//! Adaptive jitter buffer for one RTP stream, driven in simulated time.
//!
//! Packets go in as they arrive ([`JitterBuffer::push`]); the call's 20 ms playout tick takes
//! one frame out ([`JitterBuffer::pop`]). The buffer reorders by sequence number, drops
//! duplicates and packets that arrive after their play time, tells the caller when a frame is
//! missing so it can conceal it ([`crate::plc::Plc`], or Opus's own decoder), and adapts its
//! depth to the measured jitter: it grows by pausing playout on underrun and shrinks by
//! skipping a frame when it has held more than needed for a while.
//!
//! Sans-IO: every call takes `now` from the caller and nothing here reads a clock, so tests
//! drive it through seeded loss/jitter/reordering in microseconds. It stores encoded payloads,
//! not PCM, so the same buffer serves G.711 and (later) Opus.
//!
//! Assumes a constant packet duration (`frame_ms`, the negotiated `ptime`).

use std::time::{Duration, Instant};

/// Tuning for [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitterConfig {
    /// RTP clock rate (8000 for G.711; 48000 for Opus).
    pub clock_rate: u32,
    /// Duration of one packet.
    pub frame_ms: u32,
    /// Delay before the first packet is played, and the floor of the adaptive target.
    pub min_delay_ms: u32,
    /// Ceiling of the adaptive target; also bounds how far ahead a packet may be stored.
    pub max_delay_ms: u32,
}

impl JitterConfig {
    /// A config for `clock_rate` with 20 ms frames, 40 ms minimum and 400 ms maximum delay.
    pub const fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            frame_ms: 20,
            min_delay_ms: 40,
            max_delay_ms: 400,
        }
    }

    /// Same config with other delay bounds.
    pub const fn with_delays(mut self, min_delay_ms: u32, max_delay_ms: u32) -> Self {
        self.min_delay_ms = min_delay_ms;
        self.max_delay_ms = max_delay_ms;
        self
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Stored for playout.
    Stored,
    /// Stored, but it arrived after a packet with a higher sequence number.
    Reordered,
    /// Already stored or played: ignored.
    Duplicate,
    /// Its play time has passed (it was concealed): ignored.
    Late,
    /// Too far ahead of playout (a sequence jump: the sender restarted or a long outage):
    /// the buffer resynchronised on this packet and dropped what it held.
    Resynced,
    /// Payload empty or larger than [`MAX_PAYLOAD`]: ignored.
    Invalid,
}

/// What to play for this tick.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Playout<'a> {
    /// Nothing received yet, or the initial delay has not elapsed: play silence (not a loss).
    Waiting,
    /// The next packet, in order.
    Packet {
        /// Its RTP sequence number.
        seq: u16,
        /// Its payload.
        payload: &'a [u8],
    },
    /// The next packet is missing while later ones are here (lost, or so late it will be
    /// dropped): conceal one frame. Playout moved past it.
    Lost,
    /// Nothing buffered at all: conceal one frame; playout waits for the next packet, which
    /// adds one frame of delay (how the buffer grows under jitter).
    Underrun,
}

/// Largest accepted payload: 60 ms of 48 kHz 16-bit PCM, far above any real codec frame.
pub const MAX_PAYLOAD: usize = 5760;

/// Counters for quality reporting (RTCP receiver reports, per-call stats).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct JitterStats {
    /// Packets stored (including reordered ones).
    pub received: u64,
    /// Of those, how many arrived after a higher sequence number.
    pub reordered: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
    /// Packets that arrived after their play time.
    pub late: u64,
    /// Frames played as [`Playout::Lost`].
    pub lost: u64,
    /// Frames played as [`Playout::Underrun`].
    pub underruns: u64,
    /// Frames skipped to reduce delay.
    pub skipped: u64,
    /// Times the buffer resynchronised on a sequence jump.
    pub resyncs: u64,
    /// Frames played from packets.
    pub played: u64,
    /// RFC 3550 interarrival jitter, in milliseconds.
    pub jitter_ms: f64,
    /// Current buffered audio, in milliseconds.
    pub depth_ms: u32,
    /// Current target depth, in milliseconds.
    pub target_ms: u32,
}

/// The jitter buffer. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    /// Arrival time of the first packet: the origin of arrival times in RTP units.
    origin: Option<Instant>,
    /// When the first packet may be played.
    start_at: Option<Instant>,
    /// Extended sequence number of the next frame to play.
    next: u64,
    /// Highest extended sequence number stored so far.
    highest: u64,
    /// Previous (arrival, timestamp) in RTP units, for the jitter estimate.
    last_transit: Option<f64>,
    jitter_rtp: f64,
    /// Consecutive pops with more buffered than needed.
    surplus_ticks: u32,
    /// Whether playout has begun (a pop returned something other than `Waiting`).
    started: bool,
    stats: JitterStats,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// Pops in a row with surplus depth before a frame is skipped: slow to shrink, so a burst of
/// jitter does not make the buffer oscillate.
const SURPLUS_TICKS_TO_SKIP: u32 = 50;

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let mut config = config;
        config.frame_ms = config.frame_ms.max(1);
        config.clock_rate = config.clock_rate.max(1);
        config.max_delay_ms = config
            .max_delay_ms
            .max(config.min_delay_ms + config.frame_ms);
        // Room for the maximum delay plus a margin for bursts arriving at once.
        let capacity = (config.max_delay_ms / config.frame_ms) as usize * 2 + 4;
        Self {
            config,
            slots: vec![Slot::default(); capacity],
            origin: None,
            start_at: None,
            next: 0,
            highest: 0,
            last_transit: None,
            jitter_rtp: 0.0,
            surplus_ticks: 0,
            started: false,
            stats: JitterStats {
                target_ms: config.min_delay_ms,
                ..JitterStats::default()
            },
        }
    }

    /// The configuration in use (after clamping).
    pub fn config(&self) -> JitterConfig {
        self.config
    }

    /// Stores a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) -> PushOutcome {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return PushOutcome::Invalid;
        }
        let Some(origin) = self.origin else {
            self.origin = Some(now);
            self.start_at = Some(now + ms(self.config.min_delay_ms));
            self.next = u64::from(seq) + (1 << 16);
            self.highest = self.next;
            self.store(self.next, payload);
            self.update_jitter(now, now, timestamp);
            return PushOutcome::Stored;
        };
        let ext = extend_seq(self.highest, seq);
        self.update_jitter(now, origin, timestamp);
        if ext < self.next && !self.started && self.next - ext < self.slots.len() as u64 / 2 {
            // Before playout starts, an earlier packet overtaken by the first one to arrive
            // moves the start back instead of being dropped.
            self.next = ext;
            self.store(ext, payload);
            self.stats.reordered += 1;
            return PushOutcome::Reordered;
        }
        if ext < self.next {
            // Its turn has passed: played (then this is a late copy) or concealed.
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        if ext >= self.next + self.slots.len() as u64 {
            self.resync(now, ext, payload);
            return PushOutcome::Resynced;
        }
        let slot = &self.slots[self.slot_index(ext)];
        if slot.seq == Some(ext) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        self.store(ext, payload);
        if ext < self.highest {
            self.stats.reordered += 1;
            PushOutcome::Reordered
        } else {
            self.highest = ext;
            PushOutcome::Stored
        }
    }

    /// The frame to play at this tick. Call once per `frame_ms`.
    pub fn pop(&mut self, now: Instant) -> Playout<'_> {
        let Some(start_at) = self.start_at else {
            return Playout::Waiting;
        };
        if now < start_at {
            return Playout::Waiting;
        }
        self.started = true;
        self.adapt();
        let idx = self.slot_index(self.next);
        if self.slots[idx].seq == Some(self.next) {
            self.slots[idx].seq = None;
            self.next += 1;
            self.stats.played += 1;
            self.update_depth();
            let slot = &self.slots[idx];
            return Playout::Packet {
                seq: (self.next - 1) as u16,
                payload: &slot.payload,
            };
        }
        if self.highest > self.next {
            self.next += 1;
            self.stats.lost += 1;
            self.update_depth();
            Playout::Lost
        } else {
            // Nothing ahead: hold playout here so the next packet is played, not skipped.
            self.stats.underruns += 1;
            self.update_depth();
            Playout::Underrun
        }
    }

    /// Counters and current state.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Cumulative fraction of expected packets that never played (lost or late), `0.0..=1.0`.
    pub fn loss_fraction(&self) -> f64 {
        let expected = self.stats.played + self.stats.lost;
        if expected == 0 {
            0.0
        } else {
            self.stats.lost as f64 / expected as f64
        }
    }

    fn slot_index(&self, ext: u64) -> usize {
        (ext % self.slots.len() as u64) as usize
    }

    fn store(&mut self, ext: u64, payload: &[u8]) {
        let idx = self.slot_index(ext);
        let slot = &mut self.slots[idx];
        slot.seq = Some(ext);
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.stats.received += 1;
        self.update_depth();
    }

    fn resync(&mut self, now: Instant, ext: u64, payload: &[u8]) {
        for slot in &mut self.slots {
            slot.seq = None;
        }
        self.stats.resyncs += 1;
        self.next = ext;
        self.highest = ext;
        self.start_at = Some(now + ms(self.stats.target_ms));
        self.surplus_ticks = 0;
        self.started = false;
        self.store(ext, payload);
    }

    /// RFC 3550 §6.4.1 interarrival jitter, in RTP units, updated per packet.
    fn update_jitter(&mut self, now: Instant, origin: Instant, timestamp: u32) {
        let arrival =
            now.saturating_duration_since(origin).as_secs_f64() * f64::from(self.config.clock_rate);
        // Timestamps wrap at 2^32; transit differences are taken modulo that, so unwrap by
        // keeping only the difference below (compare as signed 32-bit).
        let transit = arrival - f64::from(timestamp);
        if let Some(prev) = self.last_transit {
            let mut d = transit - prev;
            let wrap = f64::from(u32::MAX) + 1.0;
            if d > wrap / 2.0 {
                d -= wrap;
            } else if d < -wrap / 2.0 {
                d += wrap;
            }
            // A timestamp jump (new talk spurt after a pause with a fresh base) would swamp
            // the estimate; ignore differences beyond a second.
            if d.abs() < f64::from(self.config.clock_rate) {
                self.jitter_rtp += (d.abs() - self.jitter_rtp) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        self.stats.jitter_ms = self.jitter_rtp * 1000.0 / f64::from(self.config.clock_rate);
        // Cover about three times the mean deviation, rounded up to whole frames.
        let f = self.config.frame_ms;
        let wanted = (self.stats.jitter_ms * 3.0).ceil() as u32;
        let target = wanted.div_ceil(f) * f;
        self.stats.target_ms = target.clamp(self.config.min_delay_ms, self.config.max_delay_ms);
    }

    fn update_depth(&mut self) {
        let frames = if self.highest >= self.next {
            self.highest - self.next + 1
        } else {
            0
        };
        self.stats.depth_ms = u32::try_from(frames)
            .unwrap_or(u32::MAX)
            .saturating_mul(self.config.frame_ms);
    }

    /// Skips one frame after the buffer has held clearly more than the target for a while.
    fn adapt(&mut self) {
        let f = self.config.frame_ms;
        if self.stats.depth_ms > self.stats.target_ms + 2 * f {
            self.surplus_ticks += 1;
        } else {
            self.surplus_ticks = 0;
        }
        if self.surplus_ticks >= SURPLUS_TICKS_TO_SKIP && self.highest > self.next {
            let idx = self.slot_index(self.next);
            if self.slots[idx].seq == Some(self.next) {
                self.slots[idx].seq = None;
            }
            self.next += 1;
            self.stats.skipped += 1;
            self.surplus_ticks = 0;
            self.update_depth();
        }
    }
}

/// Extends a 16-bit sequence number to the 64-bit value closest to `reference`.
fn extend_seq(reference: u64, seq: u16) -> u64 {
    let base = reference & !0xFFFF;
    let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
    candidates
        .into_iter()
        .map(|b| b | u64::from(seq))
        .min_by_key(|&c| c.abs_diff(reference))
        .unwrap_or(base | u64::from(seq))
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

#[cfg(test)]
mod tests;
