//! DSP on PCM frames for the telephony pipeline: G.711 µ-law/A-law ([`g711`]) and Opus
//! ([`opus_codec`]) behind one [`Codec`] interface picked by the negotiated codec ([`codec`]),
//! streaming sample rate conversion ([`resample`]), 20 ms framing, PCM conversions and levels
//! ([`frame`]), voice activity detection (earshot, WebRTC, Silero) with a speech start/end state machine ([`vad`]),
//! adaptive end-of-turn detection from VAD frames, interim transcripts and DTMF ([`endpoint`]),
//! an adaptive jitter buffer ([`jitter`]) with packet-loss concealment ([`plc`]), an E-model MOS
//! estimate ([`quality`]), answering-machine detection with beep detection ([`amd`]), and WAV
//! file I/O ([`wav`]).
//!
//! Samples are mono signed 16-bit PCM (`i16`) unless a function says `f32`, in which case the
//! nominal range is `[-1.0, 1.0]`.
//!
//! # What this crate does not do
//!
//! - No network, socket, clock or async I/O: every function is a plain computation on samples
//!   (plus reading/writing WAV files in [`wav`]), so it runs on any thread — the call's media
//!   task or a blocking pool. Time is *frame time* (samples counted), never wall-clock.
//! - No RTP: packetisation, pacing and payload-type negotiation belong to `sip`. The G.711
//!   codecs here only map samples to code words.
//! - No transcription and no barge-in policy: [`endpoint::Endpointer`] says when to transcribe
//!   (at a pause) and when the caller's turn is over, given text the caller of this crate
//!   produces; what to do about speech during playback is the agent's decision.
//! - No multichannel processing: stereo WAV input is mixed down to mono on read.
//! - No RTCP: reports are built by `sip` from [`jitter::JitterStats`].
//! - Not yet: in-band DTMF.
//!
//! # Errors
//!
//! Bad input (a malformed WAV, a frame of the wrong length, an output buffer that is too small,
//! an unsupported rate) returns a typed error; nothing here panics on data.

pub mod amd;
pub mod codec;
pub mod echo;
pub mod endpoint;
pub mod frame;
pub mod g711;
pub mod jitter;
pub mod opus_codec;
pub mod plc;
pub mod quality;
pub mod resample;
pub mod vad;
pub mod wav;

pub use codec::{Codec, CodecError, CodecKind};
pub use echo::{EchoGate, EchoGateConfig, EchoPath};
pub use endpoint::{EndpointConfig, Endpointer, TurnEvent, TurnMode};
pub use frame::{FRAME_MS, Framer};
pub use g711::G711;
pub use jitter::{JitterBuffer, JitterConfig, Playout};
pub use opus_codec::{OpusCodec, OpusConfig};
pub use plc::Plc;
pub use resample::{ResampleError, Resampler};
pub use vad::{
    SpeechDetector, SpeechDetectorConfig, SpeechEvent, Vad, VadError, VadKind, VadOptions,
};
pub use wav::{WavAudio, WavError};

/// An output slice given to a function was shorter than its input requires.
///
/// This is the one error of the slice-to-slice hot-path functions ([`g711`], [`frame`]); the
/// caller sizes its buffers once and never sees it in a correct program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("output buffer too small: {needed} samples needed, {available} available")]
#[non_exhaustive]
pub struct BufferTooSmall {
    /// Elements the call would write.
    pub needed: usize,
    /// Length of the output slice given.
    pub available: usize,
}

impl BufferTooSmall {
    /// `Ok(())` when `available >= needed`.
    pub(crate) fn check(needed: usize, available: usize) -> Result<(), Self> {
        if available < needed {
            Err(Self { needed, available })
        } else {
            Ok(())
        }
    }
}
