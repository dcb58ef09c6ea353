//! `agent zoho …` and `agent keys rotate-encryption` against the real binary, with a fake Zoho
//! in this process: connecting (URL, then code), syncing with a summary, the wrong-key start-up
//! error (exit 2 naming security.encryption_key), rotation, and the admin API's view of it all
//! (never a token).

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, http_get, http_request, stderr, stdout};
use testkit::zoho::{BooksContactSeed, FakeZoho, Person};

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64

struct World {
    // Keeps the fake's server running while the test thread drives the binary.
    _rt: tokio::runtime::Runtime,
    fake: FakeZoho,
    env: Env,
}

fn world(extra: &str) -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeZoho::start("1000.CLIENT", "client-secret"));
    let env = Env::new(&format!(
        "[zoho]\nclient_id = \"1000.CLIENT\"\nclient_secret = \"client-secret\"\n\
         redirect_uri = \"https://agent.example/zoho/callback\"\n\
         books_organization_id = \"{org}\"\nsync_interval_secs = 0\noutbox_poll_ms = 100\n\
         accounts_servers = {{ us = \"{us}\", eu = \"{eu}\" }}\n{extra}",
        org = fake.books_organization_id(),
        us = fake.accounts_server("us"),
        eu = fake.accounts_server("eu"),
    ));
    World { _rt: rt, fake, env }
}

