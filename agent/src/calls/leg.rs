//! [`CallLeg`]: the one interface between a transport (direct SIP today) and the call actor.
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
use sip::driver::{CallControl, CallSignal, FrameSender, MediaEvent, MediaSession};
use store::EndReason;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::core::PlaybackReport;

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
    TransferResult(sip::TransferOutcome),
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
}

/// One call's media and signalling, owned by its actor.
pub struct CallLeg {
    media: MediaSession,
    sender: FrameSender,
    signals: mpsc::Receiver<CallSignal>,
    control: CallControl,
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
    /// The peer's SIP domain (host[:port]), where transfer targets that are numbers go.
    peer_domain: String,
}

impl CallLeg {
    pub fn new(
        media: MediaSession,
        signals: mpsc::Receiver<CallSignal>,
        control: CallControl,
    ) -> Result<Self, LegError> {
        let negotiated = media.negotiated().clone();
        let kind = CodecKind::from_sdp(&negotiated.codec.name, negotiated.codec.clock_rate)
            .ok_or_else(|| LegError::UnsupportedCodec(negotiated.codec.name.clone()))?;
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
        let ptime = negotiated.ptime_ms.clamp(10, 60);
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let sender = media.sender();
        let frame_len = codec.frame_len();
        Ok(Self {
            media,
            sender,
            signals,
            control,
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
            peer_domain: String::new(),
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
                signal = self.signals.recv() => self.on_signal(signal),
                media = self.media.recv() => self.on_media(media),
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
        let mut payload = vec![0u8; self.codec.max_payload_len()];
        for (i, chunk) in at_codec.chunks(frame_len).enumerate() {
            let n = self.codec.encode(chunk, &mut payload)?;
            self.outbox.push_back(Queued {
                payload: payload[..n].to_vec(),
                mark: if i == 0 { mark } else { None },
                tag: self.next_tag,
                level_db: audio::frame::dbfs(chunk),
            });
            self.next_tag += 1;
        }
        self.play_until = self.next_tag;
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

    /// Sets the peer's SIP domain (host[:port]) for [`CallLeg::transfer`].
    pub fn set_peer_domain(&mut self, domain: String) {
        self.peer_domain = domain;
    }

    pub fn peer_domain(&self) -> &str {
        &self.peer_domain
    }

    /// Starts a blind transfer (REFER) to `target`: a `sip:` URI, or a number or user, which
    /// goes to `sip:{target}@{domain}` in the peer's domain (for a trunk or proxy, the domain
    /// that routes its numbers). The outcome arrives as [`LegEvent::TransferResult`].
    pub fn transfer(
        &self,
        target: &str,
        domain: &str,
    ) -> impl std::future::Future<Output = Result<sip::message::Uri, String>> + Send + 'static {
        // Built before the await so the future holds no borrow of the leg (its codec is not
        // `Sync`).
        let text = if target.starts_with("sip:") || target.starts_with("sips:") {
            target.to_owned()
        } else {
            let user: String = target.chars().filter(|c| !c.is_whitespace()).collect();
            format!("sip:{user}@{domain}")
        };
        let control = self.control.clone();
        async move {
            let uri = sip::message::Uri::parse(&text)
                .map_err(|e| format!("transfer target {text:?}: {e:?}"))?;
            control
                .transfer(uri.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok(uri)
        }
    }

    /// Ends the call (BYE, or a final response before answer).
    pub async fn hangup(&mut self) {
        if let Err(e) = self.control.hangup().await {
            tracing::debug!(error = %e, "hangup");
        }
    }

    /// Media counters, for the call record.
    pub fn media_stats(&self) -> sip::driver::MediaStats {
        self.media.stats()
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

    fn on_signal(&mut self, signal: Option<CallSignal>) {
        match signal {
            Some(CallSignal::Ended(reason)) => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup {
                    reason: end_reason(&reason),
                });
            }
            Some(CallSignal::InfoDtmf { digit, .. }) => {
                self.pending.push_back(LegEvent::Dtmf(digit))
            }
            Some(CallSignal::TransferResult(outcome)) => {
                self.pending.push_back(LegEvent::TransferResult(outcome))
            }
            Some(CallSignal::Established { remote_sdp }) => {
                // Offerless INVITE: the answer in the ACK tells us where to send.
                if let Some(addr) = remote_sdp.as_deref().and_then(remote_rtp_addr) {
                    self.media.set_remote(addr);
                }
            }
            Some(_) => {}
            None => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup {
                    reason: EndReason::TransportLost,
                });
            }
        }
    }

    fn on_media(&mut self, event: Option<MediaEvent>) {
        match event {
            Some(MediaEvent::Audio(rtp)) => {
                let outcome =
                    self.jitter
                        .push(rtp.arrived, rtp.sequence, rtp.timestamp, &rtp.payload);
                if !matches!(
                    outcome,
                    PushOutcome::Duplicate | PushOutcome::Late | PushOutcome::Invalid
                ) {
                    self.last_arrival = rtp.arrived;
                    self.started = true;
                }
            }
            Some(MediaEvent::Dtmf { digit, .. }) => self.pending.push_back(LegEvent::Dtmf(digit)),
            Some(MediaEvent::FrameSent { mark, at }) => self
                .pending
                .push_back(LegEvent::Playback(PlaybackReport::MarkSent { mark, at })),
            Some(_) => {}
            None => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup {
                    reason: EndReason::MediaLost,
                });
            }
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
            self.in_flight.pop_front();
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

async fn send_front(sender: &FrameSender, frame: Option<sip::driver::OutFrame>) -> bool {
    match frame {
        Some(frame) => sender.send(frame).await,
        None => std::future::pending().await,
    }
}

fn remote_rtp_addr(sdp: &sip::sdp::SessionDescription) -> Option<std::net::SocketAddr> {
    let media = sdp.audio()?;
    let ip = media
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .and_then(|c| c.ip_addr())?;
    (media.port != 0 && !ip.is_unspecified()).then(|| std::net::SocketAddr::new(ip, media.port))
}

/// The stored end reason for a SIP-level ending (see ARCHITECTURE.md, end reasons).
pub(crate) fn end_reason(reason: &sip::EndReason) -> EndReason {
    match reason {
        sip::EndReason::RemoteBye | sip::EndReason::RemoteCancel => EndReason::CallerHangup,
        sip::EndReason::LocalBye => EndReason::AgentHangup,
        other => EndReason::from_code(other.code()),
    }
}
