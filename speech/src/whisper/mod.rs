//! [`WhisperStt`]: whisper.cpp in-process through whisper-rs.
//!
//! The model is loaded once into a shared `WhisperContext`; every `transcribe` call makes its
//! own `WhisperState` (KV caches and compute buffers), so concurrent calls never share
//! mutable state. Decoding is English, greedy, without timestamps, one segment, blank and
//! non-speech tokens suppressed, and no temperature fallback: a turn's latency stays bounded
//! and the same audio always gives the same text.
//!
//! Short fitted windows sometimes make whisper loop; [`repetition`] stops and trims that.
//!
//! whisper.cpp's own logging is routed into `tracing` (targets `whisper_rs::…`) instead of
//! stderr.

mod repetition;

use std::cell::Cell;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperSysContext,
    WhisperSysState, WhisperTokenData,
};

use crate::ggml::{self, GgmlError, WhisperHparams};
use crate::stt::{AudioCtx, SpeechToText, SttError, SttTimings, TranscribeOptions, Transcript};

/// A loaded whisper.cpp model.
pub struct WhisperStt {
    ctx: WhisperContext,
    path: PathBuf,
    hparams: WhisperHparams,
    threads: usize,
}

impl WhisperStt {
    /// Loads the ggml model at `path` once; `threads` is per transcription (≥ 1).
    ///
    /// Prefer 1 thread on a CPU shared with other work (other calls, other processes):
    /// whisper.cpp's workers spin-wait at every graph node, and on an oversubscribed 2-core
    /// machine 2 threads made each decoder step ~300 ms instead of ~10 ms (stt_bench).
    pub fn load(path: &Path, threads: usize) -> Result<Self, SttError> {
        whisper_rs::install_logging_hooks();
        // Check the file ourselves first: whisper.cpp only logs why it rejects a file.
        let header = ggml::read_header(path).map_err(|e| match e {
            GgmlError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                SttError::ModelNotFound {
                    path: path.to_owned(),
                }
            }
            GgmlError::Io { source, .. } => SttError::ModelUnreadable {
                path: path.to_owned(),
                source,
            },
            other => SttError::InvalidModel {
                path: path.to_owned(),
                source: other,
            },
        })?;
        let started = Instant::now();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx =
            WhisperContext::new_with_params(path, params).map_err(|source| SttError::Load {
                path: path.to_owned(),
                source,
            })?;
        tracing::info!(
            path = %path.display(),
            hparams = %header.hparams,
            load_ms = started.elapsed().as_millis() as u64,
            whisper_cpp = whisper_rs::WHISPER_CPP_VERSION,
            "whisper model loaded"
        );
        Ok(Self {
            ctx,
            path: path.to_owned(),
            hparams: header.hparams,
            threads: threads.max(1),
        })
    }

    pub fn model_path(&self) -> &Path {
        &self.path
    }

    pub fn hparams(&self) -> WhisperHparams {
        self.hparams
    }

    /// The encoder window a call with `opts` would use for `n_samples` of audio.
    pub fn audio_ctx_for(&self, n_samples: usize, opts: &TranscribeOptions) -> u32 {
        let full = u32::try_from(self.hparams.n_audio_ctx).unwrap_or(1500);
        let audio = crate::stt::frames_for(n_samples);
        match opts.audio_ctx {
            // Beyond one window whisper.cpp slides 30 s windows anyway.
            _ if audio >= full => full,
            AudioCtx::Full => full,
            AudioCtx::Fit => crate::stt::fitted_audio_ctx(n_samples).min(full),
            AudioCtx::Frames(n) => n.max(audio).min(full),
        }
    }
}

