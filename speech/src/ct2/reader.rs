//! An index over a CTranslate2 `model.bin`: names, shapes, types and byte offsets of its
//! variables, reading data only when asked, so the importer never holds the whole model.
//!
//! Format (binary versions 4–6): u32 version; string spec name; u32 spec revision; u32 variable
//! count; per variable: name, u8 rank, rank × u32 dims, u8 dtype, u32 byte count, data; then
//! u32 alias count and (alias, target) string pairs. A string is a u16 length that includes a
//! trailing NUL, then the bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::ImportError;

/// Oldest and newest `model.bin` layouts this reader understands.
pub(crate) const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;

/// Element type of a CTranslate2 variable (the u8 code in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub dims: Vec<usize>,
    pub dtype: Dtype,
    /// Absolute byte offset of the data in `model.bin`.
    pub offset: u64,
}

pub(crate) struct Ct2Model {
    pub path: PathBuf,
    pub spec: String,
    pub revision: u32,
    vars: HashMap<String, Var>,
    aliases: HashMap<String, String>,
    file: File,
}

impl Ct2Model {
    /// Reads the variable index of `path`, skipping over the data.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let file = File::open(path).map_err(|e| ImportError::open(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| ImportError::read(path, e))?
            .len();
        let mut r = Cursor {
            path,
            inner: BufReader::with_capacity(1 << 16, file),
            offset: 0,
        };
        let version = r.u32()?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(ImportError::UnsupportedVersion {
                path: path.to_owned(),
                version,
            });
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let n_vars = r.u32()?;
        let mut vars = HashMap::new();
        for _ in 0..n_vars {
            let name = r.string()?;
            let rank = r.u8()?;
            let mut dims = Vec::with_capacity(rank.into());
            for _ in 0..rank {
                dims.push(r.u32()? as usize);
            }
            let code = r.u8()?;
            let dtype = Dtype::from_code(code).ok_or_else(|| ImportError::UnsupportedDtype {
                path: path.to_owned(),
                name: name.clone(),
                dtype: format!("code {code}"),
            })?;
            let nbytes = u64::from(r.u32()?);
            let n: u64 = dims.iter().map(|&d| d as u64).product();
            if n * dtype.size() as u64 != nbytes || r.offset + nbytes > len {
                return Err(r.malformed("variable byte count does not match its shape"));
            }
            let offset = r.offset;
            r.skip(nbytes)?;
            vars.insert(
                name,
                Var {
                    dims,
                    dtype,
                    offset,
                },
            );
        }
        let mut aliases = HashMap::new();
        let n_aliases = r.u32()?;
        for _ in 0..n_aliases {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        if r.offset != len {
            return Err(r.malformed("trailing bytes after the alias table"));
        }
        let file = r.inner.into_inner();
        Ok(Self {
            path: path.to_owned(),
            spec,
            revision,
            vars,
            aliases,
            file,
        })
    }

    /// All variable names (aliases excluded).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// A variable by name, following one level of alias.
    pub fn var(&self, name: &str) -> Result<&Var, ImportError> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.vars
            .get(target)
            .ok_or_else(|| ImportError::MissingTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// A variable that must have exactly `shape`.
    pub fn var_shaped(&self, name: &str, shape: &[usize]) -> Result<&Var, ImportError> {
        let v = self.var(name)?;
        if v.dims != shape {
            return Err(ImportError::UnexpectedShape {
                path: self.path.clone(),
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: v.dims.clone(),
            });
        }
        Ok(v)
    }

    /// The integer value of a scalar variable such as `encoder/num_heads`.
    pub fn scalar_int(&mut self, name: &str) -> Result<i64, ImportError> {
        let v = self.var(name)?.clone();
        let raw = self.read_bytes(&v, 0, 1)?;
        Ok(match v.dtype {
            Dtype::I8 => i64::from(raw[0] as i8),
            Dtype::I16 => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
            Dtype::I32 => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            Dtype::F32 | Dtype::F16 | Dtype::Bf16 => {
                return Err(ImportError::UnsupportedDtype {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    dtype: format!("{:?} (expected an integer scalar)", v.dtype),
                });
            }
        })
    }

    /// Elements `start..start + n` of a float variable, widened to f32.
    pub fn read_f32(
        &mut self,
        name: &str,
        start: usize,
        n: usize,
    ) -> Result<Vec<f32>, ImportError> {
        let v = self.var(name)?.clone();
        let raw = self.read_bytes(&v, start, n)?;
        Ok(match v.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::Bf16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::I8 | Dtype::I16 | Dtype::I32 => {
                return Err(ImportError::UnsupportedDtype {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    dtype: format!(
                        "{:?} (quantised CTranslate2 models are not supported)",
                        v.dtype
                    ),
                });
            }
        })
    }

    /// Raw little-endian bytes of elements `start..start + n` of `v`.
    pub fn read_bytes(&mut self, v: &Var, start: usize, n: usize) -> Result<Vec<u8>, ImportError> {
        let size = v.dtype.size();
        let total: usize = v.dims.iter().product();
        if start + n > total {
            return Err(ImportError::Malformed {
                path: self.path.clone(),
                offset: v.offset,
                what: "read past the end of a variable",
            });
        }
        let mut buf = vec![0u8; n * size];
        self.file
            .seek(SeekFrom::Start(v.offset + (start * size) as u64))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| ImportError::read(&self.path, e))?;
        Ok(buf)
    }
}

impl Dtype {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Dtype::F32,
            1 => Dtype::I8,
            2 => Dtype::I16,
            3 => Dtype::I32,
            4 => Dtype::F16,
            5 => Dtype::Bf16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::I8 => 1,
            Dtype::I16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
        }
    }
}

struct Cursor<'a> {
    path: &'a Path,
    inner: BufReader<File>,
    offset: u64,
}

impl Cursor<'_> {
    fn malformed(&self, what: &'static str) -> ImportError {
        ImportError::Malformed {
            path: self.path.to_owned(),
            offset: self.offset,
            what,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), ImportError> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.malformed("unexpected end of file")
            } else {
                ImportError::read(self.path, e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, ImportError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16, ImportError> {
        let mut b = [0u8; 2];
        self.fill(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, ImportError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn string(&mut self) -> Result<String, ImportError> {
        let n = self.u16()?;
        let mut b = vec![0u8; n.into()];
        self.fill(&mut b)?;
        if b.pop() != Some(0) {
            return Err(self.malformed("string without its trailing NUL"));
        }
        String::from_utf8(b).map_err(|_| self.malformed("string is not UTF-8"))
    }

    fn skip(&mut self, n: u64) -> Result<(), ImportError> {
        let n = i64::try_from(n).map_err(|_| self.malformed("variable too large"))?;
        self.inner
            .seek_relative(n)
            .map_err(|e| ImportError::read(self.path, e))?;
        self.offset += n as u64;
        Ok(())
    }
}