/// `agent ARGS…` with the encryption key (and previous keys) in the environment.
fn run(env: &Env, key: Option<&str>, previous: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--config")
        .arg(&env.config)
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG");
    if let Some(k) = key {
        cmd.env("AGENT__SECURITY__ENCRYPTION_KEY", k);
    }
    if let Some(p) = previous {
        cmd.env("AGENT__SECURITY__PREVIOUS_ENCRYPTION_KEYS", p);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[test]
fn connect_sync_status_and_key_rotation() {
    let w = world("");
    let env = &w.env;
    w.fake
        .add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    w.fake.add_lead(&Person::new("No", "Phone", ""));
    w.fake.add_books_contact(&BooksContactSeed {
        name: "Bob Roe".into(),
        phone: Some("+15550143000".into()),
        outstanding: "10.50".into(),
        currency: "USD".into(),
        ..BooksContactSeed::default()
    });

    // Step 1: the authorization URL for the EU data centre.
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &["zoho", "connect", "--tenant", "default", "--dc", "eu"],
    ));
    let url = out
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        url.starts_with(&format!("{}/oauth/v2/auth?", w.fake.accounts_server("eu"))),
        "{url}"
    );
    for part in [
        "access_type=offline",
        "prompt=consent",
        "response_type=code",
        "client_id=1000.CLIENT",
        "ZohoCRM.modules.calls.WRITE",
        "redirect_uri=https%3A%2F%2Fagent.example%2Fzoho%2Fcallback",
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
    // Step 2: the code from the redirect, with its accounts server.
    let code = w.fake.issue_code("eu");
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &[
            "zoho",
            "connect",
            "--tenant",
            "default",
            "--code",
            &code,
            "--accounts-server",
            &w.fake.accounts_server("eu"),
        ],
    ));
    assert!(out.contains("connected tenant default to Zoho eu"), "{out}");
    assert!(
        !out.contains("1000.refresh") && !out.contains("1000.access"),
        "no tokens printed: {out}"
    );

    // Sync: a summary on stdout, per stream.
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &["zoho", "sync", "--tenant", "default"],
    ));
    assert!(
        out.contains("incremental sync of default: 3 records"),
        "{out}"
    );
    assert!(out.contains("1 skipped without a phone"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("crm:Contacts") && l.contains("inserted       1")),
        "{out}"
    );
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &["zoho", "status", "--tenant", "default"],
    ));
    assert!(
        out.contains("connected (eu)") && out.contains("succeeded"),
        "{out}"
    );

    // A different key cannot read the stored tokens: exit 2 naming the key, nothing synced.
    let asked = w.fake.requests().len();
    let out = run(
        env,
        Some(KEY_B),
        None,
        &["zoho", "sync", "--tenant", "default"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("security.encryption_key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.fake.requests().len(), asked);
    // `serve` refuses to start the same way.
    let out = run(env, Some(KEY_B), None, &["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("security.encryption_key"),
        "{}",
        stderr(&out)
    );
    let out = run(env, None, None, &["serve"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no key at all: {}",
        stderr(&out)
    );

    // Rotation: B current, A previous → everything re-encrypted under B; then B alone works.
    let out = ok(&run(
        env,
        Some(KEY_B),
        Some(KEY_A),
        &["keys", "rotate-encryption"],
    ));
    assert!(out.contains("re-encrypted 2 secret(s)"), "{out}");
    let out = ok(&run(
        env,
        Some(KEY_B),
        None,
        &["zoho", "sync", "--tenant", "default"],
    ));
    assert!(out.contains("incremental sync of default"), "{out}");
    let out = run(
        env,
        Some(KEY_A),
        None,
        &["zoho", "sync", "--tenant", "default"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the old key alone no longer works"
    );
}

#[test]
fn bad_settings_exit_2_naming_the_key() {
    let w = world("");
    let out = run(&w.env, Some("not-base64!"), None, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("security.encryption_key"),
        "{}",
        stderr(&out)
    );
    let out = run(&w.env, Some(&KEY_A[..20]), None, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("32 bytes"), "{}", stderr(&out));
    // The key is redacted in the printed config.
    let out = ok(&run(&w.env, Some(KEY_A), None, &["check-config"]));
    assert!(
        !out.contains(KEY_A) && out.contains("[zoho]") && !out.contains("client-secret"),
        "{out}"
    );
    let out = run(
        &w.env,
        None,
        None,
        &["zoho", "connect", "--tenant", "default", "--dc", "us"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("security.encryption_key"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &w.env,
        Some(KEY_A),
        None,
        &["zoho", "connect", "--tenant", "default", "--dc", "mars"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown Zoho data centre"),
        "{}",
        stderr(&out)
    );
    let bare = Env::new("");
    let out = run(
        &bare,
        Some(KEY_A),
        None,
        &["zoho", "connect", "--tenant", "default", "--dc", "us"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("zoho.client_id"), "{}", stderr(&out));
}

#[test]
fn admin_api_connects_and_reports_without_tokens() {
    let w = world("");
    let env = &w.env;
    w.fake
        .add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &["keys", "create", "--tenant", "default", "--role", "admin"],
    ));
    let admin = out.lines().last().unwrap().to_owned();
    let out = ok(&run(
        env,
        Some(KEY_A),
        None,
        &[
            "keys",
            "create",
            "--tenant",
            "default",
            "--role",
            "supervisor",
        ],
    ));
    let supervisor = out.lines().last().unwrap().to_owned();
    let daemon = env.serve_with(&[], &[("AGENT__SECURITY__ENCRYPTION_KEY", KEY_A)]);

    let (status, body) = http_get(&daemon.url("/v1/integrations/zoho"), Some(&supervisor)).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["zoho"]["status"], "not_connected");
    assert_eq!(v["zoho"]["configured"], true);

    // Connecting needs the admin role.
    let start = r#"{"dc": "us"}"#;
    let (status, body) = http_request(
        "POST",
        &daemon.url("/v1/integrations/zoho/connect/start"),
        Some(&supervisor),
        Some(start),
    )
    .unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, body) = http_request(
        "POST",
        &daemon.url("/v1/integrations/zoho/connect/start"),
        Some(&admin),
        Some(r#"{"dc": "venus"}"#),
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"code\":\"bad_request\""), "{body}");
    let (status, body) = http_request(
        "POST",
        &daemon.url("/v1/integrations/zoho/connect/start"),
        Some(&admin),
        Some(start),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let started: Value = serde_json::from_str(&body).unwrap();
    let state = started["state"].as_str().unwrap();
    assert!(
        started["authorization_url"]
            .as_str()
            .unwrap()
            .contains("state=")
    );
    // A forged state is refused; the issued one connects.
    let code = w.fake.issue_code("us");
    let forged = format!(r#"{{"code": "{code}", "state": "forged"}}"#);
    let (status, body) = http_request(
        "POST",
        &daemon.url("/v1/integrations/zoho/connect/exchange"),
        Some(&admin),
        Some(&forged),
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    let exchange = format!(
        r#"{{"code": "{code}", "state": "{state}", "accounts_server": "{}"}}"#,
        w.fake.accounts_server("us")
    );
    let (status, body) = http_request(
        "POST",
        &daemon.url("/v1/integrations/zoho/connect/exchange"),
        Some(&admin),
        Some(&exchange),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"connected\""), "{body}");

    // A sync from the CLI while the daemon runs shows up in the API.
    ok(&run(
        env,
        Some(KEY_A),
        None,
        &["zoho", "sync", "--tenant", "default"],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (_, body) = http_get(&daemon.url("/v1/integrations/zoho"), Some(&admin)).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["zoho"]["last_sync"]["status"] == "succeeded" || Instant::now() > deadline {
            assert!(
                !body.contains("1000.access") && !body.contains("1000.refresh"),
                "tokens leaked: {body}"
            );
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let z = &v["zoho"];
    assert_eq!(z["status"], "connected", "{z:#}");
    assert_eq!(z["dc"], "us");
    assert_eq!(z["last_sync"]["status"], "succeeded", "{z:#}");
    assert_eq!(z["counts"]["customers"], 1);
    assert!(z["watermarks"]["crm:Contacts"].is_string(), "{z:#}");
    let log = daemon.log_text();
    assert!(
        !log.contains("1000.access") && !log.contains("1000.refresh"),
        "tokens in the log"
    );
}
