//! The dialog tools of the CLI against the real binary: `flows check`, `flows test`,
//! `customers import` and `chat` with no LLM configured.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{BIN, Env, stderr, stdout};

/// Runs `agent --config <cfg> ARGS…` with `input` on stdin.
fn run_with_input(env: &Env, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn shipped_flows() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/flows")
}

#[test]
fn flows_check_accepts_the_shipped_flows_and_names_file_line_and_key_of_a_broken_one() {
    let env = Env::new("");
    let out = env.run(&["flows", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("receptionist") && text.contains("payment_reminder"),
        "{text}"
    );

    // A copy of the receptionist whose greeting node transitions to a node that does not exist.
    let dir = env.dir.path().join("broken");
    std::fs::create_dir(&dir).unwrap();
    let original = std::fs::read_to_string(shipped_flows().join("receptionist.toml")).unwrap();
    let broken = original.replacen("= \"not_identified\"", "= \"no_such_node\"", 1);
    assert_ne!(broken, original, "the fixture edit must change the flow");
    std::fs::write(dir.join("receptionist.toml"), &broken).unwrap();
    let out = env.run(&["flows", "check", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    let line = broken
        .lines()
        .position(|l| l.contains("no_such_node"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("receptionist.toml:{line}")),
        "names file and line {line}: {text}"
    );
    assert!(text.contains("no_such_node"), "{text}");
}

#[test]
fn flows_test_runs_the_shipped_conversation_tests_and_skips_llm_ones_without_an_llm() {
    let env = Env::new("");
    let out = env.run(&["flows", "test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let summary = text.lines().last().unwrap_or_default();
    assert!(summary.contains("0 failed"), "{text}");
    let passed: u32 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= 10, "{text}");
    assert!(
        text.contains("skip") && text.contains("needs an LLM"),
        "{text}"
    );
}

#[test]
fn chat_with_no_llm_greets_answers_the_imported_caller_and_ends_on_goodbye() {
    let env = Env::new("");
    let out = env.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = env.dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "external_id,name,company,email,phone,postal_code,balance,currency\n\
         c-1,Jane Doe,Doe Ltd,jane@example.com,+1 415 555 0100,94110,142.50,USD\n\
         c-2,Bad Row,,,not a phone,,12,USD\n",
    )
    .unwrap();
    let out = env.run(&[
        "customers",
        "import",
        csv.to_str().unwrap(),
        "--tenant",
        "default",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = stdout(&out);
    assert!(report.contains("1 inserted"), "{report}");
    assert!(
        report.contains("line 3"),
        "the rejected row is named: {report}"
    );

    let out = run_with_input(
        &env,
        &[
            "chat",
            "--flow",
            "receptionist",
            "--caller",
            "+14155550100",
            "--business",
            "open",
        ],
        // Her caller ID is not trusted here (no trunk vouches for it): the postal code first.
        "what's my balance\nnine four one one zero\nmy balance please\ngoodbye\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let greeting: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("agent:"))
        .take_while(|l| l.starts_with("agent:"))
        .collect();
    assert!(
        greeting.iter().any(|l| l.contains("Jane")),
        "greets the known caller by name: {text}"
    );
    let asked_code = text.find("postal code").expect("asks for the postal code");
    let balance = text
        .find("142.50")
        .expect("states her balance once verified");
    assert!(asked_code < balance, "{text}");
    assert!(text.contains("(call ended:"), "{text}");

    // An unknown caller asking for a balance is refused, and the refusal is a call event.
    let out = run_with_input(
        &env,
        &[
            "chat",
            "--flow",
            "receptionist",
            "--caller",
            "+14155550199",
            "--business",
            "open",
        ],
        "what's my balance\n/quit\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(!text.contains("142.50"), "{text}");
    assert!(text.contains("refused (get_balance)"), "{text}");
}
