//! whisper.cpp ggml model files: [`pull`] downloads `ggml-{NAME}.bin` from a base URL
//! (default: the whisper.cpp models on Hugging Face) with resume and SHA-256 verification;
//! [`list`] shows what a folder holds.
//!
//! A download goes to `ggml-{NAME}.bin.part` beside the target. An interrupted transfer is
//! retried with an HTTP `Range` request from where the file ends (also on the next `pull`),
//! and a server that ignores the range restarts it from zero. The SHA-256 of the whole file
//! is checked before it is renamed into place, so a wrong or corrupt file is never installed:
//! on a mismatch the `.part` file is deleted. A verified install also writes
//! `ggml-{NAME}.bin.sha256` (`sha256sum` format), which [`list`] shows.
//!
//! The expected hash comes from, in order: the caller ([`PullOptions::sha256`]), the built-in
//! table ([`KNOWN_MODELS`], which also gives the exact size, checked before the body is
//! read), or a `ggml-{NAME}.bin.sha256` sidecar on the server. Without any of them nothing is
//! downloaded.

mod known;
mod list;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ggml::{self, WhisperHparams};

pub use known::{KNOWN_MODELS, KnownModel, known_model};
pub use list::{InstalledModel, ModelListing, PartialDownload, list};

/// Where whisper.cpp's download script fetches models from.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// How to [`pull`]. Construct with `Default` and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullOptions {
    /// The files are at `{base_url}/ggml-{NAME}.bin`.
    pub base_url: String,
    /// Expected SHA-256 (hex), overriding the built-in table and any server sidecar.
    pub sha256: Option<String>,
    /// Replace an installed file whose hash differs instead of failing.
    pub force: bool,
    /// Requests per pull before an interrupted transfer is reported (each resumes).
    pub attempts: u32,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response before it counts as interrupted.
    pub read_timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            base_url: DEFAULT_BASE_URL.to_owned(),
            sha256: None,
            force: false,
            attempts: 3,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Progress of a [`pull`], reported after every received chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes in the `.part` file so far, including any resumed prefix.
    pub downloaded: u64,
    /// The full size, when the server (or the built-in table) says.
    pub total: Option<u64>,
    /// Bytes that were already there when this transfer started.
    pub resumed_from: u64,
}

/// Where the expected hash came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashSource {
    /// [`PullOptions::sha256`].
    Given,
    /// [`KNOWN_MODELS`].
    BuiltIn,
    /// `{url}.sha256` on the server.
    ServerSidecar,
}

/// A model in place after [`pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pulled {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub hash_source: HashSource,
    /// Bytes of an earlier partial download that were reused.
    pub resumed_from: u64,
    /// The file was already installed with the expected hash; nothing was downloaded.
    pub already_installed: bool,
    /// The ggml hyper-parameters, when [`ggml::read_header`] accepts the file (quantised
    /// models are verified by hash but not parsed).
    pub hparams: Option<WhisperHparams>,
}

