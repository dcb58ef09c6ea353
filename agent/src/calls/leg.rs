//! [`CallLeg`]: the one interface between a transport (direct SIP today) and the call actor.
//! PCM in (16 kHz, 20 ms frames, after jitter buffering, decoding, concealment and resampling),
//! PCM out (any rate; resampled, framed and encoded here), and call events. The actor never
//! sees SIP or RTP types.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use audio::jitter::PushOutcome;
use audio::{Framer, G711, JitterBuffer, JitterConfig, Playout, Plc, Resampler};
use sip::driver::{CallControl, CallSignal, FrameSender, MediaEvent, MediaSession};
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

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
    },
    Dtmf(char),
    /// The frame queued with `mark` went out on the wire at `at`.
    FrameSent {
        mark: u64,
        at: Instant,
    },
    /// Everything queued for playback has been sent.
    PlaybackIdle,
    /// The call is over (`reason` is a stable end-reason code).
    Hangup {
        reason: String,
    },
}

/// Errors the leg reports when asked to play.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error("cannot resample {from} Hz audio: {source}")]
    Resample {
        from: u32,
        #[source]
        source: audio::ResampleError,
    },
    #[error("the negotiated codec {0} is not supported")]
    Codec(String),
}

/// One call's media and signalling, owned by its actor.
pub struct CallLeg {
    media: MediaSession,
    sender: FrameSender,
    signals: mpsc::Receiver<CallSignal>,
    control: CallControl,
    codec: G711,
    codec_rate: u32,
    samples_per_frame: usize,
    jitter: JitterBuffer,
    plc: Plc,
    upsample: Resampler,
    up_out: Vec<i16>,
    framer: Framer<i16>,
    decoded: Vec<i16>,
    tick: Interval,
    /// Audio received before the first tick of playout.
    started: bool,
    last_arrival: Instant,
    /// Encoded frames not yet handed to the pacer, with their marks.
    outbox: VecDeque<(Vec<u8>, Option<u64>)>,
    /// Frames ever handed to the pacer. The pacer sends or discards each, in order, so
    /// `sent + discarded` is the playback position in this numbering.
    handed: u64,
    playing: bool,
    pending: VecDeque<LegEvent>,
    ended: bool,
}

impl CallLeg {
    pub fn new(
        media: MediaSession,
        signals: mpsc::Receiver<CallSignal>,
        control: CallControl,
    ) -> Result<Self, LegError> {
        let negotiated = media.negotiated().clone();
        let codec = G711::from_payload_type(negotiated.codec.payload_type)
            .ok_or_else(|| LegError::Codec(negotiated.codec.name.clone()))?;
        let codec_rate = negotiated.codec.clock_rate;
        let ptime = negotiated.ptime_ms.clamp(10, 60);
        let samples_per_frame = (codec_rate / 1000 * ptime) as usize;
        let upsample =
            Resampler::new(codec_rate, PIPELINE_RATE).map_err(|source| LegError::Resample {
                from: codec_rate,
                source,
            })?;
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let sender = media.sender();
        Ok(Self {
            media,
            sender,
            signals,
            control,
            codec,
            codec_rate,
            samples_per_frame,
            jitter: JitterBuffer::new(JitterConfig::new(codec_rate)),
            plc: Plc::new(codec_rate),
            upsample,
            up_out: Vec::with_capacity(PIPELINE_FRAME * 2),
            framer: Framer::new(PIPELINE_FRAME),
            decoded: vec![0; samples_per_frame],
            tick,
            started: false,
            last_arrival: now(),
            outbox: VecDeque::new(),
            handed: 0,
            playing: false,
            pending: VecDeque::new(),
            ended: false,
        })
    }

