//! `agent models …`: speech model files.

use std::path::PathBuf;

use clap::Subcommand;

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
}

pub(super) async fn run(cmd: ModelsCommand, _cfg: &Config) -> anyhow::Result<()> {
    match cmd {
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
