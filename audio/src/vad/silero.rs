//! [`SileroVad`]: the Silero VAD neural network (ONNX) behind the [`Vad`] trait, run by ONNX
//! Runtime loaded from a path at run time. The details are on [`SileroVad`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use super::{Vad, VadError, VadKind, check_frame, check_rate};
use crate::Framer;

/// Where the Silero model and the ONNX Runtime library are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SileroPaths {
    /// `silero_vad.onnx`.
    pub model: PathBuf,
    /// ONNX Runtime's shared library (`libonnxruntime.so`).
    pub onnxruntime: PathBuf,
}

impl SileroPaths {
    /// The file names `scripts/vad-models.sh` writes, under `<cache>/vad/`.
    pub const MODEL_FILE: &'static str = "silero_vad.onnx";
    /// See [`SileroPaths::MODEL_FILE`].
    pub const RUNTIME_FILE: &'static str = "libonnxruntime.so";

    /// Explicit paths.
    pub fn new(model: impl Into<PathBuf>, onnxruntime: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            onnxruntime: onnxruntime.into(),
        }
    }

    /// The paths `scripts/vad-models.sh` fills under a cache root (`$AGENT_CACHE_DIR`, by default
    /// `~/.cache/agent`): `<root>/vad/silero_vad.onnx` and `<root>/vad/libonnxruntime.so`.
    pub fn in_cache(root: impl AsRef<Path>) -> Self {
        let dir = root.as_ref().join("vad");
        Self::new(dir.join(Self::MODEL_FILE), dir.join(Self::RUNTIME_FILE))
    }
}

/// Silero VAD v5 for 8 or 16 kHz frames.
///
/// The model is the `silero_vad.onnx` shipped in the `silero-vad` PyPI wheel (6.x, the v5
/// architecture), and the runtime is `libonnxruntime.so` from the `onnxruntime` wheel;
/// `scripts/vad-models.sh` puts both in the cache. Nothing is downloaded at build or run time: the
/// `ort` crate is built with `load-dynamic` only and `dlopen`s the library named in
/// [`SileroPaths::onnxruntime`].
///
/// # The model's contract (read from the shipped file, checked at load)
///
/// Inputs `input: f32[1, context + window]`, `state: f32[2, 1, 128]`, `sr: i64[]`; outputs
/// `output: f32[1, 1]` (speech probability) and `stateN` (the next state). The window is 256
/// samples at 8 kHz and 512 at 16 kHz (32 ms either way), and every window is prefixed by the
/// last 32 / 64 samples of the previous one — the "context" the Python wrapper keeps. The model
/// is natively 8 kHz-capable, so telephony audio is not resampled.
///
/// Pipeline frames (10/20/30 ms) are re-cut into 32 ms windows exactly as in
/// [`EarshotVad`](super::EarshotVad): a frame's score is the highest of the windows completed
/// during it, and a frame that completes none repeats the last score.
///
/// # One runtime per process, one session pool per model
///
/// ONNX Runtime allows one environment per process, and `ort` loads one library. The first
/// [`SileroVad`] fixes the library path; a later one naming a different library fails with
/// [`VadError::RuntimeMismatch`] instead of silently running the first.
///
/// A session costs ~10 MB, so detectors built from the same model file share a pool of one
/// session per core (the model's recurrent state travels in and out of every run, so a session
/// holds nothing of a call); each detector owns only its state, context and window buffers.
///
/// # Allocation
///
/// Our buffers are preallocated, but `ort` and ONNX Runtime allocate small run bookkeeping
/// inside every inference (~7 Rust-side allocations per 32 ms window, counted in
/// `tests/hot_path_alloc.rs`). The other detectors allocate nothing per frame.
pub struct SileroVad {
    rate: u32,
    threshold: f32,
    model: Arc<SharedModel>,
    /// The pool session this detector tries first (spreads detectors over the pool).
    slot: usize,
    window: usize,
    context: usize,
    /// `context + window` samples as f32 in `[-1, 1]`; the head is the previous window's tail.
    input: Vec<f32>,
    state: Vec<f32>,
    sr: [i64; 1],
    windows: Framer<i16>,
    last_score: f32,
}

impl SileroVad {
    /// Silero's own default decision threshold.
    pub const DEFAULT_THRESHOLD: f32 = 0.5;

    /// A detector for frames at `sample_rate` (8000 or 16000) with the default threshold.
    pub fn new(sample_rate: u32, paths: &SileroPaths) -> Result<Self, VadError> {
        Self::with_threshold(sample_rate, paths, Self::DEFAULT_THRESHOLD)
    }