/// Why a model could not be pulled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("{name:?} is not a model name (letters, digits, '.', '-', '_')")]
    InvalidName { name: String },
    #[error("{value:?} is not a SHA-256 (64 hex digits)")]
    InvalidSha256 { value: String },
    #[error(
        "no SHA-256 known for model {name:?}: not in the built-in table and {sidecar_url} does not exist; pass --sha256"
    )]
    NoHash { name: String, sidecar_url: String },
    #[error("{url}: not found (HTTP 404); check the model name and base URL")]
    NotFound { url: String },
    #[error("{url}: HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest_013::Error,
    },
    #[error(
        "{url}: transfer interrupted at {downloaded} bytes; run the same command again to resume"
    )]
    Interrupted {
        url: String,
        downloaded: u64,
        #[source]
        source: Option<reqwest_013::Error>,
    },
    #[error("{url}: server offers {actual} bytes, model {name} has {expected}")]
    SizeMismatch {
        url: String,
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{url}: SHA-256 mismatch (expected {expected} from {source_name}, got {actual}); the download was deleted"
    )]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
        source_name: &'static str,
    },
    #[error("{path} exists with SHA-256 {actual}, expected {expected}; remove it or pass --force")]
    Exists {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{url}: bad sidecar: {reason}")]
    BadSidecar { url: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `ggml-{name}.bin`, after checking that `name` cannot leave the models folder.
pub fn file_name(name: &str) -> Result<String, ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        return Err(ModelError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(format!("ggml-{name}.bin"))
}

/// Downloads model `name` into `dir` (created if missing), verifying its SHA-256.
/// `progress` is called after every chunk received.
pub async fn pull(
    name: &str,
    dir: &Path,
    opts: &PullOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Pulled, ModelError> {
    let file = file_name(name)?;
    let url = format!("{}/{file}", opts.base_url.trim_end_matches('/'));
    let client = http_client(opts).map_err(|source| ModelError::Transport {
        url: url.clone(),
        source,
    })?;
    let expected = expected_hash(name, &url, opts, &client).await?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| io_err(dir, source))?;
    let target = dir.join(&file);
    let sidecar = dir.join(format!("{file}.sha256"));

    if tokio::fs::try_exists(&target).await.unwrap_or(false) && !opts.force {
        let actual = sha256_file(&target).await?;
        if actual != expected.sha256 {
            return Err(ModelError::Exists {
                path: target,
                expected: expected.sha256,
                actual,
            });
        }
        write_sidecar(&sidecar, &file, &actual).await?;
        let bytes = file_len(&target).await?;
        return Ok(Pulled {
            hparams: hparams_of(&target).await,
            path: target,
            bytes,
            sha256: actual,
            hash_source: expected.source,
            resumed_from: 0,
            already_installed: true,
        });
    }

    let part = dir.join(format!("{file}.part"));
    let mut dl = Download::open(&part, expected.bytes).await?;
    let resumed_from = dl.len;
    dl.fetch(&client, &url, name, opts.attempts.max(1), &mut |p| {
        progress(&Progress {
            downloaded: p.0,
            total: p.1,
            resumed_from,
        })
    })
    .await?;
    let actual = dl.finish().await?;
    if actual != expected.sha256 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ModelError::HashMismatch {
            url,
            expected: expected.sha256,
            actual,
            source_name: match expected.source {
                HashSource::Given => "--sha256",
                HashSource::BuiltIn => "the built-in table",
                HashSource::ServerSidecar => "the server's .sha256 sidecar",
            },
        });
    }
    let bytes = file_len(&part).await?;
    let hparams = hparams_of(&part).await;
    tokio::fs::rename(&part, &target)
        .await
        .map_err(|source| io_err(&target, source))?;
    write_sidecar(&sidecar, &file, &actual).await?;
    Ok(Pulled {
        path: target,
        bytes,
        sha256: actual,
        hash_source: expected.source,
        resumed_from,
        already_installed: false,
        hparams,
    })
}

struct Expected {
    sha256: String,
    source: HashSource,
    /// Exact size, from the built-in table only.
    bytes: Option<u64>,
}

async fn expected_hash(
    name: &str,
    url: &str,
    opts: &PullOptions,
    client: &reqwest_013::Client,
) -> Result<Expected, ModelError> {
    if let Some(given) = &opts.sha256 {
        return Ok(Expected {
            sha256: parse_sha256(given).ok_or_else(|| ModelError::InvalidSha256 {
                value: given.clone(),
            })?,
            source: HashSource::Given,
            bytes: None,
        });
    }
    if let Some(known) = known_model(name) {
        return Ok(Expected {
            sha256: known.sha256.to_owned(),
            source: HashSource::BuiltIn,
            bytes: Some(known.bytes),
        });
    }
    let sidecar_url = format!("{url}.sha256");
    let transport = |source| ModelError::Transport {
        url: sidecar_url.clone(),
        source,
    };
    let resp = client.get(&sidecar_url).send().await.map_err(transport)?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(ModelError::NoHash {
                name: name.to_owned(),
                sidecar_url,
            });
        }
        status => {
            return Err(ModelError::Http {
                url: sidecar_url,
                status,
            });
        }
    }
    let body = resp.bytes().await.map_err(transport)?;
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
    let first = text.split_whitespace().next().unwrap_or("");
    let sha256 = parse_sha256(first).ok_or_else(|| ModelError::BadSidecar {
        url: sidecar_url.clone(),
        reason: "does not start with a SHA-256".to_owned(),
    })?;
    Ok(Expected {
        sha256,
        source: HashSource::ServerSidecar,
        bytes: None,
    })
}

