//! Architecture invariant: the call core never reads the clock. `agent/clippy.toml` disallows
//! `Instant::now`/`SystemTime::now` and the core's modules deny that lint; this test backs it
//! up without clippy: the core's files (and the pure listener and exchange it uses) deny the
//! lint and never call the clock, except the simulated-time test harness, which picks one
//! arbitrary starting instant.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_call_core_never_reads_the_clock() {
    let calls = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/calls");
    let mut files = Vec::new();
    rust_files(&calls.join("core"), &mut files);
    files.push(calls.join("listen.rs"));
    files.push(calls.join("exchange.rs"));
    assert!(files.len() >= 8, "{files:?}");
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&calls)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(f).expect("read");
        let test_harness = rel.starts_with("core/tests/");
        // Outside the harness, code before a `#[cfg(test)]` module is production code.
        let production = match text.find("#[cfg(test)]\n#[allow(clippy::disallowed_methods)]") {
            Some(at) if !test_harness => &text[..at],
            _ if test_harness => "",
            _ => text.as_str(),
        };
        for (n, line) in production.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("Instant::now") || code.contains("SystemTime::now") {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "clock reads in the call core: {offenders:#?}"
    );
    for entry in ["core/mod.rs", "listen.rs", "exchange.rs"] {
        let text = std::fs::read_to_string(calls.join(entry)).unwrap();
        assert!(
            text.contains("#![deny(clippy::disallowed_methods)]"),
            "{entry} must deny clock reads"
        );
    }
}
