//! Helpers for the campaign tests: a PostgreSQL database of their own, SIPp as a trunk's
//! far end that answers every call, and a rejecting baresip.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::peers::free_port_block;

/// A PostgreSQL database of its own on the test server, dropped afterwards.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        let admin_url = std::env::var("AGENT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("agent_campaigns_{}_{nanos}", std::process::id());
        pg_exec(&admin_url, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        PgDb {
            admin_url,
            name,
            url,
        }
    }

    /// Rows of `(text, count)` from a two-column query.
    pub fn counts(&self, sql: &str) -> Vec<(String, i64)> {
        block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            rows.iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
                .collect()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        pg_exec(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn pg_exec(url: &str, sql: &str) {
    block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("PostgreSQL on AGENT_TEST_POSTGRES_URL (127.0.0.1:5432)");
        sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
    });
}

/// SIPp as the far end of a trunk: answers every call (`tests/sipp/campaign_callee.xml`),
/// tracing every message it exchanged.
pub struct SippCallee {
    child: Child,
    pub port: u16,
    trace: PathBuf,
    _dir: tempfile::TempDir,
}

impl SippCallee {
    pub fn start() -> SippCallee {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_block(6);
        let trace = dir.path().join("messages.log");
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/campaign_callee.xml");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &(port + 2).to_string(), "-nostdin"])
            .args(["-trace_msg", "-message_file"])
            .arg(&trace)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed by ./test");
        std::thread::sleep(Duration::from_millis(300));
        SippCallee {
            child,
            port,
            trace,
            _dir: dir,
        }
    }

    /// Distinct calls (Call-IDs) of the INVITEs received, per Request-URI user.
    pub fn calls_per_number(&self) -> HashMap<String, HashSet<String>> {
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for m in super::sipp::parse_trace(&text) {
            let first = m.text.lines().next().unwrap_or("");
            if m.sent || !first.starts_with("INVITE sip:") {
                continue;
            }
            let user = first["INVITE sip:".len()..]
                .split('@')
                .next()
                .unwrap_or("")
                .to_owned();
            let call_id = m.header("Call-ID").unwrap_or("").to_owned();
            out.entry(user).or_default().insert(call_id);
        }
        out
    }
}

impl Drop for SippCallee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rejects every call a manual-answer baresip rings with, through its ctrl_tcp control
/// socket (baresip answers `486 Rejected`).
pub struct Rejector {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Rejector {
    pub fn start(baresip_dir: &Path) -> Rejector {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let config = std::fs::read_to_string(baresip_dir.join("config")).unwrap();
        let addr = config
            .lines()
            .find_map(|l| l.strip_prefix("ctrl_tcp_listen "))
            .expect("ctrl_tcp in the baresip config")
            .trim()
            .to_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rejected = 0;
            let mut stream = loop {
                if flag.load(Ordering::Relaxed) {
                    return rejected;
                }
                match std::net::TcpStream::connect(&addr) {
                    Ok(s) => break s,
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut seen = String::new();
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                if let Ok(n) = stream.read(&mut buf) {
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                while let Some(at) = seen.find("\"CALL_INCOMING\"") {
                    seen.drain(..at + 15);
                    let cmd = br#"{"command":"hangup"}"#;
                    let _ = stream.write_all(format!("{}:", cmd.len()).as_bytes());
                    let _ = stream.write_all(cmd);
                    let _ = stream.write_all(b",");
                    rejected += 1;
                }
            }
            rejected
        });
        Rejector {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; how many calls it rejected.
    pub fn finish(mut self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}
