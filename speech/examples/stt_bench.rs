//! STT benchmark: latency, real-time factor and word error rate of [`WhisperStt`] on the
//! fixture clips (`speech/tests/data`, transcripts in `TRANSCRIPTS.tsv`), at 16 kHz and at
//! 8 kHz upsampled to 16 kHz with the `audio` crate's resampler (telephony), for several
//! encoder windows.
//!
//! ```text
//! cargo run -p speech --example stt_bench -- [--model PATH] [--threads N] [--reps N]
//!     [--rates 16k,8k] [--configs full,fit,fit:PAD:MULT:MIN,frames:N] [--clips a,b] [--quiet]
//! ```
//!
//! `fit:PAD:MULT:MIN` is a candidate fitting rule (audio frames + PAD, rounded up to MULT, at
//! least MIN) for tuning the defaults of `AudioCtx::Fit`. Latency is the best of `--reps`
//! runs per clip, to keep other processes' load out of the numbers as far as possible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use speech::{AudioCtx, SpeechToText, TranscribeOptions, Transcript, WhisperStt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let stt = WhisperStt::load(&args.model, args.threads)?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let transcripts = std::fs::read_to_string(data.join("TRANSCRIPTS.tsv"))?;
    println!(
        "model {} | threads {} | reps {} | load average {}",
        args.model.display(),
        args.threads,
        args.reps,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if !args.quiet {
        println!(
            "{:<16} {:>4} {:>6} {:<14} {:>5} {:>7} {:>7} {:>7} {:>6} {:>5}  text",
            "clip", "rate", "audio", "config", "ctx", "total", "encode", "decode", "rtf", "wer"
        );
    }
    let mut summary: BTreeMap<(u32, usize), Summary> = BTreeMap::new();
    for line in transcripts.lines() {
        let Some((clip, reference)) = line.split_once('\t') else {
            continue;
        };
        if !args.clips.is_empty() && !args.clips.iter().any(|c| c == clip) {
            continue;
        }
        for &rate in &args.rates {
            let (pcm, file_rate) = read_wav(&data.join(format!("{clip}_{}k.wav", rate / 1000)))?;
            let pcm = match file_rate {
                16_000 => pcm,
                8_000 => upsample_2x(&pcm)?,
                r => return Err(format!("{clip}: unexpected rate {r}").into()),
            };
            for (ci, config) in args.configs.iter().enumerate() {
                let mut opts = TranscribeOptions::default();
                opts.audio_ctx = config.audio_ctx(pcm.len());
                let mut best: Option<Transcript> = None;
                for _ in 0..args.reps {
                    let t = stt.transcribe(&pcm, &opts)?;
                    if best
                        .as_ref()
                        .is_none_or(|b| t.timings.total < b.timings.total)
                    {
                        best = Some(t);
                    }
                }
                let Some(t) = best else { continue };
                let (errors, words) = word_errors(reference, &t.text);
                if !args.quiet {
                    println!(
                        "{:<16} {:>3}k {:>5.1}s {:<14} {:>5} {:>7} {:>7} {:>7} {:>6.3} {:>5.2}  {}",
                        clip,
                        rate / 1000,
                        t.audio.as_secs_f64(),
                        config.name,
                        t.audio_ctx,
                        ms(t.timings.total),
                        ms(t.timings.encode),
                        ms(t.timings.decode),
                        t.real_time_factor(),
                        errors as f64 / words.max(1) as f64,
                        t.text
                    );
                }
                let s = summary.entry((rate, ci)).or_default();
                s.latencies.push(t.timings.total);
                s.encode += t.timings.encode;
                s.decode += t.timings.decode;
                s.audio += t.audio;
                s.errors += errors;
                s.words += words;
            }
        }
    }
    println!();
    println!(
        "{:<5} {:<14} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10} {:>6} {:>7}",
        "rate",
        "config",
        "clips",
        "mean ms",
        "p50 ms",
        "max ms",
        "encode ms",
        "decode ms",
        "rtf",
        "WER"
    );
    for ((rate, ci), s) in &mut summary {
        s.latencies.sort();
        let n = s.latencies.len().max(1) as u32;
        let total: Duration = s.latencies.iter().sum();
        println!(
            "{:<5} {:<14} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10} {:>6.3} {:>6.1}%",
            format!("{}k", *rate / 1000),
            args.configs[*ci].name,
            s.latencies.len(),
            ms(total / n),
            ms(s.latencies[s.latencies.len() / 2]),
            ms(*s.latencies.last().unwrap_or(&Duration::ZERO)),
            ms(s.encode / n),
            ms(s.decode / n),
            total.as_secs_f64() / s.audio.as_secs_f64().max(1e-9),
            100.0 * s.errors as f64 / s.words.max(1) as f64
        );
    }
    Ok(())
}

