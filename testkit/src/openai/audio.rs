//! `POST /v1/audio/transcriptions` and `POST /v1/audio/speech` in the documented wire format.
//!
//! Transcriptions: a `multipart/form-data` body with `file` (a supported extension; WAV files
//! are parsed and must be well-formed), `model` (required), and optional `language`, `prompt`,
//! `response_format` (`json` default, `text`, `srt`, `verbose_json`, `vtt`), `temperature`.
//! The reply is the scripted [`TranscriptionReply`]'s text in the requested format; `json`
//! carries `usage: {type: "duration", seconds}` as OpenAI sends for `whisper-1`.
//!
//! Speech: a JSON body with `model`, `input` (1–4096 characters), `voice` (all required),
//! optional `response_format` (`mp3` default), `speed` (0.25–4.0), `instructions`. The fake
//! produces `pcm` (raw 24 kHz s16le mono) and `wav` (the same in a WAV file); other formats
//! get a 400 naming the fake, so a client that forgets `response_format` notices. Audio is the
//! scripted [`SpeechReply`]'s, or by default [`speech_signal`]. The body is streamed in
//! 100 ms chunks, as a real server streams it.
//!
//! Errors use the documented body `{"error": {"message", "type", "param", "code"}}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::multipart::{self, WavInfo};
use super::{RecordedRequest, Shared};

/// Sample rate of the `pcm` format.
pub const SPEECH_SAMPLE_RATE: u32 = 24_000;

const FORMATS: &[&str] = &[
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];

/// One scripted answer to a transcription request.
#[derive(Debug, Clone)]
pub struct TranscriptionReply {
    body: Result<String, (u16, String)>,
    delay: Duration,
}

impl TranscriptionReply {
    /// The transcript, rendered in the requested `response_format`.
    pub fn text(text: &str) -> TranscriptionReply {
        TranscriptionReply {
            body: Ok(text.to_owned()),
            delay: Duration::ZERO,
        }
    }

    /// An HTTP error with the documented error body.
    pub fn error(status: u16, message: &str) -> TranscriptionReply {
        TranscriptionReply {
            body: Err((status, message.to_owned())),
            delay: Duration::ZERO,
        }
    }

    /// Waits this long before answering.
    pub fn delay(mut self, d: Duration) -> TranscriptionReply {
        self.delay = d;
        self
    }
}

/// One scripted answer to a speech request.
#[derive(Debug, Clone, Default)]
pub struct SpeechReply {
    /// `None`: [`speech_signal`] of the input.
    samples: Option<Vec<i16>>,
    error: Option<(u16, String)>,
    delay: Duration,
}

impl SpeechReply {
    /// The default audio: [`speech_signal`] of the request's input.
    pub fn signal() -> SpeechReply {
        SpeechReply::default()
    }

    /// Exactly these 24 kHz samples.
    pub fn samples(samples: Vec<i16>) -> SpeechReply {
        SpeechReply {
            samples: Some(samples),
            ..SpeechReply::default()
        }
    }

    /// An HTTP error with the documented error body.
    pub fn error(status: u16, message: &str) -> SpeechReply {
        SpeechReply {
            error: Some((status, message.to_owned())),
            ..SpeechReply::default()
        }
    }

    /// Waits this long before the response head.
    pub fn delay(mut self, d: Duration) -> SpeechReply {
        self.delay = d;
        self
    }
}

/// The fake's default speech: a 440 Hz sine at amplitude 8000, 24 kHz, lasting 20 ms per
/// character of `input` (at least 100 ms) divided by `speed`. Tests compare against it.
pub fn speech_signal(input: &str, speed: f64) -> Vec<i16> {
    let ms = (input.chars().count() as f64 * 20.0).max(100.0) / speed.clamp(0.25, 4.0);
    let n = (ms * f64::from(SPEECH_SAMPLE_RATE) / 1000.0).round() as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SPEECH_SAMPLE_RATE);
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).round() as i16
        })
        .collect()
}

pub(super) async fn transcriptions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = auth_header(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = multipart::boundary(content_type).and_then(|b| multipart::parse(&body, &b));
    let (record, form) = match parsed {
        Ok(parts) => form_fields(parts),
        Err(e) => {
            record(
                &shared,
                "/v1/audio/transcriptions",
                authorization,
                json!({}),
            );
            return api_error(400, &e, None, None);
        }
    };
    let reply = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            path: "/v1/audio/transcriptions".into(),
            authorization: authorization.clone(),
            body: record,
        });
        if let Some(e) = check_key(st.api_key.as_deref(), authorization.as_deref()) {
            return e;
        }
        st.transcriptions
            .pop_front()
            .or_else(|| st.transcription_default.clone())
    };
    if let Err(e) = form.validate() {
        return e;
    }
    let Some(reply) = reply else {
        return api_error(
            500,
            "FakeOpenAi: no scripted transcription for this request",
            None,
            None,
        );
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let text = match reply.body {
        Ok(text) => text,
        Err((status, message)) => return api_error(status, &message, None, None),
    };
    form.render(&text)
}

