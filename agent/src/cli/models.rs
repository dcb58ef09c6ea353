//! `agent models …`: speech model files.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use speech::models::{Progress, PullOptions};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Convert a CTranslate2 (faster-whisper) Whisper folder to a whisper.cpp ggml file
    ImportCt2 {
        /// Folder holding model.bin, config.json and tokenizer.json
        ct2_dir: PathBuf,
        /// The ggml file to write (e.g. models/ggml-tiny.en.bin)
        out: PathBuf,
    },
    /// Download a whisper.cpp ggml model (e.g. tiny.en, base.en, small) with a progress bar;
    /// an interrupted download resumes, and the file is installed only when its SHA-256 matches
    Pull {
        /// Model name, as in ggml-NAME.bin
        name: String,
        /// Folder to install into [default: the folder of stt.model]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Where the files are: BASE_URL/ggml-NAME.bin
        #[arg(long, value_name = "URL", env = "AGENT_MODELS_BASE_URL",
              default_value = speech::models::DEFAULT_BASE_URL)]
        base_url: String,
        /// Expected SHA-256 (hex) for a model the built-in table does not know
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Replace an installed file whose hash differs
        #[arg(long)]
        force: bool,
    },
    /// Show the models installed in a folder, with size, hash and whether it is verified
    List {
        /// Folder to look in [default: the folder of stt.model]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The folder `stt.model` is in (`models/` by default).
fn models_dir(cfg: &Config) -> PathBuf {
    cfg.stt
        .model
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub(super) async fn run(cmd: ModelsCommand, cfg: &Config) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Pull {
            name,
            dir,
            base_url,
            sha256,
            force,
        } => {
            let dir = dir.unwrap_or_else(|| models_dir(cfg));
            let mut opts = PullOptions::default();
            opts.base_url = base_url;
            opts.sha256 = sha256;
            opts.force = force;
            let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
            let pulled = speech::models::pull(&name, &dir, &opts, &mut |p| bar.update(p))
                .await
                .with_context(|| format!("pulling model {name:?}"))?;
            bar.finish();
            if pulled.already_installed {
                println!(
                    "{} is already installed (SHA-256 verified)",
                    pulled.path.display()
                );
            } else {
                let resumed = if pulled.resumed_from > 0 {
                    format!(", resumed at {} bytes", pulled.resumed_from)
                } else {
                    String::new()
                };
                println!(
                    "installed {} ({} bytes{resumed}), SHA-256 {}",
                    pulled.path.display(),
                    pulled.bytes,
                    pulled.sha256
                );
            }
            Ok(())
        }
        ModelsCommand::List { dir } => {
            let dir = dir.unwrap_or_else(|| models_dir(cfg));
            let listing = speech::models::list(&dir)?;
            if listing.models.is_empty() && listing.partial.is_empty() {
                println!("no models in {}", dir.display());
            }
            for m in &listing.models {
                let verified = match m.matches_known() {
                    Some(true) => "verified",
                    Some(false) => "HASH DIFFERS FROM THE KNOWN MODEL",
                    None if m.sha256.is_some() => "hash recorded",
                    None => "unverified",
                };
                let kind = match &m.header {
                    Ok(h) => format!(
                        "whisper n_audio_ctx={} n_vocab={}",
                        h.n_audio_ctx, h.n_vocab
                    ),
                    Err(e) => format!("not a whisper ggml file: {e}"),
                };
                println!(
                    "{:<12} {:>10} bytes  {verified:<9}  {kind}  {}",
                    m.name,
                    m.bytes,
                    m.path.display()
                );
            }
            for p in &listing.partial {
                println!(
                    "{:<12} {:>10} bytes  partial download (`agent models pull {}` resumes it)",
                    p.name, p.bytes, p.name
                );
            }
            Ok(())
        }
        ModelsCommand::ImportCt2 { ct2_dir, out } => {
            let report =
                tokio::task::spawn_blocking(move || speech::import_ct2(&ct2_dir, &out)).await??;
            println!(
                "wrote {} ({} tensors, {} vocabulary tokens, {} bytes)",
                report.out.display(),
                report.tensors,
                report.vocab_tokens,
                report.bytes_written
            );
            Ok(())
        }
    }
}

/// Download progress on stderr: a redrawn bar on a terminal, a line per 10 % otherwise.
struct ProgressBar {
    tty: bool,
    started: Instant,
    last_decile: Option<u64>,
    drawn: bool,
}

impl ProgressBar {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            started: Instant::now(),
            last_decile: None,
            drawn: false,
        }
    }

    fn update(&mut self, p: &Progress) {
        let fetched = p.downloaded.saturating_sub(p.resumed_from);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = fetched as f64 / secs / 1e6;
        let mb = p.downloaded as f64 / 1e6;
        let line = match p.total {
            Some(total) if total > 0 => {
                let pct = p.downloaded.min(total) * 100 / total;
                if !self.tty {
                    if self.last_decile == Some(pct / 10) {
                        return;
                    }
                    self.last_decile = Some(pct / 10);
                }
                let filled = (pct / 5) as usize;
                format!(
                    "[{}{}] {pct:>3}% {mb:.1}/{:.1} MB {rate:.1} MB/s",
                    "#".repeat(filled),
                    " ".repeat(20 - filled),
                    total as f64 / 1e6
                )
            }
            _ => {
                if !self.tty {
                    return;
                }
                format!("{mb:.1} MB {rate:.1} MB/s")
            }
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        self.drawn = true;
    }

    fn finish(&self) {
        if self.tty && self.drawn {
            eprintln!();
        }
    }
}
