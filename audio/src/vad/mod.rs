//! Voice activity detection: per-frame speech decisions ([`Vad`]) and a hysteresis state
//! machine that turns them into speech start/end events ([`SpeechDetector`]).
//!
//! Three detectors, chosen by [`VadKind`] (config names them: `"earshot"`, `"webrtc"`,
//! `"silero"`):
//!
//! - [`EarshotVad`]: earshot's small neural network (pure Rust). It needs 16 kHz audio in 16 ms
//!   windows, so 8 kHz telephony audio is upsampled internally and frames are re-cut.
//! - [`WebRtcVad`]: the WebRTC GMM detector (libfvad, C) — native at 8 and 16 kHz.
//! - [`SileroVad`]: the Silero v5 network on ONNX Runtime, native at 8 and 16 kHz in 32 ms
//!   windows. Needs two files ([`SileroPaths`], from `scripts/vad-models.sh`), so it is built with
//!   [`VadKind::build_with`] and [`VadOptions`].
//!
//! All accept 10, 20 or 30 ms frames at 8 or 16 kHz. Time is frame time: feeding frames is
//! what advances the clock, so tests and offline analysis behave exactly like live calls.
//!
//! # Which one is the default, and why
//!
//! Measured on the labelled set (`tests/data/vad/`, 20 utterances in -60/-50/-42 dBFS noise) with
//! the default [`SpeechDetectorConfig`] and 20 ms frames — `tests/vad_accuracy.rs` holds the
//! thresholds, `examples/vad_bench.rs` prints the full table:
//!
//! | rate | VAD     | detected | false starts | onset \|err\| | offset \|err\| | CPU / 20 ms frame | +noise -30 dBFS: false starts, onset, offset |
//! |------|---------|----------|--------------|-------------|--------------|-------------------|-----------------------------------------------|
//! | 8k   | earshot | 20/20    | 0            | 33 ms       | 146 ms       | 14 µs             | 0 (1 merged), 136 ms, 494 ms                  |
//! | 8k   | webrtc  | 20/20    | 0            | 16 ms       | 109 ms       | 1 µs              | 1, 17 ms, 59 ms                               |
//! | 8k   | silero  | 20/20    | 0            | 32 ms       | 123 ms       | 68 µs             | 0, 49 ms, 117 ms                              |
//! | 16k  | earshot | 20/20    | 0            | 33 ms       | 91 ms        | 11 µs             | 1, 37 ms, 172 ms                              |
//! | 16k  | webrtc  | 20/20    | 0            | 14 ms       | 154 ms       | 1 µs              | 1, 18 ms, 67 ms                               |
//! | 16k  | silero  | 20/20    | 0            | 31 ms       | 103 ms       | 95 µs             | 0, 33 ms, 106 ms                              |
//!
//! On the set as labelled the three are within a few frames of each other. With extra white
//! noise (the stress rows; telephone lines are rarely cleaner than -30 dBFS) only Silero keeps
//! zero false starts at both rates *and* an offset that does not move: earshot's end-of-speech
//! drifts by +350 ms at 8 kHz — which every turn would wait on top of the endpointing delay —
//! and WebRTC starts speech on noise. Silero is therefore the default ([`VadKind::Silero`]),
//! at a cost of ~0.35 % (8 kHz) / ~0.5 % (16 kHz) of a core per call: about a third of a core
//! for 100 calls at 8 kHz, affordable next to STT. earshot (no files, 5× cheaper) and WebRTC
//! (cheapest, best onset) stay selectable by config.

mod detector;
mod earshot_vad;
mod silero;
mod webrtc;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use detector::{
    SpeechDetector, SpeechDetectorConfig, SpeechEvent, SpeechSegment, segment_speech,
};
pub use earshot_vad::EarshotVad;
pub use silero::{SileroPaths, SileroVad};
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
    /// earshot, pure-Rust neural VAD (`"earshot"`): needs no files; 5× cheaper than Silero, but
    /// its end-of-speech drifts late in noise at 8 kHz (see the table in the [module docs](self)).
    Earshot,
    /// WebRTC GMM VAD via libfvad (`"webrtc"`, also `"webrtc-vad"`).
    WebRtc,
    /// Silero v5 on ONNX Runtime (`"silero"`, also `"silero-vad"`); needs [`SileroPaths`]. The
    /// default: the only one with no false start and a stable offset in extra noise at both
    /// rates (the table in the [module docs](self)). Being the default does not make
    /// [`VadKind::build`] work for it: build it with [`VadKind::build_with`].
    #[default]
    Silero,
}

impl VadKind {
    /// Every implementation, for benchmarks and config help.
    pub const ALL: [VadKind; 3] = [VadKind::Earshot, VadKind::WebRtc, VadKind::Silero];

