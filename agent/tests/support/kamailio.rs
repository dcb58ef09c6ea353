//! Kamailio as the SIP trunk provider in tests: registrar + proxy with digest auth (401 on
//! REGISTER, 407 on initial INVITEs), users agent/agentpw, alice/alicepw, bob/bobpw, realm
//! 127.0.0.1. `tests/peers/kamailio.cfg` is run on a free port from a temp folder and stopped
//! by its pid when dropped.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::free_port_block;

/// A running Kamailio (main process in the foreground, its children die with it).
pub struct Kamailio {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio on a free UDP+TCP port of 127.0.0.1 and waits until it answers OPTIONS.
    pub fn start() -> Kamailio {
        Self::start_with_users(&[])
    }

    /// As [`Kamailio::start`], with more users (name, password) besides agent, alice and bob,
    /// e.g. phones registered under E.164 numbers (`+12125550101`).
    pub fn start_with_users(users: &[(&str, &str)]) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        // UDP and TCP on the same port (free_port_block checks both).
        let port = free_port_block(1);
        let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kamailio.cfg");
        let cfg = std::fs::read_to_string(&template)
            .unwrap()
            .replace("127.0.0.1:5060", &format!("127.0.0.1:{port}"))
            // Two Kamailios at once must not share the control socket.
            .replace(
                "unix:/tmp/kamailio_ctl_test",
                &format!("unix:{}", dir.path().join("ctl").display()),
            )
            .replace(
                "/usr/lib/x86_64-linux-gnu/kamailio/modules/",
                &modules_dir().display().to_string(),
            )
            .replace(
                "    $sht(users=>bob) = \"bobpw\";\n",
                &format!(
                    "    $sht(users=>bob) = \"bobpw\";\n{}",
                    users
                        .iter()
                        .map(|(u, p)| format!("    $sht(users=>{u}) = \"{p}\";\n"))
                        .collect::<String>()
                ),
            );
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.path().join("kamailio.log");
        // -DD: the process we start stays in the foreground as the main process, so its pid
        // is ours to stop; -E: log to stderr (our file).
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path())
            .args(["-DD", "-E"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kamailio is installed by scripts/deps.sh test");
        let mut kamailio = Kamailio {
            port,
            dir,
            child,
            log,
        };
        kamailio.wait_ready(Duration::from_secs(15));
        kamailio
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn wait_ready(&mut self, within: Duration) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = socket.local_addr().unwrap();
        let deadline = Instant::now() + within;
        let mut seq = 0;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kamailio exited with {status}; log:\n{}", self.log());
            }
            seq += 1;
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-ready{seq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\n\
                 To: <sip:127.0.0.1:{port}>\r\nCall-ID: ready-{seq}@test\r\nCSeq: {seq} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                port = self.port
            );
            let _ = socket.send_to(options.as_bytes(), ("127.0.0.1", self.port));
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200")
            {
                return;
            }
        }
        panic!("kamailio did not answer OPTIONS; log:\n{}", self.log());
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets the main process stop its children; SIGKILL would orphan them (and
        // their sockets) — only a last resort.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Kamailio's modules are (multiarch path of this machine).
fn modules_dir() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("kamailio/modules/"))
        .find(|p| p.join("tm.so").is_file())
        .or_else(|| {
            let p = PathBuf::from("/usr/lib/kamailio/modules/");
            p.join("tm.so").is_file().then_some(p)
        })
        .expect("kamailio modules (tm.so) under /usr/lib")
}
