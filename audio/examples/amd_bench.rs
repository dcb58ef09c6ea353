//! Answering-machine detection on the labelled set (`tests/data/amd`, made by
//! `scripts/amd-dataset.sh`): accuracy, confusion matrix, decision latency p50/p95, beep
//! detection (found, timing error) and CPU per second of audio.
//!
//! ```sh
//! cargo run --release -p audio --example amd_bench            # the default settings
//! cargo run --release -p audio --example amd_bench -- --each  # plus one line per recording
//! ```

#[path = "../tests/support/amd_eval.rs"]
mod amd_eval;

use amd_eval::{accuracy, percentile, run_all};
use audio::amd::{AmdConfig, Verdict};

fn main() {
    let each = std::env::args().any(|a| a == "--each");
    let outcomes = run_all(&AmdConfig::default());
    if each {
        for o in &outcomes {
            println!(
                "{:24} {:8} -> {:8} at {:5} ms  beep {:>6} (truth {:>6})  greeting end {:>6}",
                o.item.name,
                if o.item.machine { "machine" } else { "human" },
                o.verdict.as_str(),
                o.decided_after_ms,
                fmt(o.beep_at_ms),
                fmt(o.item.beep_end_ms),
                fmt(o.greeting_end_ms),
            );
        }
        println!();
    }
    let humans = outcomes.iter().filter(|o| !o.item.machine).count();
    let machines = outcomes.len() - humans;
    println!(
        "recordings: {} ({humans} people, {machines} machines)",
        outcomes.len()
    );
    println!("accuracy: {:.1} %", 100.0 * accuracy(&outcomes));
    println!("confusion (rows: truth, columns: verdict)");
    println!(
        "{:>10} {:>7} {:>8} {:>8}",
        "", "human", "machine", "unknown"
    );
    for (label, machine) in [("human", false), ("machine", true)] {
        let count = |v: Verdict| {
            outcomes
                .iter()
                .filter(|o| o.item.machine == machine && o.verdict == v)
                .count()
        };
        println!(
            "{label:>10} {:>7} {:>8} {:>8}",
            count(Verdict::Human),
            count(Verdict::Machine),
            count(Verdict::Unknown)
        );
    }
    for (label, machine) in [("people", false), ("machines", true)] {
        let mut ms: Vec<u32> = outcomes
            .iter()
            .filter(|o| o.item.machine == machine)
            .map(|o| o.decided_after_ms)
            .collect();
        println!(
            "decision latency, {label}: p50 {} ms, p95 {} ms, max {} ms",
            percentile(&mut ms, 50.0),
            percentile(&mut ms, 95.0),
            ms.iter().max().copied().unwrap_or(0)
        );
    }
    let beeping: Vec<_> = outcomes
        .iter()
        .filter(|o| o.item.beep_end_ms.is_some())
        .collect();
    let found: Vec<u32> = beeping
        .iter()
        .filter_map(|o| Some(o.beep_at_ms?.abs_diff(o.item.beep_end_ms?)))
        .collect();
    let mut errors = found.clone();
    println!(
        "beeps: {} of {} found; timing error p50 {} ms, max {} ms; false beeps on people: {}",
        found.len(),
        beeping.len(),
        percentile(&mut errors, 50.0),
        found.iter().max().copied().unwrap_or(0),
        outcomes
            .iter()
            .filter(|o| !o.item.machine && o.beep_at_ms.is_some())
            .count()
    );
    let audio_ms: u64 = outcomes
        .iter()
        .map(|o| {
            u64::from(
                o.beep_at_ms
                    .or(o.greeting_end_ms)
                    .unwrap_or(o.decided_after_ms),
            )
        })
        .sum();
    let cpu_us: u128 = outcomes.iter().map(|o| o.cpu_us).sum();
    println!(
        "cost: {:.3} % of one core (incl. resampling the 8 kHz files), {cpu_us} us for {audio_ms} ms fed",
        100.0 * cpu_us as f64 / (audio_ms as f64 * 1000.0)
    );
}

fn fmt(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}