/// What a transcription form said, kept for validation and rendering.
struct Form {
    model: Option<String>,
    format: String,
    language: Option<String>,
    file: Option<(String, Result<Option<WavInfo>, String>)>,
}

fn form_fields(parts: Vec<multipart::Part>) -> (Value, Form) {
    let mut fields = Map::new();
    let mut form = Form {
        model: None,
        format: "json".into(),
        language: None,
        file: None,
    };
    for p in parts {
        if p.name == "file" {
            let filename = p.filename.clone().unwrap_or_default();
            let ext = filename
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase());
            let wav = match ext.as_deref() {
                Some("wav") => multipart::wav_info(&p.data).map(Some),
                _ => Ok(None),
            };
            let mut file = json!({
                "filename": filename,
                "content_type": p.content_type,
                "bytes": p.data.len(),
            });
            if let Ok(Some(w)) = &wav {
                file["wav"] = json!({
                    "format_tag": w.format_tag,
                    "channels": w.channels,
                    "sample_rate": w.sample_rate,
                    "bits_per_sample": w.bits_per_sample,
                    "frames": w.frames(),
                });
            }
            fields.insert("file".into(), file);
            form.file = Some((filename, wav));
            continue;
        }
        let value = String::from_utf8_lossy(&p.data).into_owned();
        match p.name.as_str() {
            "model" => form.model = Some(value.clone()),
            "response_format" => form.format = value.clone(),
            "language" => form.language = Some(value.clone()),
            _ => {}
        }
        fields.insert(p.name, Value::String(value));
    }
    (Value::Object(fields), form)
}

impl Form {
    #[allow(
        clippy::result_large_err,
        reason = "the error is the HTTP reply a handler returns at once; a test fake, not a hot path"
    )]
    fn validate(&self) -> Result<(), Response> {
        let Some((filename, wav)) = &self.file else {
            return Err(api_error(
                400,
                "Missing required parameter: 'file'.",
                Some("file"),
                None,
            ));
        };
        if self.model.as_deref().is_none_or(str::is_empty) {
            return Err(api_error(
                400,
                "Missing required parameter: 'model'.",
                Some("model"),
                None,
            ));
        }
        let ext = filename
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase());
        if !ext.as_deref().is_some_and(|e| FORMATS.contains(&e)) {
            let msg = format!("Invalid file format. Supported formats: {FORMATS:?}");
            return Err(api_error(400, &msg, Some("file"), Some("invalid_value")));
        }
        if let Err(e) = wav {
            let msg = format!("Audio file might be corrupted or unsupported: {e}");
            return Err(api_error(400, &msg, Some("file"), Some("invalid_value")));
        }
        if !["json", "text", "srt", "verbose_json", "vtt"].contains(&self.format.as_str()) {
            let msg = format!(
                "'{}' is not one of ['json', 'text', 'srt', 'verbose_json', 'vtt'] - 'response_format'",
                self.format
            );
            return Err(api_error(400, &msg, Some("response_format"), None));
        }
        Ok(())
    }

    fn duration_secs(&self) -> f64 {
        match &self.file {
            Some((_, Ok(Some(w)))) => w.duration_secs(),
            _ => 0.0,
        }
    }

    fn render(&self, text: &str) -> Response {
        let secs = self.duration_secs();
        let end = timestamp(secs, ',');
        match self.format.as_str() {
            "text" => plain("text/plain; charset=utf-8", format!("{text}\n")),
            "srt" => plain(
                "text/plain; charset=utf-8",
                format!("1\n00:00:00,000 --> {end}\n{text}\n\n"),
            ),
            "vtt" => plain(
                "text/vtt; charset=utf-8",
                format!(
                    "WEBVTT\n\n00:00:00.000 --> {}\n{text}\n\n",
                    timestamp(secs, '.')
                ),
            ),
            "verbose_json" => Json(json!({
                "task": "transcribe",
                "language": self.language.clone().unwrap_or_else(|| "english".into()),
                "duration": secs,
                "text": text,
                "segments": [{
                    "id": 0, "seek": 0, "start": 0.0, "end": secs, "text": text,
                    "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                    "compression_ratio": 1.0, "no_speech_prob": 0.01
                }],
                "usage": { "type": "duration", "seconds": secs.ceil() as u64 },
            }))
            .into_response(),
            _ => Json(json!({
                "text": text,
                "usage": { "type": "duration", "seconds": secs.ceil() as u64 },
            }))
            .into_response(),
        }
    }
}

