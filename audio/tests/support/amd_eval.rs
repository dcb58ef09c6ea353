//! Running [`AmdDetector`] over the labelled answers in `tests/data/amd/` (made by
//! `scripts/amd-dataset.sh`): each 8 kHz line recording is resampled to the pipeline's 16 kHz
//! (as the call leg does) and fed in 20 ms frames from the answer on, until the detector has
//! said all it will (verdict, and for machines the beep or the end of the greeting).
//!
//! Shared (via `#[path]`) by `tests/amd_accuracy.rs` (thresholds) and `examples/amd_bench.rs`
//! (numbers).

#![allow(dead_code)]

use std::path::PathBuf;

use audio::Resampler;
use audio::amd::{AmdConfig, AmdDetector, AmdEvent, Verdict};
use audio::wav::read_wav;

/// One labelled recording.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub name: String,
    pub machine: bool,
    /// Where the beep ends (ms from the answer), if there is one.
    pub beep_end_ms: Option<u32>,
}

/// What the detector said about one recording.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub item: Labelled,
    pub verdict: Verdict,
    pub decided_after_ms: u32,
    /// The reported beep's end, if any.
    pub beep_at_ms: Option<u32>,
    /// After a machine verdict without a beep: when the greeting was reported over.
    pub greeting_end_ms: Option<u32>,
    /// CPU time to process the recording.
    pub cpu_us: u128,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/amd")
}

pub fn labels() -> Vec<Labelled> {
    let text = std::fs::read_to_string(dir().join("labels.tsv")).expect("labels.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Labelled {
                name: cols[0].to_owned(),
                machine: cols[1] == "machine",
                beep_end_ms: cols[2].parse().ok(),
            }
        })
        .collect()
}

/// The recording at 16 kHz.
pub fn load_16k(name: &str) -> Vec<i16> {
    let wav = read_wav(dir().join(format!("{name}.wav"))).expect("wav");
    let mut rs = Resampler::new(wav.sample_rate, 16_000).expect("resampler");
    let mut out = Vec::new();
    rs.process(&wav.samples, &mut out).expect("resample");
    rs.flush(&mut out).expect("flush");
    // The resampler's delay would shift every event; take it back out.
    let latency = rs.latency_samples();
    out.drain(..latency.min(out.len()));
    out
}

pub fn run(item: &Labelled, cfg: &AmdConfig) -> Outcome {
    let audio = load_16k(&item.name);
    let started = std::time::Instant::now();
    let mut amd = AmdDetector::new(cfg.clone());
    let mut decided = None;
    let mut beep = None;
    let mut greeting_end = None;
    'feed: for frame in audio.chunks_exact(320) {
        let mut next = amd.push(frame);
        while let Some(event) = next {
            match event {
                AmdEvent::Decided {
                    verdict, after_ms, ..
                } => decided = Some((verdict, after_ms)),
                AmdEvent::Beep { at_ms, .. } => beep = Some(at_ms),
                AmdEvent::GreetingEnded { at_ms } => greeting_end = Some(at_ms),
                _ => {}
            }
            next = amd.poll_event();
        }
        // Stop feeding as a caller would: a person is talked to at once; for a machine, wait
        // for the beep or the end of its greeting.
        match decided {
            Some((Verdict::Human, _)) => break 'feed,
            Some(_) if beep.is_some() || greeting_end.is_some() => break 'feed,
            _ => {}
        }
    }
    let cpu_us = started.elapsed().as_micros();
    let (verdict, decided_after_ms) = decided.unwrap_or((Verdict::Unknown, amd.elapsed_ms()));
    Outcome {
        item: item.clone(),
        verdict,
        decided_after_ms,
        beep_at_ms: beep,
        greeting_end_ms: greeting_end,
        cpu_us,
    }
}

pub fn run_all(cfg: &AmdConfig) -> Vec<Outcome> {
    labels().iter().map(|l| run(l, cfg)).collect()
}

/// Share of recordings whose verdict matches the label (Unknown counts as wrong).
pub fn accuracy(outcomes: &[Outcome]) -> f64 {
    let right = outcomes
        .iter()
        .filter(|o| match o.verdict {
            Verdict::Machine => o.item.machine,
            Verdict::Human => !o.item.machine,
            Verdict::Unknown => false,
        })
        .count();
    right as f64 / outcomes.len() as f64
}

/// Percentile of a list (nearest rank).
pub fn percentile(values: &mut [u32], p: f64) -> u32 {
    values.sort_unstable();
    if values.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
