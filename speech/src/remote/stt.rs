//! [`RemoteStt`]: `POST {base_url}/audio/transcriptions` (multipart: `file` as 16 kHz mono
//! 16-bit WAV, `model`, `language`, `response_format=json`, optional `prompt`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::InputSource;
use async_openai::types::audio::{AudioInput, AudioResponseFormat, CreateTranscriptionRequest};

use super::{Bridge, Endpoint, RemoteError};
use crate::stt::{SpeechToText, SttError, SttTimings, TranscribeOptions, Transcript};

const PATH: &str = "/audio/transcriptions";

/// Settings of [`RemoteStt`]. `Debug` never shows the API key.
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteSttConfig {
    /// API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Bearer key; `None` or empty sends an empty bearer (local servers).
    pub api_key: Option<String>,
    /// e.g. `whisper-1`, `gpt-4o-mini-transcribe`, or what a local server calls its model.
    pub model: String,
    /// ISO-639-1 language of the audio (`en`); `None` lets the server detect it.
    pub language: Option<String>,
    /// Deadline for the whole request, connection to last byte.
    pub timeout: Duration,
}

impl RemoteSttConfig {
    /// Defaults: language `en`, timeout 5 s.
    pub fn new(base_url: &str, model: &str) -> RemoteSttConfig {
        RemoteSttConfig {
            base_url: base_url.to_owned(),
            api_key: None,
            model: model.to_owned(),
            language: Some("en".to_owned()),
            timeout: Duration::from_secs(5),
        }
    }

    pub fn with_api_key(mut self, key: &str) -> RemoteSttConfig {
        self.api_key = (!key.is_empty()).then(|| key.to_owned());
        self
    }

    pub fn with_language(mut self, language: Option<&str>) -> RemoteSttConfig {
        self.language = language.filter(|l| !l.is_empty()).map(str::to_owned);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> RemoteSttConfig {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RemoteSttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSttConfig")
            .field("base_url", &super::redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("language", &self.language)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An OpenAI-compatible transcription endpoint. Cheap to share (`Arc`); requests from
/// concurrent callers run concurrently on the provider's runtime.
pub struct RemoteStt {
    inner: Arc<Inner>,
    bridge: Bridge,
}

struct Inner {
    endpoint: Endpoint,
    client: Client<OpenAIConfig>,
    model: String,
    language: Option<String>,
    timeout: Duration,
}

impl RemoteStt {
    /// Checks the settings and builds the HTTP client. Makes no request.
    pub fn new(config: RemoteSttConfig) -> Result<RemoteStt, SttError> {
        let endpoint = Endpoint::new(&config.base_url, config.api_key.as_deref())?;
        let timeout = config.timeout.max(Duration::from_millis(1));
        let client = endpoint.client(timeout)?;
        let bridge = Bridge::new("speech-remote-stt", &endpoint.display_url(PATH))?;
        Ok(RemoteStt {
            inner: Arc::new(Inner {
                endpoint,
                client,
                model: config.model,
                language: config.language,
                timeout,
            }),
            bridge,
        })
    }

    /// The transcription URL (credentials removed), for logs.
    pub fn url(&self) -> String {
        self.inner.endpoint.display_url(PATH)
    }
}

impl fmt::Debug for RemoteStt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStt")
            .field("endpoint", &self.inner.endpoint)
            .field("model", &self.inner.model)
            .finish_non_exhaustive()
    }
}

impl SpeechToText for RemoteStt {
    fn transcribe(
        &self,
        pcm_16k: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        let started = Instant::now();
        if pcm_16k.is_empty() {
            return Err(SttError::EmptyAudio);
        }
        if let Some(index) = pcm_16k.iter().position(|s| !s.is_finite()) {
            return Err(SttError::InvalidSample { index });
        }
        let wav = wav_16k_mono(pcm_16k);
        let setup = started.elapsed();
        let prompt = opts.prompt.clone().filter(|p| !p.trim().is_empty());
        let inner = self.inner.clone();
        let request_started = Instant::now();
        let text = self
            .bridge
            .run(async move { inner.request(wav, prompt).await })??;
        let request = request_started.elapsed();
        let timings = SttTimings {
            setup,
            request,
            total: started.elapsed(),
            ..SttTimings::default()
        };
        Ok(Transcript {
            text,
            audio: Duration::from_secs_f64(pcm_16k.len() as f64 / 16_000.0),
            audio_ctx: 0,
            timings,
            avg_token_prob: None,
            no_speech_prob: None,
            repetition_cut: false,
        })
    }
}

impl Inner {
    async fn request(&self, wav: Vec<u8>, prompt: Option<String>) -> Result<String, RemoteError> {
        let request = CreateTranscriptionRequest {
            file: AudioInput {
                source: InputSource::VecU8 {
                    filename: "utterance.wav".to_owned(),
                    vec: wav,
                },
            },
            model: self.model.clone(),
            language: self.language.clone(),
            prompt,
            response_format: Some(AudioResponseFormat::Json),
            ..CreateTranscriptionRequest::default()
        };
        let audio = self.client.audio();
        let transcription = audio.transcription();
        let bytes = self
            .endpoint
            .within(PATH, self.timeout, transcription.create_raw(request))
            .await?;
        parse_text(&bytes).map_err(|reason| RemoteError::InvalidResponse {
            url: self.endpoint.display_url(PATH),
            reason,
        })
    }
}

/// `text` from a `response_format=json` reply (`{"text": "…", …}`), trimmed.
fn parse_text(body: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let text = value
        .get("text")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| "no \"text\" string in the JSON body".to_owned())?;
    Ok(text.trim().to_owned())
}

/// A canonical 44-byte-header WAV file: PCM, mono, 16 kHz, 16-bit little-endian.
pub(crate) fn wav_16k_mono(samples: &[f32]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_is_canonical() {
        let wav = wav_16k_mono(&[0.0, 1.0, -1.0, 2.0]);
        assert_eq!(wav.len(), 44 + 8);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 36 + 8);
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 16_000);
        assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), 32767);
        assert_eq!(i16::from_le_bytes([wav[48], wav[49]]), -32767);
        assert_eq!(i16::from_le_bytes([wav[50], wav[51]]), 32767, "clamped");
    }

    #[test]
    fn reply_needs_only_text() {
        assert_eq!(parse_text(br#"{"text":" Hi. "}"#).unwrap(), "Hi.");
        assert_eq!(
            parse_text(br#"{"text":"x","usage":{"type":"duration","seconds":1}}"#).unwrap(),
            "x"
        );
        assert!(parse_text(b"Hi.").is_err());
        assert!(parse_text(br#"{"txt":"x"}"#).is_err());
    }
}