#[derive(Default)]
struct Summary {
    latencies: Vec<Duration>,
    encode: Duration,
    decode: Duration,
    audio: Duration,
    errors: usize,
    words: usize,
}

struct Config {
    name: String,
    kind: ConfigKind,
}

enum ConfigKind {
    Full,
    Fit,
    Rule { pad: u32, multiple: u32, min: u32 },
    Frames(u32),
}

impl Config {
    fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<u32, String> {
            parts
                .get(i)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("bad config {s:?}"))
        };
        let kind = match parts[0] {
            "full" => ConfigKind::Full,
            "fit" if parts.len() == 1 => ConfigKind::Fit,
            "fit" => ConfigKind::Rule {
                pad: num(1)?,
                multiple: num(2)?.max(1),
                min: num(3)?,
            },
            "frames" => ConfigKind::Frames(num(1)?),
            _ => {
                return Err(format!(
                    "unknown config {s:?} (full, fit, fit:PAD:MULT:MIN, frames:N)"
                ));
            }
        };
        Ok(Self {
            name: s.to_owned(),
            kind,
        })
    }

    fn audio_ctx(&self, n_samples: usize) -> AudioCtx {
        match self.kind {
            ConfigKind::Full => AudioCtx::Full,
            ConfigKind::Fit => AudioCtx::Fit,
            ConfigKind::Frames(n) => AudioCtx::Frames(n),
            ConfigKind::Rule { pad, multiple, min } => {
                let want = (speech::stt::frames_for(n_samples) + pad).max(min);
                AudioCtx::Frames(want.div_ceil(multiple) * multiple)
            }
        }
    }
}

struct Args {
    model: PathBuf,
    threads: usize,
    reps: usize,
    rates: Vec<u32>,
    configs: Vec<Config>,
    clips: Vec<String>,
    quiet: bool,
}

impl Args {
    fn parse() -> Result<Self, Box<dyn std::error::Error>> {
        let cache = std::env::var_os("AGENT_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/agent")
            });
        let mut a = Args {
            model: std::env::var_os("AGENT_TEST_WHISPER_MODEL")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache.join("models/ggml-tiny.en.bin")),
            threads: 2,
            reps: 1,
            rates: vec![16_000, 8_000],
            configs: vec![Config::parse("full")?, Config::parse("fit")?],
            clips: Vec::new(),
            quiet: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--quiet" {
                a.quiet = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--model" => a.model = value.into(),
                "--threads" => a.threads = value.parse()?,
                "--reps" => a.reps = value.parse::<usize>()?.max(1),
                "--rates" => {
                    a.rates = value
                        .split(',')
                        .map(|r| r.trim_end_matches('k').parse::<u32>().map(|k| k * 1000))
                        .collect::<Result<_, _>>()?
                }
                "--configs" => {
                    a.configs = value
                        .split(',')
                        .map(Config::parse)
                        .collect::<Result<_, _>>()?
                }
                "--clips" => a.clips = value.split(',').map(str::to_owned).collect(),
                _ => return Err(format!("unknown flag {flag}").into()),
            }
        }
        Ok(a)
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), Box<dyn std::error::Error>> {
    let mut r = hound::WavReader::open(path)?;
    let rate = r.spec().sample_rate;
    let pcm = r
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<_, _>>()?;
    Ok((pcm, rate))
}

/// 8 → 16 kHz with the pipeline's own resampler (`audio`, rubato FFT), as a call would.
fn upsample_2x(x: &[f32]) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let mut r = audio::resample::Resampler::new(8_000, 16_000)?;
    let mut out: Vec<f32> = Vec::with_capacity(r.max_output_len(x.len()));
    r.process(x, &mut out)?;
    r.flush(&mut out)?;
    Ok(out)
}

/// Word-level edit distance between reference and hypothesis after normalisation; returns
/// (errors, reference words).
fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// Lower case, no punctuation, no "(…)" annotations, spelled-out digits as digits and digit
/// strings split into single digits, so "four, five" and "45" compare equal.
fn normalise(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let mut depth = 0;
    let cleaned: String = text
        .chars()
        .filter_map(|c| match c {
            '(' => {
                depth += 1;
                None
            }
            ')' => {
                depth -= 1;
                None
            }
            _ if depth > 0 => None,
            c if c.is_alphanumeric() || c == '\'' => Some(c.to_ascii_lowercase()),
            _ => Some(' '),
        })
        .collect();
    let mut words = Vec::new();
    for w in cleaned.split_whitespace() {
        if let Some(d) = DIGITS.iter().position(|&d| d == w) {
            words.push(d.to_string());
        } else if w.chars().all(|c| c.is_ascii_digit()) {
            words.extend(w.chars().map(String::from));
        } else {
            words.push(w.to_owned());
        }
    }
    words
}
