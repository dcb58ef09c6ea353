//! [`CallLeg`]: the one interface between a transport (direct SIP, or a LiveKit room; see
//! `transport`) and the call's driver.
//! PCM in (16 kHz, 20 ms frames, after jitter buffering, decoding, concealment and resampling),
//! PCM out (any rate; resampled, framed and encoded here), and call events. The actor never
//! sees SIP or RTP types.
//!
//! Playback is numbered: every frame queued by [`CallLeg::play`] gets a tag, and the pacer
//! publishes the tag of the last frame it put on the wire. The leg turns that into reports per
//! played item (how many of its milliseconds went out, when everything has played), which is
//! how the call core knows what the caller heard; and it lets playback pause (barge-in) and
//! resume where it stopped: frames handed to the pacer but not yet sent are taken back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use audio::jitter::PushOutcome;
use audio::{
    Codec, CodecKind, EchoGate, EchoGateConfig, EchoPath, Framer, JitterBuffer, JitterConfig,
    Playout, Resampler,
};
use sip::driver::{CallControl, CallSignal, MediaSession};
use store::EndReason;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::core::{PlaybackReport, TransferProgress};
use super::recording::RecordedFrame;
use super::transport::{
    FrameSender, LiveKitRoom, LiveKitTransport, OutFrame, SipTransport, TransferError, Transport,
    TransportEvent,
};

/// Rate of the PCM the leg hands to the pipeline (VAD, STT).
pub const PIPELINE_RATE: u32 = 16_000;
/// Samples in one 20 ms pipeline frame.
pub const PIPELINE_FRAME: usize = 320;

/// What the leg reports to the actor.
#[derive(Debug)]
pub enum LegEvent {
    /// One 20 ms frame of caller audio at 16 kHz.
    Audio {
        pcm: Vec<i16>,
        /// When the RTP packet carrying it arrived (tick time for concealed frames).
        arrived: Instant,
        /// The echo gate judged it our own voice coming back (see `audio::echo`).
        echo: bool,
    },
    Dtmf(char),
    /// How playback of the items queued with [`CallLeg::play`] is going.
    Playback(PlaybackReport),
    /// How a blind transfer ([`CallLeg::transfer`]) went.
    Transfer(TransferProgress),
    /// The call is over.
    Hangup {
        reason: EndReason,
    },
}

/// Why the leg cannot run or play.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error("cannot resample {from} Hz audio: {source}")]
    Resample {
        from: u32,
        #[source]
        source: audio::ResampleError,
    },
    #[error("the negotiated codec {0} is not supported")]
    UnsupportedCodec(String),
    #[error("codec: {0}")]
    Codec(#[from] audio::CodecError),
}

/// The frames of one played item.
#[derive(Debug)]
struct Span {
    item: u64,
    first_tag: u64,
    frames: u64,
    /// Frames reported played so far.
    reported: u64,
}

/// A frame waiting for the pacer.
#[derive(Debug)]
struct Queued {
    payload: Vec<u8>,
    mark: Option<u64>,
    tag: u64,
    /// Level of the frame's PCM (dBFS), for the echo gate once it is sent.
    level_db: f32,
    /// The frame's PCM at the codec rate, kept only while the call is recorded.
    pcm: Vec<i16>,
}

/// One call's media and signalling, owned by its driver.
pub struct CallLeg {
    transport: Transport,
    sender: FrameSender,
    codec: Box<dyn Codec>,
    /// PCM rate of the codec (8 kHz G.711, 16 kHz Opus).
    codec_rate: u32,
    jitter: JitterBuffer,
    /// `None` when the codec already decodes at the pipeline rate.
    upsample: Option<Resampler>,
    up_out: Vec<i16>,
    framer: Framer<i16>,
    decoded: Vec<i16>,
    tick: Interval,
    started: bool,
    last_arrival: Instant,
    /// Frames not yet handed to the pacer.
    outbox: VecDeque<Queued>,
    /// Frames handed to the pacer whose sending is not yet confirmed (taken back on pause).
    in_flight: VecDeque<Queued>,
    /// Items queued for playback, oldest first, until fully played.
    spans: VecDeque<Span>,
    /// The last item queued.
    last_item: Option<u64>,
    /// Milliseconds of audio per frame (the negotiated ptime).
    frame_ms: u64,
    next_tag: u64,
    /// Playback is expected to run up to (not including) this tag.
    play_until: u64,
    paused: bool,
    /// `Idle` was reported for the current `play_until`.
    idle_reported: bool,
    pending: VecDeque<LegEvent>,
    ended: bool,
    /// Decides which inbound frames are our own voice coming back.
    echo: EchoGate,
    /// The call's recording, when its flow records: both channels once per tick.
    tap: Option<mpsc::Sender<RecordedFrame>>,
    /// Agent audio that went out and is not yet in the recording.
    sent_pcm: VecDeque<i16>,
    /// Bridged audio (a warm transfer): the other leg's 16 kHz frames, resampled as one stream.
    relay: Option<Relay>,
    /// Encoder output, reused for every frame.
    scratch: Vec<u8>,
}

