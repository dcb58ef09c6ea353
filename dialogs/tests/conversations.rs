//! The shipped flows' YAML conversation tests (config/flows/tests), scripted and against
//! testkit's FakeOpenAi for the `llm: true` ones.

mod common;

use common::flows_dir;
use dialogs::sim::{load_tests, run_test};
use dialogs::{FlowRegistry, LlmClient, LlmConfig};
use testkit::openai::{ChatReply, ChatReplySpec, FakeOpenAi};

#[tokio::test]
async fn shipped_conversation_tests_pass() {
    let flows = FlowRegistry::load_dir(flows_dir()).expect("flows");
    let mut files: Vec<_> = std::fs::read_dir(flows_dir().join("tests"))
        .expect("tests dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut ran = 0;
    let mut failed = Vec::new();
    for file in files {
        for test in load_tests(&file).expect("valid test file") {
            // A fresh fake per test: replies queued by one test never leak into the next.
            let fake = FakeOpenAi::start().await;
            let llm =
                LlmClient::new(LlmConfig::new(&fake.base_url(), None, "fake")).expect("client");
            let report = run_test(&test, &flows, Some(llm), |replies| {
                for r in replies {
                    let spec: ChatReplySpec =
                        serde_json::from_value(r.clone()).expect("llm reply spec");
                    fake.enqueue(ChatReply::from(spec));
                }
            })
            .await;
            ran += 1;
            if !report.passed() {
                failed.push(format!(
                    "{}: {}\n  {}",
                    file.display(),
                    report.name,
                    report.failures.join("\n  ")
                ));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} conversation tests failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(ran >= 12, "ran {ran}");
}

#[tokio::test]
async fn wrong_expectations_are_reported() {
    let flows = FlowRegistry::load_dir(flows_dir()).expect("flows");
    let path = std::env::temp_dir().join(format!("dialogs-conv-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "name: wrong\nflow: receptionist\ncaller: \"+15551234567\"\nsteps:\n  - say: \"my balance\"\n    expect: { node: goodbye, reply_contains: [\"$1.00\"], tool: list_invoices, ended: flow_completed }\n  - press: \"12\"\n",
    )
    .expect("write");
    let tests = load_tests(&path).expect("parse");
    let report = run_test(&tests[0], &flows, None, |_| {}).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(report.failures.len(), 5, "{:#?}", report.failures);
}
