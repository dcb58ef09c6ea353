//! Architecture invariant: the sans-IO core never reads the clock. `clippy.toml` disallows
//! `Instant::now`/`SystemTime::now` (denied in lib.rs); this test backs that up without clippy:
//! outside a `driver` module and test helpers, no source file may call them.

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
fn core_modules_never_read_the_clock() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10);
    let mut offenders = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("driver") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if (code.contains("Instant::now") || code.contains("SystemTime::now"))
                && !text
                    .lines()
                    .nth(n.saturating_sub(2))
                    .is_some_and(|l| l.contains("allow(clippy::disallowed_methods)"))
            {
                offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "clock reads in the core: {offenders:#?}"
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    assert!(lib.contains("#![deny(clippy::disallowed_methods)]"));
}
