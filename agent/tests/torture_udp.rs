//! The 49 RFC 4475 torture messages (sip/tests/torture/msgs), each sent as one UDP datagram to
//! a running daemon. Requests must get exactly the statuses their row in
//! sip/tests/torture/expected.rs names (the table the in-process test, sip/tests/torture.rs,
//! checks the core against); responses and unparseable messages must get no answer. Afterwards
//! the daemon still answers OPTIONS and /health, and its counters saw every datagram. Prints a
//! table (`cargo test -p agent --test torture_udp -- --nocapture`).
//!
//! Each message goes out from its own socket, followed by an OPTIONS "probe" from the same
//! socket: the daemon handles datagrams in order on one task, so everything it answers to the
//! message arrives before the probe's 200. No timing guesses per message.
//!
//! The daemon rings inbound calls for a long time (`call.answer_delay_ms`), so the torture
//! INVITEs get 100 and 180 and nothing else, as in the core test where the application only
//! calls `ringing`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{Daemon, Env, http_get};

include!("../../sip/tests/torture/expected.rs");

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sip/tests/torture")
}

/// file → verdict, from the manifest.
fn manifest() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(torture_dir().join("manifest.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(2)?.to_string()))
        })
        .collect()
}

fn options(call_id: &str, from: SocketAddr, to: SocketAddr) -> String {
    format!(
        "OPTIONS sip:agent@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:probe@{from}>;tag=p-{call_id}\r\n\
         To: <sip:agent@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn status_of(datagram: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(datagram);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn answers_probe(datagram: &[u8], call_id: &str) -> bool {
    status_of(datagram) == Some(200)
        && String::from_utf8_lossy(datagram).contains(&format!("Call-ID: {call_id}\r\n"))
}

/// What the daemon sent back on one socket before the probe's 200 (retransmissions, identical
/// datagrams, counted once), or `Err` when the probe got no answer in time.
#[allow(
    clippy::unwrap_in_result,
    reason = "socket failures are a broken test host; Err is the daemon's silence"
)]
fn exchange(
    sock: &UdpSocket,
    daemon: SocketAddr,
    message: Option<&[u8]>,
    probe: &str,
) -> Result<Vec<u16>, String> {
    if let Some(message) = message {
        sock.send_to(message, daemon).unwrap();
    }
    let local = sock.local_addr().unwrap();
    sock.send_to(options(probe, local, daemon).as_bytes(), daemon)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut statuses = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("probe unanswered; got {statuses:?} before"));
        }
        sock.set_read_timeout(Some(left)).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let d = buf[..n].to_vec();
        if answers_probe(&d, probe) {
            return Ok(statuses);
        }
        if seen.insert(d.clone()) {
            statuses.push(status_of(&d).unwrap_or(0));
        }
    }
}

/// Whatever arrived on `sock` after the probe (retransmissions of earlier answers excluded).
fn late_answers(sock: &UdpSocket) -> Vec<u16> {
    sock.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        out.push((status_of(&buf[..n]).unwrap_or(0), buf[..n].to_vec()));
    }
    let mut seen = HashSet::new();
    out.into_iter()
        .filter(|(_, d)| seen.insert(d.clone()))
        .map(|(s, _)| s)
        .collect()
}

/// The value of a Prometheus gauge/counter line `name value`.
fn metric(daemon: &Daemon, name: &str) -> Option<f64> {
    let (_, body) = http_get(&daemon.url("/metrics"), None)?;
    body.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// The RFC 3261 §17.2.3 server-transaction key of a request: top Via branch and sent-by, and
/// the CSeq method. Several torture messages share one (e.g. unkscm/novelsc, cparam01/02): sent
/// to one daemon within Timer J, the later one is a retransmission of the earlier by the RFC.
fn transaction_key(bytes: &[u8]) -> Option<(String, String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next()?;
    let via = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")).then_some(value)
    })?;
    let mut parts = via.split(';');
    let sent_by = parts
        .next()?
        .split_whitespace()
        .last()?
        .to_ascii_lowercase();
    let branch = parts
        .find_map(|p| p.trim().strip_prefix("branch="))?
        .trim()
        .to_owned();
    let method = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("cseq")
            .then(|| value.split_whitespace().last().unwrap_or("").to_owned())
    })?;
    Some((branch, sent_by, method))
}

/// `bytes` with the first `branch=<branch>` made unique by a suffix.
fn with_unique_branch(bytes: &[u8], branch: &str, suffix: &str) -> Vec<u8> {
    let needle = format!("branch={branch}");
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains(&needle), "branch in the message");
    text.replacen(&needle, &format!("{needle}{suffix}"), 1)
        .into_bytes()
}

struct Row {
    file: &'static str,
    /// What the test changed in the message, if anything.
    note: String,
    verdict: String,
    expected: Behaviour,
    got: Result<Vec<u16>, String>,
    late: Vec<u16>,
    why: &'static str,
}

