//! Trunks as the driver runs them: their configuration (names resolved here, not in the
//! core), the status the application reads ([`TrunkStatus`]), and the bookkeeping that turns
//! the core's registration and keepalive events into that status.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::Credentials;
use crate::sdp::Codec;
use crate::transmit::TransportKind;
use crate::{RegistrationState, Trunk};

/// A trunk (carrier or proxy) as the application configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    pub name: String,
    /// Registrar / outbound proxy host: a name (resolved by the driver) or an IP literal.
    pub proxy_host: String,
    pub proxy_port: u16,
    /// `None`: UDP (TCP for requests too large for UDP, when TCP is on); `Some`: always this.
    pub transport: Option<TransportKind>,
    /// The SIP domain: AOR `sip:{user}@{domain}`, dialled numbers `sip:{number}@{domain}`.
    pub domain: String,
    /// AOR user part for REGISTER; defaults to the credentials' username.
    pub user: Option<String>,
    pub credentials: Option<Credentials>,
    pub register: bool,
    /// Registration expiry we ask for, seconds.
    pub register_expires: u32,
    /// OPTIONS keepalive interval (health); `None`: no keepalives.
    pub keepalive: Option<Duration>,
    /// From user (caller ID) of outbound calls; `None`: the AOR user.
    pub from_user: Option<String>,
    /// From host of outbound calls; `None`: `domain`.
    pub from_domain: Option<String>,
    /// Display name in From of outbound calls.
    pub from_display: Option<String>,
    /// Codecs for calls through this trunk, preferred first; empty: the driver's.
    pub codecs: Vec<Codec>,
}

impl TrunkConfig {
    pub fn new(name: impl Into<String>, proxy_host: impl Into<String>, proxy_port: u16) -> Self {
        let proxy_host = proxy_host.into();
        Self {
            name: name.into(),
            domain: proxy_host.clone(),
            proxy_host,
            proxy_port,
            transport: None,
            user: None,
            credentials: None,
            register: false,
            register_expires: 3600,
            keepalive: None,
            from_user: None,
            from_domain: None,
            from_display: None,
            codecs: Vec::new(),
        }
    }

    /// The core's trunk, once the proxy address is known.
    pub(super) fn core_trunk(&self, proxy: SocketAddr) -> Trunk {
        let mut t = Trunk::new(self.name.clone(), proxy, self.domain.clone());
        t.user.clone_from(&self.user);
        t.transport = self.transport;
        t.credentials.clone_from(&self.credentials);
        t.register = self.register;
        t.register_expires = self.register_expires;
        t.keepalive_interval = self.keepalive;
        t
    }

    /// The user part of From for outbound calls.
    pub(super) fn caller_user(&self) -> Option<&str> {
        self.from_user
            .as_deref()
            .or(self.user.as_deref())
            .or(self.credentials.as_ref().map(|c| c.username.as_str()))
    }
}

/// A trunk's state, for the admin API and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrunkStatus {
    pub name: String,
    /// The resolved proxy address (`None` while its name does not resolve).
    pub proxy: Option<SocketAddr>,
    pub transport: TransportKind,
    /// Whether the trunk is configured to register.
    pub register: bool,
    /// `disabled` (no registration configured), `unresolved`, `unregistered`, `registering`,
    /// `registered` or `failed`.
    pub state: &'static str,
    /// When the registration lapses unless refreshed.
    pub expires_at: Option<SystemTime>,
    /// The most recent problem (DNS, a refused or unanswered REGISTER), kept after recovery.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// The last OPTIONS keepalive (when keepalives are configured).
    pub health: Option<TrunkHealthStatus>,
}

impl TrunkStatus {
    pub fn registered(&self) -> bool {
        self.state == "registered"
    }
}

/// The last keepalive result of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkHealthStatus {
    pub up: bool,
    /// Request to final response; `None` when nothing answered.
    pub rtt: Option<Duration>,
    pub checked_at: SystemTime,
}

/// Keeps the status list in step with the core's events.
pub(super) struct TrunkTracker {
    statuses: Vec<TrunkStatus>,
}

#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
fn wall(at: Instant) -> SystemTime {
    let (now, wall_now) = (Instant::now(), SystemTime::now());
    if at >= now {
        wall_now + (at - now)
    } else {
        wall_now - (now - at)
    }
}

#[allow(clippy::disallowed_methods)]
fn wall_now() -> SystemTime {
    SystemTime::now()
}

