//! The whisper.cpp ggml model file: what its loader reads, and a reader for the parts we need.
//!
//! Layout (little-endian): u32 magic `ggml`, 11 × i32 hyper-parameters, the mel filterbank
//! (i32 n_mel, i32 n_fft_bins, n_mel × n_fft_bins f32), the vocabulary (i32 count, then i32
//! length + bytes per token), then tensors until EOF (i32 n_dims, i32 name length, i32 type,
//! dims innermost first, name, data).
//!
//! The reader serves two purposes: [`read_header`] checks a file before handing it to
//! whisper.cpp (whose own loader only logs and returns null on a bad file), and
//! [`TensorReader`] walks the tensors so tests can compare two files value by value.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `ggml` in ASCII, read as a little-endian u32.
pub const MAGIC: u32 = 0x6767_6d6c;

/// Whisper hyper-parameters as stored in a ggml file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperHparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 1 = mostly f16 (the only kind the importer writes), 0 = all f32.
    pub ftype: i32,
}

/// Element type of a stored tensor. Quantised types exist in ggml but are not read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TensorType {
    F32,
    F16,
}

/// Everything before the tensors.
#[derive(Debug, Clone)]
pub struct GgmlHeader {
    pub hparams: WhisperHparams,
    pub n_mel: usize,
    pub n_fft_bins: usize,
    /// Row-major `n_mel × n_fft_bins`.
    pub mel_filters: Vec<f32>,
    /// Token bytes, index = token id.
    pub vocab: Vec<Vec<u8>>,
    /// Byte offset of the first tensor record.
    pub tensors_offset: u64,
}

/// One tensor record.
#[derive(Debug, Clone)]
pub struct GgmlTensor {
    pub name: String,
    pub ty: TensorType,
    /// Dimensions as written in the file: innermost (fastest-varying) first.
    pub ne: Vec<usize>,
    /// Values widened to f32.
    pub data: Vec<f32>,
}

/// A ggml file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgmlError {
    #[error("{path}: cannot read model file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a whisper.cpp ggml model (magic {found:#010x}, expected {MAGIC:#010x})")]
    BadMagic { path: PathBuf, found: u32 },
    #[error("{path}: malformed ggml model at byte {offset}: {what}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
}

/// Reads and checks the header, mel filters and vocabulary of a ggml whisper model.
pub fn read_header(path: &Path) -> Result<GgmlHeader, GgmlError> {
    let mut r = Reader::open(path)?;
    let magic = r.u32()?;
    if magic != MAGIC {
        return Err(GgmlError::BadMagic {
            path: path.to_owned(),
            found: magic,
        });
    }
    let mut hp = [0i32; 11];
    for v in &mut hp {
        *v = r.i32()?;
    }
    let hparams = WhisperHparams::from_array(hp);
    if hp[..10].iter().any(|&v| v <= 0) || !(0..=1).contains(&hparams.ftype) {
        return Err(r.malformed("hyper-parameters out of range"));
    }
    let n_mel = r.count(1024, "mel filter rows")?;
    let n_fft_bins = r.count(4096, "mel filter columns")?;
    if n_mel != hparams.n_mels as usize {
        return Err(r.malformed("mel filter rows differ from n_mels"));
    }
    let mut mel_filters = vec![0f32; n_mel * n_fft_bins];
    r.f32s(&mut mel_filters)?;
    let n_tokens = r.count(1 << 20, "vocabulary size")?;
    let mut vocab = Vec::with_capacity(n_tokens);
    for _ in 0..n_tokens {
        let len = r.count(1024, "token length")?;
        vocab.push(r.bytes(len)?);
    }
    Ok(GgmlHeader {
        hparams,
        n_mel,
        n_fft_bins,
        mel_filters,
        vocab,
        tensors_offset: r.offset,
    })
}

/// Iterates over the tensors of a ggml model, one at a time.
pub struct TensorReader {
    r: Reader,
    len: u64,
}

impl TensorReader {
    /// Opens `path` and positions after the header (see [`read_header`]).
    pub fn open(path: &Path) -> Result<Self, GgmlError> {
        let header = read_header(path)?;
        let mut r = Reader::open(path)?;
        r.seek(header.tensors_offset)?;
        let len = r.len()?;
        Ok(Self { r, len })
    }

