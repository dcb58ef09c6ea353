//! Import a CTranslate2 (faster-whisper) Whisper model directory as a whisper.cpp ggml file.
//!
//! This is the offline path to a local STT model: faster-whisper directories ship in Python
//! wheels, ggml files do not. The format facts and mapping rules are those of
//! `design/whisper-ct2-to-ggml.md`; the output is byte-for-byte the layout of the reference
//! converter (`tools/whisper/ct2_to_ggml.py`), with identical tensor values except the
//! recomputed encoder sinusoids and mel filters, which may differ in the last bit.
//!
//! The input is indexed first and each output tensor is then read, converted and written on
//! its own, so memory stays at one tensor rather than two copies of the model. The output is
//! written to `OUT.part` and renamed into place at the end: a file at `out` is always complete.
//!
//! Not supported: quantised (int8) CTranslate2 models, spec revisions other than 3.

mod reader;
mod tables;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::ggml::{self, TensorType, WhisperHparams};
use reader::{Ct2Model, Dtype, Var};

/// What an import produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportReport {
    pub out: PathBuf,
    pub hparams: WhisperHparams,
    pub tensors: usize,
    pub vocab_tokens: usize,
    pub bytes_written: u64,
    /// max |stored f16 encoder position table − exact sinusoids|; ≈ 3e-4 for tiny.en.
    pub encoder_pos_max_diff: f32,
    /// Whether the exact sinusoids replaced the stored table (only when they agree to 2e-3,
    /// i.e. the model really uses Whisper's standard table).
    pub exact_sinusoids: bool,
}

/// Why an import failed. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{path}: missing (a CTranslate2 Whisper directory has model.bin and tokenizer.json)")]
    MissingFile { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: unsupported CTranslate2 binary version {version} (supported: 4 to 6)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path}: unsupported model spec {spec:?} revision {revision} (expected WhisperSpec revision 3)"
    )]
    UnsupportedSpec {
        path: PathBuf,
        spec: String,
        revision: u32,
    },
    #[error("{path}: malformed at byte {offset}: {what}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("{path}: variable {name:?} is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: variable {name:?} has unsupported type {dtype}")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: variable {name:?} has shape {found:?}, expected {expected:?}")]
    UnexpectedShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: variable {name:?} has shape {found:?}, expected rank {expected}")]
    UnexpectedRank {
        path: PathBuf,
        name: String,
        expected: usize,
        found: Vec<usize>,
    },
    #[error("{path}: variable {name:?}: {what}")]
    UnexpectedValue {
        path: PathBuf,
        name: String,
        what: &'static str,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {what}")]
    Tokenizer { path: PathBuf, what: &'static str },
    #[error("{path}: token {id} ({token:?}) has a character outside GPT-2's byte table")]
    UnmappableToken {
        path: PathBuf,
        id: usize,
        token: String,
    },
}

/// Converts the CTranslate2 Whisper model in `ct2_dir` (`model.bin`, `tokenizer.json`) to a
/// whisper.cpp ggml file at `out`, replacing any file there.
pub fn import_ct2(ct2_dir: &Path, out: &Path) -> Result<ImportReport, ImportError> {
    let model_path = ct2_dir.join("model.bin");
    let tokenizer_path = ct2_dir.join("tokenizer.json");
    for p in [&model_path, &tokenizer_path] {
        if !p.is_file() {
            return Err(ImportError::MissingFile { path: p.clone() });
        }
    }

    let mut model = Ct2Model::open(&model_path)?;
    if model.spec != "WhisperSpec" || model.revision != 3 {
        return Err(ImportError::UnsupportedSpec {
            path: model_path,
            spec: model.spec.clone(),
            revision: model.revision,
        });
    }
    let hparams = hparams(&mut model)?;
    let vocab = read_vocab(&tokenizer_path)?;
    let (plan, pos_diff, exact) = plan_tensors(&mut model, &hparams)?;

    let tmp = part_path(out);
    let result = write_ggml(&mut model, &hparams, &vocab, &plan, &tmp);
    let bytes_written = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, out).map_err(|source| ImportError::Write {
        path: out.to_owned(),
        source,
    })?;
    tracing::info!(out = %out.display(), %hparams, tensors = plan.len(), bytes_written, "imported CTranslate2 whisper model");
    Ok(ImportReport {
        out: out.to_owned(),
        hparams,
        tensors: plan.len(),
        vocab_tokens: vocab.len(),
        bytes_written,
        encoder_pos_max_diff: pos_diff,
        exact_sinusoids: exact,
    })
}

