//! [`list`]: the model files in a folder, with their ggml hyper-parameters and recorded hashes.

use std::path::{Path, PathBuf};

use super::{KnownModel, ModelError, io_err, known_model, parse_sha256};
use crate::ggml::{self, GgmlError, WhisperHparams};

/// What a models folder holds.
#[derive(Debug)]
#[non_exhaustive]
pub struct ModelListing {
    /// `*.bin` files, by name.
    pub models: Vec<InstalledModel>,
    /// Unfinished downloads (`*.bin.part`), by name.
    pub partial: Vec<PartialDownload>,
}

/// One model file.
#[derive(Debug)]
#[non_exhaustive]
pub struct InstalledModel {
    /// `NAME` of `ggml-NAME.bin` (or the file stem for other `.bin` files).
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// The ggml header, or why it could not be read (quantised models are not parsed).
    pub header: Result<WhisperHparams, GgmlError>,
    /// From the `FILE.sha256` sidecar, when there is one. Not recomputed: listing stays fast
    /// for multi-gigabyte files.
    pub sha256: Option<String>,
    /// The built-in table's entry for `name`, if any.
    pub known: Option<&'static KnownModel>,
}

impl InstalledModel {
    /// Whether the sidecar hash and size match the built-in table: `None` when either is
    /// unknown.
    pub fn matches_known(&self) -> Option<bool> {
        let (known, sha) = (self.known?, self.sha256.as_deref()?);
        Some(known.sha256 == sha && known.bytes == self.bytes)
    }
}

/// An interrupted download that `pull` would resume.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartialDownload {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Lists `dir`. A missing folder is an empty listing.
pub fn list(dir: &Path) -> Result<ModelListing, ModelError> {
    let mut listing = ModelListing {
        models: Vec::new(),
        partial: Vec::new(),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        if let Some(stem) = file.strip_suffix(".bin.part") {
            listing.partial.push(PartialDownload {
                name: model_name(stem),
                path,
                bytes: meta.len(),
            });
        } else if let Some(stem) = file.strip_suffix(".bin") {
            let name = model_name(stem);
            listing.models.push(InstalledModel {
                header: ggml::read_header(&path).map(|h| h.hparams),
                sha256: read_sidecar(&dir.join(format!("{file}.sha256"))),
                known: known_model(&name),
                name,
                path,
                bytes: meta.len(),
            });
        }
    }
    listing.models.sort_by(|a, b| a.name.cmp(&b.name));
    listing.partial.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

fn model_name(stem: &str) -> String {
    stem.strip_prefix("ggml-").unwrap_or(stem).to_owned()
}

/// The hash in a `sha256sum`-format sidecar; `None` when absent or unreadable.
fn read_sidecar(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_sha256(text.split_whitespace().next()?)
}
