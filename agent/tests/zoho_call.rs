//! One real call from a Zoho contact: the daemon's periodic sync fills the cache from a fake
//! Zoho (CRM contact + linked Books balance), baresip calls from the contact's number and asks
//! for the balance, the agent greets them by name and says the Books balance (checked in the
//! stored turns and, with whisper, in what baresip heard), and the call is written back to the
//! CRM as a Calls record.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin::{ended_call, event_kinds, get_json};
use support::peers::{Baresip, padded_clip};
use support::speech::{Recording, transcribe, whisper_model, words};
use support::{Env, stderr, stdout};
use testkit::zoho::{BooksContactSeed, FakeZoho, Person};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../audio/tests/data")
        .join(name)
}

fn agent(env: &Env, args: &[&str]) -> String {
    let out = Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .current_dir(env.dir.path())
        .env("AGENT__SECURITY__ENCRYPTION_KEY", KEY)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

#[test]
fn synced_contact_is_greeted_by_name_told_the_books_balance_and_logged_in_crm() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeZoho::start("1000.CLIENT", "client-secret"));
    let jane = fake.add_contact(&Person::new("Jane", "Doe", "+15550142000"));
    fake.add_books_contact(&BooksContactSeed {
        name: "Jane Doe".into(),
        phone: Some("+15550142000".into()),
        outstanding: "142.50".into(),
        currency: "USD".into(),
        crm_contact_id: Some(jane.clone()),
        ..BooksContactSeed::default()
    });
    let env = Env::new(&format!(
        "[stt]\nmodel = \"{model}\"\nthreads = 1\n[call]\nsilence_timeout_secs = 3\n\
         [zoho]\nclient_id = \"1000.CLIENT\"\nclient_secret = \"client-secret\"\n\
         redirect_uri = \"https://agent.example/zoho/callback\"\nbooks_organization_id = \"{org}\"\n\
         sync_interval_secs = 1\noutbox_poll_ms = 100\naccounts_servers = {{ us = \"{us}\" }}\n\
         {trunk}",
        // baresip calls from loopback as a trunk that vouches for the caller ID would: the
        // default flow then reads the balance without asking for the postal code.
        trunk = support::TRUSTED_LOOPBACK_TRUNK,
        model = whisper_model().display(),
        org = fake.books_organization_id(),
        us = fake.accounts_server("us"),
    ));
    let key = agent(
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
    let code = fake.issue_code("us");
    agent(
        &env,
        &[
            "zoho", "connect", "--tenant", "default", "--code", &code, "--dc", "us",
        ],
    );
    let daemon = env.serve_with(&[], &[("AGENT__SECURITY__ENCRYPTION_KEY", KEY)]);

    // The periodic sync fills the cache.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let z = get_json(&daemon, &key, "/v1/integrations/zoho");
        if z["zoho"]["last_sync"]["status"] == "succeeded" && z["zoho"]["counts"]["customers"] == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no sync: {z:#}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let work = tempfile::tempdir().unwrap();
    let clip = work.path().join("caller.wav");
    padded_clip(&fixture("balance_question_8k.wav"), &clip, 7.0, 60.0);
    let target = format!("sip:agent@{}", env.sip);
    let mut phone = Baresip::dial(
        work.path(),
        "+15550142000",
        &target,
        &clip,
        Duration::from_secs(90),
    );
    phone.wait(Duration::from_secs(100));
    assert!(phone.log().contains("Call established"), "{}", phone.log());

    let call = ended_call(&daemon, &key, Duration::from_secs(20));
    assert!(
        event_kinds(&call).iter().any(|k| k == "caller_identified"),
        "{call:#}"
    );
    let turns = call["turns"].as_array().unwrap();
    let greeting = turns[0]["agent_text"].as_str().unwrap_or_default();
    assert!(greeting.contains("Jane Doe"), "greeted by name: {greeting}");
    let answer = turns
        .iter()
        .find(|t| {
            t["caller_text"]
                .as_str()
                .is_some_and(|s| s.to_lowercase().contains("balance"))
        })
        .unwrap_or_else(|| panic!("{call:#}"));
    let reply = answer["agent_text"].as_str().unwrap();
    assert!(reply.contains("$142.50"), "the Books balance: {reply}");

    // What baresip heard: the name in the greeting, the amount in the reply.
    let (heard, sent) = phone.recordings();
    let heard = Recording::read(&heard);
    let sent = Recording::read(&sent);
    let caller_end = sent
        .offset_before(7_000 + 4_000, -40.0)
        .expect("caller speech in the sent audio");
    // The name itself is checked in the stored greeting above: whisper tiny.en hears espeak's
    // "Jane Doe" over G.711 as "jane", "gaines" or "janey" from run to run, so here the
    // greeting as heard must share its words with the stored one.
    let greeting_heard = transcribe(&heard.to_16k(0, 9_000)).to_lowercase();
    println!("greeting heard: {greeting_heard}");
    let shared: Vec<_> = words(greeting)
        .intersection(&words(&greeting_heard))
        .cloned()
        .collect();
    assert!(
        shared.len() >= 4,
        "stored {greeting:?}, heard {greeting_heard:?}, shared {shared:?}"
    );
    let reply_start = heard
        .onset_after(caller_end, -35.0, 100)
        .expect("a reply after the question");
    let reply_heard = transcribe(&heard.to_16k(reply_start, reply_start + 8_000)).to_lowercase();
    println!("reply heard: {reply_heard}");
    assert!(
        reply_heard.contains("142")
            || reply_heard.contains("forty-two")
            || reply_heard.contains("forty two"),
        "{reply_heard}"
    );

    // The call is written back to the CRM contact.
    let deadline = Instant::now() + Duration::from_secs(15);
    while fake.calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no call log in Zoho:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logged = &fake.calls()[0];
    assert_eq!(logged["Who_Id"]["id"], jane.as_str(), "{logged:#}");
    assert_eq!(logged["Call_Type"], "Inbound");
    assert!(
        logged["Description"].as_str().unwrap().contains("$142.50"),
        "{logged:#}"
    );
    let z: Value = get_json(&daemon, &key, "/v1/integrations/zoho");
    assert_eq!(z["zoho"]["outbox"]["sent"], 1, "{z:#}");
    drop(rt);
}