impl ImportError {
    fn open(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            ImportError::MissingFile {
                path: path.to_owned(),
            }
        } else {
            ImportError::read(path, source)
        }
    }

    fn read(path: &Path, source: io::Error) -> Self {
        ImportError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

/// Sample rate and FFT size of Whisper's front end, fixed by the model family.
const SAMPLE_RATE: u32 = 16000;
const N_FFT: usize = 400;
/// A faster-whisper model whose stored encoder table strays further than this from the exact
/// sinusoids is not using Whisper's standard table: keep its own.
const SINUSOID_TOLERANCE: f32 = 2e-3;

/// One tensor to write: its ggml name, row-major shape, stored type and where values come from.
struct Planned {
    name: String,
    shape: Vec<usize>,
    ty: TensorType,
    src: Source,
}

enum Source {
    /// Elements `start..start + shape.product()` of a CTranslate2 variable.
    Var {
        name: String,
        start: usize,
    },
    Computed(Vec<f32>),
}

fn hparams(m: &mut Ct2Model) -> Result<WhisperHparams, ImportError> {
    let dims2 = |m: &Ct2Model, name: &str| -> Result<(usize, usize), ImportError> {
        let v = m.var(name)?;
        match v.dims[..] {
            [a, b] => Ok((a, b)),
            _ => Err(rank_err(m, name, 2, &v.dims)),
        }
    };
    let (n_vocab, n_text_state) = dims2(m, "decoder/embeddings/weight")?;
    let (n_audio_ctx, n_audio_state) = dims2(m, "encoder/position_encodings/encodings")?;
    let (n_text_ctx, _) = dims2(m, "decoder/position_encodings/encodings")?;
    let conv1 = m.var("encoder/conv1/weight")?;
    let [_, n_mels, _] = conv1.dims[..] else {
        return Err(rank_err(m, "encoder/conv1/weight", 3, &conv1.dims));
    };
    let n_audio_layer = count_layers(m, "encoder/");
    let n_text_layer = count_layers(m, "decoder/");
    let n_audio_head = m.scalar_int("encoder/num_heads")?;
    let n_text_head = m.scalar_int("decoder/num_heads")?;
    let i = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let hp = WhisperHparams {
        n_vocab: i(n_vocab),
        n_audio_ctx: i(n_audio_ctx),
        n_audio_state: i(n_audio_state),
        n_audio_head: i32::try_from(n_audio_head).unwrap_or(0),
        n_audio_layer: i(n_audio_layer),
        n_text_ctx: i(n_text_ctx),
        n_text_state: i(n_text_state),
        n_text_head: i32::try_from(n_text_head).unwrap_or(0),
        n_text_layer: i(n_text_layer),
        n_mels: i(n_mels),
        ftype: 1,
    };
    if n_audio_layer == 0 || n_text_layer == 0 || hp.n_audio_head <= 0 || hp.n_text_head <= 0 {
        return Err(ImportError::UnexpectedValue {
            path: m.path.clone(),
            name: "encoder|decoder layers and num_heads".into(),
            what: "no layers or no attention heads",
        });
    }
    Ok(hp)
}

fn rank_err(m: &Ct2Model, name: &str, expected: usize, found: &[usize]) -> ImportError {
    ImportError::UnexpectedRank {
        path: m.path.clone(),
        name: name.to_owned(),
        expected,
        found: found.to_vec(),
    }
}

/// Number of `PREFIXlayer_N/` groups; gaps surface later as a missing variable.
fn count_layers(m: &Ct2Model, prefix: &str) -> usize {
    let mut layers = std::collections::BTreeSet::new();
    for name in m.names() {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(layer) = rest
            .split('/')
            .next()
            .and_then(|s| s.strip_prefix("layer_"))
        else {
            continue;
        };
        if let Ok(n) = layer.parse::<usize>() {
            layers.insert(n);
        }
    }
    layers.len()
}

/// The output tensors in whisper.cpp's (and the reference converter's) order, shapes checked.
fn plan_tensors(
    m: &mut Ct2Model,
    hp: &WhisperHparams,
) -> Result<(Vec<Planned>, f32, bool), ImportError> {
    let a = hp.n_audio_state as usize;
    let t = hp.n_text_state as usize;
    let mut p = Planner { m, out: Vec::new() };

    // Encoder position table: Whisper's exact sinusoids, which the f16 copy only approximates.
    let n_ctx = hp.n_audio_ctx as usize;
    let pe_name = "encoder/position_encodings/encodings";
    let stored = p.m.read_f32(pe_name, 0, n_ctx * a)?;
    let exact = tables::sinusoids(n_ctx, a);
    let diff = stored
        .iter()
        .zip(&exact)
        .map(|(s, e)| (s - e).abs())
        .fold(0f32, f32::max);
    let use_exact = diff < SINUSOID_TOLERANCE;
    let pe = if use_exact { exact } else { stored };
    p.computed("encoder.positional_embedding", &[n_ctx, a], pe);

    let n_mels = hp.n_mels as usize;
    p.var(
        "encoder.conv1.weight",
        "encoder/conv1/weight",
        &[a, n_mels, 3],
        TensorType::F16,
    )?;
    p.conv_bias("encoder.conv1.bias", "encoder/conv1/bias", a)?;
    p.var(
        "encoder.conv2.weight",
        "encoder/conv2/weight",
        &[a, a, 3],
        TensorType::F16,
    )?;
    p.conv_bias("encoder.conv2.bias", "encoder/conv2/bias", a)?;
    for i in 0..hp.n_audio_layer {
        let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        p.layer_norm(
            &format!("{dst}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
            a,
        )?;
        p.fused(
            &format!("{dst}.attn"),
            &format!("{src}/self_attention/linear_0"),
            a,
            &["query", "key", "value"],
        )?;
        p.linear(
            &format!("{dst}.attn.out"),
            &format!("{src}/self_attention/linear_1"),
            a,
            a,
        )?;
        p.ffn(&src, &dst, a)?;
    }
    p.layer_norm("encoder.ln_post", "encoder/layer_norm", a)?;

    let n_text_ctx = hp.n_text_ctx as usize;
    p.var(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        &[n_text_ctx, t],
        TensorType::F32,
    )?;
    let n_vocab = hp.n_vocab as usize;
    p.var(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
        &[n_vocab, t],
        TensorType::F16,
    )?;
    for i in 0..hp.n_text_layer {
        let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        p.layer_norm(
            &format!("{dst}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
            t,
        )?;
        p.fused(
            &format!("{dst}.attn"),
            &format!("{src}/self_attention/linear_0"),
            t,
            &["query", "key", "value"],
        )?;
        p.linear(
            &format!("{dst}.attn.out"),
            &format!("{src}/self_attention/linear_1"),
            t,
            t,
        )?;
        p.layer_norm(
            &format!("{dst}.cross_attn_ln"),
            &format!("{src}/attention/layer_norm"),
            t,
        )?;
        p.linear(
            &format!("{dst}.cross_attn.query"),
            &format!("{src}/attention/linear_0"),
            t,
            t,
        )?;
        p.fused(
            &format!("{dst}.cross_attn"),
            &format!("{src}/attention/linear_1"),
            t,
            &["key", "value"],
        )?;
        p.linear(
            &format!("{dst}.cross_attn.out"),
            &format!("{src}/attention/linear_2"),
            t,
            t,
        )?;
        p.ffn(&src, &dst, t)?;
    }
    p.layer_norm("decoder.ln", "decoder/layer_norm", t)?;
    Ok((p.out, diff, use_exact))
}

struct Planner<'a> {
    m: &'a mut Ct2Model,
    out: Vec<Planned>,
}

impl Planner<'_> {
    fn computed(&mut self, name: &str, shape: &[usize], data: Vec<f32>) {
        self.out.push(Planned {
            name: name.to_owned(),
            shape: shape.to_vec(),
            ty: TensorType::F32,
            src: Source::Computed(data),
        });
    }

    fn var(
        &mut self,
        dst: &str,
        src: &str,
        shape: &[usize],
        ty: TensorType,
    ) -> Result<(), ImportError> {
        self.var_at(dst, src, shape, shape, 0, ty)
    }

    /// `dst` gets elements `start..` of `src` (which must have `src_shape`), shaped `shape`.
    fn var_at(
        &mut self,
        dst: &str,
        src: &str,
        src_shape: &[usize],
        shape: &[usize],
        start: usize,
        ty: TensorType,
    ) -> Result<(), ImportError> {
        let v = self.m.var_shaped(src, src_shape)?;
        check_float(&self.m.path, src, v)?;
        self.out.push(Planned {
            name: dst.to_owned(),
            shape: shape.to_vec(),
            ty,
            src: Source::Var {
                name: src.to_owned(),
                start,
            },
        });
        Ok(())
    }

    /// Conv biases are stored as [n, 1] in ggml so they broadcast over time.
    fn conv_bias(&mut self, dst: &str, src: &str, n: usize) -> Result<(), ImportError> {
        self.var_at(dst, src, &[n], &[n, 1], 0, TensorType::F32)
    }

    fn layer_norm(&mut self, dst: &str, src: &str, n: usize) -> Result<(), ImportError> {
        self.var(
            &format!("{dst}.weight"),
            &format!("{src}/gamma"),
            &[n],
            TensorType::F32,
        )?;
        self.var(
            &format!("{dst}.bias"),
            &format!("{src}/beta"),
            &[n],
            TensorType::F32,
        )
    }

    fn linear(
        &mut self,
        dst: &str,
        src: &str,
        n_out: usize,
        n_in: usize,
    ) -> Result<(), ImportError> {
        self.var(
            &format!("{dst}.weight"),
            &format!("{src}/weight"),
            &[n_out, n_in],
            TensorType::F16,
        )?;
        self.var(
            &format!("{dst}.bias"),
            &format!("{src}/bias"),
            &[n_out],
            TensorType::F32,
        )
    }

    fn ffn(&mut self, src: &str, dst: &str, n: usize) -> Result<(), ImportError> {
        self.layer_norm(
            &format!("{dst}.mlp_ln"),
            &format!("{src}/ffn/layer_norm"),
            n,
        )?;
        let n_ff = self
            .m
            .var(&format!("{src}/ffn/linear_0/weight"))?
            .dims
            .first()
            .copied()
            .unwrap_or(0);
        self.linear(
            &format!("{dst}.mlp.0"),
            &format!("{src}/ffn/linear_0"),
            n_ff,
            n,
        )?;
        self.linear(
            &format!("{dst}.mlp.2"),
            &format!("{src}/ffn/linear_1"),
            n,
            n_ff,
        )
    }

    /// Splits a fused projection (rows = parts × n) into one linear per part. Whisper's key
    /// projections have no bias; CTranslate2 fused in zeros, which are checked and dropped.
    fn fused(&mut self, dst: &str, src: &str, n: usize, parts: &[&str]) -> Result<(), ImportError> {
        let k = parts.len();
        let (w, b) = (format!("{src}/weight"), format!("{src}/bias"));
        for (j, part) in parts.iter().enumerate() {
            self.var_at(
                &format!("{dst}.{part}.weight"),
                &w,
                &[k * n, n],
                &[n, n],
                j * n * n,
                TensorType::F16,
            )?;
            if *part == "key" {
                let bias = self.m.read_f32(&b, j * n, n)?;
                if bias.iter().any(|&x| x != 0.0) {
                    return Err(ImportError::UnexpectedValue {
                        path: self.m.path.clone(),
                        name: b,
                        what: "key projection bias is not zero (Whisper has none)",
                    });
                }
            } else {
                self.var_at(
                    &format!("{dst}.{part}.bias"),
                    &b,
                    &[k * n],
                    &[n],
                    j * n,
                    TensorType::F32,
                )?;
            }
        }
        Ok(())
    }
}

fn check_float(path: &Path, name: &str, v: &Var) -> Result<(), ImportError> {
    match v.dtype {
        Dtype::F32 | Dtype::F16 | Dtype::Bf16 => Ok(()),
        other => Err(ImportError::UnsupportedDtype {
            path: path.to_owned(),
            name: name.to_owned(),
            dtype: format!("{other:?} (quantised CTranslate2 models are not supported)"),
        }),
    }
}

/// The 50,257 byte-level BPE tokens of `tokenizer.json` (`model.vocab`, ids 0..n) as raw
/// bytes. whisper.cpp synthesises the remaining special and timestamp tokens itself.
fn read_vocab(path: &Path) -> Result<Vec<Vec<u8>>, ImportError> {
    let text = fs::read(path).map_err(|e| ImportError::open(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| ImportError::Json {
            path: path.to_owned(),
            source,
        })?;
    let bad = |what| ImportError::Tokenizer {
        path: path.to_owned(),
        what,
    };
    let map = json
        .pointer("/model/vocab")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no model.vocab object"))?;
    let mut by_id: Vec<Option<&str>> = vec![None; map.len()];
    for (token, id) in map {
        let id = id
            .as_u64()
            .ok_or_else(|| bad("model.vocab has a non-integer id"))?;
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| by_id.get_mut(i))
            .ok_or_else(|| bad("model.vocab ids are not 0..n"))?;
        if slot.replace(token).is_some() {
            return Err(bad("model.vocab has a duplicate id"));
        }
    }
    let u2b = tables::unicode_to_byte();
    by_id
        .into_iter()
        .enumerate()
        .map(|(id, token)| {
            // No gaps: n distinct ids all below n.
            let token = token.unwrap_or_default();
            token
                .chars()
                .map(|c| u2b.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| ImportError::UnmappableToken {
                    path: path.to_owned(),
                    id,
                    token: token.to_owned(),
                })
        })
        .collect()
}

fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    out.with_file_name(name)
}

