//! Answering-machine detection on the labelled answers in `tests/data/amd` (16 people, 16
//! machines, 14 of them with a beep): minimum accuracy, the 3 s decision bound, and beeps
//! found where they are and nowhere else. `examples/amd_bench.rs` prints the numbers.

#[path = "support/amd_eval.rs"]
mod amd_eval;

use amd_eval::{accuracy, run_all};
use audio::amd::{AmdConfig, Verdict};

#[test]
fn the_labelled_set_is_classified_and_beeps_are_found() {
    let outcomes = run_all(&AmdConfig::default());
    assert!(outcomes.len() >= 20, "at least 20 labelled answers");
    let report: Vec<String> = outcomes
        .iter()
        .map(|o| {
            format!(
                "{:24} {:8} → {:?} at {} ms, beep {:?} (expected {:?})",
                o.item.name,
                if o.item.machine { "machine" } else { "human" },
                o.verdict,
                o.decided_after_ms,
                o.beep_at_ms,
                o.item.beep_end_ms
            )
        })
        .collect();
    let report = report.join("\n");
    let acc = accuracy(&outcomes);
    assert!(acc >= 0.90, "accuracy {acc:.2}\n{report}");
    for o in &outcomes {
        assert!(o.decided_after_ms <= 3_000, "decided late:\n{report}");
        if !o.item.machine {
            assert_eq!(o.beep_at_ms, None, "a beep heard from a person:\n{report}");
        }
    }
    // Beeps: every machine that beeps has its beep found (machines misjudged as people stop
    // being fed, so only those judged machines count), within 60 ms of where it ends.
    let beeping: Vec<_> = outcomes
        .iter()
        .filter(|o| o.item.beep_end_ms.is_some() && o.verdict == Verdict::Machine)
        .collect();
    assert!(!beeping.is_empty());
    for o in &beeping {
        let (Some(found), Some(truth)) = (o.beep_at_ms, o.item.beep_end_ms) else {
            panic!("beep missed: {}\n{report}", o.item.name);
        };
        assert!(
            found.abs_diff(truth) <= 60,
            "{}: beep at {found} ms, ends at {truth} ms\n{report}",
            o.item.name
        );
    }
    // Machines without a beep: the end of the greeting is reported instead.
    for o in outcomes
        .iter()
        .filter(|o| o.item.machine && o.item.beep_end_ms.is_none() && o.verdict == Verdict::Machine)
    {
        assert!(
            o.greeting_end_ms.is_some(),
            "{}: no greeting end\n{report}",
            o.item.name
        );
    }
}
