//! Speech-to-text: the [`SpeechToText`] trait and the types every provider shares.
//!
//! Providers are blocking and CPU- or network-bound: the caller runs `transcribe` on a
//! blocking pool. One provider value serves concurrent calls (`Send + Sync`).

use std::path::PathBuf;
use std::time::Duration;

use crate::ggml::GgmlError;
use crate::remote::RemoteError;

/// Turns one utterance of 16 kHz mono PCM into text.
pub trait SpeechToText: Send + Sync {
    /// `pcm_16k`: mono samples at 16 kHz in [-1, 1]. Blocks until the transcript is ready.
    fn transcribe(&self, pcm_16k: &[f32], opts: &TranscribeOptions)
    -> Result<Transcript, SttError>;
}

/// Per-utterance options. Construct with `Default` and set fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TranscribeOptions {
    /// How much of whisper's 30 s encoder window to run.
    pub audio_ctx: AudioCtx,
    /// Text that conditions the decoder, e.g. the vocabulary a flow node expects ("account
    /// number, digits"). Empty or `None` for none.
    pub prompt: Option<String>,
}

/// Size of whisper's encoder window, in encoder frames (50 per second of audio).
///
/// The encoder's cost is proportional to the window, not to the speech in it: a 2.7 s clip
/// costs as much as 30 s with the full window. Fitting the window to the clip is the main
/// latency lever for short phone turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioCtx {
    /// The model's full window (1500 frames = 30 s): whisper's reference behaviour.
    Full,
    /// Fitted to the utterance by [`fitted_audio_ctx`].
    #[default]
    Fit,
    /// Exactly this many frames (clamped to the model's window; never below the audio).
    Frames(u32),
}

/// Encoder frames per second of audio (mel hop 10 ms, conv stride 2).
pub const FRAMES_PER_SECOND: u32 = 50;
/// [`AudioCtx::Fit`] rounds up to a multiple of this.
pub const FIT_MULTIPLE: u32 = 64;
/// [`AudioCtx::Fit`] never goes below this many frames.
pub const FIT_MIN_FRAMES: u32 = 384;
/// Extra frames [`AudioCtx::Fit`] adds after the audio before rounding.
pub const FIT_PAD_FRAMES: u32 = 64;

/// The encoder window [`AudioCtx::Fit`] uses for `n_samples` of 16 kHz audio, before clamping
/// to the model's window: the audio's frames plus [`FIT_PAD_FRAMES`] of trailing context,
/// rounded up to [`FIT_MULTIPLE`], at least [`FIT_MIN_FRAMES`].
///
/// Why a margin and a floor: whisper was trained on 30 s windows only. In a short window
/// tiny.en often fails to end the text and re-reads the audio ("Yes, that's correct. Yes,
/// that's correct. …"); the repetition guard in [`crate::whisper`] cuts such loops, but
/// windows under ~7 s still cost words on the fixture clips (floor 256: 0.9 % WER at 16 kHz,
/// 2.7 % at 8 kHz; floor 384: 0 % and 0.9 %, the same as the full window). Measured with
/// `examples/stt_bench.rs`; `AudioCtx::Frames` trades accuracy for latency explicitly.
pub fn fitted_audio_ctx(n_samples: usize) -> u32 {
    let audio = frames_for(n_samples);
    let want = audio.saturating_add(FIT_PAD_FRAMES).max(FIT_MIN_FRAMES);
    want.div_ceil(FIT_MULTIPLE).saturating_mul(FIT_MULTIPLE)
}

/// Encoder frames covering `n_samples` of 16 kHz audio, rounded up.
pub fn frames_for(n_samples: usize) -> u32 {
    let frames = (n_samples as u64 * u64::from(FRAMES_PER_SECOND)).div_ceil(16_000);
    u32::try_from(frames).unwrap_or(u32::MAX)
}

/// What was said, with what it cost.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// Trimmed text; empty when nothing was recognised.
    pub text: String,
    /// Duration of the audio transcribed.
    pub audio: Duration,
    /// Encoder window used, in frames (see [`AudioCtx`]).
    pub audio_ctx: u32,
    pub timings: SttTimings,
    /// Mean probability of the text tokens, a rough confidence; `None` without tokens.
    pub avg_token_prob: Option<f32>,
    /// whisper's probability that the audio holds no speech (max over segments).
    pub no_speech_prob: Option<f32>,
    /// The decoder started repeating itself and was stopped; the repeat was cut from `text`.
    pub repetition_cut: bool,
}

/// Wall-clock time per stage of one transcription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SttTimings {
    /// Allocating per-call decoder state.
    pub setup: Duration,
    /// Log-mel spectrogram.
    pub mel: Duration,
    /// Encoder, including the first decoder pass over the prompt.
    pub encode: Duration,
    /// Token-by-token decoding.
    pub decode: Duration,
    /// HTTP round trip of a remote provider (zero for local engines).
    pub request: Duration,
    pub total: Duration,
}

impl Transcript {
    /// `total / audio`: below 1 is faster than real time.
    pub fn real_time_factor(&self) -> f64 {
        if self.audio.is_zero() {
            return 0.0;
        }
        self.timings.total.as_secs_f64() / self.audio.as_secs_f64()
    }
}

/// Why a model could not be loaded or an utterance transcribed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SttError {
    #[error(
        "whisper model {path}: file not found (run scripts/test-models.sh or `agent models import-ct2`)"
    )]
    ModelNotFound { path: PathBuf },
    #[error("whisper model {path}: cannot read: {source}")]
    ModelUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("whisper model {path}: invalid: {source}")]
    InvalidModel {
        path: PathBuf,
        #[source]
        source: GgmlError,
    },
    #[error("whisper model {path}: whisper.cpp could not load it: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: whisper_rs::WhisperError,
    },
    #[error("no audio to transcribe")]
    EmptyAudio,
    #[error("audio sample {index} is not a finite number")]
    InvalidSample { index: usize },
    #[error("whisper.cpp failed to {stage}: {source}")]
    Engine {
        stage: &'static str,
        #[source]
        source: whisper_rs::WhisperError,
    },
    #[error("remote speech recognition: {0}")]
    Remote(#[from] RemoteError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_covers_audio_with_margin() {
        assert_eq!(frames_for(16_000), 50);
        assert_eq!(frames_for(1), 1);
        assert_eq!(fitted_audio_ctx(0), FIT_MIN_FRAMES);
        for secs in [1usize, 3, 7, 13, 29] {
            let ctx = fitted_audio_ctx(secs * 16_000);
            assert!(ctx >= frames_for(secs * 16_000) + FIT_PAD_FRAMES);
            assert_eq!(ctx % FIT_MULTIPLE, 0);
        }
    }
}
