//! [`EspeakTts`]: espeak-ng in-process through espeakng-sys.
//!
//! espeak-ng keeps its state in globals and is not thread-safe, so one dedicated worker
//! thread per process owns it; every [`EspeakTts`] value sends requests to that thread over a
//! bounded channel and waits for the reply. Synthesis runs in espeak-ng's synchronous mode:
//! `espeak_ng_Synthesize` returns after the synth callback has received all the audio.
//!
//! Output is espeak-ng's native rate (22050 Hz with the standard data); callers resample.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_short};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};

use espeakng_sys as sys;

use crate::tts::{Pcm, SynthesisOptions, TextToSpeech, TtsError};

/// Configuration of the espeak-ng provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EspeakConfig {
    /// The `espeak-ng-data` directory; `None` searches `ESPEAK_DATA_PATH` and the usual
    /// install locations (see [`find_data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// Default voice: an espeak-ng voice name or file ("en-us", "en" = British,
    /// "en-GB-x-rp") or a language ("en-gb"), which picks espeak-ng's best voice for it.
    pub voice: String,
    /// Default speaking rate in words per minute (espeak-ng accepts 80–450).
    pub rate_wpm: u32,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            voice: "en-us".to_owned(),
            rate_wpm: 175,
        }
    }
}

/// A handle on the process's espeak-ng worker. Cheap to clone; all clones share the worker.
#[derive(Debug, Clone)]
pub struct EspeakTts {
    tx: SyncSender<Job>,
    sample_rate: u32,
    data_dir: PathBuf,
    voice: String,
    rate_wpm: u32,
}

impl EspeakTts {
    /// Starts (or joins) the espeak-ng worker and checks that the configured voice loads.
    pub fn new(config: EspeakConfig) -> Result<Self, TtsError> {
        let data_dir = find_data_dir(config.data_dir.as_deref())?;
        let (tx, sample_rate) = worker(&data_dir)?;
        let tts = Self {
            tx,
            sample_rate,
            data_dir,
            voice: config.voice,
            rate_wpm: config.rate_wpm,
        };
        // Empty text: fails only if the voice does not load.
        tts.run(String::new(), tts.voice.clone(), tts.rate_wpm)?;
        Ok(tts)
    }

    /// espeak-ng's output rate (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn run(&self, text: String, voice: String, rate_wpm: u32) -> Result<Pcm, TtsError> {
        let (reply, rx) = sync_channel(1);
        let job = Job {
            text,
            voice,
            rate_wpm,
            reply,
        };
        self.tx.send(job).map_err(|_| TtsError::WorkerGone)?;
        rx.recv().map_err(|_| TtsError::WorkerGone)?
    }
}

impl TextToSpeech for EspeakTts {
    fn synthesize(&self, text: &str, opts: &SynthesisOptions) -> Result<Pcm, TtsError> {
        if let Some(index) = text.find('\0') {
            return Err(TtsError::InvalidText { index });
        }
        if text.trim().is_empty() {
            return Ok(Pcm {
                samples: Vec::new(),
                sample_rate: self.sample_rate,
            });
        }
        let voice = opts.voice.clone().unwrap_or_else(|| self.voice.clone());
        let rate = opts.rate_wpm.unwrap_or(self.rate_wpm);
        self.run(text.to_owned(), voice, rate)
    }
}

/// Finds the `espeak-ng-data` directory: `explicit` if given (it must hold `phontab`),
/// otherwise `$ESPEAK_DATA_PATH` (the directory or its parent, as espeak-ng itself accepts),
/// then `/usr/lib/<multiarch>/espeak-ng-data` (Debian's libespeak-ng1) and the usual
/// `share` locations.
pub fn find_data_dir(explicit: Option<&Path>) -> Result<PathBuf, TtsError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = explicit {
        candidates.push(dir.to_owned());
        candidates.push(dir.join("espeak-ng-data"));
    } else {
        if let Some(env) = std::env::var_os("ESPEAK_DATA_PATH") {
            let dir = PathBuf::from(env);
            candidates.push(dir.join("espeak-ng-data"));
            candidates.push(dir);
        }
        let mut multiarch: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("-linux-"))
            .map(|p| p.join("espeak-ng-data"))
            .collect();
        multiarch.sort();
        candidates.extend(multiarch);
        for dir in [
            "/usr/lib/espeak-ng-data",
            "/usr/share/espeak-ng-data",
            "/usr/local/share/espeak-ng-data",
            "/usr/local/lib/espeak-ng-data",
            "/opt/homebrew/share/espeak-ng-data",
        ] {
            candidates.push(PathBuf::from(dir));
        }
    }
    candidates
        .iter()
        .find(|d| d.join("phontab").is_file())
        .cloned()
        .ok_or(TtsError::DataNotFound {
            searched: candidates,
        })
}

/// Bound on queued requests: callers block (on their blocking pool) rather than pile up.
const QUEUE: usize = 32;

