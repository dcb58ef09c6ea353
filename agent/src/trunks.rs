//! SIP trunks in the daemon: `[[trunks]]` turned into the driver's trunk settings and the
//! core's admission lists, the trunks' live state for GET /v1/trunks, and their metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sip::driver::{SipHandle, TrunkStatus};
use tokio::sync::watch;

use crate::config::{Config, TrunkConfig, TrunkTransport};

/// The driver's settings for every configured trunk. Reads `password_env` variables.
pub fn driver_trunks(cfg: &Config) -> anyhow::Result<Vec<sip::driver::TrunkConfig>> {
    cfg.trunks
        .iter()
        .enumerate()
        .map(|(i, t)| driver_trunk(t).with_context(|| format!("trunks[{i}] ({})", t.name)))
        .collect()
}

/// One trunk's driver settings.
pub fn driver_trunk(t: &TrunkConfig) -> anyhow::Result<sip::driver::TrunkConfig> {
    let mut d = sip::driver::TrunkConfig::new(
        t.name.clone(),
        t.proxy.host.clone(),
        t.proxy.port.unwrap_or(5060),
    );
    d.domain.clone_from(&t.domain);
    d.transport = match t.transport {
        TrunkTransport::Udp => None,
        TrunkTransport::Tcp => Some(sip::TransportKind::Tcp),
    };
    let password = if t.password_env.is_empty() {
        t.password.expose().to_owned()
    } else {
        std::env::var(&t.password_env)
            .with_context(|| format!("password_env = {:?} is not set", t.password_env))?
    };
    if !t.username.is_empty() {
        let mut creds = sip::Credentials::new(t.username.clone(), password);
        creds.realm = (!t.realm.is_empty()).then(|| t.realm.clone());
        d.credentials = Some(creds);
        d.user = Some(t.username.clone());
    }
    d.register = t.register;
    d.register_expires = t.register_expires;
    d.keepalive = (t.keepalive_secs > 0).then(|| Duration::from_secs(t.keepalive_secs));
    d.from_user = (!t.from_number.is_empty()).then(|| t.from_number.clone());
    d.from_domain = (!t.from_domain.is_empty()).then(|| t.from_domain.clone());
    d.from_display = (!t.caller_id_name.is_empty()).then(|| t.caller_id_name.clone());
    d.codecs = codecs(&t.codecs);
    Ok(d)
}

/// Codec names (opus, PCMU, PCMA; any case) as SDP codecs; unknown names are skipped. Opus
/// offers use payload type 111 (the common choice); answers take the offerer's.
pub fn codecs(names: &[String]) -> Vec<sip::sdp::Codec> {
    names
        .iter()
        .filter_map(|c| match c.to_ascii_uppercase().as_str() {
            "PCMU" => Some(sip::sdp::Codec::pcmu()),
            "PCMA" => Some(sip::sdp::Codec::pcma()),
            "OPUS" => Some(sip::sdp::Codec::opus(111)),
            _ => None,
        })
        .collect()
}

/// The core's inbound allow-lists: one per trunk that lists sources.
pub fn allowed_sources(cfg: &Config) -> Vec<(String, Vec<sip::Cidr>)> {
    cfg.trunks
        .iter()
        .filter(|t| !t.allowed_sources.is_empty())
        .map(|t| {
            (
                t.name.clone(),
                t.allowed_sources.iter().map(|n| n.0).collect(),
            )
        })
        .collect()
}

/// Why a number may not be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    #[error("no trunk named {0:?} in [[trunks]] or [[livekit.outbound_trunks]]")]
    UnknownTrunk(String),
    #[error("{number:?} is not in trunks.{trunk}.allowed_destinations")]
    NotAllowed { trunk: String, number: String },
    #[error("{number:?} is not in livekit.outbound_trunks.{trunk}.allowed_destinations")]
    NotAllowedLiveKit { trunk: String, number: String },
}

/// The way out a call takes: the daemon's own SIP stack through a `[[trunks]]` entry, or
/// LiveKit SIP through a `[[livekit.outbound_trunks]]` one.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    Sip(&'a TrunkConfig),
    LiveKit(&'a crate::config::LiveKitTrunk),
}

/// Finds the trunk named `trunk` and checks `number` against its `allowed_destinations`.
pub fn check_destination<'a>(
    cfg: &'a Config,
    trunk: &str,
    number: &str,
) -> Result<Route<'a>, DestinationError> {
    let (trunk, number) = (trunk.to_owned(), number.to_owned());
    if let Some(t) = cfg.trunks.iter().find(|t| t.name == trunk) {
        return match t.allows_destination(&number) {
            true => Ok(Route::Sip(t)),
            false => Err(DestinationError::NotAllowed { trunk, number }),
        };
    }
    let livekit = &cfg.livekit.outbound_trunks;
    match livekit.iter().find(|t| t.name == trunk) {
        Some(t) if t.allows_destination(&number) => Ok(Route::LiveKit(t)),
        Some(_) => Err(DestinationError::NotAllowedLiveKit { trunk, number }),
        None => Err(DestinationError::UnknownTrunk(trunk)),
    }
}

/// The driver's trunk state for the admin API.
pub struct SipTrunks(pub SipHandle);

impl admin::TrunkDirectory for SipTrunks {
    fn trunks(&self) -> Vec<admin::TrunkInfo> {
        self.0.trunks().iter().map(info).collect()
    }
}