/// Lower-case hex if `s` is 64 hex digits.
fn parse_sha256(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn http_client(opts: &PullOptions) -> Result<reqwest_013::Client, reqwest_013::Error> {
    // As for the remote providers: ring is the process's rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_013::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .user_agent(concat!("agent-speech/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A `.part` file being filled, with the running hash of its contents.
struct Download {
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    len: u64,
    /// Exact size expected (built-in table).
    expected_bytes: Option<u64>,
}

impl Download {
    /// Opens `path` for appending and hashes what it already holds.
    async fn open(path: &Path, expected_bytes: Option<u64>) -> Result<Download, ModelError> {
        // Append mode: reads start at 0 (hashing the prefix), writes always go to the end.
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .await
            .map_err(|source| io_err(path, source))?;
        let mut dl = Download {
            path: path.to_owned(),
            file,
            hasher: Sha256::new(),
            len: 0,
            expected_bytes,
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = dl
                .file
                .read(&mut buf)
                .await
                .map_err(|source| io_err(path, source))?;
            if n == 0 {
                break;
            }
            dl.hasher.update(&buf[..n]);
            dl.len += n as u64;
        }
        if expected_bytes.is_some_and(|want| dl.len > want) {
            dl.restart().await?;
        }
        Ok(dl)
    }

    async fn restart(&mut self) -> Result<(), ModelError> {
        self.file
            .set_len(0)
            .await
            .map_err(|source| io_err(&self.path, source))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    async fn append(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|source| io_err(&self.path, source))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Fills the file from `url`, resuming after interruptions, until the server has sent
    /// everything. `progress` gets (bytes so far, total).
    async fn fetch(
        &mut self,
        client: &reqwest_013::Client,
        url: &str,
        name: &str,
        attempts: u32,
        progress: &mut (dyn FnMut((u64, Option<u64>)) + Send),
    ) -> Result<(), ModelError> {
        let url_owned = || url.to_owned();
        let mut failure = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                backoff(attempt - 1).await;
            }
            let mut req = client.get(url);
            if self.len > 0 {
                req = req.header("Range", format!("bytes={}-", self.len));
            }
            let mut resp = match req.send().await {
                Ok(resp) => resp,
                Err(source) => {
                    failure = Some(ModelError::Transport {
                        url: url_owned(),
                        source,
                    });
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let total = match status {
                200 => {
                    // A full body: the server ignored our range, or there was none.
                    if self.len > 0 {
                        self.restart().await?;
                    }
                    resp.content_length()
                }
                206 => match content_range(resp.headers()) {
                    Some((start, total)) if start == self.len => total,
                    // Not the range we asked for: start over with a plain request.
                    _ => {
                        self.restart().await?;
                        failure = Some(ModelError::Http {
                            url: url_owned(),
                            status,
                        });
                        continue;
                    }
                },
                416 => {
                    // Nothing after our offset: complete if the server's size is ours.
                    let total = unsatisfied_range_total(resp.headers());
                    if total == Some(self.len) {
                        progress((self.len, total));
                        return Ok(());
                    }
                    self.restart().await?;
                    failure = Some(ModelError::Http {
                        url: url_owned(),
                        status,
                    });
                    continue;
                }
                404 => return Err(ModelError::NotFound { url: url_owned() }),
                500..=599 => {
                    failure = Some(ModelError::Http {
                        url: url_owned(),
                        status,
                    });
                    continue;
                }
                _ => {
                    return Err(ModelError::Http {
                        url: url_owned(),
                        status,
                    });
                }
            };
            let total = total.or(self.expected_bytes);
            if let (Some(want), Some(got)) = (self.expected_bytes, total)
                && want != got
            {
                let _ = tokio::fs::remove_file(&self.path).await;
                return Err(ModelError::SizeMismatch {
                    url: url_owned(),
                    name: name.to_owned(),
                    expected: want,
                    actual: got,
                });
            }
            progress((self.len, total));
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        self.append(&chunk).await?;
                        progress((self.len, total));
                    }
                    Ok(None) if total.is_none_or(|t| self.len >= t) => return Ok(()),
                    Ok(None) => {
                        failure = Some(ModelError::Interrupted {
                            url: url_owned(),
                            downloaded: self.len,
                            source: None,
                        });
                        break;
                    }
                    Err(source) => {
                        failure = Some(ModelError::Interrupted {
                            url: url_owned(),
                            downloaded: self.len,
                            source: Some(source),
                        });
                        break;
                    }
                }
            }
            // Keep what arrived: the next attempt (or the next pull) resumes from here.
            self.file
                .flush()
                .await
                .map_err(|source| io_err(&self.path, source))?;
        }
        Err(failure.unwrap_or(ModelError::Http {
            url: url_owned(),
            status: 0,
        }))
    }

    /// Flushes to disk and returns the hex SHA-256 of the whole file.
    async fn finish(mut self) -> Result<String, ModelError> {
        self.file
            .flush()
            .await
            .map_err(|source| io_err(&self.path, source))?;
        self.file
            .sync_all()
            .await
            .map_err(|source| io_err(&self.path, source))?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

/// A short pause before retrying; a download is not latency-critical.
async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt.min(8)))).await;
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if not `*`).
fn content_range(headers: &reqwest_013::header::HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get("content-range")?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// `Content-Range: bytes */TOTAL` of a 416 reply.
fn unsatisfied_range_total(headers: &reqwest_013::header::HeaderMap) -> Option<u64> {
    let v = headers.get("content-range")?.to_str().ok()?;
    v.strip_prefix("bytes */")?.trim().parse().ok()
}

/// Hex SHA-256 of a file.
pub async fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|source| io_err(path, source))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|source| io_err(path, source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn file_len(path: &Path) -> Result<u64, ModelError> {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .map_err(|source| io_err(path, source))
}

async fn hparams_of(path: &Path) -> Option<WhisperHparams> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || ggml::read_header(&path).ok().map(|h| h.hparams))
        .await
        .ok()
        .flatten()
}

