//! The call pipeline's speech engines, shared by every call: STT on a bounded worker pool and
//! TTS, both on tokio's blocking pool (they are CPU-bound C code).

use std::sync::Arc;
use std::time::{Duration, Instant};

use speech::{Pcm, SpeechToText, SynthesisOptions, TextToSpeech, TranscribeOptions, Transcript};
use tokio::sync::Semaphore;

/// Why a speech request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpeechError {
    /// The engine could not be loaded at start (the reason names the model path).
    #[error("speech-to-text unavailable: {0}")]
    SttUnavailable(String),
    #[error("transcription failed: {0}")]
    Stt(String),
    #[error("text-to-speech unavailable: {0}")]
    TtsUnavailable(String),
    #[error("synthesis failed: {0}")]
    Tts(String),
    /// The task running the request panicked or was cancelled.
    #[error("speech task failed: {0}")]
    Task(String),
}

/// STT and TTS for all calls.
#[derive(Clone)]
pub struct SpeechEngines {
    stt: Result<Arc<dyn SpeechToText>, String>,
    /// One permit per transcription allowed to run at once (`stt.workers`).
    stt_slots: Arc<Semaphore>,
    tts: Result<Arc<dyn TextToSpeech>, String>,
    voice: Option<String>,
}

/// A transcript with the time spent waiting for a worker.
pub struct TimedTranscript {
    pub transcript: Transcript,
    pub queued: Duration,
}

impl SpeechEngines {
    pub fn new(
        stt: Result<Arc<dyn SpeechToText>, String>,
        workers: usize,
        tts: Result<Arc<dyn TextToSpeech>, String>,
        voice: Option<String>,
    ) -> Self {
        Self {
            stt,
            stt_slots: Arc::new(Semaphore::new(workers.max(1))),
            tts,
            voice,
        }
    }

    pub fn stt_available(&self) -> Result<(), SpeechError> {
        self.stt
            .as_ref()
            .map(|_| ())
            .map_err(|e| SpeechError::SttUnavailable(e.clone()))
    }

    pub fn tts_available(&self) -> Result<(), SpeechError> {
        self.tts
            .as_ref()
            .map(|_| ())
            .map_err(|e| SpeechError::TtsUnavailable(e.clone()))
    }

    /// Transcribes 16 kHz PCM on a worker. Cancel-safe: dropping the future releases the slot
    /// once the running transcription ends.
    pub async fn transcribe(
        &self,
        pcm_16k: Vec<i16>,
        prompt: Option<String>,
    ) -> Result<TimedTranscript, SpeechError> {
        let stt = self
            .stt
            .as_ref()
            .map_err(|e| SpeechError::SttUnavailable(e.clone()))?
            .clone();
        let queued_at = Instant::now();
        let permit = self
            .stt_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| SpeechError::Stt(e.to_string()))?;
        let queued = queued_at.elapsed();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let samples: Vec<f32> = pcm_16k.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let mut opts = TranscribeOptions::default();
            opts.prompt = prompt;
            stt.transcribe(&samples, &opts)
        });
        let transcript = job
            .await
            .map_err(|e| SpeechError::Stt(e.to_string()))?
            .map_err(|e| SpeechError::Stt(e.to_string()))?;
        Ok(TimedTranscript { transcript, queued })
    }

    /// Synthesises one sentence.
    pub async fn synthesize(&self, text: String) -> Result<Pcm, SpeechError> {
        let tts = self
            .tts
            .as_ref()
            .map_err(|e| SpeechError::TtsUnavailable(e.clone()))?
            .clone();
        let mut opts = SynthesisOptions::default();
        opts.voice = self.voice.clone();
        tokio::task::spawn_blocking(move || tts.synthesize(&text, &opts))
            .await
            .map_err(|e| SpeechError::Tts(e.to_string()))?
            .map_err(|e| SpeechError::Tts(e.to_string()))
    }
}