/// Streams the ggml file; returns its size.
fn write_ggml(
    m: &mut Ct2Model,
    hp: &WhisperHparams,
    vocab: &[Vec<u8>],
    plan: &[Planned],
    path: &Path,
) -> Result<u64, ImportError> {
    let file = File::create(path).map_err(|source| ImportError::Write {
        path: path.to_owned(),
        source,
    })?;
    let mut w = CountingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        written: 0,
    };
    let werr = |source| ImportError::Write {
        path: path.to_owned(),
        source,
    };

    w.write_all(&ggml::MAGIC.to_le_bytes()).map_err(werr)?;
    for v in hp.to_array() {
        w.write_all(&v.to_le_bytes()).map_err(werr)?;
    }
    let n_mels = hp.n_mels as usize;
    let n_bins = N_FFT / 2 + 1;
    w.write_all(&(n_mels as i32).to_le_bytes()).map_err(werr)?;
    w.write_all(&(n_bins as i32).to_le_bytes()).map_err(werr)?;
    write_f32s(&mut w, &tables::mel_filters(SAMPLE_RATE, N_FFT, n_mels)).map_err(werr)?;
    w.write_all(&(vocab.len() as i32).to_le_bytes())
        .map_err(werr)?;
    for token in vocab {
        w.write_all(&(token.len() as i32).to_le_bytes())
            .map_err(werr)?;
        w.write_all(token).map_err(werr)?;
    }

    for t in plan {
        ggml::write_tensor_header(&mut w, &t.name, &t.shape, t.ty).map_err(werr)?;
        let n: usize = t.shape.iter().product();
        match &t.src {
            Source::Computed(data) => write_f32s(&mut w, data).map_err(werr)?,
            Source::Var { name, start } => copy_var(m, name, *start, n, t.ty, &mut w, path)?,
        }
    }
    w.flush().map_err(werr)?;
    let written = w.written;
    w.inner
        .into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)?;
    Ok(written)
}

