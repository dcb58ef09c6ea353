//! `agent flows check` and `agent flows test`.
//!
//! `check` validates every flow file without a database. `test` runs the YAML conversation
//! tests (`DIR/tests/*.yaml`) through `dialogs::sim`: scripted tests as they are, `llm: true`
//! tests against the configured LLM — or skipped, with the reason, when none is configured.
//! Their scripted `llm:` step replies are fixtures for the fake OpenAI server that `cargo test`
//! runs them against (testkit is dev-only, so the binary has no fake to feed them to).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use dialogs::FlowRegistry;
use dialogs::sim::{ConversationTest, load_tests, run_test};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Validate every flow file: one line per problem (`file:line: key: message`), then a
    /// summary; exit 2 when any flow is invalid
    Check {
        /// Folder of flow files [default: flows.dir]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the YAML conversation tests in DIR/tests: scripted tests without an LLM, `llm: true`
    /// tests against the configured LLM (`llm.base_url`), or skipped when none is configured.
    /// Exit 1 when a test fails, 2 when a flow or test file is invalid
    Test {
        /// Only the tests of this flow
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// Folder of flow files, with the tests in DIR/tests [default: flows.dir]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub(super) async fn run(cmd: FlowsCommand, cfg: &Config) -> anyhow::Result<()> {
    match cmd {
        FlowsCommand::Check { dir } => check(dir, cfg),
        FlowsCommand::Test { flow, dir } => test(flow, dir, cfg).await,
    }
}

/// Exit code 2 (bad configuration) after what was printed. The CLI's error path maps every
/// error to 1, and a check that found invalid flows is not a runtime failure.
fn exit_invalid() -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(2)
}

fn check(dir: Option<PathBuf>, cfg: &Config) -> anyhow::Result<()> {
    let configured = dir.is_none();
    let dir = dir.unwrap_or_else(|| cfg.flows.dir.clone());
    let scan = match FlowRegistry::scan_dir(&dir) {
        Ok(scan) => scan,
        Err(e) => {
            println!("{e}");
            exit_invalid();
        }
    };
    for e in scan.errors() {
        println!("{e}");
    }
    let mut problems = scan.errors().count();
    // The daemon refuses to start without its default flow; say so here too.
    if configured
        && scan.invalid.is_empty()
        && !scan.valid.iter().any(|f| f.name() == cfg.flows.default)
    {
        println!(
            "flows.default = {:?}: no such flow in {}",
            cfg.flows.default,
            dir.display()
        );
        problems += 1;
    }
    for f in &scan.valid {
        let hours = f
            .business_hours()
            .map(|h| format!(", business hours in {}", h.timezone()))
            .unwrap_or_default();
        println!(
            "ok  {}  {}  (version {}{hours})",
            f.name(),
            f.path().display(),
            short_hash(f.version_hash())
        );
    }
    let files = scan.valid.len() + scan.invalid.len();
    if problems > 0 {
        println!(
            "{problems} problem{} in {} of {files} flow file{} in {}",
            plural(problems),
            scan.invalid.len(),
            plural(files),
            dir.display()
        );
        exit_invalid();
    }
    println!(
        "{} flow{} valid in {}",
        scan.valid.len(),
        plural(scan.valid.len()),
        dir.display()
    );
    Ok(())
}

async fn test(only: Option<String>, dir: Option<PathBuf>, cfg: &Config) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| cfg.flows.dir.clone());
    let flows = match FlowRegistry::load_dir(&dir) {
        Ok(f) => f,
        Err(e) => {
            println!("{e}");
            println!("fix the flows first (`agent flows check`)");
            exit_invalid();
        }
    };
    if let Some(name) = &only
        && flows.get(name).is_none()
    {
        println!(
            "no flow named {name:?} in {} (have: {})",
            dir.display(),
            flows.names().join(", ")
        );
        exit_invalid();
    }
    let llm = crate::wiring::llm_client(cfg)?;
    let files = test_files(&dir.join("tests"))?;
    let mut loaded: Vec<(PathBuf, Vec<ConversationTest>)> = Vec::new();
    for file in files {
        match load_tests(&file) {
            Ok(tests) => loaded.push((file, tests)),
            Err(e) => {
                println!("{e}");
                exit_invalid();
            }
        }
    }
    match &llm {
        Some(l) => println!(
            "llm: {} at {} (tests marked llm: true run against it; their scripted replies are ignored)",
            l.config().model,
            l.config().base_url
        ),
        None => {
            println!("llm: none configured (llm.base_url is empty); llm: true tests are skipped")
        }
    }
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for (file, tests) in &loaded {
        let tests: Vec<&ConversationTest> = tests
            .iter()
            .filter(|t| only.as_ref().is_none_or(|n| &t.flow == n))
            .collect();
        if tests.is_empty() {
            continue;
        }
        println!("{}", file.display());
        for t in tests {
            if t.llm && llm.is_none() {
                skipped += 1;
                println!("  skip  {} (needs an LLM: llm.base_url is empty)", t.name);
                continue;
            }
            let report = run_test(t, &flows, llm.clone(), |_| {}).await;
            if report.passed() {
                passed += 1;
                println!("  ok    {}", t.name);
            } else {
                failed += 1;
                println!("  FAIL  {}", t.name);
                for f in &report.failures {
                    println!("        {f}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if passed + failed + skipped == 0 {
        let scope = only.map(|n| format!(" for flow {n:?}")).unwrap_or_default();
        anyhow::bail!(
            "no conversation tests{scope} in {}",
            dir.join("tests").display()
        );
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} conversation test{} failed",
        plural(failed)
    );
    Ok(())
}

/// `*.yaml` / `*.yml` in `dir`, sorted; a missing folder has none.
fn test_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