struct Job {
    text: String,
    voice: String,
    rate_wpm: u32,
    reply: SyncSender<Result<Pcm, TtsError>>,
}

struct Worker {
    tx: SyncSender<Job>,
    data_dir: PathBuf,
    sample_rate: u32,
}

/// The one worker of this process; `None` until started (or after a failed start).
static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

fn worker(data_dir: &Path) -> Result<(SyncSender<Job>, u32), TtsError> {
    let mut slot = WORKER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(w) = slot.as_ref() {
        if w.data_dir != data_dir {
            return Err(TtsError::DataDirConflict {
                existing: w.data_dir.clone(),
                requested: data_dir.to_owned(),
            });
        }
        return Ok((w.tx.clone(), w.sample_rate));
    }
    let (tx, rx) = sync_channel::<Job>(QUEUE);
    let (init_tx, init_rx) = sync_channel(1);
    let dir = data_dir.to_owned();
    std::thread::Builder::new()
        .name("espeak-ng".into())
        .spawn(move || {
            let rate = match Engine::init(&dir) {
                Ok(engine) => {
                    let rate = engine.sample_rate;
                    let _ = init_tx.send(Ok(rate));
                    engine.serve(rx);
                    return;
                }
                Err(e) => e,
            };
            let _ = init_tx.send(Err(rate));
        })
        .map_err(|_| TtsError::WorkerGone)?;
    let sample_rate = init_rx.recv().map_err(|_| TtsError::WorkerGone)??;
    tracing::info!(data_dir = %data_dir.display(), sample_rate, "espeak-ng initialised");
    *slot = Some(Worker {
        tx: tx.clone(),
        data_dir: data_dir.to_owned(),
        sample_rate,
    });
    Ok((tx, sample_rate))
}

thread_local! {
    /// Audio handed to the synth callback during the current `espeak_ng_Synthesize` call;
    /// only the worker thread ever fills it.
    static SAMPLES: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
}

/// espeak-ng's global state, owned by the worker thread.
struct Engine {
    sample_rate: u32,
    voice: Option<String>,
    rate_wpm: Option<u32>,
}

impl Engine {
    fn init(data_dir: &Path) -> Result<Self, TtsError> {
        let init_err = |status: sys::espeak_ng_STATUS| TtsError::Init {
            data_dir: data_dir.to_owned(),
            status,
            message: status_message(status),
        };
        // espeak-ng appends "espeak-ng-data" to the path it is given; other directory names
        // are accepted as they are.
        let base = match data_dir.file_name() {
            Some(n) if n == "espeak-ng-data" => data_dir.parent().unwrap_or(data_dir),
            _ => data_dir,
        };
        let base = CString::new(base.as_os_str().as_bytes())
            .map_err(|_| init_err(sys::espeak_ng_STATUS_ENS_NOT_INITIALIZED))?;
        let mut ctx: sys::espeak_ng_ERROR_CONTEXT = std::ptr::null_mut();
        // SAFETY: plain C calls with valid NUL-terminated strings; `ctx` is freed below. We
        // use the espeak_ng_* API because espeak_Initialize exits the process on bad data.
        unsafe {
            sys::espeak_ng_InitializePath(base.as_ptr());
            let status = sys::espeak_ng_Initialize(&mut ctx);
            sys::espeak_ng_ClearErrorContext(&mut ctx);
            if status != sys::espeak_ng_STATUS_ENS_OK {
                return Err(init_err(status));
            }
            let status = sys::espeak_ng_InitializeOutput(
                sys::espeak_ng_OUTPUT_MODE_ENOUTPUT_MODE_SYNCHRONOUS,
                0,
                std::ptr::null(),
            );
            if status != sys::espeak_ng_STATUS_ENS_OK {
                return Err(init_err(status));
            }
            sys::espeak_SetSynthCallback(Some(synth_callback));
        }
        // SAFETY: no arguments; valid after initialisation.
        let rate = unsafe { sys::espeak_ng_GetSampleRate() };
        let sample_rate = u32::try_from(rate)
            .ok()
            .filter(|&r| r > 0)
            .ok_or_else(|| init_err(sys::espeak_ng_STATUS_ENS_NOT_INITIALIZED))?;
        Ok(Self {
            sample_rate,
            voice: None,
            rate_wpm: None,
        })
    }

