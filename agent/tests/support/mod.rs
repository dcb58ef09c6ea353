//! Running the real `agent` binary in tests: temp config/database, free ports, HTTP checks.
#![allow(dead_code)]

pub mod admin;
pub mod campaign;
pub mod dial;
pub mod kamailio;
pub mod livekit;
pub mod peers;
pub mod sipp;
pub mod speech;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_agent");

/// A free TCP port on loopback (bound then released; fine for tests).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `[[trunks]]` entry admitting calls from loopback (where the test peers are) as a trunk
/// that vouches for its caller IDs (`trusted_caller_id`): with it, the default flow reads a
/// known caller's balance without the postal-code check. Append it last: keys after it would
/// belong to the trunk.
pub const TRUSTED_LOOPBACK_TRUNK: &str = "[[trunks]]\nname = \"loopback\"\nproxy = \"127.0.0.1:9\"\n\
     keepalive_secs = 0\nallowed_sources = [\"127.0.0.1\"]\ntrusted_caller_id = true\n";

/// A temp folder holding a config file and a SQLite database.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub sip: SocketAddr,
}

impl Env {
    /// A config with free ports, a SQLite file in the temp dir, and `extra` TOML appended.
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let config = dir.path().join("agent.toml");
        let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/flows");
        let text = format!(
            "[database]\nurl = \"sqlite://{db}\"\n[admin]\nlisten = \"{admin}\"\n\
             [sip]\nlisten = \"{sip}\"\n[flows]\ndir = \"{flows}\"\n[shutdown]\ngrace_secs = 5\n{extra}",
            db = dir.path().join("agent.db").display(),
            flows = flows.display(),
        );
        std::fs::write(&config, text).unwrap();
        Env {
            dir,
            config,
            admin,
            sip,
        }
    }

    /// Runs `agent --config <cfg> ARGS…` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Starts `agent serve` and waits for /health.
    /// Imports `rows` (CSV lines without the header) into the default tenant's customer cache.
    pub fn import_customers(&self, rows: &str) {
        let csv = self.dir.path().join("customers.csv");
        std::fs::write(
            &csv,
            format!("external_id,name,company,email,phone,postal_code,balance,currency\n{rows}"),
        )
        .unwrap();
        let out = self.run(&[
            "customers",
            "import",
            csv.to_str().unwrap(),
            "--tenant",
            "default",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    pub fn serve(&self) -> Daemon {
        self.serve_with(&[], &[])
    }

    pub fn serve_with(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = self
            .dir
            .path()
            .join(format!("serve-{}.log", Instant::now().elapsed().as_nanos()));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            admin: self.admin,
            log,
        };
        daemon.wait_healthy(Duration::from_secs(60));
        daemon
    }
}

/// A running `agent serve`.
pub struct Daemon {
    pub child: Child,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if http_get(&self.url("/health"), None).map(|(s, _)| s) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon not healthy in time; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for exit; returns (exit code, time taken).
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daemon ignored SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 GET (no client library needed): (status, body).
pub fn http_get(url: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    http_request("GET", url, bearer, None)
}

pub fn http_request(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let buf = raw_request(method, url, bearer, body.unwrap_or(""))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

/// `GET` for binary downloads: status, response head, and the body's bytes (the server
/// sends a Content-Length for them, not chunks).
pub fn http_get_bytes(url: &str, bearer: Option<&str>) -> Option<(u16, String, Vec<u8>)> {
    let buf = raw_request("GET", url, bearer, "")?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head, buf[split + 4..].to_vec()))
}

/// One HTTP/1.1 request with `Connection: close`; the whole response as received.
fn raw_request(method: &str, url: &str, bearer: Option<&str>, body: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = bearer
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
