//! Campaigns against the real binary: the CLI (`agent campaigns`, `agent dnc`), and daemons
//! calling real SIP peers — two daemons on one PostgreSQL database sharing a 200-contact
//! campaign against a SIPp answering peer, and calls through Kamailio to baresip phones that
//! answer, reject, do not answer, or are answering machines (a greeting and a beep).

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::campaign::{PgDb, Rejector, SippCallee, block_on};
use support::{Env, http_get, stderr, stdout};

const TRUNK: &str = "[[trunks]]\nname = \"kam\"\nproxy = \"sip:127.0.0.1:5999\"\n\
                     keepalive_secs = 0\nallowed_destinations = [\"+1\"]\n";

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn cli_creates_campaigns_only_from_valid_input_and_manages_the_dnc_list() {
    let env = Env::new(TRUNK);
    let csv = env.dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "phone,name,amount\n+12125550100,Ann,12.50\nnonsense,Bob,1\n+12125550100,Ann again,2\n",
    )
    .unwrap();
    let csv_arg = csv.to_str().unwrap();
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "campaigns",
            "create",
            name,
            "--tenant",
            "default",
            "--flow",
            "payment_reminder",
            "--trunk",
            "kam",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = create("may", &["--csv", csv_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 3: phone") && err.contains("line 4: the same number as line 2"),
        "{err}"
    );
    assert!(!err.contains("555"), "no number in errors: {err}");
    assert_eq!(ok(&env, &["campaigns", "list", "--tenant", "default"]), "");

    std::fs::write(&csv, "phone,name\n+12125550100,Ann\n(212) 555-0101,Bob\n").unwrap();
    let out = create("may", &["--csv", csv_arg, "--flow", "nope"]);
    assert_eq!(out.status.code(), Some(2), "unknown flow: {}", stderr(&out));
    let out = create(
        "may",
        &["--csv", csv_arg, "--window", "mon-fri 20:00-09:00"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("windows[0].end"), "{}", stderr(&out));
    let text = ok(
        &env,
        &[
            "campaigns",
            "create",
            "may",
            "--tenant",
            "default",
            "--flow",
            "payment_reminder",
            "--trunk",
            "kam",
            "--csv",
            csv_arg,
            "--window",
            "mon-fri 09:00-20:00",
            "--retry",
            "busy=2/300",
            "--max-concurrent",
            "4",
        ],
    );
    assert!(text.contains("(draft): 2 contacts"), "{text}");
    ok(&env, &["campaigns", "start", "may", "--tenant", "default"]);
    let status = ok(&env, &["campaigns", "status", "may", "--tenant", "default"]);
    assert!(
        status.contains("(running,") && status.contains("2 total, 2 pending"),
        "{status}"
    );
    ok(&env, &["campaigns", "pause", "may", "--tenant", "default"]);
    let status = ok(&env, &["campaigns", "status", "may", "--tenant", "default"]);
    assert!(
        status.contains("reason: paused from the command line"),
        "{status}"
    );
    let out = env.run(&["campaigns", "start", "nope", "--tenant", "default"]);
    assert_eq!(out.status.code(), Some(2));

    ok(
        &env,
        &[
            "dnc",
            "add",
            "(212) 555-0100",
            "--tenant",
            "default",
            "--reason",
            "asked",
        ],
    );
    let dnc_csv = env.dir.path().join("dnc.csv");
    std::fs::write(&dnc_csv, "phone\n+12125550100\n+12125550102\n").unwrap();
    let text = ok(
        &env,
        &[
            "dnc",
            "import",
            dnc_csv.to_str().unwrap(),
            "--tenant",
            "default",
        ],
    );
    assert!(text.starts_with("1 added"), "{text}");
    let list = ok(&env, &["dnc", "list", "--tenant", "default"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.starts_with("+12125550100\tcli\tasked"), "{list}");
    ok(
        &env,
        &["dnc", "remove", "+12125550102", "--tenant", "default"],
    );
    let out = env.run(&["dnc", "remove", "+12125550102", "--tenant", "default"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `agent ARGS` with the config of `env` and the database at `db_url`.
fn agent_with_db(env: &Env, db_url: &str, args: &[&str]) -> String {
    let out = Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .env("AGENT__DATABASE__URL", db_url)
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The daemon config for campaign tests: no speech recognition model needed (a remote STT
/// that is never reached: callees say nothing), fast polling, short leases.
fn campaign_env(node: &str, trunk: &str, extra: &str) -> Env {
    Env::new(&format!(
        "[node]\nid = \"{node}\"\n\
         [stt]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
         [campaigns]\npoll_ms = 100\nlease_secs = 5\n{extra}\n{trunk}"
    ))
}

fn wait_for_campaign(daemon: &support::Daemon, key: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) =
            http_get(&daemon.url(&format!("/v1/campaigns/{id}")), Some(key)).expect("admin API");
        assert_eq!(status, 200, "{body}");
        let c: Value = serde_json::from_str(&body).unwrap();
        if c["status"] == "completed" || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn contacts_csv(dir: &Path, numbers: &[String]) -> PathBuf {
    let path = dir.join("contacts.csv");
    let mut text = String::from("phone,name\n");
    for (i, n) in numbers.iter().enumerate() {
        text.push_str(&format!("{n},Customer {i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_daemons_on_one_postgres_never_dial_a_number_twice() {
    let db = PgDb::create();
    let sipp = SippCallee::start();
    let trunk = format!(
        "[[trunks]]\nname = \"carrier\"\nproxy = \"sip:127.0.0.1:{}\"\nkeepalive_secs = 0\n\
         allowed_destinations = [\"+1\"]\n",
        sipp.port
    );
    let limits = "trunk_max_concurrent = 10\ntrunk_calls_per_second = 50.0\n";
    let a = campaign_env("node-a", &trunk, limits);
    let b = campaign_env("node-b", &trunk, limits);
    let numbers: Vec<String> = (0..200).map(|i| format!("+1212555{i:04}")).collect();
    let csv = contacts_csv(a.dir.path(), &numbers);
    let created = agent_with_db(
        &a,
        &db.url,
        &[
            "campaigns",
            "create",
            "two-daemons",
            "--tenant",
            "default",
            "--flow",
            "payment_reminder",
            "--trunk",
            "carrier",
            "--csv",
            csv.to_str().unwrap(),
            "--window",
            "mon-sun 00:00-24:00",
            "--max-concurrent",
            "20",
            "--calls-per-second",
            "40",
            "--start",
        ],
    );
    let id = created.split_whitespace().nth(1).unwrap().to_owned();
    let key = agent_with_db(
        &a,
        &db.url,
        &[
            "keys",
            "create",
            "--tenant",
            "default",
            "--role",
            "supervisor",
        ],
    )
    .lines()
    .last()
    .unwrap()
    .to_owned();

    let started = Instant::now();
    let env = [("AGENT__DATABASE__URL", db.url.as_str())];
    let da = a.serve_with(&[], &env);
    let db_ = b.serve_with(&[], &env);
    let c = wait_for_campaign(&da, &key, &id, Duration::from_secs(50));
    let took = started.elapsed();
    assert_eq!(
        c["status"],
        "completed",
        "{c:#}\nnode-a log:\n{}\nnode-b log:\n{}",
        da.log_text(),
        db_.log_text()
    );
    assert_eq!(c["progress"]["done"], 200, "{c:#}");
    assert_eq!(
        c["progress"]["attempts"], 200,
        "one attempt per contact: {c:#}"
    );
    assert_eq!(c["progress"]["dispositions"]["answered"], 200, "{c:#}");

    // The callee's side: every number rang exactly once.
    std::thread::sleep(Duration::from_millis(500));
    let calls = sipp.calls_per_number();
    assert_eq!(calls.len(), 200, "numbers dialled");
    for n in &numbers {
        assert_eq!(
            calls.get(n).map(HashSet::len),
            Some(1),
            "{n} dialled {:?}",
            calls.get(n)
        );
    }
    // Both daemons took part, and nothing is left claimed.
    let per_node =
        db.counts("SELECT node, COUNT(*) FROM campaign_attempts GROUP BY node ORDER BY node");
    let nodes: Vec<&str> = per_node.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, ["node-a", "node-b"], "{per_node:?}");
    assert_eq!(per_node.iter().map(|(_, c)| c).sum::<i64>(), 200);
    let left = db.counts("SELECT 'locks', COUNT(*) FROM dialling_numbers");
    assert_eq!(left[0].1, 0, "number locks released");
    eprintln!("200 contacts, two daemons: {took:?}; per node {per_node:?}");
    let (code_a, _) = da.terminate();
    let (code_b, _) = db_.terminate();
    assert_eq!((code_a, code_b), (Some(0), Some(0)));
}

fn contact_by_phone<'a>(contacts: &'a Value, phone: &str) -> &'a Value {
    contacts["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["phone"] == phone)
        .unwrap_or_else(|| panic!("{phone} in {contacts:#}"))
}

#[test]
fn through_kamailio_phones_that_answer_reject_ring_out_or_are_machines_get_their_dispositions() {
    use support::kamailio::Kamailio;
    use support::peers::Baresip;
    const ANSWERS: &str = "+12125550101";
    const REJECTS: &str = "+12125550102";
    const RINGS: &str = "+12125550103";
    const MACHINE: &str = "+12125550104";
    let kam = Kamailio::start_with_users(&[
        (ANSWERS, "pw1"),
        (REJECTS, "pw2"),
        (RINGS, "pw3"),
        (MACHINE, "pw4"),
    ]);
    let phones = tempfile::tempdir().unwrap();
    let wav = phones.path().join("silence.wav");
    let status = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["trim", "0", "2"])
        .status()
        .expect("sox");
    assert!(status.success());
    let dir = |name: &str| {
        let d = phones.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let max = Duration::from_secs(90);
    let mut answers = Baresip::answer_registered(&dir("a"), ANSWERS, "pw1", &kam.addr(), &wav, max);
    let mut rejects = Baresip::ring_registered(&dir("r"), REJECTS, "pw2", &kam.addr(), &wav, max);
    let mut rings = Baresip::ring_registered(&dir("n"), RINGS, "pw3", &kam.addr(), &wav, max);
    // An answering machine: a recorded greeting and its beep, then it records.
    let greeting = phones.path().join("machine.wav");
    support::peers::padded_clip(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../audio/tests/data/amd/machine_anna.wav"),
        &greeting,
        0.0,
        30.0,
    );
    let mut machine =
        Baresip::answer_registered(&dir("m"), MACHINE, "pw4", &kam.addr(), &greeting, max);
    for phone in [&mut answers, &mut rejects, &mut rings, &mut machine] {
        phone.wait_registered(Duration::from_secs(10));
    }
    let rejector = Rejector::start(&dir("r"));

    let trunk = format!(
        "[[trunks]]\nname = \"kam\"\nproxy = \"sip:{}\"\nusername = \"agent\"\n\
         password = \"agentpw\"\nrealm = \"127.0.0.1\"\nkeepalive_secs = 0\n\
         allowed_destinations = [\"+1\"]\n",
        kam.addr()
    );
    let env = campaign_env("solo", &trunk, "[call]\nringing_timeout_secs = 3\n");
    let numbers = [ANSWERS, REJECTS, RINGS, MACHINE].map(str::to_owned);
    let csv = contacts_csv(env.dir.path(), &numbers);
    let created = ok(
        &env,
        &[
            "campaigns",
            "create",
            "kam",
            "--tenant",
            "default",
            "--flow",
            "payment_reminder",
            "--trunk",
            "kam",
            "--csv",
            csv.to_str().unwrap(),
            "--window",
            "mon-sun 00:00-24:00",
            "--retry",
            "busy=2/1",
            "--retry",
            "no_answer=2/1",
            "--retry",
            "voicemail=1/1",
            "--calls-per-second",
            "5",
            "--start",
        ],
    );
    let id = created.split_whitespace().nth(1).unwrap().to_owned();
    let key = ok(
        &env,
        &[
            "keys",
            "create",
            "--tenant",
            "default",
            "--role",
            "supervisor",
        ],
    )
    .lines()
    .last()
    .unwrap()
    .to_owned();
    let daemon = env.serve();
    let c = wait_for_campaign(&daemon, &key, &id, Duration::from_secs(60));
    assert_eq!(c["status"], "completed", "{c:#}\n{}", daemon.log_text());
    let (_, body) = http_get(
        &daemon.url(&format!("/v1/campaigns/{id}/contacts")),
        Some(&key),
    )
    .unwrap();
    let contacts: Value = serde_json::from_str(&body).unwrap();

    let answered = contact_by_phone(&contacts, ANSWERS);
    assert_eq!(answered["disposition"], "answered", "{answered:#}");
    assert_eq!(answered["attempts"], 1);
    let rejected = contact_by_phone(&contacts, REJECTS);
    assert_eq!(
        rejected["disposition"], "busy",
        "486 from the phone: {rejected:#}"
    );
    assert_eq!(rejected["attempts"], 2, "retried once (busy=2/1)");
    let unanswered = contact_by_phone(&contacts, RINGS);
    assert_eq!(unanswered["disposition"], "no_answer", "{unanswered:#}");
    assert_eq!(unanswered["attempts"], 2, "retried once (no_answer=2/1)");
    assert_eq!(rejector.finish(), 2, "the rejecting phone rang twice");
    assert!(answers.established(), "{}", answers.log());
    let voicemail = contact_by_phone(&contacts, MACHINE);
    assert_eq!(voicemail["disposition"], "voicemail", "{voicemail:#}");
    assert_eq!(voicemail["attempts"], 1, "not retried (voicemail=1/1)");
    let machine_call = voicemail["last_call_id"].as_str().unwrap();
    let (_, body) = http_get(
        &daemon.url(&format!("/v1/calls/{machine_call}")),
        Some(&key),
    )
    .unwrap();
    let machine_call: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(machine_call["end_reason"], "voicemail", "{machine_call:#}");
    assert!(
        machine_call["turns"][0]["agent_text"]
            .as_str()
            .is_some_and(|t| t.contains("call us back")),
        "the flow's voicemail message was left: {machine_call:#}"
    );

    // The answered call is stored with the campaign noted on it.
    let call_id = answered["last_call_id"].as_str().unwrap();
    let (_, body) = http_get(&daemon.url(&format!("/v1/calls/{call_id}")), Some(&key)).unwrap();
    let call: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"campaign_attempt"), "{kinds:?}");
    assert!(kinds.contains(&"answered"), "{kinds:?}");
    // Kamailio relayed each attempt to the phones (4 numbers, 6 calls).
    let relayed = kam.log_lines("AUTHENTICATED INVITE from sip:agent@");
    assert_eq!(relayed.len(), 6, "{relayed:#?}");
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

/// Attempts of campaign `stops` and their results, per number, from a SQLite database.
fn attempts_by_number(db_path: &Path) -> Vec<(String, Option<String>, Option<i64>)> {
    block_on(async {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", db_path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let rows = sqlx::query(
            "SELECT c.phone, a.result, a.ended_at FROM campaign_attempts a \
             JOIN campaign_contacts c ON c.id = a.contact_id \
             JOIN campaigns k ON k.id = a.campaign_id WHERE k.name = 'stops' \
             ORDER BY c.phone, a.seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    })
}

fn claimed_contacts(db_path: &Path) -> i64 {
    block_on(async {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", db_path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM campaign_contacts WHERE state = 'claimed'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn sigterm_finishes_calls_and_releases_claims_and_a_killed_daemons_claims_return() {
    let sipp = SippCallee::start();
    let trunk = format!(
        "[[trunks]]\nname = \"carrier\"\nproxy = \"sip:127.0.0.1:{}\"\nkeepalive_secs = 0\n\
         allowed_destinations = [\"+1\"]\n",
        sipp.port
    );
    let a = campaign_env("node-a", &trunk, "");
    let db_path = a.dir.path().join("agent.db");
    let numbers: Vec<String> = (0..12).map(|i| format!("+1212555{i:04}")).collect();
    let csv = contacts_csv(a.dir.path(), &numbers);
    ok(
        &a,
        &[
            "campaigns",
            "create",
            "stops",
            "--tenant",
            "default",
            "--flow",
            "payment_reminder",
            "--trunk",
            "carrier",
            "--csv",
            csv.to_str().unwrap(),
            "--window",
            "mon-sun 00:00-24:00",
            "--max-concurrent",
            "3",
            "--calls-per-second",
            "2",
            "--start",
        ],
    );

    // SIGTERM while calls are up and more are claimed: the calls finish (SIPp hangs up after
    // 1 s, well within the 5 s grace), the claims not dialled are released.
    let daemon = a.serve();
    assert!(wait_until(Duration::from_secs(15), || {
        sipp.calls_per_number().len() >= 2
    }));
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(5),
        "calls finished within the grace: {took:?}"
    );
    assert_eq!(claimed_contacts(&db_path), 0, "no claim left behind");
    let attempts = attempts_by_number(&db_path);
    assert!(!attempts.is_empty());
    for (phone, result, ended) in &attempts {
        assert_eq!(result.as_deref(), Some("answered"), "{phone}: {attempts:?}");
        assert!(ended.is_some());
    }
    let rang = sipp.calls_per_number();
    assert_eq!(
        rang.values().map(HashSet::len).sum::<usize>(),
        attempts.len(),
        "every call placed is recorded, once: {rang:?} vs {attempts:?}"
    );

    // SIGKILL mid-call: another daemon takes the contacts over once the lease (5 s) runs
    // out; the call the dead daemon had up is recorded as lost.
    let mut killed = a.serve();
    let before = rang.values().map(HashSet::len).sum::<usize>();
    assert!(wait_until(Duration::from_secs(15), || {
        sipp.calls_per_number()
            .values()
            .map(HashSet::len)
            .sum::<usize>()
            > before
    }));
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    let b = campaign_env("node-b", &trunk, "");
    let db_url = format!("sqlite://{}", db_path.display());
    // Node b also runs the tenant's callbacks campaign: a callback the receptionist took
    // becomes one of its contacts, and is closed once the callee is reached.
    agent_with_db(
        &b,
        &db_url,
        &[
            "campaigns",
            "create",
            "callbacks",
            "--tenant",
            "default",
            "--flow",
            "receptionist",
            "--trunk",
            "carrier",
            "--callbacks",
            "--window",
            "mon-sun 00:00-24:00",
            "--start",
        ],
    );
    let callback_id = block_on(async {
        let store = store::Store::connect(&db_url, &store::StoreOptions::default())
            .await
            .unwrap();
        let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
        let cb = store
            .insert_callback(store::NewCallback {
                tenant_id: tenant,
                number: "(212) 555-9999".into(),
                reason: Some("billing question".into()),
                created_at: 1,
                ..store::NewCallback::default()
            })
            .await
            .unwrap();
        store.close().await;
        cb.id
    });
    let daemon = b.serve_with(&[], &[("AGENT__DATABASE__URL", &db_url)]);
    let status = || {
        let out = Command::new(support::BIN)
            .arg("--config")
            .arg(&b.config)
            .args(["campaigns", "status", "stops", "--tenant", "default"])
            .env(
                "AGENT__DATABASE__URL",
                format!("sqlite://{}", db_path.display()),
            )
            .output()
            .unwrap();
        stdout(&out)
    };
    assert!(
        wait_until(Duration::from_secs(40), || status().contains("(completed,")),
        "{}\n{}",
        status(),
        daemon.log_text()
    );
    let attempts = attempts_by_number(&db_path);
    let lost: Vec<_> = attempts
        .iter()
        .filter(|(_, r, _)| r.as_deref() == Some("lost"))
        .collect();
    assert!(
        !lost.is_empty(),
        "the killed call is recorded as lost: {attempts:?}"
    );
    let answered: HashSet<&str> = attempts
        .iter()
        .filter(|(_, r, _)| r.as_deref() == Some("answered"))
        .map(|(p, _, _)| p.as_str())
        .collect();
    assert_eq!(
        answered.len(),
        12,
        "every number reached once: {attempts:?}"
    );
    let answered_total = attempts
        .iter()
        .filter(|(_, r, _)| r.as_deref() == Some("answered"))
        .count();
    assert_eq!(answered_total, 12, "nobody reached twice");
    let callback_done = || {
        block_on(async {
            let store = store::Store::connect(&db_url, &store::StoreOptions::default())
                .await
                .unwrap();
            let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
            let cb = store
                .callback(&tenant, &callback_id)
                .await
                .unwrap()
                .unwrap();
            store.close().await;
            cb.status == store::CallbackStatus::Done
        })
    };
    assert!(
        wait_until(Duration::from_secs(15), callback_done),
        "the callback was not called back\n{}",
        daemon.log_text()
    );
    assert_eq!(
        sipp.calls_per_number()
            .get("+12125559999")
            .map(HashSet::len),
        Some(1),
        "the callback's number rang once"
    );
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