impl TrunkTracker {
    pub(super) fn new(configs: &[TrunkConfig]) -> Self {
        let statuses = configs
            .iter()
            .map(|c| TrunkStatus {
                name: c.name.clone(),
                proxy: None,
                transport: c.transport.unwrap_or_default(),
                register: c.register,
                state: "unresolved",
                expires_at: None,
                last_error: None,
                last_error_at: None,
                health: None,
            })
            .collect();
        Self { statuses }
    }

    pub(super) fn snapshot(&self) -> Vec<TrunkStatus> {
        self.statuses.clone()
    }

    fn get(&mut self, name: &str) -> Option<&mut TrunkStatus> {
        self.statuses.iter_mut().find(|s| s.name == name)
    }

    pub(super) fn resolved(&mut self, name: &str, proxy: SocketAddr) {
        if let Some(s) = self.get(name) {
            s.proxy = Some(proxy);
            s.state = if s.register {
                "unregistered"
            } else {
                "disabled"
            };
        }
    }

    pub(super) fn error(&mut self, name: &str, error: String) {
        if let Some(s) = self.get(name) {
            s.last_error = Some(error);
            s.last_error_at = Some(wall_now());
        }
    }

    pub(super) fn registration(&mut self, name: &str, state: RegistrationState) {
        let Some(s) = self.get(name) else {
            return;
        };
        let (label, expires_at) = match state {
            RegistrationState::Unregistered => ("unregistered", None),
            RegistrationState::Registering => ("registering", s.expires_at),
            RegistrationState::Registered { expires_at } => ("registered", Some(wall(expires_at))),
            RegistrationState::Failed { status, .. } => {
                let error = match status {
                    408 => "REGISTER got no response".to_owned(),
                    s => format!("REGISTER refused: {s} {}", crate::message::reason_phrase(s)),
                };
                s.last_error = Some(error);
                s.last_error_at = Some(wall_now());
                ("failed", None)
            }
        };
        s.state = if !s.register && label == "unregistered" {
            "disabled"
        } else {
            label
        };
        s.expires_at = expires_at;
    }

    pub(super) fn health(&mut self, name: &str, up: bool, rtt: Option<Duration>) {
        if let Some(s) = self.get(name) {
            s.health = Some(TrunkHealthStatus {
                up,
                rtt,
                checked_at: wall_now(),
            });
        }
    }
}

/// Resolves `host:port` (an IP literal needs no lookup); prefers IPv4 answers, as the SIP
/// socket is usually bound to an IPv4 address.
pub(super) async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((bare, port)),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "DNS lookup timed out"))??
    .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_registration_events() {
        let mut cfg = TrunkConfig::new("t", "192.0.2.1", 5060);
        cfg.register = true;
        let plain = TrunkConfig::new("p", "192.0.2.2", 5060);
        let mut tracker = TrunkTracker::new(&[cfg, plain]);
        assert_eq!(tracker.snapshot()[0].state, "unresolved");
        tracker.resolved("t", "192.0.2.1:5060".parse().unwrap());
        tracker.resolved("p", "192.0.2.2:5060".parse().unwrap());
        assert_eq!(tracker.snapshot()[0].state, "unregistered");
        assert_eq!(tracker.snapshot()[1].state, "disabled");
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        tracker.registration(
            "t",
            RegistrationState::Registered {
                expires_at: now + Duration::from_secs(60),
            },
        );
        let s = &tracker.snapshot()[0];
        assert!(s.registered());
        let left = s.expires_at.unwrap().duration_since(wall_now()).unwrap();
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60));
        tracker.registration(
            "t",
            RegistrationState::Failed {
                status: 403,
                retry_at: now,
            },
        );
        let s = &tracker.snapshot()[0];
        assert_eq!(s.state, "failed");
        assert_eq!(
            s.last_error.as_deref(),
            Some("REGISTER refused: 403 Forbidden")
        );
        tracker.health("p", true, Some(Duration::from_millis(3)));
        assert!(tracker.snapshot()[1].health.unwrap().up);
    }

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let a = resolve("127.0.0.1", 5070).await.unwrap();
        assert_eq!(a, "127.0.0.1:5070".parse().unwrap());
        let a = resolve("[::1]", 5070).await.unwrap();
        assert_eq!(a, "[::1]:5070".parse().unwrap());
        let a = resolve("localhost", 5070).await.unwrap();
        assert!(a.ip().is_loopback());
    }
}
