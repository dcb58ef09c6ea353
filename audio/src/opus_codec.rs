//! Opus (RFC 6716, RTP per RFC 7587) behind [`Codec`], on the `opus` crate's bundled libopus.
//!
//! SDP always says `opus/48000/2`: the RTP clock is 48 kHz and the stream *may* be stereo. The
//! pipeline works on 8 or 16 kHz mono, and libopus converts at both ends: the encoder takes
//! 8/16 kHz input (and codes narrow/wideband), the decoder outputs 8/16 kHz mono whatever the
//! sender coded, down-mixing stereo. RTP timestamps still advance by 960 per 20 ms
//! ([`CodecKind::timestamp_step`]).
//!
//! Loss: [`Codec::conceal`] with the next packet decodes that packet's in-band FEC (LBRR) data,
//! which carries a coarse copy of the lost frame when the sender enabled FEC; without it (or
//! when the sender sent none) libopus's own PLC extrapolates.

use crate::BufferTooSmall;
use crate::codec::{Codec, CodecError, CodecKind};

/// Encoder settings. `Default`: 24 kbit/s VBR at 16 kHz (20 kbit/s at 8 kHz), FEC on planned for
/// 10 % loss, complexity 5, no DTX. The rates are the lowest at which libopus still sends FEC
/// at that loss (below them it silently sends none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpusConfig {
    /// Target bitrate in bit/s; `None`: 24000 at 16 kHz, 20000 at 8 kHz.
    pub bitrate_bps: Option<u32>,
    /// Send in-band forward error correction (costs a few kbit/s, repairs single losses).
    pub fec: bool,
    /// Loss the encoder plans FEC for, in percent (0-100). libopus only spends bits on FEC when
    /// the bitrate clears a threshold that falls as this rises: at 24 kbit/s wideband, 5 % sends
    /// no FEC at all, 10 % does (measured in `tests/opus.rs`: 14 % loss recovers from ~3 dB SNR
    /// with PLC alone to ~10 dB with FEC).
    pub expected_loss_pct: u8,
    /// Encoder effort, 0-10 (libopus's default is 10). Measured encode + decode per 20 ms on
    /// this machine's class (16 kHz / 8 kHz): 10 → 268 / 120 µs, 5 → 166 / 104 µs, 1 → 45 / 27
    /// µs. 0-1 drop SILK's better pitch analysis and also lower the rate libopus budgets for
    /// FEC, so at the default bitrates they send no FEC; 5 is the default as the cheapest setting
    /// that keeps FEC at 24 / 20 kbit/s. For many Opus calls on few cores, 1 with a bitrate of
    /// 28 / 24 kbit/s is the cheaper alternative.
    pub complexity: u8,
    /// Discontinuous transmission: near-silent frames become tiny packets.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: None,
            fec: true,
            expected_loss_pct: 10,
            complexity: 5,
            dtx: false,
        }
    }
}

impl OpusConfig {
    /// Sets the bitrate.
    pub fn with_bitrate(mut self, bps: u32) -> Self {
        self.bitrate_bps = Some(bps);
        self
    }

    /// Turns FEC on or off.
    pub fn with_fec(mut self, fec: bool) -> Self {
        self.fec = fec;
        self
    }

    /// Sets the encoder complexity (0-10).
    pub fn with_complexity(mut self, complexity: u8) -> Self {
        self.complexity = complexity;
        self
    }
}

/// An Opus encoder + decoder for one call leg, mono PCM at 8 or 16 kHz.
pub struct OpusCodec {
    rate: u32,
    config: OpusConfig,
    encoder: opus::Encoder,
    decoder: opus::Decoder,
}

impl OpusCodec {
    /// The largest Opus packet for one frame (RFC 6716 §3.2.1).
    pub const MAX_PACKET: usize = 1275;

    /// A codec with PCM at `pcm_rate` (8000 or 16000).
    pub fn new(pcm_rate: u32, config: OpusConfig) -> Result<Self, CodecError> {
        if pcm_rate != 8000 && pcm_rate != 16_000 {
            return Err(CodecError::UnsupportedRate {
                codec: CodecKind::Opus,
                rate: pcm_rate,
            });
        }
        let mut encoder =
            opus::Encoder::new(pcm_rate, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_err)?;
        let bitrate = config
            .bitrate_bps
            .unwrap_or(if pcm_rate == 8000 { 20_000 } else { 24_000 });
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate.clamp(6000, 510_000) as i32))
            .map_err(opus_err)?;
        encoder
            .set_complexity(i32::from(config.complexity.min(10)))
            .map_err(opus_err)?;
        encoder.set_inband_fec(config.fec).map_err(opus_err)?;
        encoder
            .set_packet_loss_perc(i32::from(config.expected_loss_pct.min(100)))
            .map_err(opus_err)?;
        encoder.set_dtx(config.dtx).map_err(opus_err)?;
        encoder.set_signal(opus::Signal::Voice).map_err(opus_err)?;
        let decoder = opus::Decoder::new(pcm_rate, opus::Channels::Mono).map_err(opus_err)?;
        Ok(Self {
            rate: pcm_rate,
            config,
            encoder,
            decoder,
        })
    }

    /// The settings.
    pub fn config(&self) -> OpusConfig {
        self.config
    }

    /// Encoder look-ahead in samples at the PCM rate: how far decoded audio lags the input.
    pub fn lookahead(&mut self) -> usize {
        self.encoder
            .get_lookahead()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }
}

impl Codec for OpusCodec {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn max_payload_len(&self) -> usize {
        Self::MAX_PACKET
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        // Opus frames are 2.5, 5, 10, 20, 40 or 60 ms; the pipeline uses 20.
        let per_2_5ms = self.rate as usize / 400;
        let units = pcm.len() / per_2_5ms;
        if !pcm.len().is_multiple_of(per_2_5ms) || ![1, 2, 4, 8, 16, 24].contains(&units) {
            return Err(CodecError::BadFrameLength {
                codec: CodecKind::Opus,
                len: pcm.len(),
                rate: self.rate,
            });
        }
        self.encoder.encode(pcm, out).map_err(opus_err)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            // libopus would treat an empty slice as a loss; a received empty payload is not one.
            return Err(CodecError::Opus {
                function: "opus_decode",
                description: "empty payload",
            });
        }
        // Checked first so a long packet is a typed size error, not libopus's generic one.
        let samples = self.decoder.get_nb_samples(payload).map_err(opus_err)?;
        BufferTooSmall::check(samples, out.len())?;
        self.decoder.decode(payload, out, false).map_err(opus_err)
    }

    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        let n = self.frame_len();
        BufferTooSmall::check(n, out.len())?;
        let out = &mut out[..n];
        if let Some(next) = next.filter(|p| !p.is_empty()) {
            // The output length tells libopus how much audio was lost: exactly one frame. A
            // next packet it cannot parse is no reason to fail the concealment: fall through.
            if let Ok(written) = self.decoder.decode(next, out, true) {
                return Ok(written);
            }
        }
        self.decoder.decode(&[], out, false).map_err(opus_err)
    }

    fn reset(&mut self) {
        // Resetting a valid state cannot fail in libopus; nothing useful to report if it did.
        let _ = self.encoder.reset_state();
        let _ = self.decoder.reset_state();
    }
}

impl std::fmt::Debug for OpusCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusCodec")
            .field("rate", &self.rate)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus {
        function: e.function(),
        description: e.description(),
    }
}