    /// A detector with a custom threshold in `0..=1`.
    ///
    /// The first detector for a model file loads it into a small pool of ONNX Runtime sessions
    /// that later detectors share (see [`SileroVad`]); each detector keeps its own
    /// state. Fails with [`VadError::ModelMissing`] / [`VadError::RuntimeMissing`] naming the
    /// path when a file is absent.
    pub fn with_threshold(
        sample_rate: u32,
        paths: &SileroPaths,
        threshold: f32,
    ) -> Result<Self, VadError> {
        check_rate(sample_rate)?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(VadError::BadThreshold(threshold));
        }
        let model = SharedModel::get(paths)?;
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % model.sessions.len();
        let (window, context) = if sample_rate == 8000 {
            (256, 32)
        } else {
            (512, 64)
        };
        Ok(Self {
            rate: sample_rate,
            threshold,
            model,
            slot,
            window,
            context,
            input: vec![0.0; context + window],
            state: vec![0.0; STATE_LEN],
            sr: [i64::from(sample_rate)],
            windows: Framer::new(window),
            last_score: 0.0,
        })
    }

    /// Runs the model on `self.input` (context already in place) and keeps the new state.
    fn infer(&mut self) -> Result<f32, VadError> {
        let run_err = |e: ort::Error| VadError::Inference(Box::new(e));
        let input = TensorRef::from_array_view(([1usize, self.input.len()], &self.input[..]))
            .map_err(run_err)?;
        let state = TensorRef::from_array_view(([2usize, 1, STATE_WIDTH], &self.state[..]))
            .map_err(run_err)?;
        let sr = TensorRef::from_array_view(((), &self.sr[..])).map_err(run_err)?;
        let mut values: [Option<SessionInputValue<'_>>; 3] =
            [Some(input.into()), Some(state.into()), Some(sr.into())];
        let model = &*self.model;
        let inputs = model.order.map(|slot| values[slot as usize].take());
        let [Some(a), Some(b), Some(c)] = inputs else {
            // `layout` only accepts a permutation, so each slot is taken once.
            return Err(VadError::Inference(
                "input slots are not a permutation".into(),
            ));
        };
        let mut session = model.lock(self.slot);
        let outputs = session.run([a, b, c]).map_err(run_err)?;
        let (_, prob) = outputs[model.out_prob]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        let (_, next) = outputs[model.out_state]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        if next.len() != STATE_LEN || prob.is_empty() {
            return Err(VadError::Inference(
                format!(
                    "unexpected output sizes: probability {}, state {}",
                    prob.len(),
                    next.len()
                )
                .into(),
            ));
        }
        self.state.copy_from_slice(next);
        let p = prob[0];
        drop(outputs);
        drop(session);
        Ok(p)
    }
}

