//! `import_ct2 CT2_DIR OUT.bin`: converts a CTranslate2 (faster-whisper) Whisper directory to
//! a whisper.cpp ggml model. Stand-in for `agent models import-ct2` until the CLI has it.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [dir, out] = &args[..] else {
        eprintln!("usage: import_ct2 <ct2-model-dir> <out.bin>");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    match speech::import_ct2(dir, out) {
        Ok(r) => {
            println!(
                "hparams {} | {} tensors | {} vocab tokens | encoder pos-emb max |f16 - exact| = {:.3e} ({}) | {} bytes in {:.2} s",
                r.hparams,
                r.tensors,
                r.vocab_tokens,
                r.encoder_pos_max_diff,
                if r.exact_sinusoids {
                    "exact sinusoids written"
                } else {
                    "stored table kept"
                },
                r.bytes_written,
                started.elapsed().as_secs_f64(),
            );
            println!("{}", r.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("import failed: {e}");
            ExitCode::FAILURE
        }
    }
}