    /// The next tensor, or `None` at end of file.
    pub fn next_tensor(&mut self) -> Result<Option<GgmlTensor>, GgmlError> {
        if self.r.offset >= self.len {
            return Ok(None);
        }
        let n_dims = self.r.count(4, "tensor rank")?;
        let name_len = self.r.count(256, "tensor name length")?;
        let ty = match self.r.i32()? {
            0 => TensorType::F32,
            1 => TensorType::F16,
            _ => return Err(self.r.malformed("unsupported tensor type")),
        };
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            ne.push(self.r.count(1 << 24, "tensor dimension")?);
        }
        let name_bytes = self.r.bytes(name_len)?;
        let name = String::from_utf8(name_bytes).map_err(|_| self.r.malformed("tensor name"))?;
        let n: usize = ne.iter().product();
        let elem = match ty {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        };
        if (n * elem) as u64 > self.len - self.r.offset {
            return Err(self.r.malformed("tensor data past end of file"));
        }
        let mut data = vec![0f32; n];
        match ty {
            TensorType::F32 => self.r.f32s(&mut data)?,
            TensorType::F16 => {
                let raw = self.r.bytes(n * 2)?;
                for (d, c) in data.iter_mut().zip(raw.chunks_exact(2)) {
                    *d = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        }
        Ok(Some(GgmlTensor { name, ty, ne, data }))
    }
}

impl WhisperHparams {
    /// In file order.
    pub fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Self {
        Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }
}

impl fmt::Display for WhisperHparams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_array())
    }
}

impl TensorType {
    /// The type code stored in the file.
    pub fn code(self) -> i32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }
}

/// Writes one tensor record header; the caller writes `ne.product() * ty.size()` data bytes next.
/// `shape` is row-major (outermost first), as in PyTorch/CTranslate2; ggml stores it reversed.
pub(crate) fn write_tensor_header(
    w: &mut impl Write,
    name: &str,
    shape: &[usize],
    ty: TensorType,
) -> io::Result<()> {
    w.write_all(&(shape.len() as i32).to_le_bytes())?;
    w.write_all(&(name.len() as i32).to_le_bytes())?;
    w.write_all(&ty.code().to_le_bytes())?;
    for &d in shape.iter().rev() {
        w.write_all(&(d as i32).to_le_bytes())?;
    }
    w.write_all(name.as_bytes())
}

/// Little-endian cursor over a file that remembers its offset for error messages.
struct Reader {
    path: PathBuf,
    inner: BufReader<File>,
    offset: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, GgmlError> {
        let file = File::open(path).map_err(|source| GgmlError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            inner: BufReader::with_capacity(1 << 16, file),
            offset: 0,
        })
    }

    fn malformed(&self, what: &'static str) -> GgmlError {
        GgmlError::Malformed {
            path: self.path.clone(),
            offset: self.offset,
            what,
        }
    }

    fn io(&self, source: io::Error) -> GgmlError {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return self.malformed("unexpected end of file");
        }
        GgmlError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn len(&self) -> Result<u64, GgmlError> {
        let meta = self.inner.get_ref().metadata().map_err(|e| self.io(e))?;
        Ok(meta.len())
    }

    fn seek(&mut self, offset: u64) -> Result<(), GgmlError> {
        self.inner
            .seek(SeekFrom::Start(offset))
            .map_err(|e| self.io(e))?;
        self.offset = offset;
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgmlError> {
        self.inner.read_exact(buf).map_err(|e| self.io(e))?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, GgmlError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn i32(&mut self) -> Result<i32, GgmlError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    /// A non-negative i32 no larger than `max`, as a count or size.
    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, GgmlError> {
        let v = self.i32()?;
        match usize::try_from(v) {
            Ok(v) if v <= max => Ok(v),
            _ => Err(self.malformed(what)),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, GgmlError> {
        let mut v = vec![0u8; n];
        self.fill(&mut v)?;
        Ok(v)
    }

    fn f32s(&mut self, out: &mut [f32]) -> Result<(), GgmlError> {
        let raw = self.bytes(out.len() * 4)?;
        for (d, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}
