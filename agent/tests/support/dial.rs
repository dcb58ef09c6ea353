//! `agent dial` from tests: run it with a deadline, read its final line, and read the call it
//! stored from the agent's SQLite database.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Env;

/// Starts `agent --config … ARGS` with stdout and stderr piped.
pub fn spawn_agent(env: &Env, args: &[&str]) -> Child {
    Command::new(super::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `agent --config … ARGS` with a deadline; kills it when the deadline passes.
pub fn run_agent(env: &Env, args: &[&str], within: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = spawn_agent(env, args);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "agent {args:?} still running after {within:?}\nstdout:\n{}\nstderr:\n{}",
                super::stdout(&out),
                super::stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

/// The call id from `agent dial`'s last line, `call <id> ended: <reason>`.
pub fn final_line(stdout: &str) -> (String, String) {
    let line = stdout.lines().last().unwrap_or_default();
    let rest = line
        .strip_prefix("call ")
        .unwrap_or_else(|| panic!("final line: {stdout}"));
    let (id, reason) = rest
        .split_once(" ended: ")
        .unwrap_or_else(|| panic!("final line: {stdout}"));
    (id.to_owned(), reason.to_owned())
}

/// A call, its events and its turns, read from the agent's SQLite database.
pub fn stored_call(env: &Env, id: &str) -> (store::Call, Vec<store::CallEvent>, Vec<store::Turn>) {
    let url = format!("sqlite://{}", env.dir.path().join("agent.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = store::Store::connect(&url, &store::StoreOptions::default())
                .await
                .unwrap();
            let tenant = store.tenant_by_name("default").await.unwrap().unwrap();
            let id = store::CallId::new(id);
            let call = store.get_call(&tenant.id, &id).await.unwrap().unwrap();
            let events = store.list_call_events(&id).await.unwrap();
            let turns = store.list_turns(&id).await.unwrap();
            store.close().await;
            (call, events, turns)
        })
}

pub fn kinds(events: &[store::CallEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}
