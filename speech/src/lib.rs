//! Speech-to-text and text-to-speech providers behind traits: whisper.cpp in-process,
//! espeak-ng in-process, and model-file handling (CTranslate2 → ggml import).
//!
//! It knows nothing about calls, SIP or the dialog: it turns PCM into text and text into PCM.
