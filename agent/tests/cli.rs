//! The foundation's "done when", against the real binary: config errors, keys, serve, SIGTERM.

mod support;

use std::time::Duration;

use support::{Env, http_get, stderr, stdout};

#[test]
fn check_config_with_a_misspelled_key_exits_2_naming_it() {
    let env = Env::new("[call]\nmax_duraton_secs = 60\n");
    let out = env.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("call.max_duraton_secs"), "{err}");
    assert!(
        err.contains(&env.config.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.lines().count() == 1, "one line: {err}");
}

#[test]
fn transfer_settings_are_checked_and_named() {
    for (config, names) in [
        (
            "[call]\ntransfer_mode = \"lukewarm\"\n",
            "call.transfer_mode",
        ),
        (
            "[call]\ntransfer_mode = \"warm\"\ntransfer_trunk = \"nope\"\n",
            "call.transfer_trunk",
        ),
    ] {
        let out = Env::new(config).run(&["check-config"]);
        assert_eq!(out.status.code(), Some(2), "{config}");
        assert!(stderr(&out).contains(names), "{config}: {}", stderr(&out));
    }
}

#[test]
fn check_config_prints_the_effective_config_redacted() {
    let env =
        Env::new("[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"sk-very-secret\"\n");
    let out = support::Env::run(&env, &["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("[llm]") && text.contains("<redacted>"),
        "{text}"
    );
    assert!(!text.contains("sk-very-secret"));
    // Environment beats the file, and a bad env value is exit 2 naming the variable.
    let out = std::process::Command::new(support::BIN)
        .args(["--config", env.config.to_str().unwrap(), "check-config"])
        .env("AGENT__SHUTDOWN__GRACE_SECS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("AGENT__SHUTDOWN__GRACE_SECS"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_arguments_print_usage_and_exit_2() {
    let out = std::process::Command::new(support::BIN)
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
    let out = std::process::Command::new(support::BIN)
        .arg("launch")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_database_is_a_one_line_error() {
    let env = Env::new("");
    let out = env.run(&[
        "--database-url",
        "postgres://postgres@127.0.0.1:1/none",
        "migrate",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: database postgres://postgres@127.0.0.1:1/none"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn keys_authenticate_until_revoked_and_sigterm_exits_0() {
    let env = Env::new("");
    let out = env.run(&["tenants", "create", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["keys", "create", "--tenant", "acme", "--role", "supervisor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = text.lines().last().unwrap().to_owned();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned();
    assert!(key.starts_with("agk_"), "{text}");
    let out = env.run(&["keys", "create", "--tenant", "nobody", "--role", "admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no tenant named \"nobody\""));

    let daemon = env.serve();
    assert_eq!(http_get(&daemon.url("/health"), None).unwrap().0, 200);
    assert_eq!(http_get(&daemon.url("/ready"), None).unwrap().0, 200);
    let (status, body) = http_get(&daemon.url("/v1/whoami"), Some(&key)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("supervisor"));
    assert_eq!(http_get(&daemon.url("/v1/whoami"), None).unwrap().0, 401);
    let (status, _) = http_get(&daemon.url("/v1/keys"), Some(&key)).unwrap();
    assert_eq!(status, 403, "supervisor may not list keys");
    let (status, metrics) = http_get(&daemon.url("/metrics"), None).unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("agent_http_requests_total"), "{metrics}");

    let out = env.run(&["keys", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, body) = http_get(&daemon.url("/v1/whoami"), Some(&key)).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"unauthorized\""));

    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(5),
        "within the 5 s grace period: {took:?}"
    );
}

#[test]
fn json_logs_when_configured() {
    let env = Env::new("[log]\nformat = \"json\"\n");
    let daemon = env.serve();
    let (code, _) = daemon_terminate_and_log(daemon, |log| {
        let first = log.lines().next().expect("a log line");
        let v: serde_json::Value =
            serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
        assert!(
            v.get("level").is_some() && v.get("message").is_some(),
            "{first}"
        );
    });
    assert_eq!(code, Some(0));
}

fn daemon_terminate_and_log(
    daemon: support::Daemon,
    check: impl FnOnce(&str),
) -> (Option<i32>, Duration) {
    let log = daemon.log.clone();
    let res = daemon.terminate();
    check(&std::fs::read_to_string(log).unwrap());
    res
}
