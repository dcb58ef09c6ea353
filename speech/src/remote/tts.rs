//! [`RemoteTts`]: `POST {base_url}/audio/speech` with JSON `{model, input, voice,
//! response_format: "pcm"}`; the reply body is raw 24 kHz signed 16-bit little-endian mono.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::audio::{CreateSpeechRequest, SpeechModel, SpeechResponseFormat, Voice};

use super::{Bridge, Endpoint, RemoteError};
use crate::tts::{Pcm, SynthesisOptions, TextToSpeech, TtsError};

const PATH: &str = "/audio/speech";

/// The rate of OpenAI's `pcm` response format.
pub const REMOTE_TTS_SAMPLE_RATE: u32 = 24_000;

/// Settings of [`RemoteTts`]. `Debug` never shows the API key.
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteTtsConfig {
    /// API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer key; `None` or empty sends an empty bearer (local servers).
    pub api_key: Option<String>,
    /// e.g. `tts-1`, `gpt-4o-mini-tts`, or a local server's model name.
    pub model: String,
    /// Default voice (`alloy`, …); [`SynthesisOptions::voice`] overrides it per request.
    pub voice: String,
    /// Deadline for the whole request, connection to last byte.
    pub timeout: Duration,
}

impl RemoteTtsConfig {
    /// Timeout 5 s.
    pub fn new(base_url: &str, model: &str, voice: &str) -> RemoteTtsConfig {
        RemoteTtsConfig {
            base_url: base_url.to_owned(),
            api_key: None,
            model: model.to_owned(),
            voice: voice.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    pub fn with_api_key(mut self, key: &str) -> RemoteTtsConfig {
        self.api_key = (!key.is_empty()).then(|| key.to_owned());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> RemoteTtsConfig {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RemoteTtsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTtsConfig")
            .field("base_url", &super::redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("voice", &self.voice)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An OpenAI-compatible speech endpoint returning [`Pcm`] at [`REMOTE_TTS_SAMPLE_RATE`].
///
/// [`SynthesisOptions::rate_wpm`] is not sent: OpenAI's `speed` is relative to each voice's
/// own pace, which has no fixed words-per-minute value, so remote voices speak at theirs.
pub struct RemoteTts {
    inner: Arc<Inner>,
    bridge: Bridge,
}

struct Inner {
    endpoint: Endpoint,
    client: Client<OpenAIConfig>,
    model: String,
    voice: String,
    timeout: Duration,
}

impl RemoteTts {
    /// Checks the settings and builds the HTTP client. Makes no request.
    pub fn new(config: RemoteTtsConfig) -> Result<RemoteTts, TtsError> {
        let endpoint = Endpoint::new(&config.base_url, config.api_key.as_deref())?;
        let timeout = config.timeout.max(Duration::from_millis(1));
        let client = endpoint.client(timeout)?;
        let bridge = Bridge::new("speech-remote-tts", &endpoint.display_url(PATH))?;
        Ok(RemoteTts {
            inner: Arc::new(Inner {
                endpoint,
                client,
                model: config.model,
                voice: config.voice,
                timeout,
            }),
            bridge,
        })
    }

    /// The speech URL (credentials removed), for logs.
    pub fn url(&self) -> String {
        self.inner.endpoint.display_url(PATH)
    }
}

impl fmt::Debug for RemoteTts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTts")
            .field("endpoint", &self.inner.endpoint)
            .field("model", &self.inner.model)
            .field("voice", &self.inner.voice)
            .finish_non_exhaustive()
    }
}

impl TextToSpeech for RemoteTts {
    fn synthesize(&self, text: &str, opts: &SynthesisOptions) -> Result<Pcm, TtsError> {
        if text.trim().is_empty() {
            // The API rejects an empty input; silence is the honest answer.
            return Ok(Pcm {
                samples: Vec::new(),
                sample_rate: REMOTE_TTS_SAMPLE_RATE,
            });
        }
        let voice = opts
            .voice
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.inner.voice.clone());
        let inner = self.inner.clone();
        let text = text.to_owned();
        let samples = self
            .bridge
            .run(async move { inner.request(text, voice).await })??;
        Ok(Pcm {
            samples,
            sample_rate: REMOTE_TTS_SAMPLE_RATE,
        })
    }
}

impl Inner {
    async fn request(&self, input: String, voice: String) -> Result<Vec<i16>, RemoteError> {
        let request = CreateSpeechRequest {
            input,
            model: SpeechModel::Other(self.model.clone()),
            voice: Voice::Other(voice),
            instructions: None,
            response_format: Some(SpeechResponseFormat::Pcm),
            speed: None,
            stream_format: None,
        };
        let audio = self.client.audio();
        let speech = audio.speech();
        let bytes = self
            .endpoint
            .within(PATH, self.timeout, speech.create(request))
            .await?
            .bytes;
        pcm_s16le(&bytes).map_err(|reason| RemoteError::InvalidResponse {
            url: self.endpoint.display_url(PATH),
            reason,
        })
    }
}

/// Raw s16le samples, refusing bodies that are visibly something else: a server that ignores
/// `response_format` would otherwise be played to the caller as noise.
fn pcm_s16le(body: &[u8]) -> Result<Vec<i16>, String> {
    let container = [
        (&b"RIFF"[..], "a WAV file"),
        (b"ID3", "MP3"),
        (b"OggS", "Ogg"),
        (b"fLaC", "FLAC"),
    ]
    .into_iter()
    .find(|(magic, _)| body.starts_with(magic))
    .map(|(_, what)| what)
    // `{` alone is a plausible first PCM byte: call it JSON only when all of it parses.
    .or_else(|| {
        (body.starts_with(b"{") && serde_json::from_slice::<serde_json::Value>(body).is_ok())
            .then_some("JSON")
    });
    if let Some(what) = container {
        return Err(format!(
            "{what} instead of raw PCM (response_format \"pcm\")"
        ));
    }
    if !body.len().is_multiple_of(2) {
        return Err(format!(
            "{} bytes is not a whole number of 16-bit samples",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_body_is_checked() {
        assert_eq!(pcm_s16le(&[1, 0, 0xff, 0xff]).unwrap(), vec![1, -1]);
        assert!(pcm_s16le(&[1, 0, 2]).is_err());
        assert!(pcm_s16le(b"RIFF....WAVE").unwrap_err().contains("WAV"));
        assert!(pcm_s16le(b"{\"error\":1}").unwrap_err().contains("JSON"));
        assert_eq!(pcm_s16le(&[]).unwrap(), Vec::<i16>::new());
    }
}