impl SpeechToText for WhisperStt {
    fn transcribe(&self, pcm: &[f32], opts: &TranscribeOptions) -> Result<Transcript, SttError> {
        if pcm.is_empty() {
            return Err(SttError::EmptyAudio);
        }
        if let Some(index) = pcm.iter().position(|s| !s.is_finite()) {
            return Err(SttError::InvalidSample { index });
        }
        let started = Instant::now();
        let mut state = self.ctx.create_state().map_err(|source| SttError::Engine {
            stage: "allocate decoder state",
            source,
        })?;
        let setup_done = Instant::now();

        let audio_ctx = self.audio_ctx_for(pcm.len(), opts);
        let prompt_tokens = match opts.prompt.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => {
                let clean: String = p.chars().filter(|&c| c != '\0').collect();
                // Room for every byte: whisper-rs mishandles whisper.cpp's "too many tokens"
                // return value, so never let it happen; trim to the newest tokens afterwards.
                let mut tokens = self
                    .ctx
                    .tokenize(&clean, clean.len() + 1)
                    .map_err(|source| SttError::Engine {
                        stage: "tokenize the prompt",
                        source,
                    })?;
                let keep = usize::try_from(self.hparams.n_text_ctx / 2).unwrap_or(0);
                tokens.drain(..tokens.len().saturating_sub(keep));
                tokens
            }
            _ => Vec::new(),
        };

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(self.threads).unwrap_or(1));
        // language stays whisper.cpp's default "en" (set_language would leak a CString per call)
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_single_segment(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_temperature(0.0);
        params.set_temperature_inc(0.0);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_audio_ctx(i32::try_from(audio_ctx).unwrap_or(0));
        params.set_max_tokens(max_tokens(pcm.len()));
        if !prompt_tokens.is_empty() {
            params.set_tokens(&prompt_tokens);
        }
        let watch = DecodeWatch {
            eot: self.ctx.token_eot(),
            n_vocab: usize::try_from(self.ctx.n_vocab()).unwrap_or(0),
            ..DecodeWatch::default()
        };
        // SAFETY: the callbacks only use `user_data` as the `DecodeWatch` above, which outlives
        // `state.full` (the only call that invokes them, on this thread), plus the token and
        // logits arrays whisper.cpp passes them; they do not touch the context or state.
        unsafe {
            params.set_start_encoder_callback(Some(on_encoder_begin));
            params.set_start_encoder_callback_user_data(watch.as_user_data());
            params.set_filter_logits_callback(Some(on_logits));
            params.set_filter_logits_callback_user_data(watch.as_user_data());
        }

        state.full(params, pcm).map_err(|source| SttError::Engine {
            stage: "transcribe",
            source,
        })?;
        let done = Instant::now();

        let eot = watch.eot;
        let keep = watch.loop_at.get().unwrap_or(usize::MAX);
        let mut bytes = Vec::new();
        let (mut p_sum, mut n_tok) = (0f32, 0usize);
        let mut no_speech: Option<f32> = None;
        for seg in state.as_iter() {
            let p = seg.no_speech_probability();
            no_speech = Some(no_speech.map_or(p, |q| q.max(p)));
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                // Ids from end-of-text on are special (sot, timestamps, …).
                if tok.token_id() >= eot || n_tok >= keep {
                    continue;
                }
                // Bytes, not str: a multi-byte character can span two tokens.
                bytes.extend_from_slice(tok.to_bytes().unwrap_or_default());
                p_sum += tok.token_probability();
                n_tok += 1;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let looped = watch.loop_at.get().is_some();
        let text = if looped {
            repetition::trim_repeated_tail(text.trim())
        } else {
            text.trim()
        };

        let enc_start = watch.encoder_begin.get().unwrap_or(setup_done);
        let first_logits = watch.first_logits.get().unwrap_or(done);
        let timings = SttTimings {
            setup: setup_done - started,
            mel: enc_start.saturating_duration_since(setup_done),
            encode: first_logits.saturating_duration_since(enc_start),
            decode: done.saturating_duration_since(first_logits),
            request: Duration::ZERO,
            total: done - started,
        };
        let transcript = Transcript {
            text: text.to_owned(),
            audio: Duration::from_secs_f64(pcm.len() as f64 / 16_000.0),
            audio_ctx,
            timings,
            avg_token_prob: (n_tok > 0).then(|| p_sum / n_tok as f32),
            no_speech_prob: no_speech,
            repetition_cut: looped,
        };
        tracing::debug!(
            audio_ms = transcript.audio.as_millis() as u64,
            audio_ctx,
            total_ms = timings.total.as_millis() as u64,
            encode_ms = timings.encode.as_millis() as u64,
            decode_ms = timings.decode.as_millis() as u64,
            tokens = n_tok,
            repetition_cut = looped,
            "transcribed"
        );
        Ok(transcript)
    }
}