/// Copies `n` elements of a variable converted to `ty`, in bounded chunks. f16 → f16 is a
/// plain byte copy (what the reference's f16 → f32 → f16 round trip amounts to).
fn copy_var(
    m: &mut Ct2Model,
    name: &str,
    start: usize,
    n: usize,
    ty: TensorType,
    w: &mut impl Write,
    out: &Path,
) -> Result<(), ImportError> {
    const CHUNK: usize = 1 << 20;
    let v = m.var(name)?.clone();
    let werr = |source| ImportError::Write {
        path: out.to_owned(),
        source,
    };
    let mut done = 0;
    while done < n {
        let len = CHUNK.min(n - done);
        if v.dtype == Dtype::F16 && ty == TensorType::F16 {
            w.write_all(&m.read_bytes(&v, start + done, len)?)
                .map_err(werr)?;
        } else {
            let vals = m.read_f32(name, start + done, len)?;
            match ty {
                TensorType::F16 => {
                    // Round to nearest even, as numpy's astype(float16).
                    let bytes: Vec<u8> = vals
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect();
                    w.write_all(&bytes).map_err(werr)?;
                }
                _ => write_f32s(w, &vals).map_err(werr)?,
            }
        }
        done += len;
    }
    Ok(())
}

fn write_f32s(w: &mut impl Write, data: &[f32]) -> io::Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write_all(&bytes)
}

struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