/// Writes `HEX  FILE\n` (the `sha256sum` format) atomically.
async fn write_sidecar(path: &Path, file: &str, sha256: &str) -> Result<(), ModelError> {
    let tmp = path.with_extension("sha256.tmp");
    tokio::fs::write(&tmp, format!("{sha256}  {file}\n"))
        .await
        .map_err(|source| io_err(&tmp, source))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|source| io_err(path, source))
}

fn io_err(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_folder() {
        assert_eq!(file_name("tiny.en").unwrap(), "ggml-tiny.en.bin");
        assert_eq!(
            file_name("large-v3-turbo").unwrap(),
            "ggml-large-v3-turbo.bin"
        );
        for bad in ["", "../x", "a/b", ".hidden", "a..b", "a b", "x\0"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sha256_and_ranges_parse() {
        let h = "AB".repeat(32);
        assert_eq!(parse_sha256(&h).unwrap(), "ab".repeat(32));
        assert!(parse_sha256("abc").is_none());
        assert!(parse_sha256(&"g".repeat(64)).is_none());
        let mut headers = reqwest_013::header::HeaderMap::new();
        headers.insert("content-range", "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range(&headers), Some((100, Some(200))));
        headers.insert("content-range", "bytes 5-9/*".parse().unwrap());
        assert_eq!(content_range(&headers), Some((5, None)));
        headers.insert("content-range", "bytes */200".parse().unwrap());
        assert_eq!(unsatisfied_range_total(&headers), Some(200));
    }
}