impl Vad for SileroVad {
    fn kind(&self) -> VadKind {
        VadKind::Silero
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn speech_probability(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        check_frame(frame.len(), self.rate)?;
        self.windows.push(frame);
        let mut best: Option<f32> = None;
        while let Some(window) = self.windows.next_frame() {
            // New input = [tail of the previous input | this window].
            self.input.copy_within(self.window.., 0);
            for (dst, &s) in self.input[self.context..].iter_mut().zip(window) {
                *dst = f32::from(s) / 32768.0;
            }
            let score = self.infer()?;
            best = Some(best.map_or(score, |b| b.max(score)));
        }
        if let Some(score) = best {
            self.last_score = score.clamp(0.0, 1.0);
        }
        Ok(self.last_score)
    }

    fn threshold(&self) -> f32 {
        self.threshold
    }

    fn reset(&mut self) {
        self.input.fill(0.0);
        self.state.fill(0.0);
        self.windows.clear();
        self.last_score = 0.0;
    }
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("rate", &self.rate)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

const STATE_WIDTH: usize = 128;
const STATE_LEN: usize = 2 * STATE_WIDTH;

/// Our three input tensors, in the order we create them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input = 0,
    State = 1,
    Rate = 2,
}

/// Maps the model's inputs and outputs by name; `None` when it is not a Silero v5 model.
fn layout(session: &Session) -> Option<([Slot; 3], usize, usize)> {
    let inputs = session.inputs();
    if inputs.len() != 3 {
        return None;
    }
    let mut order = [Slot::Input; 3];
    for (i, outlet) in inputs.iter().enumerate() {
        order[i] = match outlet.name() {
            "input" => Slot::Input,
            "state" => Slot::State,
            "sr" => Slot::Rate,
            _ => return None,
        };
    }
    let is_permutation = [Slot::Input, Slot::State, Slot::Rate]
        .iter()
        .all(|s| order.contains(s));
    let outputs = session.outputs();
    let prob = outputs.iter().position(|o| o.name() == "output")?;
    let state = outputs.iter().position(|o| o.name() == "stateN")?;
    is_permutation.then_some((order, prob, state))
}

/// One loaded model file: a small pool of sessions shared by every detector built from it.
///
/// A session costs ~10 MB (weights plus ONNX Runtime's arenas), the per-call state ~3 KB, and
/// the model keeps no state between runs (it is passed in and out), so calls share sessions
/// instead of owning one each: 100 calls would otherwise hold ~1 GB. One session per core keeps
/// inference parallel; an inference holds its session for ~0.1 ms every 32 ms per call.
struct SharedModel {
    sessions: Vec<Mutex<Session>>,
    /// Model input position → which of our tensors goes there.
    order: [Slot; 3],
    /// Output positions of the probability and the next state.
    out_prob: usize,
    out_state: usize,
}

/// Live models by canonical path; entries die with their last detector.
static MODELS: Mutex<Vec<(PathBuf, Weak<SharedModel>)>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

impl SharedModel {
    /// The shared model for `paths`, loading it (and the runtime) on first use.
    fn get(paths: &SileroPaths) -> Result<Arc<Self>, VadError> {
        if !paths.model.is_file() {
            return Err(VadError::ModelMissing {
                path: paths.model.clone(),
            });
        }
        let env = runtime(&paths.onnxruntime)?;
        let key = paths
            .model
            .canonicalize()
            .unwrap_or_else(|_| paths.model.clone());
        let mut models = MODELS.lock().unwrap_or_else(PoisonError::into_inner);
        models.retain(|(_, m)| m.strong_count() > 0);
        if let Some(model) = models
            .iter()
            .find(|(p, _)| *p == key)
            .and_then(|(_, m)| m.upgrade())
        {
            return Ok(model);
        }
        let pool = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let sessions = (0..pool)
            .map(|_| load_session(&env, &paths.model).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let first = sessions[0].lock().unwrap_or_else(PoisonError::into_inner);
        let (order, out_prob, out_state) = layout(&first).ok_or_else(|| {
            let names = |outlets: &[ort::value::Outlet]| {
                outlets
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            VadError::UnsupportedModel {
                path: paths.model.clone(),
                found: format!(
                    "inputs [{}], outputs [{}]",
                    names(first.inputs()),
                    names(first.outputs())
                ),
            }
        })?;
        drop(first);
        let model = Arc::new(Self {
            sessions,
            order,
            out_prob,
            out_state,
        });
        models.push((key, Arc::downgrade(&model)));
        Ok(model)
    }

    /// A free session, trying `slot` first; waits for `slot` when all are busy.
    fn lock(&self, slot: usize) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        for k in 0..n {
            match self.sessions[(slot + k) % n].try_lock() {
                Ok(guard) => return guard,
                // A panic in another run leaves the session itself intact.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[slot % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A single-threaded session: calls run in parallel with each other, not inside one window.
fn load_session(env: &Environment, model: &Path) -> Result<Session, VadError> {
    let model_err = |e: ort::Error| VadError::Model {
        path: model.to_owned(),
        source: Box::new(e),
    };
    // Builder errors carry the builder back; only the message matters here.
    let builder_err = |e: ort::Error<ort::session::builder::SessionBuilder>| model_err(e.into());
    Session::builder(env)
        .map_err(model_err)?
        .with_intra_threads(1)
        .map_err(builder_err)?
        .with_inter_threads(1)
        .map_err(builder_err)?
        .commit_from_file(model)
        .map_err(model_err)
}

/// The process's ONNX Runtime: the library at the first path asked for, and its environment.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// Loads ONNX Runtime from `path` on first use; later calls must name the same library.
fn runtime(path: &Path) -> Result<Environment, VadError> {
    if !path.is_file() {
        return Err(VadError::RuntimeMissing {
            path: path.to_owned(),
        });
    }
    let wanted = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    // A panic elsewhere while holding the lock leaves the Option consistent: recover it.
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((loaded, env)) = slot.as_ref() {
        return if *loaded == wanted {
            Ok(env.clone())
        } else {
            Err(VadError::RuntimeMismatch {
                loaded: loaded.clone(),
                requested: path.to_owned(),
            })
        };
    }
    let load_err = |source: Box<dyn std::error::Error + Send + Sync>| VadError::RuntimeLoad {
        path: path.to_owned(),
        source,
    };
    let env = ort::init_from(&wanted)
        .map_err(|e| load_err(Box::new(e)))?
        .with_name("agent-vad")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_err(Box::new(e)))?;
    *slot = Some((wanted, env.clone()));
    Ok(env)
}