impl std::fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStt")
            .field("path", &self.path)
            .field("hparams", &self.hparams)
            .field("threads", &self.threads)
            .finish()
    }
}

/// A cap on decoded tokens: generous for speech (≈ 4 tokens/s) but it stops a hallucination
/// loop long before whisper's own 224-token limit would.
fn max_tokens(n_samples: usize) -> i32 {
    let secs = n_samples.div_ceil(16_000);
    i32::try_from(24 + 10 * secs).unwrap_or(i32::MAX).min(224)
}

/// What the whisper.cpp callbacks observe during one `whisper_full` call: stage instants
/// for [`SttTimings`], and the repetition guard's verdict.
#[derive(Default)]
struct DecodeWatch {
    encoder_begin: Cell<Option<Instant>>,
    first_logits: Cell<Option<Instant>>,
    eot: i32,
    n_vocab: usize,
    /// Text tokens to keep when a loop was caught.
    loop_at: Cell<Option<usize>>,
}

impl DecodeWatch {
    fn as_user_data(&self) -> *mut c_void {
        std::ptr::from_ref(self).cast_mut().cast()
    }
}

unsafe extern "C" fn on_encoder_begin(
    _ctx: *mut WhisperSysContext,
    _state: *mut WhisperSysState,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: user_data is the live `DecodeWatch` set in `transcribe`.
    let watch = unsafe { &*user_data.cast::<DecodeWatch>() };
    if watch.encoder_begin.get().is_none() {
        watch.encoder_begin.set(Some(Instant::now()));
    }
    true // false would abort the encoder
}

/// Called before each token is sampled with the tokens so far and the logits.
unsafe extern "C" fn on_logits(
    _ctx: *mut WhisperSysContext,
    _state: *mut WhisperSysState,
    tokens: *const WhisperTokenData,
    n_tokens: std::ffi::c_int,
    logits: *mut f32,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the live `DecodeWatch` set in `transcribe`.
    let watch = unsafe { &*user_data.cast::<DecodeWatch>() };
    if watch.first_logits.get().is_none() {
        watch.first_logits.set(Some(Instant::now()));
    }
    let n = usize::try_from(n_tokens).unwrap_or(0);
    if tokens.is_null() || logits.is_null() || n == 0 || watch.n_vocab == 0 {
        return;
    }
    if watch.loop_at.get().is_none() {
        // SAFETY: whisper.cpp passes `n_tokens` decoded tokens.
        let so_far = unsafe { std::slice::from_raw_parts(tokens, n) };
        let text: Vec<i32> = so_far
            .iter()
            .map(|t| t.id)
            .filter(|&id| id < watch.eot)
            .collect();
        let Some(at) = repetition::loop_start(&text) else {
            return;
        };
        watch.loop_at.set(Some(at));
    }
    // Force end-of-text: everything else impossible.
    // SAFETY: `logits` holds one value per vocabulary entry.
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, watch.n_vocab) };
    logits.fill(f32::NEG_INFINITY);
    if let Some(l) = usize::try_from(watch.eot)
        .ok()
        .and_then(|i| logits.get_mut(i))
    {
        *l = 0.0;
    }
}
