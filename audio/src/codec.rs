//! One interface over the negotiated voice codecs — G.711 µ-law/A-law and Opus — so the media
//! path can pick by what SDP agreed on: [`CodecKind::from_sdp`] → [`CodecKind::build`] →
//! [`Codec`].
//!
//! A [`Codec`] is one call leg's encoder *and* decoder state: `encode` 20 ms of PCM into a
//! payload, `decode` a payload into PCM, and `conceal` a lost packet (Opus: its own PLC, or
//! in-band FEC recovered from the next packet when the jitter buffer has it; G.711: the
//! Appendix I-style [`Plc`]). Buffers are the caller's: nothing allocates per frame.
//!
//! RTP itself (payload types, timestamps, marker bits) stays in `sip`; [`CodecKind`] only says
//! what it needs to know: the SDP name, the RTP clock rate and channel count, the static payload
//! type if there is one.

use std::fmt;

use crate::BufferTooSmall;
use crate::g711::G711;
use crate::opus_codec::{OpusCodec, OpusConfig};
use crate::plc::Plc;

/// A voice codec for one call leg: encoder and decoder state, mono PCM at
/// [`Codec::sample_rate`].
pub trait Codec: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// The PCM rate of `encode` input and `decode` output (8000 for G.711; 8000 or 16000 for
    /// Opus, whose RTP clock is nevertheless 48 kHz).
    fn sample_rate(&self) -> u32;

    /// Samples in one 20 ms frame at [`Codec::sample_rate`].
    fn frame_len(&self) -> usize {
        self.sample_rate() as usize / 50
    }

    /// The largest payload `encode` writes for one frame: size the output buffer with it.
    fn max_payload_len(&self) -> usize;

    /// Encodes one frame (`frame_len()` samples; G.711 takes any length) into `out`; returns the
    /// payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// Decodes one received payload into `out`; returns the samples written. A payload the codec
    /// cannot parse is an error, never a panic.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Fills one 20 ms frame (`out[..frame_len()]`) for a packet that never arrived. `next` is
    /// the packet after the lost one, if the jitter buffer already holds it: Opus recovers the
    /// lost frame from its in-band FEC data. Returns the samples written.
    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError>;

    /// Forgets all state, as for a new stream.
    fn reset(&mut self);
}

/// The codecs a call can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// G.711 µ-law, `PCMU/8000`, static payload type 0.
    Pcmu,
    /// G.711 A-law, `PCMA/8000`, static payload type 8.
    Pcma,
    /// Opus, `opus/48000/2` (RFC 7587), dynamic payload type; sent and decoded as mono.
    Opus,
}

impl CodecKind {
    /// Every codec, in the order the agent prefers to offer them (Opus: wideband at a similar
    /// bitrate to G.711's narrowband).
    pub const ALL: [CodecKind; 3] = [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma];