fn timestamp(secs: f64, sep: char) -> String {
    let ms = (secs * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn plain(content_type: &str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type.to_owned())], body).into_response()
}

pub(super) async fn speech(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = auth_header(&headers);
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let reply = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            path: "/v1/audio/speech".into(),
            authorization: authorization.clone(),
            body: parsed.as_ref().cloned().unwrap_or(Value::Null),
        });
        if let Some(e) = check_key(st.api_key.as_deref(), authorization.as_deref()) {
            return e;
        }
        st.speech.pop_front().unwrap_or_default()
    };
    let Ok(req) = parsed else {
        return api_error(
            400,
            "We could not parse the JSON body of your request.",
            None,
            None,
        );
    };
    let (input, speed, format) = match validate_speech(&req) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some((status, message)) = reply.error {
        return api_error(status, &message, None, None);
    }
    let samples = reply
        .samples
        .unwrap_or_else(|| speech_signal(&input, speed));
    let mut bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let content_type = if format == "wav" {
        let mut wav = wav_header(bytes.len() as u32);
        wav.append(&mut bytes);
        bytes = wav;
        "audio/wav"
    } else {
        "audio/pcm"
    };
    // 100 ms of audio per chunk: the client must reassemble a streamed body.
    let chunks: Vec<Bytes> = bytes
        .chunks(SPEECH_SAMPLE_RATE as usize / 10 * 2)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<Bytes, Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| api_error(500, "FakeOpenAi: cannot build response", None, None))
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the HTTP reply a handler returns at once; a test fake, not a hot path"
)]
fn validate_speech(req: &Value) -> Result<(String, f64, String), Response> {
    let missing = |p: &'static str| {
        api_error(
            400,
            &format!("Missing required parameter: '{p}'."),
            Some(p),
            None,
        )
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("model"))?;
    if model.is_empty() {
        return Err(missing("model"));
    }
    let input = req
        .get("input")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("input"))?;
    if input.is_empty() || input.chars().count() > 4096 {
        let msg = "'input' must be between 1 and 4096 characters.";
        return Err(api_error(400, msg, Some("input"), Some("invalid_value")));
    }
    let voice_ok = match req.get("voice") {
        Some(Value::String(v)) => !v.is_empty(),
        Some(Value::Object(o)) => o.get("id").is_some_and(Value::is_string),
        _ => false,
    };
    if !voice_ok {
        return Err(missing("voice"));
    }
    let speed = match req.get("speed") {
        None | Some(Value::Null) => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if (0.25..=4.0).contains(&s) => s,
            _ => {
                let msg = "'speed' must be a number between 0.25 and 4.0.";
                return Err(api_error(400, msg, Some("speed"), Some("invalid_value")));
            }
        },
    };
    let format = req
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("mp3")
        .to_owned();
    match format.as_str() {
        "pcm" | "wav" => Ok((input.to_owned(), speed, format)),
        "mp3" | "opus" | "aac" | "flac" => Err(api_error(
            400,
            &format!("FakeOpenAi produces only pcm and wav, not {format:?}"),
            Some("response_format"),
            None,
        )),
        _ => Err(api_error(
            400,
            &format!(
                "'{format}' is not one of ['mp3', 'opus', 'aac', 'flac', 'wav', 'pcm'] - 'response_format'"
            ),
            Some("response_format"),
            None,
        )),
    }
}

fn wav_header(data_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&SPEECH_SAMPLE_RATE.to_le_bytes());
    h.extend_from_slice(&(SPEECH_SAMPLE_RATE * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

fn auth_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn record(shared: &Shared, path: &str, authorization: Option<String>, body: Value) {
    shared.lock().requests.push(RecordedRequest {
        path: path.into(),
        authorization,
        body,
    });
}

/// A 401 like OpenAI's when a key is required and the bearer differs.
fn check_key(required: Option<&str>, authorization: Option<&str>) -> Option<Response> {
    let required = required?;
    let given = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if given == required {
        return None;
    }
    // OpenAI shows the first and last characters of a wrong key.
    let chars: Vec<char> = given.chars().collect();
    let shown = if chars.len() > 8 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else {
        "****".into()
    };
    let msg = format!("Incorrect API key provided: {shown}.");
    Some(api_error(401, &msg, None, Some("invalid_api_key")))
}

fn api_error(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let kind = match status {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let body =
        json!({ "error": { "message": message, "type": kind, "param": param, "code": code } });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}