/// Shares the driver's trunk state with the admin API.
pub fn directory(sip: &SipHandle) -> Arc<dyn admin::TrunkDirectory> {
    Arc::new(SipTrunks(sip.clone()))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn info(s: &TrunkStatus) -> admin::TrunkInfo {
    admin::TrunkInfo {
        name: s.name.clone(),
        proxy: s.proxy.map(|a| a.to_string()),
        transport: s.transport.via_token().to_ascii_lowercase(),
        register: s.register,
        registration: s.state.to_owned(),
        registered: s.registered(),
        expires_at: s.expires_at.map(unix_ms),
        last_error: s.last_error.clone(),
        last_error_at: s.last_error_at.map(unix_ms),
        health: s.health.map(|h| admin::TrunkHealthInfo {
            up: h.up,
            rtt_ms: h.rtt.map(|r| r.as_millis() as u64),
            checked_at: unix_ms(h.checked_at),
        }),
    }
}

/// Publishes per-trunk gauges and the SIP admission/auth/TCP counters every second:
/// `agent_sip_trunk_registered{trunk}` (1/0), `agent_sip_trunk_up{trunk}` (1/0, last
/// keepalive), `agent_sip_trunk_rtt_seconds{trunk}`, `agent_sip_trunk_registration_ttl_seconds{trunk}`.
pub async fn export_metrics(sip: SipHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        record_metrics(&sip);
    }
}

/// One round of [`export_metrics`].
pub fn record_metrics(sip: &SipHandle) {
    let now = SystemTime::now();
    for t in sip.trunks() {
        let name = t.name.clone();
        metrics::gauge!("agent_sip_trunk_registered", "trunk" => name.clone())
            .set(if t.registered() { 1.0 } else { 0.0 });
        let ttl = t
            .expires_at
            .and_then(|e| e.duration_since(now).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("agent_sip_trunk_registration_ttl_seconds", "trunk" => name.clone())
            .set(ttl);
        if let Some(h) = t.health {
            metrics::gauge!("agent_sip_trunk_up", "trunk" => name.clone()).set(if h.up {
                1.0
            } else {
                0.0
            });
            if let Some(rtt) = h.rtt {
                metrics::gauge!("agent_sip_trunk_rtt_seconds", "trunk" => name)
                    .set(rtt.as_secs_f64());
            }
        }
    }
    let s = sip.stats();
    for (name, value) in [
        ("agent_sip_rejected_source", s.rejected_source),
        ("agent_sip_rate_limited", s.rate_limited),
        (
            "agent_sip_calls_rejected_capacity",
            s.calls_rejected_capacity,
        ),
        (
            "agent_sip_auth_challenges_answered",
            s.auth_challenges_answered,
        ),
        (
            "agent_sip_requests_switched_to_tcp",
            s.requests_switched_to_tcp,
        ),
    ] {
        metrics::gauge!(name).set(value as f64);
    }
    let tcp = sip.tcp_stats();
    metrics::gauge!("agent_sip_tcp_connections_open").set(tcp.open as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn trunk_settings_for_the_driver() {
        let c = cfg(r#"
[[trunks]]
name = "k"
proxy = "sip:127.0.0.1:5070;transport=tcp"
username = "agent"
password = "pw"
realm = "127.0.0.1"
register = true
keepalive_secs = 0
from_number = "+15550100"
caller_id_name = "Acme"
allowed_sources = ["127.0.0.1"]
allowed_destinations = ["bob", "+1555"]
codecs = ["pcma"]
"#);
        let d = &driver_trunks(&c).unwrap()[0];
        assert_eq!((d.proxy_host.as_str(), d.proxy_port), ("127.0.0.1", 5070));
        assert_eq!(d.domain, "127.0.0.1:5070");
        assert_eq!(d.transport, Some(sip::TransportKind::Tcp));
        let creds = d.credentials.as_ref().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("agent", "pw")
        );
        assert_eq!(creds.realm.as_deref(), Some("127.0.0.1"));
        assert!(d.register && d.keepalive.is_none());
        assert_eq!(d.from_user.as_deref(), Some("+15550100"));
        assert_eq!(d.from_display.as_deref(), Some("Acme"));
        assert_eq!(d.codecs, vec![sip::sdp::Codec::pcma()]);
        let allowed = allowed_sources(&c);
        assert_eq!(allowed[0].0, "k");
        assert!(allowed[0].1[0].contains("127.0.0.1".parse().unwrap()));
        assert!(check_destination(&c, "k", "bob").is_ok());
        assert!(check_destination(&c, "k", "+1 555 0100").is_ok());
        assert_eq!(
            check_destination(&c, "k", "+1666").unwrap_err(),
            DestinationError::NotAllowed {
                trunk: "k".into(),
                number: "+1666".into()
            }
        );
        assert!(matches!(
            check_destination(&c, "x", "bob"),
            Err(DestinationError::UnknownTrunk(_))
        ));
    }

    #[test]
    fn password_from_the_environment() {
        let c = cfg(r#"
[[trunks]]
name = "k"
proxy = "proxy.example"
username = "agent"
password_env = "AGENT_TEST_TRUNK_PASSWORD_UNSET"
"#);
        let err = driver_trunks(&c).unwrap_err();
        assert!(format!("{err:#}").contains("trunks[0] (k)"), "{err:#}");
        assert!(format!("{err:#}").contains("AGENT_TEST_TRUNK_PASSWORD_UNSET"));
    }
}
