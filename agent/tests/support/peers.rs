//! Real SIP peers for the interop tests: baresip (a softphone that plays a WAV file and records
//! what it hears) and SIPp (scripted SIP). Both come from Debian (`./test` installs them).
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Four consecutive free ports starting at an even one (baresip binds SIP on p and TLS on p+1,
/// RTP on p+2.., control on p+3).
pub fn free_port_block(len: u16) -> u16 {
    for _ in 0..200 {
        let base = (20_000 + (rand_u16() % 20_000)) & !1;
        let all_free = (0..len).all(|i| {
            UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
        });
        if all_free {
            return base;
        }
    }
    panic!("no free port block");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ (std::process::id() << 7)) as u16
}

/// Pads a fixture clip with silence before and after (sox), as baresip hangs up at the end of
/// its audio file.
pub fn padded_clip(src: &Path, out: &Path, before_s: f32, after_s: f32) {
    let status = Command::new("sox")
        .arg(src)
        .arg(out)
        .args(["pad", &before_s.to_string(), &after_s.to_string()])
        .status()
        .expect("sox is installed by ./test");
    assert!(status.success(), "sox failed");
}

/// A headless baresip instance placing one call.
pub struct Baresip {
    pub dir: PathBuf,
    pub child: Child,
    pub started: Instant,
}

impl Baresip {
    /// Dials `target` from `sip:<user>@127.0.0.1:<port>`, playing `wav` (8 kHz mono s16) and
    /// recording what it hears; gives up after `max` seconds.
    pub fn dial(dir: &Path, user: &str, target: &str, wav: &Path, max: Duration) -> Baresip {
        Self::dial_with_codec(dir, user, target, wav, max, "g711.so")
    }

    /// As [`Baresip::dial`], offering only the codecs of baresip module `codec_module`
    /// (`g711.so`, `opus.so`, …).
    pub fn dial_with_codec(
        dir: &Path,
        user: &str,
        target: &str,
        wav: &Path,
        max: Duration,
        codec_module: &str,
    ) -> Baresip {
        let base = write_config(dir, wav, codec_module);
        std::fs::write(
            dir.join("accounts"),
            format!("<sip:{user}@127.0.0.1:{base}>;regint=0\n"),
        )
        .unwrap();
        Self::spawn(dir, max, Some(target))
    }

    /// Dials `target` as `user` through the proxy at `proxy` (`host:port`), answering its digest
    /// challenge with `password`; not registered. Plays `wav`, records what it hears.
    pub fn dial_via_proxy(
        dir: &Path,
        user: &str,
        password: &str,
        proxy: &str,
        target: &str,
        wav: &Path,
        max: Duration,
    ) -> Baresip {
        write_config(dir, wav, "g711.so");
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1>;auth_pass={password};regint=0;outbound=\"sip:{proxy}\"\n"
            ),
        )
        .unwrap();
        Self::spawn(dir, max, Some(target))
    }

    /// Registers `user` with the registrar at `proxy` (`host:port`, digest `password`) and
    /// answers every call at once (`answermode=auto`), playing `wav` and recording what it
    /// hears; exits after `max`. See [`Baresip::wait_registered`].
    pub fn answer_registered(
        dir: &Path,
        user: &str,
        password: &str,
        proxy: &str,
        wav: &Path,
        max: Duration,
    ) -> Baresip {
        Self::registered(dir, user, password, proxy, wav, max, "auto")
    }

    /// As [`Baresip::answer_registered`], but calls only ring (`answermode=manual`).
    pub fn ring_registered(
        dir: &Path,
        user: &str,
        password: &str,
        proxy: &str,
        wav: &Path,
        max: Duration,
    ) -> Baresip {
        Self::registered(dir, user, password, proxy, wav, max, "manual")
    }

    fn registered(
        dir: &Path,
        user: &str,
        password: &str,
        proxy: &str,
        wav: &Path,
        max: Duration,
        answermode: &str,
    ) -> Baresip {
        write_config(dir, wav, "g711.so");
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1>;auth_pass={password};regint=600;\
                 outbound=\"sip:{proxy}\";answermode={answermode}\n"
            ),
        )
        .unwrap();
        Self::spawn(dir, max, None)
    }

    /// Waits until baresip reports its registration accepted (`… 200 OK … binding`).
    pub fn wait_registered(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self
                .log()
                .lines()
                .any(|l| l.contains("200 OK") && l.contains("binding"))
            {
                return;
            }
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("baresip did not register; log:\n{}", self.log());
    }

    /// Whether baresip has a call up (its log says so when a call is established).
    pub fn established(&self) -> bool {
        self.log().contains("Call established")
    }

    fn spawn(dir: &Path, max: Duration, dial: Option<&str>) -> Baresip {
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(dir)
            .args(["-t", &max.as_secs().to_string()]);
        if let Some(target) = dial {
            cmd.args(["-e", &format!("/dial {target}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip is installed by ./test");
        Baresip {
            dir: dir.to_owned(),
            child,
            started: Instant::now(),
        }
    }

    /// Waits for baresip to exit (the call ended, or its timer fired); returns when it exited.
    pub fn wait(&mut self, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return Instant::now();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("baresip still running; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// The recording of what baresip heard (`dump-…-dec.wav`) and of what it sent (`-enc`).
    pub fn recordings(&self) -> (PathBuf, PathBuf) {
        let mut dec = None;
        let mut enc = None;
        for e in std::fs::read_dir(self.dir.join("rec")).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("-dec.wav") {
                dec = Some(e.path());
            } else if name.ends_with("-enc.wav") {
                enc = Some(e.path());
            }
        }
        (
            dec.expect("a -dec.wav recording"),
            enc.expect("a -enc.wav recording"),
        )
    }
}

/// Writes baresip's `config` (SIP on a free even port p, control p+2, RTP p+4..p+11) playing
/// `wav` and recording into `dir/rec`; returns p.
fn write_config(dir: &Path, wav: &Path, codec_module: &str) -> u16 {
    let base = free_port_block(12);
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    let config = format!(
        "sip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\naudio_player aubridge,nil{sip}\n\
         audio_source aufile,{wav}\naudio_alert aubridge,nil{sip}\nrtp_ports {rtp_lo}-{rtp_hi}\n\
         module_path /usr/lib/baresip/modules\nmodule {codec_module}\nmodule aufile.so\nmodule aubridge.so\n\
         module sndfile.so\nmodule ctrl_tcp.so\nmodule_tmp uuid.so\nmodule_tmp account.so\n\
         module_app contact.so\nmodule_app menu.so\nsnd_path {rec}\nctrl_tcp_listen 127.0.0.1:{ctrl}\n",
        sip = base,
        wav = wav.display(),
        rtp_lo = base + 4,
        rtp_hi = base + 11,
        rec = rec.display(),
        ctrl = base + 2,
    );
    std::fs::write(dir.join("config"), config).unwrap();
    base
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a SIPp scenario once against `target` (`host:port`); returns whether the call
/// succeeded (SIPp exit code 0) and SIPp's output and error log.
pub fn sipp(scenario: &Path, target: &str, extra: &[&str], within: Duration) -> (bool, String) {
    let port = free_port_block(4);
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.log");
    let out = Command::new("sipp")
        .arg(target)
        .arg("-sf")
        .arg(scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-nostdin",
        ])
        .args([
            "-timeout",
            &format!("{}s", within.as_secs()),
            "-timeout_error",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .args(extra)
        .current_dir(dir.path())
        .output()
        .expect("sipp (sip-tester) is installed by ./test");
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
    (out.status.success(), text)
}
