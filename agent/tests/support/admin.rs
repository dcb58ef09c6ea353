//! Reading calls back through the admin API, polling with a deadline instead of sleeping.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Daemon, Env, http_get};

/// Creates a supervisor key for the default tenant (`agent keys create` prints it last).
pub fn supervisor_key(env: &Env) -> String {
    let out = env.run(&[
        "keys",
        "create",
        "--tenant",
        "default",
        "--role",
        "supervisor",
    ]);
    assert!(out.status.success(), "{}", super::stderr(&out));
    super::stdout(&out)
        .lines()
        .last()
        .expect("the key on the last line")
        .to_owned()
}

/// GET `path` with the key; panics on a non-200.
pub fn get_json(daemon: &Daemon, key: &str, path: &str) -> Value {
    let (status, body) = http_get(&daemon.url(path), Some(key))
        .unwrap_or_else(|| panic!("GET {path}: no answer; log:\n{}", daemon.log_text()));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Every stored call (first page, newest first).
pub fn calls(daemon: &Daemon, key: &str) -> Vec<Value> {
    get_json(daemon, key, "/v1/calls?limit=100")["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// One call with its turns and events.
pub fn call(daemon: &Daemon, key: &str, id: &str) -> Value {
    get_json(daemon, key, &format!("/v1/calls/{id}"))
}

/// Polls until `ready` holds for the only stored call (with turns and events) and returns it;
/// panics after `within` with the last state seen and the daemon's log.
pub fn wait_for_call(
    daemon: &Daemon,
    key: &str,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    loop {
        let list = calls(daemon, key);
        assert!(list.len() <= 1, "more than one call stored: {list:#?}");
        if let Some(id) = list.first().and_then(|c| c["id"].as_str()) {
            last = call(daemon, key, id);
            if ready(&last) {
                return last;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "no call {what} within {within:?}; last seen: {last:#}\nlog:\n{}",
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the only call to be stored as ended.
pub fn ended_call(daemon: &Daemon, key: &str, within: Duration) -> Value {
    wait_for_call(daemon, key, within, "ended", |c| c["status"] == "ended")
}

/// The call's event kinds, in order.
pub fn event_kinds(call: &Value) -> Vec<String> {
    call["events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The first event of `kind`.
pub fn event<'a>(call: &'a Value, kind: &str) -> Option<&'a Value> {
    call["events"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == kind)
}