    /// The next event. Cancel-safe: every await point is a cancel-safe receive, and state is
    /// only changed after an await completes.
    pub async fn next(&mut self) -> LegEvent {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return ev;
            }
            if self.ended {
                return std::future::pending().await;
            }
            let front = self
                .outbox
                .front()
                .map(|(payload, mark)| self.sender.frame(payload.clone(), *mark));
            tokio::select! {
                biased;
                signal = self.signals.recv() => self.on_signal(signal),
                media = self.media.recv() => self.on_media(media),
                _ = self.tick.tick() => self.on_tick(),
                sent = send_front(&self.sender, front) => {
                    if sent {
                        self.outbox.pop_front();
                        self.handed += 1;
                    }
                }
            }
        }
    }

    /// Queues `pcm` (mono, at `rate`) for playback; the first frame carries `mark`, reported
    /// back as [`LegEvent::FrameSent`]. Returns the index of its first frame in playback
    /// numbering (see [`CallLeg::playback_position`]) and the number of frames.
    pub fn play(
        &mut self,
        pcm: &[i16],
        rate: u32,
        mark: Option<u64>,
    ) -> Result<(u64, u64), LegError> {
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
        let first = self.handed + self.outbox.len() as u64;
        let frames = at_codec.len().div_ceil(self.samples_per_frame);
        at_codec.resize(frames * self.samples_per_frame, 0);
        for (i, chunk) in at_codec.chunks(self.samples_per_frame).enumerate() {
            let mut payload = vec![0u8; chunk.len()];
            // Sizes match by construction; a failure would only mean a silent frame.
            let _ = self.codec.encode(chunk, &mut payload);
            self.outbox
                .push_back((payload, if i == 0 { mark } else { None }));
        }
        if frames > 0 {
            self.playing = true;
        }
        Ok((first, frames as u64))
    }

    /// Frames the pacer has taken so far (sent or discarded), in the numbering of
    /// [`CallLeg::play`]: frames before this index have been played or cut.
    pub fn playback_position(&self) -> u64 {
        self.sender.frames_sent() + self.sender.frames_discarded()
    }

    /// True while queued audio has not all gone out.
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Stops playback now (barge-in): drops what is queued here and in the pacer. Returns the
    /// playback position at the cut.
    pub fn stop_playback(&mut self) -> u64 {
        let position = self.playback_position();
        self.outbox.clear();
        self.sender.flush();
        position
    }

    /// Ends the call (BYE, or a final response before answer).
    pub async fn hangup(&self) {
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

    fn on_signal(&mut self, signal: Option<CallSignal>) {
        match signal {
            Some(CallSignal::Ended(reason)) => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup {
                    reason: end_reason_code(&reason),
                });
            }
            Some(CallSignal::InfoDtmf { digit, .. }) => {
                self.pending.push_back(LegEvent::Dtmf(digit))
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
                    reason: "transport_lost".to_owned(),
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
            Some(MediaEvent::FrameSent { mark, at }) => {
                self.pending.push_back(LegEvent::FrameSent { mark, at })
            }
            Some(_) => {}
            None => {
                self.ended = true;
                self.pending.push_back(LegEvent::Hangup {
                    reason: "media_lost".to_owned(),
                });
            }
        }
    }

    /// One playout tick: take a frame from the jitter buffer (or conceal), decode, resample to
    /// 16 kHz, and emit whole 20 ms pipeline frames; also notice the end of playback.
    fn on_tick(&mut self) {
        let at = now();
        if self.started {
            let mut arrived = at;
            match self.jitter.pop(at) {
                Playout::Packet { payload, .. } => {
                    let n = self.codec.decode(payload, &mut self.decoded).unwrap_or(0);
                    self.decoded[n..].fill(0);
                    self.plc.good_frame(&mut self.decoded);
                    arrived = self.last_arrival.min(at);
                }
                Playout::Lost | Playout::Underrun => self.plc.conceal(&mut self.decoded),
                Playout::Waiting => self.decoded.fill(0),
                _ => self.decoded.fill(0),
            }
            self.up_out.clear();
            if self
                .upsample
                .process(&self.decoded, &mut self.up_out)
                .is_ok()
            {
                self.framer.push(&self.up_out);
            }
            while let Some(frame) = self.framer.next_frame() {
                self.pending.push_back(LegEvent::Audio {
                    pcm: frame.to_vec(),
                    arrived,
                });
            }
        }
        if self.playing && self.outbox.is_empty() && self.playback_position() >= self.handed {
            self.playing = false;
            self.pending.push_back(LegEvent::PlaybackIdle);
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

/// The stable end-reason code for a SIP-level ending (see ARCHITECTURE.md, end reasons).
fn end_reason_code(reason: &sip::EndReason) -> String {
    match reason {
        sip::EndReason::RemoteBye | sip::EndReason::RemoteCancel => "caller_hangup".to_owned(),
        sip::EndReason::LocalBye => "agent_hangup".to_owned(),
        other => other.code().to_owned(),
    }
}

fn now() -> Instant {
    Instant::now()
}
