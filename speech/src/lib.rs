//! Speech-to-text and text-to-speech providers behind traits: whisper.cpp and espeak-ng
//! in-process, OpenAI-compatible HTTP providers, a TTS cache for fixed prompts, and model-file
//! handling (CTranslate2 → ggml import, ggml model downloads).
//!
//! It knows nothing about calls, SIP or the dialog: it turns PCM into text and text into PCM.
//! Every provider blocks (CPU-bound C code or a network round trip); callers run them on a
//! blocking pool. It does not resample: STT takes 16 kHz, TTS returns its native rate with
//! the PCM (espeak-ng 22050 Hz, remote 24000 Hz).
//!
//! - [`stt`]: [`SpeechToText`], implemented by [`WhisperStt`].
//! - [`tts`]: [`TextToSpeech`], implemented by [`EspeakTts`].
//! - [`ct2`]: [`import_ct2`], a faster-whisper directory → whisper.cpp ggml file.
//! - [`ggml`]: reading and checking ggml model files.
//! - [`remote`]: [`RemoteStt`] and [`RemoteTts`], OpenAI-compatible HTTP providers.
//! - [`cache`]: [`CachedTts`], fixed prompts synthesised once and shared by every call.
//! - [`models`]: downloading whisper.cpp ggml models (resume, SHA-256) and listing them.

pub mod cache;
pub mod ct2;
pub mod espeak;
pub mod ggml;
pub mod models;
pub mod remote;
pub mod stt;
pub mod tts;
pub mod whisper;

pub use cache::{CacheLimits, CacheStats, CachedTts, PrewarmReport};
pub use ct2::{ImportError, ImportReport, import_ct2};
pub use espeak::{EspeakConfig, EspeakTts};
pub use remote::{RemoteError, RemoteStt, RemoteSttConfig, RemoteTts, RemoteTtsConfig};
pub use stt::{AudioCtx, SpeechToText, SttError, SttTimings, TranscribeOptions, Transcript};
pub use tts::{Pcm, SynthesisOptions, TextToSpeech, TtsError};
pub use whisper::WhisperStt;