    /// The implementations that need no files: [`VadKind::build`] works for these.
    pub const BUILTIN: [VadKind; 2] = [VadKind::Earshot, VadKind::WebRtc];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Earshot => "earshot",
            Self::WebRtc => "webrtc",
            Self::Silero => "silero",
        }
    }

    /// Whether building this kind needs model files ([`VadOptions::silero`]).
    pub const fn needs_files(self) -> bool {
        matches!(self, Self::Silero)
    }

    /// A detector of this kind with its default tuning, for frames at `sample_rate` (8000 or
    /// 16000). Kinds that need files ([`VadKind::Silero`]) fail with
    /// [`VadError::MissingOption`]: use [`VadKind::build_with`].
    pub fn build(self, sample_rate: u32) -> Result<Box<dyn Vad>, VadError> {
        self.build_with(sample_rate, &VadOptions::default())
    }

    /// A detector of this kind for frames at `sample_rate` (8000 or 16000), tuned by `options`
    /// (unset fields keep each detector's default).
    pub fn build_with(
        self,
        sample_rate: u32,
        options: &VadOptions,
    ) -> Result<Box<dyn Vad>, VadError> {
        Ok(match self {
            Self::Earshot => Box::new(EarshotVad::with_threshold(
                sample_rate,
                options.threshold.unwrap_or(EarshotVad::DEFAULT_THRESHOLD),
            )?),
            Self::WebRtc => Box::new(WebRtcVad::new(
                sample_rate,
                options.webrtc_mode.unwrap_or_default(),
            )?),
            Self::Silero => {
                let paths = options.silero.as_ref().ok_or(VadError::MissingOption {
                    kind: self,
                    option: "silero model and onnxruntime paths",
                })?;
                Box::new(SileroVad::with_threshold(
                    sample_rate,
                    paths,
                    options.threshold.unwrap_or(SileroVad::DEFAULT_THRESHOLD),
                )?)
            }
        })
    }
}

/// Tuning and files for [`VadKind::build_with`]; `Default` is every detector's default.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct VadOptions {
    /// Speech threshold for earshot and Silero (`0..=1`); WebRTC is binary and ignores it.
    pub threshold: Option<f32>,
    /// WebRTC aggressiveness.
    pub webrtc_mode: Option<WebRtcMode>,
    /// Model and runtime for Silero (required for [`VadKind::Silero`]).
    pub silero: Option<SileroPaths>,
}

impl VadOptions {
    /// Every detector's defaults, no files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the speech threshold (earshot, Silero).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Sets the WebRTC mode.
    pub fn with_webrtc_mode(mut self, mode: WebRtcMode) -> Self {
        self.webrtc_mode = Some(mode);
        self
    }

    /// Sets the Silero model and ONNX Runtime library.
    pub fn with_silero(mut self, paths: SileroPaths) -> Self {
        self.silero = Some(paths);
        self
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
            "silero" | "silero-vad" | "silero_vad" => Ok(Self::Silero),
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
    #[error("unknown VAD {name:?} (expected \"earshot\", \"webrtc\" or \"silero\")")]
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
    /// A kind that needs files was built without them ([`VadKind::build`] for Silero).
    #[error("the {kind} VAD needs {option} (VadKind::build_with with VadOptions)")]
    MissingOption {
        /// The kind asked for.
        kind: VadKind,
        /// What was missing.
        option: &'static str,
    },
    /// The Silero model file does not exist.
    #[error(
        "Silero VAD model not found at {} (scripts/vad-models.sh fetches it)",
        path.display()
    )]
    ModelMissing {
        /// The path configured.
        path: PathBuf,
    },
    /// The ONNX Runtime library does not exist.
    #[error(
        "ONNX Runtime library not found at {} (scripts/vad-models.sh fetches it)",
        path.display()
    )]
    RuntimeMissing {
        /// The path configured.
        path: PathBuf,
    },
    /// The ONNX Runtime library exists but could not be loaded (wrong file, too old, wrong
    /// architecture).
    #[error("could not load ONNX Runtime from {}", path.display())]
    RuntimeLoad {
        /// The library path.
        path: PathBuf,
        /// What the loader said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This process already loaded ONNX Runtime from another file; one per process.
    #[error(
        "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
        loaded.display(),
        requested.display()
    )]
    RuntimeMismatch {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for.
        requested: PathBuf,
    },
    /// ONNX Runtime could not load the model file.
    #[error("could not load VAD model {}", path.display())]
    Model {
        /// The model path.
        path: PathBuf,
        /// What ONNX Runtime said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The model loaded but is not the Silero v5 layout (inputs `input`, `state`, `sr`; outputs
    /// `output`, `stateN`).
    #[error("{} is not a Silero v5 VAD model: {found}", path.display())]
    UnsupportedModel {
        /// The model path.
        path: PathBuf,
        /// The inputs and outputs it has.
        found: String,
    },
    /// Running the model failed.
    #[error("VAD inference failed")]
    Inference(#[source] Box<dyn std::error::Error + Send + Sync>),
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