impl Row {
    fn ok(&self) -> bool {
        let Ok(got) = &self.got else { return false };
        // Retransmissions of a final response come from the same transaction and are
        // filtered above; a late, different answer is a failure.
        let late_ok = self.late.iter().all(|s| got.contains(s));
        late_ok
            && match self.expected {
                Respond(want) => got.as_slice() == want,
                Absorb | Drop => got.is_empty(),
            }
    }
}

#[test]
fn torture_messages_over_udp_get_their_manifest_behaviour_and_the_daemon_survives() {
    // Ring for ten minutes: the torture INVITEs are never answered while the test runs.
    let env = Env::new("[call]\nanswer_delay_ms = 600000\n");
    let daemon = env.serve();
    let manifest = manifest();
    assert_eq!(manifest.len(), 49, "manifest rows");
    assert_eq!(EXPECTED.len(), 49, "expected.rs rows");

    let mut rows = Vec::new();
    let mut sockets = Vec::new();
    let mut transactions: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    for (i, (file, _parses, expected, why)) in EXPECTED.iter().enumerate() {
        let verdict = manifest
            .get(*file)
            .unwrap_or_else(|| panic!("{file} not in the manifest"))
            .clone();
        let mut bytes = std::fs::read(torture_dir().join("msgs").join(file)).unwrap();
        let mut note = String::new();
        if let Some(key) = transaction_key(&bytes) {
            if let Some(earlier) = transactions.get(&key) {
                // Only the branch changes, so the message still tests what it was written for.
                bytes = with_unique_branch(&bytes, &key.0, &format!("-t{i}"));
                note = format!(" [branch made unique: same transaction as {earlier}]");
            } else {
                transactions.insert(key, file);
            }
        }
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = exchange(&sock, env.sip, Some(&bytes), &format!("torture-probe-{i}"));
        rows.push(Row {
            file,
            note,
            verdict,
            expected: *expected,
            got,
            late: Vec::new(),
            why,
        });
        sockets.push(sock);
    }

    // The daemon is alive and well: a new OPTIONS is answered, /health is 200, and it counted
    // every datagram (49 messages, 49 probes, the last OPTIONS) and dropped exactly the
    // unanswerable ones. The counters are exported once a second: poll.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let after = exchange(&sock, env.sip, None, "after-torture");
    assert_eq!(
        after,
        Ok(vec![]),
        "OPTIONS after the torture run; log:\n{}",
        daemon.log_text()
    );
    let (health, _) = http_get(&daemon.url("/health"), None).expect("/health answers");
    assert_eq!(health, 200);
    let dropped_rows = EXPECTED.iter().filter(|r| r.2 == Drop).count() as f64;
    let datagrams = (2 * EXPECTED.len() + 1) as f64;
    let deadline = Instant::now() + Duration::from_secs(5);
    let counters = loop {
        let c = (
            metric(&daemon, "agent_sip_datagrams_received"),
            metric(&daemon, "agent_sip_dropped_malformed"),
        );
        if c == (Some(datagrams), Some(dropped_rows)) || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // Anything that arrived after a row's probe (e.g. an answer the application sent later).
    for (row, sock) in rows.iter_mut().zip(&sockets) {
        row.late = late_answers(sock);
    }

    println!(
        "{:<15} {:<25} {:<12} {:<12} {:<6} why",
        "message", "verdict", "expected", "got", "ok"
    );
    for r in &rows {
        let expected = match r.expected {
            Respond(s) => format!("{s:?}"),
            Absorb | Drop => "no answer".to_owned(),
        };
        let mut got = match &r.got {
            Ok(s) if s.is_empty() => "no answer".to_owned(),
            Ok(s) => format!("{s:?}"),
            Err(e) => e.clone(),
        };
        if !r.late.is_empty() {
            got.push_str(&format!(" late {:?}", r.late));
        }
        println!(
            "{:<15} {:<25} {:<12} {:<12} {:<6} {}{}",
            r.file,
            r.verdict,
            expected,
            got,
            if r.ok() { "ok" } else { "FAIL" },
            r.why,
            r.note
        );
    }
    let failed: Vec<&str> = rows.iter().filter(|r| !r.ok()).map(|r| r.file).collect();
    println!(
        "{} of {} handled as the manifest says; counters: datagrams {:?}, dropped {:?}",
        rows.len() - failed.len(),
        rows.len(),
        counters.0,
        counters.1
    );
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert_eq!(
        counters,
        (Some(datagrams), Some(dropped_rows)),
        "agent_sip_datagrams_received / agent_sip_dropped_malformed"
    );
    let log = daemon.log_text();
    assert!(!log.contains("panicked"), "{log}");
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0), "clean shutdown after the torture run");
}
