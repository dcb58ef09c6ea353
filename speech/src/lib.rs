//! Speech-to-text and text-to-speech providers behind traits: whisper.cpp in-process,
//! espeak-ng in-process, and model-file handling (CTranslate2 → ggml import).
//!
//! It knows nothing about calls, SIP or the dialog: it turns PCM into text and text into PCM.
//! Both engines are blocking and CPU-bound; callers run them on a blocking pool. It does not
//! resample: STT takes 16 kHz, TTS returns its native rate with the PCM.
//!
//! - [`stt`]: [`SpeechToText`], implemented by [`WhisperStt`].
//! - [`tts`]: [`TextToSpeech`], implemented by [`EspeakTts`].
//! - [`ct2`]: [`import_ct2`], a faster-whisper directory → whisper.cpp ggml file.
//! - [`ggml`]: reading and checking ggml model files.

pub mod ct2;
pub mod espeak;
pub mod ggml;
pub mod stt;
pub mod tts;
pub mod whisper;

pub use ct2::{ImportError, ImportReport, import_ct2};
pub use espeak::{EspeakConfig, EspeakTts};
pub use stt::{AudioCtx, SpeechToText, SttError, SttTimings, TranscribeOptions, Transcript};
pub use tts::{Pcm, SynthesisOptions, TextToSpeech, TtsError};
pub use whisper::WhisperStt;