/// Another leg's audio played on this one as a continuous stream.
struct Relay {
    /// `None` when the codec runs at the pipeline rate.
    down: Option<Resampler>,
    /// Samples at the codec rate not yet a whole frame.
    pending: Vec<i16>,
}

/// Relayed frames waiting beyond this (the two legs' clocks drift) are dropped, oldest
/// first: a bridge must not build up delay.
const RELAY_MAX_QUEUED: usize = 10;

impl CallLeg {
    /// A leg on a direct SIP call: the negotiated codec and ptime; numbers given to
    /// [`CallLeg::transfer`] go to `peer_domain` (host[:port]).
    pub fn sip(
        media: MediaSession,
        signals: mpsc::Receiver<CallSignal>,
        control: CallControl,
        peer_domain: String,
    ) -> Result<Self, LegError> {
        let negotiated = media.negotiated().clone();
        let kind = CodecKind::from_sdp(&negotiated.codec.name, negotiated.codec.clock_rate)
            .ok_or_else(|| LegError::UnsupportedCodec(negotiated.codec.name.clone()))?;
        let ptime = negotiated.ptime_ms.clamp(10, 60);
        let transport = Transport::Sip(SipTransport::new(media, signals, control, peer_domain));
        Self::build(transport, kind, ptime)
    }

    /// A leg in a LiveKit room: Opus, 48 kHz RTP clock, 20 ms frames.
    pub(super) fn livekit(room: LiveKitRoom) -> Result<Self, LegError> {
        let transport = Transport::LiveKit(LiveKitTransport::new(room));
        Self::build(transport, CodecKind::Opus, 20)
    }

    fn build(transport: Transport, kind: CodecKind, ptime: u32) -> Result<Self, LegError> {
        // Opus decodes straight to the pipeline rate; G.711 is 8 kHz.
        let codec_rate = if kind == CodecKind::Opus {
            PIPELINE_RATE
        } else {
            8000
        };
        let codec = kind.build(codec_rate)?;
        let upsample = if codec_rate == PIPELINE_RATE {
            None
        } else {
            Some(Resampler::new(codec_rate, PIPELINE_RATE).map_err(|source| {
                LegError::Resample {
                    from: codec_rate,
                    source,
                }
            })?)
        };
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let sender = transport.sender();
        let frame_len = codec.frame_len();
        Ok(Self {
            transport,
            sender,
            codec,
            codec_rate,
            jitter: JitterBuffer::new(JitterConfig::new(kind.clock_rate())),
            upsample,
            up_out: Vec::with_capacity(PIPELINE_FRAME * 2),
            framer: Framer::new(PIPELINE_FRAME),
            decoded: vec![0; frame_len],
            tick,
            started: false,
            last_arrival: Instant::now(),
            outbox: VecDeque::new(),
            in_flight: VecDeque::new(),
            spans: VecDeque::new(),
            last_item: None,
            frame_ms: u64::from(ptime),
            next_tag: 0,
            play_until: 0,
            paused: false,
            idle_reported: true,
            pending: VecDeque::new(),
            ended: false,
            echo: EchoGate::new(EchoGateConfig::default()),
            tap: None,
            sent_pcm: VecDeque::new(),
            relay: None,
            scratch: Vec::new(),
        })
    }

