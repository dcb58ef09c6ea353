//! SIPp scenarios from `agent/tests/sipp/*.xml`, run once against a daemon, with SIPp's
//! message trace parsed so tests can assert on what the daemon actually sent.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::peers::free_port_block;

/// The scenario folder (`agent/tests/sipp`); pcap files sit in its `pcap/` subfolder, where
/// SIPp looks for them (next to the scenario).
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// One SIPp run: its exit code, console output and error log, and the messages it exchanged.
#[derive(Debug)]
pub struct SippRun {
    /// SIPp's exit code: 0 when every call of the scenario succeeded.
    pub code: Option<i32>,
    /// stdout + stderr + the error log.
    pub output: String,
    /// Every message SIPp sent or received, in order.
    pub messages: Vec<TracedMessage>,
}

impl SippRun {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// Messages SIPp received.
    pub fn received(&self) -> impl Iterator<Item = &TracedMessage> {
        self.messages.iter().filter(|m| !m.sent)
    }

    /// Responses SIPp received, in order: `(status, CSeq method, message)`.
    pub fn responses(&self) -> Vec<(u16, String, &TracedMessage)> {
        self.received()
            .filter_map(|m| Some((m.status()?, m.cseq_method()?, m)))
            .collect()
    }

    /// The received responses with `status` to requests of `method` (retransmissions included).
    pub fn responses_to(&self, method: &str, status: u16) -> Vec<&TracedMessage> {
        self.responses()
            .into_iter()
            .filter(|(s, m, _)| *s == status && m.eq_ignore_ascii_case(method))
            .map(|(_, _, msg)| msg)
            .collect()
    }

    /// Requests SIPp received from the daemon (e.g. a BYE the test did not expect).
    pub fn requests_received(&self) -> Vec<&TracedMessage> {
        self.received().filter(|m| m.status().is_none()).collect()
    }

    /// A compact transcript for failure messages: `> INVITE`, `< 100`, …
    pub fn ladder(&self) -> String {
        self.messages
            .iter()
            .map(|m| {
                let first = m.text.lines().next().unwrap_or("");
                format!("{} {first}", if m.sent { ">" } else { "<" })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One message from SIPp's `-trace_msg` file.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    pub sent: bool,
    pub text: String,
}

impl TracedMessage {
    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        self.text
            .lines()
            .next()?
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()
    }

    /// The value of the first header called `name` (case-insensitive; compact forms not
    /// expanded), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }

    /// Every value of headers called `name`.
    pub fn headers<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_owned();
        self.head().lines().skip(1).filter_map(move |l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(&name).then(|| v.trim())
        })
    }

    /// Comma-separated tokens of every `name` header, lower-cased.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.headers(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    pub fn cseq_method(&self) -> Option<String> {
        Some(self.header("CSeq")?.split_whitespace().nth(1)?.to_owned())
    }

    fn head(&self) -> &str {
        self.text
            .split_once("\n\n")
            .map(|(h, _)| h)
            .unwrap_or(&self.text)
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\n\n").map(|(_, b)| b).unwrap_or("")
    }

    /// SDP media direction attribute lines in the body (`sendrecv`, `recvonly`, …).
    pub fn sdp_directions(&self) -> Vec<&str> {
        self.body()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a="))
            .filter(|a| matches!(*a, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
            .collect()
    }

    /// The `o=` line's session version.
    pub fn sdp_version(&self) -> Option<u64> {
        let o = self
            .body()
            .lines()
            .find_map(|l| l.trim().strip_prefix("o="))?;
        o.split_whitespace().nth(2)?.parse().ok()
    }
}

/// Reads SIPp's `-trace_msg` file: entries separated by dashed lines, each starting with
/// "UDP message sent (N bytes):" or "UDP message received [N] bytes :".
pub fn parse_trace(text: &str) -> Vec<TracedMessage> {
    let mut out = Vec::new();
    for entry in text.split("\n----------------------------------------------- ") {
        let mut lines = entry.lines();
        // The first line of every entry but the first is the timestamp.
        let Some(kind) = lines.by_ref().find(|l| l.contains(" message ")) else {
            continue;
        };
        let sent = kind.contains(" message sent");
        if !sent && !kind.contains(" message received") {
            continue;
        }
        let body: Vec<&str> = lines
            .skip_while(|l| l.trim().is_empty())
            .map(|l| l.trim_end_matches('\r'))
            .collect();
        let text = body.join("\n").trim_end().to_owned();
        if !text.is_empty() {
            out.push(TracedMessage { sent, text });
        }
    }
    out
}

/// Runs `scenario` once (`-m 1`) against `target` with service `agent`, SIPp's SIP port and
/// media ports from a free block, and a global timeout (`within`, a timeout is a failure).
/// `extra` goes last on the command line.
pub fn run(scenario: &Path, target: SocketAddr, extra: &[&str], within: Duration) -> SippRun {
    let port = free_port_block(6);
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.log");
    let messages = dir.path().join("messages.log");
    let out = Command::new("sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(scenario)
        .args(["-s", "agent", "-i", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-mp", &(port + 2).to_string()])
        .args(["-m", "1", "-nostdin"])
        .args([
            "-timeout",
            &format!("{}s", within.as_secs().max(1)),
            "-timeout_error",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .args(["-trace_msg", "-message_file"])
        .arg(&messages)
        .args(extra)
        .current_dir(dir.path())
        .output()
        .expect("sipp (Debian sip-tester) is installed by ./test");
    let trace = std::fs::read_to_string(&messages).unwrap_or_default();
    SippRun {
        code: out.status.code(),
        output: format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&errors).unwrap_or_default()
        ),
        messages: parse_trace(&trace),
    }
}