    fn serve(mut self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            let result = self.synthesize(&job.text, &job.voice, job.rate_wpm);
            let _ = job.reply.send(result);
        }
    }

    fn synthesize(&mut self, text: &str, voice: &str, rate_wpm: u32) -> Result<Pcm, TtsError> {
        if self.voice.as_deref() != Some(voice) {
            let not_found = |message| TtsError::VoiceNotFound {
                voice: voice.to_owned(),
                message,
            };
            let name = CString::new(voice).map_err(|_| not_found("NUL in name".into()))?;
            // SAFETY: valid NUL-terminated string; espeak-ng is initialised on this thread.
            let mut status = unsafe { sys::espeak_ng_SetVoiceByName(name.as_ptr()) };
            if status != sys::espeak_ng_STATUS_ENS_OK
                && let Some(id) = voice_for_language(&name)
            {
                // SAFETY: as above.
                status = unsafe { sys::espeak_ng_SetVoiceByName(id.as_ptr()) };
            }
            if status != sys::espeak_ng_STATUS_ENS_OK {
                self.voice = None;
                return Err(not_found(status_message(status)));
            }
            self.voice = Some(voice.to_owned());
            self.rate_wpm = None; // a voice change resets the rate
        }
        if self.rate_wpm != Some(rate_wpm) {
            let wpm = rate_wpm.clamp(sys::espeakRATE_MINIMUM, sys::espeakRATE_MAXIMUM);
            // SAFETY: plain C call on the initialised engine.
            let status = unsafe {
                sys::espeak_ng_SetParameter(sys::espeak_PARAMETER_espeakRATE, wpm as c_int, 0)
            };
            self.check(status)?;
            self.rate_wpm = Some(rate_wpm);
        }
        if text.is_empty() {
            return Ok(Pcm {
                samples: Vec::new(),
                sample_rate: self.sample_rate,
            });
        }
        let text = CString::new(text).map_err(|e| TtsError::InvalidText {
            index: e.nul_position(),
        })?;
        SAMPLES.with(|s| s.borrow_mut().clear());
        // SAFETY: `text` is NUL-terminated and outlives the call, which in synchronous mode
        // returns only after the last callback.
        let status = unsafe {
            sys::espeak_ng_Synthesize(
                text.as_ptr().cast(),
                text.as_bytes_with_nul().len(),
                0,
                sys::espeak_POSITION_TYPE_POS_CHARACTER,
                0,
                sys::espeakCHARS_UTF8,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let samples = SAMPLES.with(|s| std::mem::take(&mut *s.borrow_mut()));
        self.check(status)?;
        Ok(Pcm {
            samples,
            sample_rate: self.sample_rate,
        })
    }

    fn check(&self, status: sys::espeak_ng_STATUS) -> Result<(), TtsError> {
        if status == sys::espeak_ng_STATUS_ENS_OK {
            return Ok(());
        }
        Err(TtsError::Synthesis {
            status,
            message: status_message(status),
        })
    }
}

/// Names like "en-gb" are languages, not voice names (the British voice is called "en"):
/// the identifier of espeak-ng's best voice for that language, skipping MBROLA voices, which
/// need a separate synthesiser.
fn voice_for_language(language: &CStr) -> Option<CString> {
    // SAFETY: an all-zero espeak_VOICE is "no constraint" for every field.
    let mut spec: sys::espeak_VOICE = unsafe { std::mem::zeroed() };
    spec.languages = language.as_ptr();
    // SAFETY: `spec` and `language` outlive the call; the result is a NULL-terminated array
    // owned by espeak-ng, valid until the next ListVoices call on this (the only) thread.
    let list = unsafe { sys::espeak_ListVoices(&mut spec) };
    if list.is_null() {
        return None;
    }
    let wanted = language.to_string_lossy().to_ascii_lowercase();
    for i in 0.. {
        // SAFETY: indices up to and including the NULL terminator are valid.
        let v = unsafe { *list.add(i) };
        if v.is_null() {
            break;
        }
        // SAFETY: entries are valid voices; `languages` is a list of (priority byte,
        // NUL-terminated name) pairs, the first being the voice's main language.
        let (id, lang) = unsafe {
            let v = &*v;
            if v.identifier.is_null() || v.languages.is_null() {
                continue;
            }
            (
                CStr::from_ptr(v.identifier),
                CStr::from_ptr(v.languages.add(1)),
            )
        };
        if lang.to_string_lossy().eq_ignore_ascii_case(&wanted)
            && !id.to_bytes().starts_with(b"mb/")
        {
            return Some(id.to_owned());
        }
    }
    None
}

unsafe extern "C" fn synth_callback(
    wav: *mut c_short,
    n: c_int,
    _events: *mut sys::espeak_EVENT,
) -> c_int {
    if let Ok(n) = usize::try_from(n)
        && n > 0
        && !wav.is_null()
    {
        // SAFETY: espeak-ng passes `n` valid samples at `wav` for the duration of the call.
        let chunk = unsafe { std::slice::from_raw_parts(wav, n) };
        SAMPLES.with(|s| s.borrow_mut().extend_from_slice(chunk));
    }
    0 // continue synthesis
}

fn status_message(status: sys::espeak_ng_STATUS) -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: espeak-ng writes at most `len` bytes, NUL-terminated, into `buf`.
    unsafe {
        sys::espeak_ng_GetStatusCodeMessage(status, buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}
