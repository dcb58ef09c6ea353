//! TTS benchmark: espeak-ng synthesis time per reply sentence (what the first-audio latency
//! of a turn waits for), audio produced and real-time factor, plus the cost of resampling the
//! output to the telephony rate with the pipeline's resampler.
//!
//! `cargo run -p speech --example tts_bench -- [--reps N] [--voice en-us] [--rate WPM]`

use std::time::{Duration, Instant};

use speech::{EspeakConfig, EspeakTts, SynthesisOptions, TextToSpeech};

const SENTENCES: &[&str] = &[
    "Hello, thanks for calling.",
    "How can I help you today?",
    "Your current balance is one hundred and twenty dollars and fifty cents.",
    "I can connect you to a colleague, please hold the line.",
    "Your next invoice is due on the fifth of March, and it will be sent to your email address on file.",
    "Goodbye.",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut reps = 5usize;
    let mut cfg = EspeakConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--reps" => reps = value.parse::<usize>()?.max(1),
            "--voice" => cfg.voice = value,
            "--rate" => cfg.rate_wpm = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let started = Instant::now();
    let tts = EspeakTts::new(cfg)?;
    println!(
        "espeak-ng init {:?} | data {} | {} Hz | best of {reps} | load average {}",
        started.elapsed(),
        tts.data_dir().display(),
        tts.sample_rate(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:>8} {:>8} {:>7} {:>10}  text",
        "synth", "audio", "rtf", "to 8k"
    );
    let (mut synth_total, mut audio_total) = (Duration::ZERO, Duration::ZERO);
    for text in SENTENCES {
        let mut best = Duration::MAX;
        let mut pcm = None;
        for _ in 0..reps {
            let t0 = Instant::now();
            let p = tts.synthesize(text, &SynthesisOptions::default())?;
            best = best.min(t0.elapsed());
            pcm = Some(p);
        }
        let Some(pcm) = pcm else { continue };
        let t0 = Instant::now();
        let mut r = audio::resample::Resampler::new(pcm.sample_rate, 8_000)?;
        let mut out: Vec<i16> = Vec::with_capacity(r.max_output_len(pcm.samples.len()));
        r.process(&pcm.samples, &mut out)?;
        r.flush(&mut out)?;
        let resample = t0.elapsed();
        println!(
            "{:>6.1}ms {:>7.2}s {:>7.4} {:>8.2}ms  {text}",
            best.as_secs_f64() * 1e3,
            pcm.duration().as_secs_f64(),
            best.as_secs_f64() / pcm.duration().as_secs_f64().max(1e-9),
            resample.as_secs_f64() * 1e3,
        );
        synth_total += best;
        audio_total += pcm.duration();
    }
    println!(
        "total: {:.1} ms of synthesis for {:.2} s of audio (rtf {:.4})",
        synth_total.as_secs_f64() * 1e3,
        audio_total.as_secs_f64(),
        synth_total.as_secs_f64() / audio_total.as_secs_f64().max(1e-9)
    );
    Ok(())
}
