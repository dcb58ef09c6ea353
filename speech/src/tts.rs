//! Text-to-speech: the [`TextToSpeech`] trait and the types every provider shares.
//!
//! Providers return PCM at their native rate ([`Pcm::sample_rate`]); resampling to the call's
//! rate is the caller's job (the `audio` crate), so a provider never resamples twice.

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::PrewarmReport;
use crate::remote::RemoteError;

/// Turns text into speech.
pub trait TextToSpeech: Send + Sync {
    /// Blocks until the whole text is synthesised.
    fn synthesize(&self, text: &str, opts: &SynthesisOptions) -> Result<Pcm, TtsError>;

    /// Synthesises fixed prompts ahead of time and keeps them, when the engine has a cache
    /// ([`crate::CachedTts`]); blocks meanwhile. Engines without one do nothing and report
    /// every text as [`crate::cache::SkipReason::NoCache`].
    fn prewarm(&self, texts: &[String], opts: &SynthesisOptions) -> PrewarmReport {
        let _ = opts;
        PrewarmReport::no_cache(texts)
    }
}

/// Mono signed 16-bit PCM at `sample_rate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pcm {
    pub samples: Vec<i16>,
    pub sample_rate: u32,
}

impl Pcm {
    pub fn duration(&self) -> Duration {
        if self.sample_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate))
    }

    /// Root-mean-square level relative to full scale (0 = silence, ≈ 0.7 = full-scale sine).
    pub fn rms(&self) -> f32 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        ((sum / self.samples.len() as f64).sqrt() / 32768.0) as f32
    }

    /// Samples as f32 in [-1, 1).
    pub fn to_f32(&self) -> Vec<f32> {
        self.samples
            .iter()
            .map(|&s| f32::from(s) / 32768.0)
            .collect()
    }
}

/// Per-request overrides of the provider's configured voice and speed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SynthesisOptions {
    /// Provider-specific voice name (espeak-ng: "en-us", "en-gb", …).
    pub voice: Option<String>,
    /// Speaking rate in words per minute.
    pub rate_wpm: Option<u32>,
}

/// Why speech could not be synthesised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    #[error(
        "espeak-ng data directory not found (looked in: {searched:?}); install espeak-ng-data or set ESPEAK_DATA_PATH"
    )]
    DataNotFound { searched: Vec<PathBuf> },
    #[error(
        "espeak-ng could not initialise with data in {data_dir}: {message} (status {status:#x})"
    )]
    Init {
        data_dir: PathBuf,
        status: u32,
        message: String,
    },
    #[error(
        "espeak-ng is already initialised with data in {existing}; cannot switch to {requested} in the same process"
    )]
    DataDirConflict {
        existing: PathBuf,
        requested: PathBuf,
    },
    #[error("voice {voice:?} not available: {message}")]
    VoiceNotFound { voice: String, message: String },
    #[error("text contains a NUL character at byte {index}")]
    InvalidText { index: usize },
    #[error("synthesis failed: {message} (status {status:#x})")]
    Synthesis { status: u32, message: String },
    #[error("the espeak-ng worker thread is gone")]
    WorkerGone,
    #[error("remote speech synthesis: {0}")]
    Remote(#[from] RemoteError),
}
