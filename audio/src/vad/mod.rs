//! Voice activity detection: per-frame speech decisions ([`Vad`]) and a hysteresis state
//! machine that turns them into speech start/end events ([`SpeechDetector`]).
//!
//! Two detectors, chosen by [`VadKind`] (config names them: `"earshot"`, `"webrtc"`):
//!
//! - [`EarshotVad`]: earshot's small neural network (pure Rust). It needs 16 kHz audio in 16 ms
//!   windows, so 8 kHz telephony audio is upsampled internally and frames are re-cut.
//! - [`WebRtcVad`]: the WebRTC GMM detector (libfvad, C) — native at 8 and 16 kHz.
//!
//! Both accept 10, 20 or 30 ms frames at 8 or 16 kHz. Time is frame time: feeding frames is
//! what advances the clock, so tests and offline analysis behave exactly like live calls.

mod detector;
mod earshot_vad;
mod webrtc;

use std::fmt;
use std::str::FromStr;

pub use detector::{
    SpeechDetector, SpeechDetectorConfig, SpeechEvent, SpeechSegment, segment_speech,
};
pub use earshot_vad::EarshotVad;
pub use webrtc::{WebRtcMode, WebRtcVad};

use crate::ResampleError;

/// A frame-by-frame voice activity detector for one audio stream.
///
/// Keep one per call leg and direction: detectors carry state across frames.
pub trait Vad: Send {
    /// Which implementation this is.
    fn kind(&self) -> VadKind;

    /// The rate frames must be given at (8000 or 16000).
    fn sample_rate(&self) -> u32;

    /// Probability-like speech score of the next frame, in `[0, 1]`. The frame is 10, 20 or
    /// 30 ms of mono audio at [`Vad::sample_rate`]; any other length is an error.
    ///
    /// Detectors with a binary decision (WebRTC) return 0.0 or 1.0.
    fn speech_probability(&mut self, frame: &[i16]) -> Result<f32, VadError>;

    /// The score at or above which a frame counts as speech.
    fn threshold(&self) -> f32;

    /// Whether the next frame is speech; same input rules as [`Vad::speech_probability`].
    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
        Ok(self.speech_probability(frame)? >= self.threshold())
    }

    /// Forgets all history, as for a new stream.
    fn reset(&mut self);
}

/// The available VAD implementations; `FromStr`/`Display` use the config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VadKind {
    /// earshot, pure-Rust neural VAD (`"earshot"`). The default: on the labelled set it makes
    /// no false start at any tested setting and stays usable in -42 dBFS noise, where only the
    /// most aggressive WebRTC mode does (numbers: `tests/vad_accuracy.rs`,
    /// `examples/vad_bench.rs`).
    #[default]
    Earshot,
    /// WebRTC GMM VAD via libfvad (`"webrtc"`, also `"webrtc-vad"`).
    WebRtc,
}

impl VadKind {
    /// Every implementation, for benchmarks and config help.
    pub const ALL: [VadKind; 2] = [VadKind::Earshot, VadKind::WebRtc];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Earshot => "earshot",
            Self::WebRtc => "webrtc",
        }
    }

    /// A detector of this kind with its default tuning, for frames at `sample_rate` (8000 or
    /// 16000).
    pub fn build(self, sample_rate: u32) -> Result<Box<dyn Vad>, VadError> {
        Ok(match self {
            Self::Earshot => Box::new(EarshotVad::new(sample_rate)?),
            Self::WebRtc => Box::new(WebRtcVad::new(sample_rate, WebRtcMode::default())?),
        })
    }
}

impl fmt::Display for VadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VadKind {
    type Err = VadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earshot" => Ok(Self::Earshot),
            "webrtc" | "webrtc-vad" | "webrtc_vad" => Ok(Self::WebRtc),
            _ => Err(VadError::UnknownKind { name: s.to_owned() }),
        }
    }
}

/// Why a VAD could not be built or could not classify a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VadError {
    /// Only 8000 and 16000 Hz are supported.
    #[error("VAD does not support {rate} Hz (8000 or 16000 only)")]
    UnsupportedRate {
        /// The rate asked for.
        rate: u32,
    },
    /// A frame that is not 10, 20 or 30 ms long at the detector's rate.
    #[error("VAD frame of {len} samples is not 10, 20 or 30 ms at {rate} Hz")]
    BadFrameLength {
        /// Samples given.
        len: usize,
        /// The detector's rate.
        rate: u32,
    },
    /// A config name that is not a known VAD.
    #[error("unknown VAD {name:?} (expected \"earshot\" or \"webrtc\")")]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// An out-of-range tuning value.
    #[error("VAD threshold {0} is outside 0..=1")]
    BadThreshold(f32),
    /// The internal resampler failed.
    #[error("VAD resampling failed")]
    Resample(#[from] ResampleError),
}

/// Checks the rate is one the detectors take.
fn check_rate(rate: u32) -> Result<(), VadError> {
    match rate {
        8000 | 16_000 => Ok(()),
        _ => Err(VadError::UnsupportedRate { rate }),
    }
}

/// Checks `len` is 10, 20 or 30 ms at `rate`.
fn check_frame(len: usize, rate: u32) -> Result<(), VadError> {
    let per_10ms = rate as usize / 100;
    if len != 0 && len.is_multiple_of(per_10ms) && len / per_10ms <= 3 {
        Ok(())
    } else {
        Err(VadError::BadFrameLength { len, rate })
    }
}

#[cfg(test)]
mod tests;
