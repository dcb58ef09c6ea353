//! "Database lost later → /ready 503, and work resumes when it returns", on PostgreSQL reached
//! through a TCP relay the test can cut and restore.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Env, http_get};

/// Forwards 127.0.0.1:<port> to PostgreSQL until cut.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(port: u16) -> Relay {
        let relay = Relay {
            port,
            up: Arc::new(AtomicBool::new(true)),
            conns: Arc::default(),
        };
        relay.listen();
        relay
    }

    fn listen(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("relay port");
        listener.set_nonblocking(true).unwrap();
        let (up, conns) = (self.up.clone(), self.conns.clone());
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect("127.0.0.1:5432").expect("postgres");
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                        conns.lock().unwrap().push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// Drops every connection and stops accepting.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.listen();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (PostgreSQL client) is installed by ./test");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_ready(daemon: &support::Daemon, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = http_get(&daemon.url("/ready"), None).map(|(s, _)| s);
        if status == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/ready stayed {status:?}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ready_follows_the_database_and_recovers() {
    let db = format!("agent_outage_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {db}"));
    psql(&format!("CREATE DATABASE {db}"));
    let relay = Relay::start(support::free_tcp_port());
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", relay.port);
    let env = Env::new("");
    let out = env.run(&["--database-url", &url, "tenants", "create", "acme"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let key = env.run(&[
        "--database-url",
        &url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--role",
        "admin",
    ]);
    let key = support::stdout(&key).lines().last().unwrap().to_owned();

    let daemon = env.serve_with(&["--database-url", &url], &[]);
    wait_for_ready(&daemon, 200, Duration::from_secs(10));
    assert_eq!(
        http_get(&daemon.url("/v1/calls"), Some(&key)).unwrap().0,
        200
    );

    relay.cut();
    wait_for_ready(&daemon, 503, Duration::from_secs(20));
    assert_eq!(
        http_get(&daemon.url("/health"), None).unwrap().0,
        200,
        "alive while the db is gone"
    );
    let (status, body) = http_get(&daemon.url("/v1/calls"), Some(&key)).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage_unavailable"), "{body}");

    relay.restore();
    wait_for_ready(&daemon, 200, Duration::from_secs(30));
    assert_eq!(
        http_get(&daemon.url("/v1/calls"), Some(&key)).unwrap().0,
        200,
        "work resumes"
    );

    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
    relay.cut();
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}