    /// The next event. Cancel-safe: every await point is a cancel-safe receive or reserve, and
    /// state changes only after an await completes.
    pub async fn next(&mut self) -> LegEvent {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return ev;
            }
            if self.ended {
                return std::future::pending().await;
            }
            let front = match (self.paused, self.outbox.front()) {
                (false, Some(q)) => Some(self.sender.frame(q.payload.clone(), q.mark, q.tag)),
                _ => None,
            };
            tokio::select! {
                biased;
                event = self.transport.recv() => self.on_transport(event),
                _ = self.tick.tick() => self.on_tick(),
                sent = send_front(&self.sender, front) => {
                    if sent && let Some(q) = self.outbox.pop_front() {
                        self.in_flight.push_back(q);
                    }
                }
            }
        }
    }

    /// Queues `pcm` (mono, at `rate`) for playback as item `item`; the first frame carries
    /// `mark`, reported back as [`PlaybackReport::MarkSent`] when it goes out. Progress is
    /// reported per item ([`PlaybackReport::Progress`]), and [`PlaybackReport::Idle`] once
    /// everything queued has played.
    pub fn play(
        &mut self,
        item: u64,
        pcm: &[i16],
        rate: u32,
        mark: Option<u64>,
    ) -> Result<(), LegError> {
        let resample_err = |source| LegError::Resample { from: rate, source };
        let mut at_codec =
            Vec::with_capacity(pcm.len() * self.codec_rate as usize / rate.max(1) as usize + 400);
        if rate == self.codec_rate {
            at_codec.extend_from_slice(pcm);
        } else {
            let mut down = Resampler::new(rate, self.codec_rate).map_err(resample_err)?;
            down.process(pcm, &mut at_codec).map_err(resample_err)?;
            down.flush(&mut at_codec).map_err(resample_err)?;
        }
        let frame_len = self.codec.frame_len();
        let frames = at_codec.len().div_ceil(frame_len);
        at_codec.resize(frames * frame_len, 0);
        let first = self.next_tag;
        self.enqueue(&at_codec, mark)?;
        self.idle_reported = frames == 0 && self.idle_reported;
        self.spans.push_back(Span {
            item,
            first_tag: first,
            frames: frames as u64,
            reported: 0,
        });
        self.last_item = Some(item);
        Ok(())
    }

    /// Plays one 20 ms frame of another leg's audio (16 kHz) as part of a continuous stream:
    /// the two legs of a bridged call hear each other. Not mixed with [`CallLeg::play`] items.
    pub fn relay(&mut self, pcm: &[i16]) -> Result<(), LegError> {
        let codec_rate = self.codec_rate;
        let relay = match &mut self.relay {
            Some(relay) => relay,
            None => {
                let down = (codec_rate != PIPELINE_RATE)
                    .then(|| Resampler::new(PIPELINE_RATE, codec_rate))
                    .transpose()
                    .map_err(|source| LegError::Resample {
                        from: PIPELINE_RATE,
                        source,
                    })?;
                self.relay.insert(Relay {
                    down,
                    pending: Vec::new(),
                })
            }
        };
        match relay.down.as_mut() {
            Some(down) => {
                down.process(pcm, &mut relay.pending)
                    .map_err(|source| LegError::Resample {
                        from: PIPELINE_RATE,
                        source,
                    })?;
            }
            None => relay.pending.extend_from_slice(pcm),
        }
        let frame_len = self.codec.frame_len();
        let whole = relay.pending.len() / frame_len * frame_len;
        // Taken out for the encode and put back, so the buffer is reused frame after frame.
        let mut pending = std::mem::take(&mut relay.pending);
        let encoded = self.enqueue(&pending[..whole], None);
        pending.drain(..whole);
        if let Some(relay) = self.relay.as_mut() {
            relay.pending = pending;
        }
        encoded?;
        while self.outbox.len() > RELAY_MAX_QUEUED {
            self.outbox.pop_front();
        }
        Ok(())
    }

    /// Encodes whole frames of `at_codec` (PCM at the codec rate, a multiple of the frame
    /// length) for the pacer; the first carries `mark`. Playback is expected up to the last.
    fn enqueue(&mut self, at_codec: &[i16], mark: Option<u64>) -> Result<(), LegError> {
        self.scratch.resize(self.codec.max_payload_len(), 0);
        for (i, chunk) in at_codec.chunks(self.codec.frame_len()).enumerate() {
            let n = self.codec.encode(chunk, &mut self.scratch)?;
            self.outbox.push_back(Queued {
                payload: self.scratch[..n].to_vec(),
                mark: if i == 0 { mark } else { None },
                tag: self.next_tag,
                level_db: audio::frame::dbfs(chunk),
                // Kept only while the call is recorded.
                pcm: if self.tap.is_some() {
                    chunk.to_vec()
                } else {
                    Vec::new()
                },
            });
            self.next_tag += 1;
        }
        self.play_until = self.next_tag;
        Ok(())
    }

    /// Records the call from now on: every playout tick sends the caller's frame and what the
    /// agent put on the wire during it to `tap`, at [`CallLeg::codec_rate`].
    pub fn record_to(&mut self, tap: mpsc::Sender<RecordedFrame>) {
        self.tap = Some(tap);
    }

    /// Rate of the codec's PCM (8 kHz G.711, 16 kHz Opus): the recording's rate.
    pub fn codec_rate(&self) -> u32 {
        self.codec_rate
    }

    /// Tag of the first frame not yet played: frames before it have been heard.
    pub fn playback_position(&self) -> u64 {
        self.sender.last_sent_tag().map_or(0, |t| t + 1)
    }

    /// Pauses playback at once: frames in the pacer are discarded and taken back, so
    /// [`CallLeg::resume`] continues exactly where the caller stopped hearing. Returns the
    /// position (see [`CallLeg::playback_position`]).
    pub fn pause(&mut self) -> u64 {
        self.sender.flush();
        self.paused = true;
        let position = self.playback_position();
        while let Some(q) = self.in_flight.pop_back() {
            if q.tag >= position {
                self.outbox.push_front(q);
            }
        }
        position
    }

    /// Resumes paused playback.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Stops playback for good (barge-in, hang-up): drops everything queued. Returns the
    /// position at the cut.
    pub fn stop_playback(&mut self) -> u64 {
        self.sender.flush();
        let position = self.playback_position();
        self.outbox.clear();
        self.in_flight.clear();
        self.spans.clear();
        self.paused = false;
        self.play_until = position.min(self.play_until);
        self.idle_reported = true;
        position
    }

    /// Starts a blind transfer to `target` (a number or URI from the flow's allow-list): a
    /// SIP REFER (numbers go to the peer's domain), or LiveKit's `TransferSIPParticipant`.
    /// The outcome arrives as [`LegEvent::Transfer`]; returns what the request went to.
    pub async fn transfer(&mut self, target: &str) -> Result<String, TransferError> {
        self.transport.transfer(target).await
    }

    /// Ends the call (BYE or a final response; in a LiveKit room, the room is deleted).
    pub async fn hangup(&mut self) {
        self.transport.hangup().await;
    }

    /// Sends DTMF digits to the caller's side (RFC 4733 events, or `SipDTMF` data packets).
    pub async fn send_dtmf(&mut self, digits: &str) {
        for digit in digits.chars() {
            if !self.transport.send_dtmf(digit).await {
                tracing::warn!(%digit, "could not send a DTMF digit");
            }
        }
    }

    /// Media counters, for the call record.
    pub fn media_stats(&self) -> sip::driver::MediaStats {
        self.transport.media_stats()
    }

    pub fn jitter_stats(&self) -> audio::jitter::JitterStats {
        self.jitter.stats()
    }

    /// The negotiated codec's SDP name.
    /// The echo path found so far (delay and return loss), if any.
    pub fn echo_path(&self) -> EchoPath {
        self.echo.path()
    }

    pub fn codec_name(&self) -> &'static str {
        self.codec.kind().encoding_name()
    }

    fn on_transport(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Audio {
                sequence,
                timestamp,
                payload,
                arrived,
            } => {
                let outcome = self.jitter.push(arrived, sequence, timestamp, &payload);
                if !matches!(
                    outcome,
                    PushOutcome::Duplicate | PushOutcome::Late | PushOutcome::Invalid
                ) {
                    self.last_arrival = arrived;
                    self.started = true;
                }
            }
            TransportEvent::Dtmf(digit) => self.pending.push_back(LegEvent::Dtmf(digit)),
            TransportEvent::MarkSent { mark, at } => self
                .pending
                .push_back(LegEvent::Playback(PlaybackReport::MarkSent { mark, at })),
            TransportEvent::Transfer(progress) => {
                self.pending.push_back(LegEvent::Transfer(progress))
            }
            TransportEvent::Ended(reason) => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup { reason });
            }
            TransportEvent::Nothing => {}
        }
    }

    /// One playout tick: a frame from the jitter buffer (or concealment), decoded, at 16 kHz,
    /// as whole 20 ms pipeline frames; and housekeeping of what has been played.
    fn on_tick(&mut self) {
        let at = Instant::now();
        // What went out since the last tick (about one frame per tick while playing).
        let position = self.playback_position();
        let mut out_db = -96.0f32;
        while let Some(q) = self.in_flight.front().filter(|q| q.tag < position) {
            out_db = out_db.max(q.level_db);
            if let Some(q) = self.in_flight.pop_front()
                && self.tap.is_some()
            {
                self.sent_pcm.extend(q.pcm);
            }
        }
        if self.started {
            let mut arrived = at;
            let n = match self.jitter.pop(at) {
                Playout::Packet { payload, .. } => {
                    arrived = self.last_arrival.min(at);
                    self.codec.decode(payload, &mut self.decoded).unwrap_or(0)
                }
                Playout::Lost | Playout::Underrun => {
                    self.codec.conceal(None, &mut self.decoded).unwrap_or(0)
                }
                _ => 0,
            };
            self.decoded[n..].fill(0);
            let echo = self.echo.push(out_db, audio::frame::dbfs(&self.decoded));
            match self.upsample.as_mut() {
                Some(up) => {
                    self.up_out.clear();
                    if up.process(&self.decoded, &mut self.up_out).is_ok() {
                        self.framer.push(&self.up_out);
                    }
                }
                None => self.framer.push(&self.decoded),
            }
            while let Some(frame) = self.framer.next_frame() {
                self.pending.push_back(LegEvent::Audio {
                    pcm: frame.to_vec(),
                    arrived,
                    echo,
                });
            }
        }
        self.record_tick();
        self.report_progress(position);
        if !self.idle_reported
            && !self.paused
            && position >= self.play_until
            && self.outbox.is_empty()
        {
            self.idle_reported = true;
            if let Some(item) = self.last_item {
                self.pending
                    .push_back(LegEvent::Playback(PlaybackReport::Idle { item }));
            }
        }
    }

    /// One tick of the recording: the caller's frame (silence before their audio starts) and
    /// one frame of what the agent sent, so both channels advance together.
    fn record_tick(&mut self) {
        let Some(tap) = &self.tap else {
            return;
        };
        let n = self.decoded.len();
        let caller = if self.started {
            self.decoded.clone()
        } else {
            vec![0; n]
        };
        let mut agent: Vec<i16> = self.sent_pcm.drain(..n.min(self.sent_pcm.len())).collect();
        agent.resize(n, 0);
        if tap.try_send(RecordedFrame { caller, agent }).is_err() {
            metrics::counter!("agent_recording_frames_dropped_total").increment(1);
        }
    }

    /// Reports how much of each item has gone out since the last report (about one frame per
    /// tick while playing); fully played items are forgotten.
    fn report_progress(&mut self, position: u64) {
        for span in self.spans.iter_mut() {
            if span.first_tag >= position {
                break;
            }
            let played = (position - span.first_tag).min(span.frames);
            if played != span.reported {
                span.reported = played;
                self.pending
                    .push_back(LegEvent::Playback(PlaybackReport::Progress {
                        item: span.item,
                        played_ms: played * self.frame_ms,
                        total_ms: span.frames * self.frame_ms,
                    }));
            }
        }
        while self.spans.front().is_some_and(|s| s.reported == s.frames) {
            self.spans.pop_front();
        }
    }
}

async fn send_front(sender: &FrameSender, frame: Option<OutFrame>) -> bool {
    match frame {
        Some(frame) => sender.send(frame).await,
        None => std::future::pending().await,
    }
}