    /// The SDP encoding name (`a=rtpmap` spelling).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate: 8000 for G.711, always 48000 for Opus whatever its audio bandwidth.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48_000,
        }
    }

    /// The channel count SDP names (`opus/48000/2`: RFC 7587 always says 2, even for mono).
    pub const fn sdp_channels(self) -> u8 {
        match self {
            Self::Pcmu | Self::Pcma => 1,
            Self::Opus => 2,
        }
    }

    /// The static RTP payload type, if the codec has one.
    pub const fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::Opus => None,
        }
    }

    /// RTP timestamp increment for `ms` of audio.
    pub const fn timestamp_step(self, ms: u32) -> u32 {
        self.clock_rate() / 1000 * ms
    }

    /// The codec an SDP `a=rtpmap:<pt> <name>/<clock>` names, if it is one of ours (names are
    /// case-insensitive; the clock must match).
    pub fn from_sdp(encoding_name: &str, clock_rate: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| {
            k.encoding_name().eq_ignore_ascii_case(encoding_name.trim())
                && k.clock_rate() == clock_rate
        })
    }

    /// A codec with PCM at `pcm_rate`: 8000 for G.711; 8000 or 16000 for Opus (with
    /// [`OpusConfig::default`]; use [`OpusCodec::new`] for other settings).
    pub fn build(self, pcm_rate: u32) -> Result<Box<dyn Codec>, CodecError> {
        Ok(match self {
            Self::Pcmu => Box::new(G711Codec::new(G711::MuLaw, pcm_rate)?),
            Self::Pcma => Box::new(G711Codec::new(G711::ALaw, pcm_rate)?),
            Self::Opus => Box::new(OpusCodec::new(pcm_rate, OpusConfig::default())?),
        })
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Why a codec could not be built, or could not encode or decode a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec does not run at this PCM rate.
    #[error("{codec} does not support {rate} Hz PCM")]
    UnsupportedRate {
        /// The codec.
        codec: CodecKind,
        /// The rate asked for.
        rate: u32,
    },
    /// A PCM frame whose duration the codec cannot encode.
    #[error("{codec} cannot encode a frame of {len} samples at {rate} Hz")]
    BadFrameLength {
        /// The codec.
        codec: CodecKind,
        /// Samples given.
        len: usize,
        /// The codec's PCM rate.
        rate: u32,
    },
    /// An output buffer too small for the frame.
    #[error(transparent)]
    BufferTooSmall(#[from] BufferTooSmall),
    /// libopus refused: a malformed packet, an invalid setting.
    #[error("opus: {function} failed: {description}")]
    Opus {
        /// The libopus function.
        function: &'static str,
        /// libopus's description of the error code.
        description: &'static str,
    },
}

/// G.711 behind [`Codec`], with Appendix I-style concealment ([`Plc`]).
#[derive(Debug, Clone)]
pub struct G711Codec {
    law: G711,
    plc: Plc,
}

impl G711Codec {
    /// A µ-law or A-law codec; `pcm_rate` must be 8000 (G.711 is narrowband by definition).
    pub fn new(law: G711, pcm_rate: u32) -> Result<Self, CodecError> {
        let kind = kind_of(law);
        if pcm_rate != kind.clock_rate() {
            return Err(CodecError::UnsupportedRate {
                codec: kind,
                rate: pcm_rate,
            });
        }
        Ok(Self {
            law,
            plc: Plc::new(pcm_rate),
        })
    }

    /// The companding law.
    pub fn law(&self) -> G711 {
        self.law
    }
}

impl Codec for G711Codec {
    fn kind(&self) -> CodecKind {
        kind_of(self.law)
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    fn max_payload_len(&self) -> usize {
        self.frame_len()
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        Ok(self.law.encode(pcm, out)?)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = self.law.decode(payload, out)?;
        self.plc.good_frame(&mut out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, _next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        // G.711 has no redundancy to recover: the next packet does not help.
        let n = self.frame_len();
        BufferTooSmall::check(n, out.len())?;
        self.plc.conceal(&mut out[..n]);
        Ok(n)
    }

    fn reset(&mut self) {
        self.plc.reset();
    }
}

fn kind_of(law: G711) -> CodecKind {
    match law {
        G711::MuLaw => CodecKind::Pcmu,
        G711::ALaw => CodecKind::Pcma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_names_map_both_ways() {
        assert_eq!(CodecKind::from_sdp("opus", 48_000), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_sdp("OPUS", 48_000), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_sdp("pcmu", 8000), Some(CodecKind::Pcmu));
        assert_eq!(CodecKind::from_sdp(" PCMA ", 8000), Some(CodecKind::Pcma));
        // Opus is always 48 kHz on the wire; G.711 always 8 kHz.
        assert_eq!(CodecKind::from_sdp("opus", 16_000), None);
        assert_eq!(CodecKind::from_sdp("PCMU", 16_000), None);
        assert_eq!(CodecKind::from_sdp("G722", 8000), None);
        for k in CodecKind::ALL {
            assert_eq!(CodecKind::from_sdp(&k.to_string(), k.clock_rate()), Some(k));
        }
        assert_eq!(CodecKind::Opus.timestamp_step(20), 960);
        assert_eq!(CodecKind::Pcmu.timestamp_step(20), 160);
        assert_eq!(CodecKind::Pcma.static_payload_type(), Some(8));
        assert_eq!(CodecKind::Opus.static_payload_type(), None);
        assert_eq!(CodecKind::Opus.sdp_channels(), 2);
    }

    #[test]
    fn g711_codec_roundtrips_and_conceals() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma] {
            assert!(matches!(
                kind.build(16_000),
                Err(CodecError::UnsupportedRate { rate: 16_000, .. })
            ));
            let mut c = kind.build(8000).unwrap();
            assert_eq!(
                (c.kind(), c.sample_rate(), c.frame_len()),
                (kind, 8000, 160)
            );
            let pcm: Vec<i16> = (0..160)
                .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
                .collect();
            let mut payload = vec![0u8; c.max_payload_len()];
            assert_eq!(c.encode(&pcm, &mut payload).unwrap(), 160);
            let mut out = [0i16; 160];
            assert_eq!(c.decode(&payload, &mut out).unwrap(), 160);
            let err: i32 = pcm
                .iter()
                .zip(out)
                .map(|(&a, b)| (i32::from(a) - i32::from(b)).abs())
                .max()
                .unwrap();
            assert!(err < 300, "{kind}: max error {err}");
            // A lost frame continues the signal instead of dropping to silence.
            assert_eq!(c.conceal(Some(&payload), &mut out).unwrap(), 160);
            assert!(out.iter().any(|&s| s != 0), "{kind}");
            assert!(matches!(
                c.conceal(None, &mut [0i16; 80]),
                Err(CodecError::BufferTooSmall(_))
            ));
            assert!(matches!(
                c.decode(&payload, &mut [0i16; 10]),
                Err(CodecError::BufferTooSmall(_))
            ));
            c.reset();
        }
    }
}
