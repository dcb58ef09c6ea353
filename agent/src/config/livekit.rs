//! `[livekit]`: taking calls from LiveKit rooms (LiveKit SIP bridges a trunk into a room and
//! dispatches this daemon, registered as an agent worker, to it).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// The LiveKit agent worker run by `agent serve`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveKitConfig {
    /// The LiveKit server (`wss://…`, `https://…`; `ws://`/`http://` for a local one).
    /// Empty: no worker (direct SIP only).
    #[serde(deserialize_with = "server_url")]
    pub url: String,
    /// API key and secret of the project (the worker's JWT and the server API calls).
    pub api_key: String,
    pub api_secret: Secret,
    /// The name dispatch rules and `CreateDispatch` use to send jobs to this daemon (explicit
    /// dispatch: the SIP dispatch rule's `roomConfig.agents[].agentName`).
    pub agent_name: String,
    /// Rooms this daemon joins at once; further job offers are declined (the server offers
    /// them to another worker). Calls over SIP count too: `call.max_concurrent` holds for all.
    pub max_jobs: u32,
    /// How long to wait, after joining, for the SIP participant and media before giving the
    /// job up as failed.
    pub media_timeout_secs: u64,
    /// ICE candidates: `default` (host, server-reflexive via STUN from the server, relay) or
    /// `loopback` (127.0.0.1 host candidates only: a server on this machine, tests).
    #[serde(deserialize_with = "ice_policy")]
    pub ice: String,
    /// LiveKit SIP inbound trunk ids (`sip.trunkID`, e.g. `ST_…`) whose caller IDs are trusted,
    /// as a direct trunk's `trusted_caller_id`: flows with
    /// `verify = "postal_code_unless_trusted"` skip the postal code for their callers.
    pub trusted_trunks: Vec<String>,
}

impl Default for LiveKitConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: String::new(),
            api_secret: Secret::default(),
            agent_name: "agent".to_owned(),
            max_jobs: 8,
            media_timeout_secs: 10,
            ice: "default".to_owned(),
            trusted_trunks: Vec::new(),
        }
    }
}

impl LiveKitConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

fn server_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    let scheme_ok = ["wss://", "ws://", "https://", "http://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !url.is_empty() && !scheme_ok {
        return Err(D::Error::custom(format!(
            "must be a ws(s):// or http(s):// URL, got {url:?}"
        )));
    }
    Ok(url)
}

fn ice_policy<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let ice = String::deserialize(d)?;
    match ice.as_str() {
        "default" | "loopback" => Ok(ice),
        _ => Err(D::Error::custom(format!(
            "must be \"default\" or \"loopback\", got {ice:?}"
        ))),
    }
}
